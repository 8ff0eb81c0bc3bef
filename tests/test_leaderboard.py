"""The leaderboard reads FINISHED cell runs back from MLflow and computes the headline numbers."""

from __future__ import annotations

import csv
import io
import json
import math
import time

import pandas as pd
import pytest
from scipy.stats import binomtest, wilcoxon

from benchmark.cli import main
from benchmark.results.leaderboard import MIN_POSITIVES, build_leaderboard, model_role
from benchmark.tracking.tags import RunTags
from benchmark.tracking.tracker import Tracker
from simecg.errors import ConfigError

F1 = {  # (task, model) -> F1 per seed
    ("ptbxl/AFIB", "mae:sim"): [0.80, 0.90],
    ("ptbxl/AFIB", "resnet18-1d"): [0.70, 0.70],
    ("ptbxl/AFIB", "transformer-scratch"): [0.95, 0.95],  # an ablation: never "the strongest baseline"
    ("ptbxl/AFIB", "xgboost-features"): [0.99, 0.99],  # an extra: never "the strongest baseline" either
    ("ptbxl/PVC", "mae:sim"): [0.50, 0.50],
    ("ptbxl/PVC", "resnet18-1d"): [0.60, 0.60],
    ("ptbxl/PVC", "mega"): [0.40, 0.40],
    # one test positive (the smoke suite's -100%): flagged, shown, never counted
    ("ptbxl/PAC", "mae:sim"): [0.0, 0.0],
    ("ptbxl/PAC", "resnet18-1d"): [1.0, 1.0],
}
N_POS = {"ptbxl/AFIB": 50, "ptbxl/PVC": 40, "ptbxl/PAC": 1}
ROW_FIELDS = {"task", "model", "test_f1", "test_f1_sd", "test_f1_ci_low", "test_f1_ci_high", "n_seeds", "test_n_pos"}
SUMMARY_FIELDS = {"mean_relative_gain_pct", "mean_relative_gain_ci_low", "mean_relative_gain_ci_high", "wins",
                  "losses", "ties", "significant_wins", "sign_test_p", "wilcoxon_p", "tasks_counted",
                  "mean_relative_gain_ci_note"}


def _cell(tracker: Tracker, fingerprint: str, task: str, model: str, seed: int, f1: float, lead: str = "II",
          finish: bool = True, n_pos: int | None = None, params: dict[str, str] | None = None,
          suite: str = "unit") -> None:
    tags = RunTags(kind="cell", fingerprint=fingerprint, suite=suite, task=task, model=model, lead=lead, seed=seed)
    metrics = {"test_f1": f1, "test_auroc": 0.9}
    if n_pos is not None:
        metrics.update({"test_n_pos": n_pos, "test_n_neg": 200})
    if finish:
        with tracker.run("cell", tags, params) as run:
            run.log_metrics(metrics)
    else:  # a run a killed process left RUNNING
        run_id = tracker.client.create_run(tracker.experiment_id, tags=tags.to_mlflow()).info.run_id
        tracker.log_metrics(run_id, {"test_f1": f1})


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One store for the module's tests, which only read it."""
    tracking_uri = f"sqlite:///{tmp_path_factory.mktemp('leaderboard') / 'mlflow.db'}"
    tracker = Tracker(tracking_uri, "unit")
    for (task, model), values in F1.items():
        for seed, f1 in enumerate(values, start=1):
            _cell(tracker, f"{task}{model}{seed}", task, model, seed, f1, n_pos=N_POS[task])
    # a duplicate of a finished fingerprint (e.g. a race between two workers) counts once: the newest
    _cell(tracker, "ptbxl/PVCmega2", "ptbxl/PVC", "mega", 2, 0.40, n_pos=40)
    # unfinished, other-lead and old-schema runs are ignored
    _cell(tracker, "x", "ptbxl/PVC", "mega", 3, 0.0, finish=False)
    _cell(tracker, "y", "ptbxl/PVC", "resnet18-1d", 1, 0.0, lead="I")
    old = {**RunTags(kind="cell", fingerprint="z", task="ptbxl/PVC", model="mega", lead="II").to_mlflow(),
           "schema": "1"}
    old_run = tracker.client.create_run(tracker.experiment_id, tags=old).info.run_id
    tracker.log_metrics(old_run, {"test_f1": 1.0})
    tracker.client.set_terminated(old_run)
    return tracking_uri


