"""The suite report (one self-contained HTML file), cell ROC/PR pictures, `simecg-bench ui` and movable stores."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
from ui_server import start_ui

from benchmark.cli import main
from benchmark.results.report import NOTE_TAG, REPORT_FILE, build_report, curve_figures, log_curves, log_report_safely
from benchmark.tracking.tags import RunTags
from benchmark.tracking.tracker import Tracker, relocate_store

TASKS = ("ptbxl/AFIB", "ptbxl/STD")
TINY = [  # as tests/test_pipeline.py: a tiny real run
    "--set", "pretrain.steps=12", "--set", "pretrain.corpus_size=256", "--set", "pretrain.val_size=32",
    "--set", "pretrain.batch_size=16", "--set", "pretrain.val_every=6", "--set", "pretrain.checkpoint_every=6",
    "--set", "pretrain.num_workers=0", "--set", "finetune.max_epochs=2", "--set", "finetune.eval_every=1",
]
ALL_SECTIONS = {"Leaderboard", "Leaderboard by test AUROC", "Test F1 per task",
                "Relative gain over the strongest baseline", "Pretraining sources side by side", "Label-budget curves",
                "Lead heatmap", "Demographic groups", "Pretraining curves", "Settings"}


def fake_suite(uri: str, suite: str = "fake", *, models=("mae:sim", "mae:ptbxl", "resnet18-1d", "luna"),
               seeds=(1, 2), budgets=(0,), leads=("II",), shifts=("",), groups=True, pretrain=True,
               artifact: Path | None = None, n_pos: dict[str, int] | None = None) -> str:
    """A suite's runs as the runner logs them (an invocation, pretraining and cell children), without training.

    Returns the invocation run id."""
    tracker = Tracker(uri, suite)
    rng = np.random.default_rng(0)
    settings = {"name": suite, "corpora": "sim,ptbxl", "pretrain.steps": 100, "finetune.lr": 0.001}
    with tracker.run(f"{suite} (sim+ptbxl)", RunTags(kind="invocation", suite=suite, corpora="sim,ptbxl"),
                     settings) as inv:
        for corpus in ("sim", "ptbxl") if pretrain else ():
            tags = RunTags(kind="pretrain", fingerprint=_fp("pretrain", corpus), suite=suite, corpus=corpus)
            with tracker.run(f"pretrain {corpus}", tags, parent=inv.run_id) as run:
                run.log_history([{"step": s, "train_loss": 1.0 / s ** 0.5, **({"val_loss": 1.1 / s ** 0.5}
                                                                              if s % 20 == 0 else {})}
                                 for s in range(1, 101)], step_key="step")
        cells = [(m, t, lead, b, shift, seed) for m in models for t in TASKS for seed in seeds
                 for lead in leads for b in budgets for shift in shifts
                 if (lead == "II" or (b == 0 and shift == "")) and (b == 0 or shift == "")]
        for model, task, lead, budget, shift, seed in cells:
            skill = {"mae:sim": 0.75, "mae:ptbxl": 0.72, "resnet18-1d": 0.68, "luna": 0.6}.get(model, 0.5)
            f1 = float(np.clip(skill - (0.2 * 10 / (budget + 10) if budget else 0) - (0.05 if shift else 0)
                               - (0.03 if lead != "II" else 0) + rng.normal(0, 0.02), 0, 1))
            label = f"{model} | {task} | {lead} | budget {budget or 'all'} | seed {seed}"
            label += f" | {shift}" if shift else ""
            tags = RunTags(kind="cell", fingerprint=_fp(label), suite=suite, model=model, task=task, lead=lead,
                           budget=budget, seed=seed, shift=shift, corpus=model.partition(":")[2])
            with tracker.run(label, tags, parent=inv.run_id) as run:
                metrics = {"test_f1": f1, "test_auroc": min(1.0, f1 + 0.1), "test_auprc": f1 - 0.05,
                           "test_n_pos": float((n_pos or {}).get(task, 40)), "test_n_neg": 160.0,
                           "test_f1_ci_low": f1 - 0.06,
                           "test_f1_ci_high": f1 + 0.05}
                if groups:
                    for group, delta in (("sex.M", 0.01), ("sex.F", -0.01), ("age.lt40", 0.03), ("age.40-59", 0.0),
                                         ("age.60-79", -0.02), ("age.80plus", -0.05)):
                        metrics[f"test_f1.{group}"] = f1 + delta
                        metrics[f"n_test.{group}"] = 50.0
                run.log_metrics(metrics)
                if artifact is not None:
                    run.log_artifact(artifact)
    return inv.run_id


@pytest.fixture(scope="session")
def _empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store, made once (creating its tables takes seconds)."""
    db = tmp_path_factory.mktemp("template") / "mlflow.db"
    mlflow.tracking.MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def tracking_uri(tmp_path: Path, _empty_store: Path) -> str:
    """A fresh store for one test: a copy of the empty one."""
    shutil.copy(_empty_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def store_at(folder: Path, template: Path) -> str:
    folder.mkdir(parents=True)
    shutil.copy(template, folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


def _fp(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _sections(page: str) -> set[str]:
    return set(re.findall(r'<section id="[^"]*"><h2>([^<]*)</h2>', page))


def assert_self_contained(page: str) -> None:
    """No script, style sheet link, frame or remote reference: images are inline PNGs."""
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for tag in ("<script", "<link", "<iframe", "<object", "<embed", "@import", "url("):
        assert tag not in page.lower(), tag
    targets = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']*)', page)
    for target in targets:
        assert target.startswith(("data:image/png;base64,", "#")), target[:80]
    for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page):
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------- the report
@pytest.mark.slow
def test_report_holds_the_leaderboard_and_every_plot_the_suite_has(tracking_uri: str, tmp_path: Path) -> None:
    fake_suite(tracking_uri, budgets=(0, 10, 100), leads=("II", "V1"), shifts=("", "sex:M->F"))
    report = build_report(tracking_uri, "fake")
    path = report.write(tmp_path / "report.html")
    page = path.read_text(encoding="utf-8")
    assert_self_contained(page)
    assert _sections(page) == ALL_SECTIONS == set(report.sections)
    assert not report.omitted
    assert page.count('<img alt="') == 8  # per task, gains, sources, budgets, leads, groups, shift, pretraining
    assert len(re.findall(r'href="#', page)) == len(ALL_SECTIONS)  # the contents: links within the page
    board = page[page.index('id="leaderboard"'):page.index('id="leaderboard-by-test-auroc"')]
    assert "<table>" in board
    for name in (*TASKS, "mae:sim", "mae:ptbxl", "resnet18-1d", "luna"):
        assert name in board
    assert "mean relative F1 gain" in board
    # the headline's statistics over tasks; these cells logged no test predictions: no interval, and why
    assert "over tasks (two-sided): sign test p = " in board and ", Wilcoxon p = " in board
    assert "no 95% CI: 2 of 2 tasks without paired test predictions to resample" in board
    sources = page[page.index('id="pretraining-sources-side-by-side"'):page.index('id="label-budget-curves"')]
    for row in ("95% CI of mean gain", "sign test p", "Wilcoxon p", "none: 2 of 2 tasks without paired test"):
        assert row in sources, row
    assert "the leaderboard&#x27;s 95% interval over seeds" in page  # what the error bars are
    # F1 and AUROC: the second board ranks and compares by AUROC
    auroc = page[page.index('id="leaderboard-by-test-auroc"'):page.index('id="test-f1-per-task"')]
    assert "by test AUROC" in auroc and "mean relative AUROC gain" in auroc
    # every bar says its interval and n; the settings the numbers were made with
    assert "95% t-interval over seeds" in page and "n = seeds" in page
    settings = page[page.index('id="settings"'):]
    assert "<th>corpora</th>" in settings and "sim,ptbxl" in settings
    assert "sex M" in page and "age &lt;40" in page and "age 80+" in page
    assert "sex:M → F" in page  # the shift, beside "no shift"
    assert "SYNTHETIC" not in page
    # the description: the headline with its statistics over tasks, then the leaderboard in markdown
    assert "| task |" in report.markdown and "mae:sim" in report.markdown and REPORT_FILE in report.markdown
    headline = report.markdown[:report.markdown.index(REPORT_FILE)]
    assert "- mae:sim: mean relative F1 gain" in headline and "sign test p = " in headline
    assert "Wilcoxon p = " in headline and "no 95% CI" in headline


def _tables(html: str) -> list[list[list[str]]]:
    """Every table of a piece of the report: rows of cell texts ("mean ± sd" on one line again)."""
    def text(cell: str) -> str:
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cell.replace("<br>", " "))).replace("&amp;", "&").strip()

    return [[[text(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)]
             for row in re.findall(r"<tr>(.*?)</tr>", table)] for table in re.findall(r"<table>(.*?)</table>", html)]


