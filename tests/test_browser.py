"""The MLflow UI and the report in a real browser: headless Chromium driven by Selenium.

A tiny real run of the demo suite (1 task, mae and resnet18-1d, 2 seeds, 2 tuning trials), its
report, and `simecg-bench ui --tuning` on free loopback ports; the browser follows the three-click
comparison from the printed URL, opens a cell's page, the tuning views and the parent run's
description, and measures the report's tables at 1,280 pixels; the UI's terminal is read for
tracebacks and per-request lines. Screenshots go to ``$SIMECG_ARTIFACTS/browser`` (default ``ci-artifacts/browser``
in the repository; CI keeps them). Skipped, with the reason, when Selenium, Chromium or
chromedriver is missing (``.ci/run`` installs them best-effort: ``apt-get install chromium
chromium-driver``, Selenium through the ``test`` extra).
"""

from __future__ import annotations

import os
import re
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


def _wait_for(url: str, seconds: float = WAIT) -> None:
    """Until ``url`` answers (a server that was just started)."""
    import time
    import urllib.request

    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_mlflow_ui_three_click_comparison_run_page_tuning_views_and_report(browser, tmp_path: Path, capsys) -> None:
    """From the URL `simecg-bench ui` prints: every cell as a row with model, task, lead, budget, seed
    and test F1/AUROC/AUPRC; three clicks to a model x task comparison (Views, the saved view, the
    charts button); a run page in model-training mode without the Assistant; the tuning views; the
    report at 1,280 pixels with no table wider than the page; and a terminal without a traceback or
    a line per request."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert main(["run", "--suite", "demo", "--corpus", "sim", "--tracking-uri", uri, "--no-progress",
                 "--set", "grid.seeds=1,2", "--set", "grid.tasks=demo/af", "--set", "grid.models=mae,resnet18-1d",
                 "--set", "tuning.n_trials=2", *TINY]) == 0
    report = tmp_path / "report.html"
    assert main(["report", "--suite", "demo", "--out", str(report), "--tracking-uri", uri]) == 0
    capsys.readouterr()
    client = mlflow.tracking.MlflowClient(uri)
    experiment = client.get_experiment_by_name("simecg-bench/demo").experiment_id
    runs = client.search_runs([experiment])
    parent = next(r for r in runs if r.data.tags["kind"] == "invocation")
    cells = [r for r in runs if r.data.tags["kind"] == "cell"]
    cell = next(r for r in cells if r.data.tags["model"] == "mae:sim" and r.data.tags["seed"] == "1")
    tuning = next(r for r in runs if r.data.tags["kind"] == "tuning")
    assert len(cells) == 4 and cell.info.run_name == "mae:sim · demo/af · seed 1"

    port = free_port()
    ui, url = start_ui(uri, port, "--tuning")
    out = screenshots()
    wait = WebDriverWait(browser, WAIT)
    browser.set_window_size(1280, 900)

    def text() -> str:
        return browser.find_element(By.TAG_NAME, "body").text

    def click(xpath: str) -> None:
        wait.until(lambda d: [e for e in d.find_elements(By.XPATH, xpath) if e.is_displayed()])[0].click()

    try:
        assert "viewStateShareKey=simecg-cells" in url and "workflowType=machine_learning" in url
        browser.get(url)  # 0 clicks: every cell, its settings and test metrics as columns
        wait.until(lambda _: all(c.info.run_name in text() for c in cells))
        headers = browser.execute_script("return Array.from(document.querySelectorAll('.ag-header-cell'))"
                                         ".map(e => e.getAttribute('col-id'))")
        for column in ("model", "task", "lead", "budget", "seed"):
            assert f"tags.`{column}`" in headers, column
        for metric in ("test_f1", "test_auroc", "test_auprc"):
            assert f"metrics.`{metric}`" in headers, metric
        assert parent.info.run_name not in text()  # cells only, not one collapsed parent row
        assert "Ask questions about your experiments" not in text()  # the Assistant stays closed
        browser.save_screenshot(str(out / "ui-1-every-cell.png"))

        click("//button[@data-testid='saved-views-trigger']")  # click 1: Views
        click("//*[@role='menuitem' or @role='menuitemcheckbox' or @role='option'][contains(., 'model x task')]"
              " | //*[normalize-space(text())='SimECG-Bench: model x task, mean over seeds']")  # click 2
        wait.until(lambda _: "Group: model: mae:sim, task: demo/af" in text())
        assert "Group: model: resnet18-1d, task: demo/af" in text() and "(average)" in text()
        browser.save_screenshot(str(out / "ui-2-model-x-task.png"))
        click("//label[.//input[@value='CHART']] | //button[@value='CHART']")  # click 3: the charts button
        wait.until(lambda d: d.find_elements(By.XPATH, "//*[normalize-space(text())='test_auroc']"))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot, .plot-container")) >= 3)
        browser.save_screenshot(str(out / "ui-3-model-x-task-charts.png"))

        # a cell's page, opened from the table: model-training mode (no GenAI pages), no Assistant
        browser.get(url)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"a[href*='/runs/{cell.info.run_id}']"))
        browser.find_element(By.CSS_SELECTOR, f"a[href*='/runs/{cell.info.run_id}']").click()
        wait.until(lambda d: cell.info.run_id in d.current_url and "test_auroc" in text())
        assert "workflowType" not in browser.current_url  # the mode comes from the page's seeded default
        page = text()
        assert "Evaluation runs" not in page and "Prompts" not in page and "Ask questions" not in page
        browser.save_screenshot(str(out / "ui-4-cell-run.png"))

        # the tuning views: Optuna's figures on the tuning run, and optuna-dashboard on the studies
        browser.get(f"http://127.0.0.1:{port}/#/experiments/{experiment}/runs/{tuning.info.run_id}/artifacts")
        click("//*[normalize-space(text())='optuna']")
        click("//*[normalize-space(text())='optimization_history.png']")
        wait.until(lambda d: any(img.is_displayed() and d.execute_script("return arguments[0].naturalWidth", img)
                                 for img in d.find_elements(By.CSS_SELECTOR, "img[src^='blob:']")))
        browser.save_screenshot(str(out / "ui-5-tuning-history.png"))
        _wait_for(f"http://127.0.0.1:{port + 1}/")
        browser.get(f"http://127.0.0.1:{port + 1}/")
        wait.until(lambda _: "study-" in text())
        browser.save_screenshot(str(out / "ui-6-optuna-dashboard.png"))

        # the parent run: the leaderboard as its description, the report among its artifacts
        browser.get(f"http://127.0.0.1:{port}/#/experiments/{experiment}/runs/{parent.info.run_id}")
        wait.until(lambda _: "SimECG-Bench suite demo" in text() and "mean relative F1 gain" in text())
        for more in browser.find_elements(By.XPATH, "//*[self::button or self::a][normalize-space(.)='Show more']"):
            more.click()  # the whole description: where the report is, then the leaderboard
        wait.until(lambda _: "report.html" in text() and "Leaderboard: suite demo" in text())
        browser.save_screenshot(str(out / "ui-7-invocation-run.png"))
    except Exception:
        browser.save_screenshot(str(out / "failure.png"))  # what the browser showed when it went wrong
        (out / "failure.txt").write_text(f"{browser.current_url}\n\n{text()}")
        raise
    finally:
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(timeout=60) == 0
    terminal = ui.stdout.read()
    (out / "ui-terminal.txt").write_text(terminal)
    assert "Traceback" not in terminal and "partially initialized" not in terminal, terminal
    assert not re.search(r'"(GET|POST) /', terminal) and "Presigned download" not in terminal, terminal

    # the report: one file, opened from disk, every picture drawn, no table wider than a 1,280-pixel window
    browser.set_window_size(1280, 1000)
    browser.get(report.resolve().as_uri())
    wait.until(lambda _: "Leaderboard" in text())
    page = text()
    for expected in ("SimECG-Bench report: suite demo", "SYNTHETIC", "mae:sim", "resnet18-1d", "demo/af",
                     "Leaderboard by test AUROC", "Test F1 per task", "Pretraining curves", "Settings"):
        assert expected in page, expected
    images = browser.find_elements(By.TAG_NAME, "img")
    assert images and all(browser.execute_script("return arguments[0].naturalWidth", i) > 0 for i in images)
    for details in browser.find_elements(By.TAG_NAME, "summary"):
        details.click()  # open the per-row details too: they must fit as well
    too_wide = browser.execute_script("return Array.from(document.querySelectorAll('.scroll'))"
                                      ".filter(e => e.scrollWidth > e.clientWidth).map(e => e.innerText.slice(0, 80))")
    assert too_wide == []
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(int(height) + 100, 16000))
    browser.save_screenshot(str(out / "report-1280.png"))
    assert (out / "report-1280.png").stat().st_size > 10_000