@pytest.mark.slow
def test_means_sds_gains_and_wins(store: str) -> None:
    board = build_leaderboard(store, "unit")
    rows = board.rows.set_index(["task", "model"])
    assert rows.loc[("ptbxl/AFIB", "mae:sim"), "test_f1"] == pytest.approx(0.85)
    assert rows.loc[("ptbxl/AFIB", "mae:sim"), "test_f1_sd"] == pytest.approx(0.0707, abs=1e-3)
    # 95% t-interval over 2 seeds: 0.85 ± t(0.975, 1) * sd / sqrt(2) = 0.85 ± 12.706 * 0.05, clipped to [0, 1]
    assert rows.loc[("ptbxl/AFIB", "mae:sim"), "test_f1_ci_low"] == pytest.approx(0.85 - 12.7062 * 0.05, abs=1e-3)
    assert rows.loc[("ptbxl/AFIB", "mae:sim"), "test_f1_ci_high"] == 1.0
    assert rows.loc[("ptbxl/PVC", "mega"), "n_seeds"] == 2
    assert rows.loc[("ptbxl/PVC", "mega"), "test_n_pos"] == 40
    # strongest baseline: resnet on both tasks (scratch is an ablation, XGBoost an extra)
    assert rows.loc[("ptbxl/AFIB", "mae:sim"), "best_baseline"] == "resnet18-1d"
    assert rows.loc[("ptbxl/AFIB", "mae:sim"), "relative_gain_pct"] == pytest.approx((0.85 - 0.7) / 0.7 * 100)
    assert rows.loc[("ptbxl/PVC", "mae:sim"), "relative_gain_pct"] == pytest.approx((0.5 - 0.6) / 0.6 * 100)
    summary = board.summary.set_index("model").loc["mae:sim"]
    assert summary.wins == 1 and summary.tasks_counted == 2
    assert summary.mean_relative_gain_pct == pytest.approx(((0.15 / 0.7) + (-0.1 / 0.6)) / 2 * 100)


def test_roles_decide_who_can_be_the_strongest_baseline(store: str) -> None:
    assert [model_role(m) for m in ("resnet18-1d", "mega", "luna", "emb-gru", "emb-lstm")] == ["baseline"] * 5
    assert model_role("xgboost-features") == "extra"
    assert model_role("transformer-scratch") == "ablation"
    assert model_role("mae:sim") == "pretrained"
    rows = build_leaderboard(store, "unit").rows
    # XGBoost (0.99) and the scratch Transformer (0.95) beat resnet (0.70) on AFIB, and are never chosen
    assert set(rows.best_baseline.dropna()) == {"resnet18-1d"}
    afib = rows[rows.task == "ptbxl/AFIB"].set_index("model")
    assert afib.loc["xgboost-features", "role"] == "extra" and afib.loc["xgboost-features", "test_f1"] > 0.98
    assert afib.relative_gain_pct.dropna().index.tolist() == ["mae:sim"]  # gains only for pretrained models


def test_tasks_with_few_test_positives_are_flagged_and_not_counted(store: str) -> None:
    board = build_leaderboard(store, "unit")
    assert board.min_positives == MIN_POSITIVES == 10
    rows = board.rows.set_index(["task", "model"])
    pac = rows.loc[("ptbxl/PAC", "mae:sim")]
    assert bool(pac.few_positives) is True and pac.flag == "< 10 test positives" and pac.test_n_pos == 1
    assert pac.test_f1 == 0.0  # shown ...
    assert math.isnan(pac.relative_gain_pct)  # ... but no -100% gain
    assert pd.isna(pac.win)  # neither a win nor a loss
    assert rows.few_positives.groupby("task").all().to_dict() == {"ptbxl/AFIB": False, "ptbxl/PAC": True,
                                                                  "ptbxl/PVC": False}
    summary = board.summary.set_index("model").loc["mae:sim"]
    assert (summary.tasks_counted, summary.tasks_left_out, summary.wins) == (2, 1, 1)
    table = board.render("table")
    assert "wins 1/2 tasks counted (0 significant; 2 not tested, see note); 1 task with < 10 test positives left " \
           "out" in table
    assert "ptbxl/PAC ‡" in table and "-100.00%" not in table
    # the mean row leaves PAC out: mae:sim's mean is over AFIB and PVC only
    assert board.wide().loc["mean", "mae:sim"] == f"{(0.85 + 0.5) / 2:.3f}"
    # a lower threshold counts the task again (and its -100% with it)
    lenient = build_leaderboard(store, "unit", min_positives=1)
    assert lenient.summary.set_index("model").loc["mae:sim", "tasks_counted"] == 3
    assert "-100.00%" in lenient.render("table")