def test_report_leaderboard_and_run_description_cannot_disagree(tracking_uri: str) -> None:
    """One store, three readers: every mean, sd, flag and gain of the report's tables is the leaderboard's,
    and so are the run description's; a flagged task is left out of every mean row."""
    from benchmark.results.leaderboard import FEW_MARK, build_leaderboard

    fake_suite(tracking_uri, n_pos={"ptbxl/STD": 3})  # too few test positives: flagged, not counted
    board = build_leaderboard(tracking_uri, "fake")
    report = build_report(tracking_uri, "fake")
    page = report.html
    section = page[page.index('id="leaderboard"'):page.index('id="leaderboard-by-test-auroc"')]
    wide, gains = _tables(section)[:2]
    expected = board.wide(gains=False)
    assert wide[0] == ["task", *map(str, expected.columns)]
    assert [row[0] for row in wide[1:]] == list(expected.index) and f"ptbxl/STD {FEW_MARK}" in expected.index
    for row in wide[1:]:  # each cell: the board's "mean ± sd", n_pos and mean over counted tasks
        assert row[1:] == list(expected.loc[row[0]]), row[0]
    means = board.counted_means()
    assert means["mae:sim"] == pytest.approx(board.rows.set_index(["task", "model"]).test_f1[("ptbxl/AFIB", "mae:sim")])
    expected_gains = board.gains()
    assert [row[1:] for row in gains[1:]] == [list(expected_gains.loc[t]) for t in expected_gains.index]
    # the sources side by side: the same per-task texts, flags and counted means (not a mean over all tasks)
    start = page.index('id="pretraining-sources-side-by-side"')
    sources = _tables(page[start:page.index("</section>", start)])[0]
    by_task = {row[0]: row[1:] for row in sources[1:]}
    sources_order = ("mae:ptbxl", "mae:sim")
    assert by_task[f"ptbxl/STD {FEW_MARK}"] == [expected.loc[f"ptbxl/STD {FEW_MARK}", m] for m in sources_order]
    assert by_task["mean (1 task counted)"] == [f"{means[m]:.3f}" for m in ("mae:ptbxl", "mae:sim")]
    summary = board.summary.set_index("model")
    assert by_task["tasks won"] == [f"{summary.loc[m, 'wins']}/{summary.loc[m, 'tasks_counted']}"
                                    for m in ("mae:ptbxl", "mae:sim")]
    # the run description: the same headline and the same table
    for line in board._summary_lines():
        assert f"- {line}" in report.markdown
    markdown_rows = {line.split(" | ")[0].strip("| "): line for line in report.markdown.splitlines()
                     if line.startswith("| ")}
    for task in expected.index:
        assert markdown_rows[task] == "| " + " | ".join([task, *map(str, board.wide().loc[task])]) + " |"
    assert "| task |" in report.markdown and "| index |" not in report.markdown


