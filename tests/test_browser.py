"""The MLflow UI and the report in a real browser: headless Chromium driven by Selenium.

A tiny real run of the demo suite (1 task, mae and resnet18-1d), its report, and `simecg-bench ui`
on a free loopback port; the browser opens the suite's runs view, finds the parent run, its child
runs and their ``test_f1`` column, opens a cell run and its ROC curve, the parent run's description,
and the report file. Screenshots go to ``$SIMECG_ARTIFACTS/browser`` (default ``ci-artifacts/browser``
in the repository; CI keeps them). Skipped, with the reason, when Selenium, Chromium or
chromedriver is missing (``.ci/run`` installs them best-effort: ``apt-get install chromium
chromium-driver``, Selenium through the ``test`` extra).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
from pathlib import Path

import mlflow
import pytest
from ui_server import start_ui

from benchmark.cli import main

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("SIMECG_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("SIMECG_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
TINY = [
    "--set", "pretrain.steps=12", "--set", "pretrain.corpus_size=256", "--set", "pretrain.val_size=32",
    "--set", "pretrain.batch_size=16", "--set", "pretrain.val_every=6", "--set", "pretrain.checkpoint_every=6",
    "--set", "pretrain.num_workers=0", "--set", "finetune.max_epochs=2", "--set", "finetune.eval_every=1",
]
WAIT = 90  # seconds for a page to show what it should (two busy cores)


def screenshots() -> Path:
    folder = Path(os.environ.get("SIMECG_ARTIFACTS") or ROOT / "ci-artifacts") / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser(tmp_path: Path):
    """Headless Chromium under Selenium with a fresh profile; skipped when any piece is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            pytest.skip(f"{path} not found (apt-get install {package})")
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
                     "--window-size=1600,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_mlflow_ui_and_report_in_a_browser(browser, tmp_path: Path, capsys) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert main(["run", "--suite", "demo", "--corpus", "sim", "--tracking-uri", uri, "--no-progress",
                 "--set", "grid.seeds=1", "--set", "grid.tasks=demo/af", "--set", "grid.models=mae,resnet18-1d",
                 *TINY]) == 0
    report = tmp_path / "report.html"
    assert main(["report", "--suite", "demo", "--out", str(report), "--tracking-uri", uri]) == 0
    capsys.readouterr()
    client = mlflow.tracking.MlflowClient(uri)
    experiment = client.get_experiment_by_name("simecg-bench/demo").experiment_id
    runs = client.search_runs([experiment])
    parent = next(r for r in runs if r.data.tags["kind"] == "invocation")
    cell = next(r for r in runs if r.data.tags.get("model") == "mae:sim" and r.data.tags["kind"] == "cell")
    children = {r.info.run_name for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert {cell.info.run_name, "pretrain sim"} <= children

    port = free_port()
    ui, url = start_ui(uri, port)
    out = screenshots()
    wait = WebDriverWait(browser, WAIT)

    def text() -> str:
        return browser.find_element(By.TAG_NAME, "body").text

    def close_assistant() -> None:  # MLflow's assistant panel takes a third of every page
        for close in browser.find_elements(By.CSS_SELECTOR, "button[data-component-id="
                                                            "'mlflow.assistant.chat_panel.close']"):
            close.click()

    try:
        assert url == f"http://127.0.0.1:{port}/#/experiments/{experiment}/runs?workflowType=machine_learning"
        # the suite's runs view: the parent run, expanded to its child runs, with the test_f1 column
        browser.get(url)
        wait.until(lambda _: parent.info.run_name in text())
        close_assistant()
        if cell.info.run_name not in text():
            browser.find_element(By.CSS_SELECTOR, "button[data-component-id*='runnamecellrenderer']").click()
        wait.until(lambda _: all(name in text() for name in children))
        dropdown = browser.find_element(By.CSS_SELECTOR, "button[data-testid='column-selection-dropdown']")
        dropdown.click()
        panel = wait.until(lambda d: d.find_element(By.ID, dropdown.get_attribute("aria-controls")))
        panel.find_element(By.CSS_SELECTOR, "input[placeholder='Search columns']").send_keys("test_f1")
        leaf = ".//*[normalize-space(.)='test_f1' and not(*[normalize-space(.)='test_f1'])]"
        option = wait.until(lambda _: [e for e in panel.find_elements(By.XPATH, leaf) if e.is_displayed()])
        option[0].click()
        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='sort-header-test_f1']"))
        f1 = f"{cell.data.metrics['test_f1']}"[:6]
        wait.until(lambda _: f1 in browser.find_element(By.CSS_SELECTOR, ".ag-root").text)
        browser.save_screenshot(str(out / "ui-runs.png"))
        runs_view = text()
        assert "Model training" in runs_view and parent.info.run_name in runs_view and "test_f1" in runs_view

        # a cell run: its metrics, its parent, and its ROC curve among the artifacts
        browser.find_element(By.CSS_SELECTOR, f"a[href*='/runs/{cell.info.run_id}']").click()
        wait.until(lambda d: cell.info.run_id in d.current_url)
        if "workflowType" not in browser.current_url:  # MLflow keeps the mode in the URL only
            browser.get(browser.current_url + "?workflowType=machine_learning")
        wait.until(lambda _: "test_f1" in text() and "Parent run" in text())
        close_assistant()
        assert cell.info.run_name in text() and parent.info.run_name in text()
        browser.save_screenshot(str(out / "ui-cell-run.png"))
        browser.find_element(By.XPATH, "//*[@role='tab' or self::a or self::button][normalize-space(.)='Artifacts']"
                             ).click()
        wait.until(lambda _: "roc_curve.png" in text() and "pr_curve.png" in text())
        browser.find_element(By.XPATH, "//*[normalize-space(text())='roc_curve.png']").click()
        wait.until(lambda d: any(img.is_displayed() and d.execute_script("return arguments[0].naturalWidth", img)
                                 for img in d.find_elements(By.CSS_SELECTOR, "img[src^='blob:']")))
        browser.save_screenshot(str(out / "ui-cell-roc-curve.png"))

        # the parent run: the leaderboard as its description, the report among its artifacts
        browser.get(f"http://127.0.0.1:{port}/#/experiments/{experiment}/runs/{parent.info.run_id}"
                    "?workflowType=machine_learning")
        wait.until(lambda _: "SimECG-Bench suite demo" in text())  # the headline, before "Show more"
        close_assistant()
        assert "mean relative F1 gain" in text() and "report.html" in text()
        for more in browser.find_elements(By.XPATH, "//*[self::button or self::a][normalize-space(.)='Show more']"):
            more.click()  # the whole description: the leaderboard table
        wait.until(lambda _: "Leaderboard: suite demo" in text())
        assert "demo/af" in text().split("Leaderboard: suite demo", 1)[1] and "resnet18-1d" in text()
        assert all(name in text() for name in children)  # the parent run lists its child runs
        browser.save_screenshot(str(out / "ui-parent-run.png"))
    except Exception:
        browser.save_screenshot(str(out / "failure.png"))  # what the browser showed when it went wrong
        (out / "failure.txt").write_text(f"{browser.current_url}\n\n{text()}")
        raise
    finally:
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(timeout=60) == 0

    # the report: one file, opened from disk, every picture drawn
    browser.get(report.resolve().as_uri())
    wait.until(lambda _: "Leaderboard" in text())
    page = text()
    for expected in ("SimECG-Bench report: suite demo", "SYNTHETIC", "mae:sim", "resnet18-1d", "demo/af",
                     "Test F1 per task", "Pretraining curves"):
        assert expected in page, expected
    images = browser.find_elements(By.TAG_NAME, "img")
    assert images and all(browser.execute_script("return arguments[0].naturalWidth", i) > 0 for i in images)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1300, min(int(height) + 100, 12000))
    browser.save_screenshot(str(out / "report.png"))
    assert (out / "report.png").stat().st_size > 10_000