def test_formats_carry_the_row_fields_and_the_summary(store: str) -> None:
    board = build_leaderboard(store, "unit")
    rows = list(csv.DictReader(io.StringIO(board.render("csv"))))
    assert ROW_FIELDS | SUMMARY_FIELDS | {"min_positives", "few_positives", "p_value"} <= set(rows[0])
    assert len(rows) == len(F1)
    mae_afib = next(r for r in rows if r["task"] == "ptbxl/AFIB" and r["model"] == "mae:sim")
    assert (mae_afib["wins"], mae_afib["tasks_counted"], mae_afib["min_positives"]) == ("1", "2", "10")
    # one win, one loss; gains +21.4% and -16.7%: both two-sided tests give p = 1
    assert (mae_afib["losses"], mae_afib["ties"], mae_afib["sign_test_p"], mae_afib["wilcoxon_p"]) == (
        "1", "0", "1", "1")
    # these cells logged no test predictions: no records to resample, so no interval, and the reason
    assert mae_afib["mean_relative_gain_ci_low"] == "" and "without paired test predictions" in mae_afib[
        "mean_relative_gain_ci_note"]
    data = json.loads(board.render("json"))
    assert data["synthetic"] is False and len(data["rows"]) == len(F1) and data["min_positives"] == 10
    assert all(set(r) >= ROW_FIELDS for r in data["rows"])
    assert set(data["summary"][0]) >= SUMMARY_FIELDS and data["summary"][0]["tasks_counted"] == 2
    assert data["summary"][0]["mean_relative_gain_ci_low"] is None and data["summary"][0]["sign_test_p"] == 1.0
    assert {"mean_relative_gain_ci", "sign_test", "wilcoxon"} <= set(data["statistics"])
    assert "two-sided" in data["statistics"]["sign_test"] and "two-sided" in data["statistics"]["wilcoxon"]
    for fmt in ("table", "markdown"):
        text = board.render(fmt)
        assert "0.850 ± 0.071" in text and "wins 1/2 tasks counted (0 significant; 2 not tested" in text
        assert "mean relative F1 gain +2.38%" in text and "fewer than 10 test positives" in text
        assert "no 95% CI: 2 of 2 tasks without paired test predictions to resample" in text
        assert "over tasks (two-sided): sign test p = 1.000, Wilcoxon p = 1.000" in text
        assert "headline over tasks: 95% CI of the mean gain by a hierarchical bootstrap" in text
        # the per-row block: task, model, F1, sd, the interval over seeds, seeds, test positives
        line = next(x for x in text.splitlines() if "ptbxl/AFIB" in x and "mae:sim" in x and "[" in x)
        for part in ("0.850", "0.071", "[0.215, 1.000]", "2", "50"):
            assert part in line
    assert board.render("markdown").count("|") > 10