def test_report_leaves_out_what_the_suite_does_not_hold(tracking_uri: str, tmp_path: Path) -> None:
    fake_suite(tracking_uri, models=("mae:sim", "resnet18-1d"), seeds=(1,), groups=False, pretrain=False)
    report = build_report(tracking_uri, "fake")
    page = report.html
    assert_self_contained(page)
    assert _sections(page) == {"Leaderboard", "Leaderboard by test AUROC", "Test F1 per task",
                               "Relative gain over the strongest baseline", "Settings"}
    assert set(report.omitted) == ALL_SECTIONS - _sections(page)
    assert "Not in this report" in page and "the suite has no label budgets" in page
    # one seed: the error bars are the cells' bootstrap intervals
    assert "bootstrap interval over its test records" in page


def test_report_of_a_suite_without_finished_cells(tracking_uri: str) -> None:
    Tracker(tracking_uri, "empty")
    report = build_report(tracking_uri, "empty")
    assert_self_contained(report.html)
    assert report.sections == [] and "Leaderboard" in report.omitted


@pytest.mark.slow
def test_report_command_writes_the_file_and_logs_it_on_the_newest_invocation(
        tracking_uri: str, tmp_path: Path, capsys) -> None:
    older = fake_suite(tracking_uri, models=("mae:sim", "resnet18-1d"), seeds=(1,), pretrain=False)
    newest = fake_suite(tracking_uri, models=("mae:sim", "resnet18-1d"), seeds=(1, 2), pretrain=False)
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()  # --out is a file in an existing folder
    assert main(["report", "--suite", "fake", "--out", str(out), "--tracking-uri", tracking_uri]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and newest in printed
    assert_self_contained(out.read_text(encoding="utf-8"))
    client = mlflow.tracking.MlflowClient(tracking_uri)
    assert REPORT_FILE in {a.path for a in client.list_artifacts(newest)}
    assert not client.list_artifacts(older)
    note = client.get_run(newest).data.tags[NOTE_TAG]
    assert "Leaderboard: suite fake" in note and "| ptbxl/AFIB |" in note and "resnet18-1d" in note
    logged = Path(client.download_artifacts(newest, REPORT_FILE, str(tmp_path)))
    assert logged.read_text(encoding="utf-8").count("<section") == out.read_text(encoding="utf-8").count("<section")
    # the leaderboard's rows as a table MLflow shows, replaced (not appended to) when logged again
    assert main(["report", "--suite", "fake", "--out", str(out), "--tracking-uri", tracking_uri]) == 0
    table = client.load_table(client.get_run(newest).info.experiment_id, "comparison.json", run_ids=[newest])
    assert len(table) == 4 and set(table.model) == {"mae:sim", "resnet18-1d"} and "test_f1_sd" in table
    # the experiment's description links the saved views, which the experiment holds
    experiment = client.get_experiment(client.get_run(newest).info.experiment_id)
    description = experiment.tags["mlflow.note.content"]
    assert "viewStateShareKey=simecg-cells" in description and "viewStateShareKey=simecg-model-task" in description
    assert {"mlflow.sharedViewState.simecg-cells", "mlflow.sharedViewState.simecg-model-task"} <= set(experiment.tags)
    # the default suite is the newest; --no-log writes only
    assert main(["report", "--out", str(tmp_path / "again.html"), "--tracking-uri", tracking_uri, "--no-log"]) == 0
    assert (tmp_path / "again.html").is_file()


def test_report_command_names_a_missing_suite(tracking_uri: str, tmp_path: Path, capsys) -> None:
    fake_suite(tracking_uri, models=("resnet18-1d",), seeds=(1,), pretrain=False, groups=False)
    assert main(["report", "--suite", "nope", "--out", str(tmp_path / "r.html"), "--tracking-uri", tracking_uri]) == 2
    assert "no runs of suite 'nope'" in capsys.readouterr().err


def test_a_report_failure_only_warns(tracking_uri: str, monkeypatch, caplog) -> None:
    import benchmark.results.report as report

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(report, "build_report", broken)
    assert log_report_safely(tracking_uri, "fake", "0" * 32) is None
    assert "could not log the report" in caplog.text and "boom" in caplog.text


# --------------------------------------------------------------------------------------- cell curves
class _Recorder:
    def __init__(self) -> None:
        self.figures: dict[str, object] = {}

    def log_figure(self, figure, artifact_file: str) -> None:
        self.figures[artifact_file] = figure


def test_cell_curves_are_two_pictures_even_for_one_class() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random(200) < 0.3
    scores = np.clip(labels * 0.4 + rng.random(200) * 0.6, 0, 1)
    run = _Recorder()
    log_curves(run, labels, scores, "mae:sim | demo/af")
    assert set(run.figures) == {"roc_curve.png", "pr_curve.png"}
    roc, pr = curve_figures(np.zeros(10), np.linspace(0, 1, 10), "one class")  # no curve, a message
    assert "one class only" in roc.axes[0].texts[0].get_text()


@pytest.mark.slow
def test_a_run_logs_cell_curves_and_the_report_on_its_invocation(tracking_uri: str, capsys) -> None:
    args = ["run", "--suite", "demo", "--tracking-uri", tracking_uri, "--no-progress", "--set", "grid.seeds=1",
            "--set", "grid.tasks=demo/af", "--set", "grid.models=resnet18-1d", *TINY]
    assert main(args) == 0
    capsys.readouterr()
    client = mlflow.tracking.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("simecg-bench/demo")
    cells = client.search_runs([experiment.experiment_id], "tags.kind = 'cell'")
    assert len(cells) == 1
    assert {"roc_curve.png", "pr_curve.png"} <= {a.path for a in client.list_artifacts(cells[0].info.run_id)}
    invocation = client.search_runs([experiment.experiment_id], "tags.kind = 'invocation'")[0]
    assert REPORT_FILE in {a.path for a in client.list_artifacts(invocation.info.run_id)}
    assert "resnet18-1d" in invocation.data.tags[NOTE_TAG]


# --------------------------------------------------------------------------------------- movable store
def _move(store: Path, to: Path) -> Path:
    """Copy a store folder elsewhere and take the original away (so nothing can be read from there)."""
    shutil.copytree(store, to)
    shutil.rmtree(store)
    return to


def test_a_copied_store_reads_its_artifacts_from_where_it_is(tmp_path: Path, _empty_store: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("hello")
    store = tmp_path / "first place" / "mlruns"  # a space: URIs are percent-encoded
    uri = store_at(store, _empty_store)
    inv = fake_suite(uri, models=("resnet18-1d",), seeds=(1,), pretrain=False, groups=False, artifact=note)
    moved = _move(store, tmp_path / "elsewhere" / "mlruns")
    new_uri = f"sqlite:///{moved / 'mlflow.db'}"
    assert relocate_store(new_uri) > 0
    assert relocate_store(new_uri) == 0  # done once
    client = mlflow.tracking.MlflowClient(new_uri)
    run = client.search_runs([client.get_experiment_by_name("simecg-bench/fake").experiment_id],
                             "tags.kind = 'cell'")[0]
    assert run.info.artifact_uri.startswith(moved.resolve().as_uri())
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["note.txt"]
    assert Path(client.download_artifacts(run.info.run_id, "note.txt", str(tmp_path))).read_text() == "hello"
    # opening the store the usual way (a Tracker) relocates a moved store too
    again = _move(moved, tmp_path / "third" / "mlruns")
    tracker = Tracker(f"sqlite:///{again / 'mlflow.db'}", "fake")
    assert tracker.client.get_run(inv).info.artifact_uri.startswith(again.resolve().as_uri())
    cells = tracker.client.search_runs([tracker.experiment_id], "tags.kind = 'cell'")
    assert [a.path for a in tracker.client.list_artifacts(cells[0].info.run_id)] == ["note.txt"]


@pytest.mark.slow
def test_encoder_models_are_logged_inside_the_store(tracking_uri: str, tmp_path: Path, monkeypatch) -> None:
    import torch

    monkeypatch.chdir(tmp_path)  # MLflow's Default experiment would put them under ./mlruns/0 of the CWD
    tracker = Tracker(tracking_uri, "fake")
    with tracker.run("pretrain", RunTags(kind="pretrain")) as run:
        run.log_model(torch.nn.Linear(2, 1), "encoder", np.zeros((1, 2), dtype=np.float32))
    model = tracker.client.search_logged_models([tracker.experiment_id])[0]
    store = Path(tracking_uri.removeprefix("sqlite:///")).parent
    assert model.artifact_location.startswith((store / "artifacts").resolve().as_uri())
    assert not (tmp_path / "mlruns").exists()


# --------------------------------------------------------------------------------------- ui
def test_ui_url_is_the_suites_runs_view_in_model_training_mode() -> None:
    from benchmark.commands.run import ui_url

    assert ui_url("127.0.0.1", 5000, "3") == "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning"
    assert ui_url("0.0.0.0", 8080, "1").startswith("http://127.0.0.1:8080/#/experiments/1/runs?")
    assert ui_url("::1", 5000, "1").startswith("http://[::1]:5000/")
    assert ui_url("localhost", 5000) == "http://localhost:5000/#/experiments"


def test_ui_names_a_missing_suite_and_a_busy_port(tracking_uri: str, capsys) -> None:
    fake_suite(tracking_uri, models=("resnet18-1d",), seeds=(1,), pretrain=False, groups=False)
    assert main(["ui", "--suite", "nope", "--tracking-uri", tracking_uri]) == 2
    err = capsys.readouterr().err
    assert "no suite 'nope'" in err and "suites there: fake" in err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["ui", "--tracking-uri", tracking_uri, "--port", str(port)]) == 2
    assert "choose another --port" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process tree from /proc")
def test_stopping_the_server_stops_its_whole_process_group() -> None:
    from benchmark.commands.run import group_alive, stop_process_group

    # a "server" that starts a worker ignoring SIGTERM, as a stuck worker would
    code = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import signal, time; "
            "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)']); time.sleep(60)")
    server = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    deadline = time.monotonic() + 30
    while len(descendants(server.pid)) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    worker = descendants(server.pid).pop()
    started = time.monotonic()
    stop_process_group(server, timeout=1.0)
    assert not alive(server.pid) and not alive(worker) and not group_alive(server.pid)
    assert time.monotonic() - started < 10  # SIGTERM, then SIGKILL for what ignored it


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X"):
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def get_json(url: str, body: dict | None = None) -> dict:
    """GET ``url`` (POST ``body`` as JSON when given) and parse the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process tree from /proc")
def test_ui_serves_a_moved_store_and_ctrl_c_stops_every_process_it_started(tmp_path: Path,
                                                                           _empty_store: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("hello from the store")
    store = tmp_path / "before" / "mlruns"
    fake_suite(store_at(store, _empty_store), models=("resnet18-1d",), seeds=(1,), pretrain=False,
               groups=False, artifact=note)
    moved = _move(store, tmp_path / "after" / "mlruns")
    uri = f"sqlite:///{moved / 'mlflow.db'}"
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.py"  # $BROWSER: webbrowser.open runs it with the URL
    browser.write_text(f"#!{sys.executable}\nimport sys\nopen({str(opened)!r}, 'w').write(sys.argv[1])\n")
    browser.chmod(0o755)
    port = free_port()
    ui, url = start_ui(uri, port, "--open", env={**os.environ, "BROWSER": f"{browser} %s"})
    try:
        experiment = mlflow.tracking.MlflowClient(uri).get_experiment_by_name("simecg-bench/fake").experiment_id
        assert url == (f"http://127.0.0.1:{port}/#/experiments/{experiment}/runs?viewStateShareKey=simecg-cells"
                       "&workflowType=machine_learning")  # the saved view of every cell
        deadline = time.monotonic() + 30
        while not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert opened.read_text() == url  # --open opened the runs view
        # the REST API the UI uses reads the moved store's artifacts
        api = f"http://127.0.0.1:{port}"
        runs = get_json(f"{api}/api/2.0/mlflow/runs/search",
                        {"experiment_ids": [experiment], "filter": "tags.kind = 'cell'"})["runs"]
        run_id = runs[0]["info"]["run_id"]
        listing = get_json(f"{api}/ajax-api/2.0/mlflow/artifacts/list?run_id={run_id}")
        assert [f["path"] for f in listing["files"]] == ["note.txt"]
        with urllib.request.urlopen(f"{api}/get-artifact?path=note.txt&run_uuid={run_id}", timeout=30) as response:
            assert response.read().decode() == "hello from the store"
        started = descendants(ui.pid)
        assert len(started) >= 2  # mlflow's CLI and its uvicorn server, at least
    finally:
        ui.send_signal(signal.SIGINT)  # Ctrl-C (tests/test_browser.py stops its UI with SIGTERM)
        code = ui.wait(timeout=60)
    assert code == 0
    deadline = time.monotonic() + 20
    while any(alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in started if alive(pid)]
    with socket.socket() as probe:  # nothing listens on the port any more
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