def test_with_one_counted_task_or_none_there_is_no_interval_and_the_summary_says_why(store: str) -> None:
    one = build_leaderboard(store, "unit", min_positives=45)  # AFIB (50 positives) alone is counted
    summary = one.summary.set_index("model").loc["mae:sim"]
    assert (summary.tasks_counted, summary.wins, summary.losses) == (1, 1, 0)
    assert math.isnan(summary.mean_relative_gain_ci_low) and math.isnan(summary.mean_relative_gain_ci_high)
    assert summary.mean_relative_gain_ci_note == "one task with a gain; an interval over tasks needs two or more"
    assert summary.sign_test_p == 1.0 and summary.wilcoxon_p == 1.0  # one task cannot reject anything
    assert "(no 95% CI: one task with a gain; an interval over tasks needs two or more)" in one.render("table")
    none = build_leaderboard(store, "unit", min_positives=1000)  # every task flagged
    summary = none.summary.set_index("model").loc["mae:sim"]
    assert (summary.tasks_counted, summary.wins, summary.losses, summary.ties) == (0, 0, 0, 0)
    for column in ("mean_relative_gain_pct", "mean_relative_gain_ci_low", "mean_relative_gain_ci_high",
                   "sign_test_p", "wilcoxon_p"):
        assert math.isnan(summary[column]), column
    text = none.render("table")
    assert "mae:sim: no task counted (3 tasks with < 1000 test positives left out)" in text
    assert "sign test p" not in text and "95% CI [" not in text
    data = json.loads(none.render("json"))["summary"][0]
    assert data["sign_test_p"] is None and data["mean_relative_gain_ci_low"] is None


@pytest.mark.slow
def test_ties_are_left_out_of_the_sign_test_and_zero_gains_out_of_wilcoxon(tracking_uri: str) -> None:
    f1 = {"ptbxl/AFIB": (0.8, 0.6), "ptbxl/PVC": (0.7, 0.7), "ptbxl/PAC": (0.5, 0.6), "ptbxl/STD_": (0.9, 0.5)}
    tracker = Tracker(tracking_uri, "ties")
    for task, (mine, base) in f1.items():
        _cell(tracker, f"{task}m", task, "mae:sim", 1, mine, n_pos=50, suite="ties")
        _cell(tracker, f"{task}b", task, "resnet18-1d", 1, base, n_pos=50, suite="ties")
    board = build_leaderboard(tracking_uri, "ties")
    summary = board.summary.set_index("model").loc["mae:sim"]
    assert (summary.wins, summary.losses, summary.ties, summary.tasks_counted) == (2, 1, 1, 4)
    assert summary.sign_test_p == pytest.approx(binomtest(2, 3).pvalue)  # n = wins + losses: the tie is out
    gains = [(m - b) / b * 100 for m, b in f1.values() if m != b]
    assert summary.wilcoxon_p == pytest.approx(wilcoxon(gains).pvalue)  # the zero gain is out
    assert "sign test p = 1.000 (1 tie left out)" in board.render("table")


def test_other_lead_and_unknown_suite(store: str) -> None:
    board = build_leaderboard(store, "unit", lead="I")
    assert list(board.rows.model) == ["resnet18-1d"] and list(board.rows.task) == ["ptbxl/PVC"]
    assert board.rows.test_f1.tolist() == [0.0]
    with pytest.raises(ConfigError, match="suites with results there: unit"):
        build_leaderboard(store, "nothing-here")
    assert "note: also in this suite: lead I (--lead)" in build_leaderboard(store, "unit").render("table")


@pytest.mark.parametrize(("option", "named"), [
    (["--suite", "nonexist"], "suites with results there: unit"),
    (["--suite", "unit", "--lead", "V9"], "it holds lead I, II"),
    (["--suite", "unit", "--budget", "5"], "it holds budget 0 (all)"),
    (["--suite", "unit", "--shift", "sex:M->F"], "it holds shift '' (none)"),
    (["--suite", "unit", "--positives-only"], "it holds positives only all-classes"),
])
def test_a_filter_matching_nothing_exits_2_naming_what_exists(
    store: str, option: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["leaderboard", "--tracking-uri", store, *option]) == 2
    assert named in capsys.readouterr().err


@pytest.mark.slow
def test_the_default_view_falls_back_to_what_the_suite_holds(tracking_uri: str) -> None:
    """A leads-only suite has no lead II cell: the board `run` prints shows what exists."""
    tracker = Tracker(tracking_uri, "leads-only")
    for lead in ("I", "V1", "V1"):
        _cell(tracker, f"c{lead}{time.time()}", "ptbxl/AFIB", "resnet18-1d", 1, 0.5, lead=lead, n_pos=50,
              suite="leads-only")
    board = build_leaderboard(tracking_uri, "leads-only")
    assert board.lead == "V1" and len(board.rows) == 1  # the lead with the most finished cells
    assert "also in this suite: lead I (--lead)" in board.render("table")
    assert main(["leaderboard", "--tracking-uri", tracking_uri, "--suite", "leads-only", "--lead", "I"]) == 0


@pytest.mark.slow
def test_a_model_name_with_two_configurations_shows_the_newest(tracking_uri: str) -> None:
    tracker = Tracker(tracking_uri, "configs")
    old, new = {"model.encoder": "aaaaaa111111"}, {"model.encoder": "bbbbbb222222"}
    for seed, f1 in ((1, 0.2), (2, 0.2)):
        _cell(tracker, f"old{seed}", "ptbxl/AFIB", "mae:sim", seed, f1, n_pos=50, params=old, suite="configs")
    time.sleep(0.01)
    for seed, f1 in ((1, 0.8), (2, 0.9)):
        _cell(tracker, f"new{seed}", "ptbxl/AFIB", "mae:sim", seed, f1, n_pos=50, params=new, suite="configs")
    _cell(tracker, "base", "ptbxl/AFIB", "resnet18-1d", 1, 0.5, n_pos=50, suite="configs")
    board = build_leaderboard(tracking_uri, "configs")
    mae = board.rows.set_index("model").loc["mae:sim"]
    assert mae.test_f1 == pytest.approx(0.85) and mae.n_seeds == 2  # the old encoder's 0.2s are not mixed in
    assert "mae:sim: 1 older configuration left out (2 cells; see --all-configs)" in board.notes
    assert "older configuration left out" in board.render("table")
    every = build_leaderboard(tracking_uri, "configs", all_configs=True).rows.set_index("model")
    older = [m for m in every.index if m.startswith("mae:sim#")]
    assert len(older) == 1 and every.loc[older[0], "test_f1"] == pytest.approx(0.2)
    assert every.loc["mae:sim", "test_f1"] == pytest.approx(0.85)
    assert every.loc[older[0], "role"] == "pretrained"


def test_runs_of_another_tag_schema_are_left_out_and_counted(store: str) -> None:
    runs, foreign = Tracker(store, "unit").cell_runs()
    assert foreign == 1
    assert "z" not in {tags.fingerprint for _, tags in runs}
    mega_pvc = build_leaderboard(store, "unit").rows.set_index(["task", "model"]).loc[("ptbxl/PVC", "mega")]
    assert mega_pvc.test_f1 == pytest.approx(0.40) and mega_pvc.n_seeds == 2  # not the old run's 1.0


def test_results_are_read_page_by_page(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmark.tracking.tracker as tracking

    whole = build_leaderboard(store, "unit").rows
    monkeypatch.setattr(tracking, "PAGE_SIZE", 3)  # 20 finished cell runs of this schema: 7 pages
    tracker = Tracker(store, "unit")
    assert len(tracker.cell_runs()[0]) == 19  # 18 seeds' cells + lead I; the duplicate counts once
    assert len(tracker.finished_fingerprints()) == 19
    paged = build_leaderboard(store, "unit").rows
    assert paged.equals(whole)


def _scored_cell(tracker: Tracker, task: str, model: str, seed: int, f1: float, auroc: float,
                 encoder: str = "") -> None:
    tags = RunTags(kind="cell", fingerprint=f"{task}{model}{seed}", suite="metric", task=task, model=model, lead="II",
                   seed=seed, encoder=encoder)
    with tracker.run("cell", tags) as run:
        run.log_metrics({"test_f1": f1, "test_auroc": auroc, "test_auprc": auroc / 2, "test_n_pos": 40,
                         "test_n_neg": 200})


def test_metric_auroc_ranks_compares_and_states_auroc(tracking_uri: str, capsys) -> None:
    """--metric auroc: the strongest baseline, the gains and every label are AUROC's; F1 stays a column."""
    tracker = Tracker(tracking_uri, "metric")
    for seed in (1, 2):  # resnet has the best F1, mega the best AUROC
        _scored_cell(tracker, "ptbxl/AFIB", "resnet18-1d", seed, 0.70, 0.60)
        _scored_cell(tracker, "ptbxl/AFIB", "mega", seed, 0.50, 0.80 + 0.02 * seed)
        _scored_cell(tracker, "ptbxl/AFIB", "mae:sim", seed, 0.60, 0.90)
    f1 = build_leaderboard(tracking_uri, "metric").rows.set_index("model")
    auroc = build_leaderboard(tracking_uri, "metric", metric="auroc")
    rows = auroc.rows.set_index("model")
    assert f1.loc["mae:sim", "best_baseline"] == "resnet18-1d" and rows.loc["mae:sim", "best_baseline"] == "mega"
    assert rows.loc["mae:sim", "relative_gain_pct"] == pytest.approx((0.90 - 0.83) / 0.83 * 100)
    assert rows.loc["mega", "test_auroc_sd"] == pytest.approx(0.0141, abs=1e-3)
    assert rows.loc["mega", "test_f1"] == pytest.approx(0.50)  # the other metrics' means stay
    assert {"auroc_difference", "test_auroc_ci_low"} <= set(auroc.rows) and "f1_difference" not in auroc.rows
    table = auroc.render("table")
    assert "test AUROC (mean ± sd over seeds)" in table and "mean relative AUROC gain" in table
    assert "F1" not in table.split("\n", 1)[0]
    assert json.loads(auroc.render("json"))["metric"] == "auroc"
    assert main(["leaderboard", "--suite", "metric", "--tracking-uri", tracking_uri, "--metric", "auprc"]) == 0
    assert "test AUPRC (mean ± sd over seeds)" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="--metric must be one of f1, auroc, auprc"):
        build_leaderboard(tracking_uri, "metric", metric="accuracy")


def test_per_seed_export_lists_every_cell_with_its_flag_and_run(store: str, capsys) -> None:
    assert main(["leaderboard", "--suite", "unit", "--tracking-uri", store, "--per-seed", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == sum(len(v) for v in F1.values())  # one per (task, model, seed): the newest run of each
    assert {(r["task"], r["model"], r["seed"]) for r in rows} == {
        (t, m, str(s)) for (t, m), values in F1.items() for s in range(1, len(values) + 1)}
    pac = [r for r in rows if r["task"] == "ptbxl/PAC"]
    assert all(r["few_positives"] == "True" and r["flag"] == "< 10 test positives" for r in pac)
    assert all(len(r["run_id"]) == 32 for r in rows) and rows[0]["metric"] == "f1"


def test_the_table_fits_a_terminal_and_markdown_heads_its_first_column_task(store: str) -> None:
    board = build_leaderboard(store, "unit")
    narrow = board.render("table", width=100)
    assert max(len(line) for line in narrow.splitlines()) <= 100
    assert "ptbxl/PAC ‡" in narrow and "0.850±0.071" in narrow  # compact means, flags kept
    assert "Relative F1 gain over the strongest baseline" in narrow
    assert board.render("markdown").split("\n\n| ", 1)[1].startswith("task | n_pos |")


def test_an_encoder_whose_loss_did_not_fall_is_named_in_the_header(tracking_uri: str) -> None:
    tracker = Tracker(tracking_uri, "metric")
    with tracker.run("pretrain ecgsyn", RunTags(kind="pretrain", fingerprint="enc-flat", suite="metric",
                                                corpus="ecgsyn")) as run:
        run.log_history([{"step": 50, "train_loss": 1.25}, {"step": 300, "train_loss": 1.00}], step_key="step")
        run.log_metrics({"encoder_val_loss": 0.999})
    with tracker.run("pretrain sim", RunTags(kind="pretrain", fingerprint="enc-good", suite="metric",
                                             corpus="sim")) as run:
        run.log_history([{"step": 50, "train_loss": 1.25}, {"step": 300, "train_loss": 0.46}], step_key="step")
        run.log_metrics({"encoder_val_loss": 0.48})
    for seed in (1, 2):
        _scored_cell(tracker, "ptbxl/AFIB", "mae:ecgsyn", seed, 0.5, 0.6, encoder="enc-flat")
        _scored_cell(tracker, "ptbxl/AFIB", "mae:sim", seed, 0.5, 0.6, encoder="enc-good")
        _scored_cell(tracker, "ptbxl/AFIB", "resnet18-1d", seed, 0.5, 0.6)
    notes = build_leaderboard(tracking_uri, "metric").notes
    flat = [n for n in notes if "its encoder" in n]
    assert len(flat) == 1 and flat[0].startswith("mae:ecgsyn: its encoder validation loss 0.999")
    assert "predicting zero" in flat[0]
