"""The corpus quality report (`simecg-bench corpus compare`): measures, distances, files, MLflow run."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.results import corpus_report as cr
from simecg.errors import ConfigError

N = 60
BEAT_LENGTH, BEAT_SD = 0.8, 0.05  # s: the sim corpus's beats in these tests -> 60 / (0.8 +- 2 x 0.05) bpm
SIM_SET = [f"sources.sim.corpus_options.gaussian.beat_length={BEAT_LENGTH}",
           f"sources.sim.corpus_options.gaussian.beat_length_sd_record={BEAT_SD}"]


@pytest.fixture(scope="module")
def flat_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder corpus of flat-line ECGs (offsets with a 2-uV ripple: the folder corpus refuses an
    exactly constant ECG, which cannot be z-scored), one .npy of N rows."""
    folder = tmp_path_factory.mktemp("flat")
    offsets = np.linspace(-0.5, 0.5, N, dtype=np.float32)[:, None]
    ripple = 1e-3 * np.sin(np.arange(5000, dtype=np.float32) / 50.0)
    np.save(folder / "flat.npy", (offsets + ripple).astype(np.float32))
    return folder


def _overrides(flat: Path) -> list[str]:
    return [*SIM_SET, f"sources.folder.corpus_options.path={flat}"]


def test_sim_has_beats_flat_has_none_and_no_data_gives_nan_distances(tmp_path, flat_folder, caplog):
    with caplog.at_level(logging.WARNING, logger="benchmark.results.corpus_report"):
        frame = cr.compare_corpora(["sim", "folder"], N, 0, tmp_path / "out", data_dir=tmp_path / "no-data",
                                   overrides=_overrides(flat_folder))
    rows = frame.set_index("corpus")
    assert list(frame.columns) == list(cr.COLUMNS) and list(frame["n"]) == [N, N]
    sim, flat = rows.loc["sim"], rows.loc["folder"]
    assert flat["r_peak_share"] == 0 and math.isnan(flat["hr_median"])
    assert flat["flat_share"] == 1 and flat["nonfinite_share"] == 0
    assert sim["r_peak_share"] > 0.8 and sim["flat_share"] == 0
    assert 60 / (BEAT_LENGTH + 2 * BEAT_SD) < sim["hr_median"] < 60 / (BEAT_LENGTH - 2 * BEAT_SD)
    shares = [sim[name] for name, _, _ in cr.BANDS]
    assert sum(shares) == pytest.approx(1, abs=1e-6) and shares[2] > shares[4]  # QRS band > > 40 Hz
    assert sim["amp_ptp_median"] > 0.3 and flat["amp_ptp_median"] < cr.FLAT_PTP_MV
    # no PTB-XL: distances are NaN, said once, and everything else is there
    assert frame["mmd2"].isna().all() and frame["frechet"].isna().all()
    assert len([r for r in caplog.records if "reference" in r.getMessage()]) == 1
    for name in ("corpus_report.csv", "corpus_report.json", "corpus_psd.csv", *cr.PLOTS):
        assert (tmp_path / "out" / name).stat().st_size > 0
    report = json.loads((tmp_path / "out" / "corpus_report.json").read_text())
    assert report["rows"][1]["hr_median"] is None and "no-data" in report["reference"]["error"]


@pytest.mark.slow
def test_same_seed_same_report(tmp_path, flat_folder):
    a = cr.compare_corpora(["sim"], 20, 3, tmp_path / "a", data_dir=tmp_path / "no-data", overrides=SIM_SET)
    b = cr.compare_corpora(["sim"], 20, 3, tmp_path / "b", data_dir=tmp_path / "no-data", overrides=SIM_SET)
    pd.testing.assert_frame_equal(a, b)


def test_mmd_and_frechet_of_a_sample_against_itself_are_zero_and_grow_with_a_shift():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 4)), rng.normal(size=(200, 4))
    assert abs(cr.mmd2_rbf(x, x)) < 0.02 and abs(cr.mmd2_rbf(x, y)) < 0.02
    assert cr.frechet_distance(x, x) == pytest.approx(0, abs=1e-6)
    assert cr.mmd2_rbf(x, y + 1.0) > 0.1 and cr.frechet_distance(x, y + 1.0) > 3
    assert math.isnan(cr.mmd2_rbf(x[:1], y)) and math.isnan(cr.frechet_distance(x, y[:1]))
    # the unbiased estimator by its definition, on a tiny case
    a, b, sigma = np.array([[0.0], [1.0]]), np.array([[0.5], [2.0], [3.0]]), 1.3
    k = lambda p, q: np.exp(-((p - q.T) ** 2) / (2 * sigma**2))  # noqa: E731
    kaa, kbb = k(a, a), k(b, b)
    expected = ((kaa.sum() - 2) / 2 + (kbb.sum() - 3) / 6 - 2 * k(a, b).mean())
    assert cr.mmd2_rbf(a, b, sigma) == pytest.approx(expected)


def test_features_of_a_corpus_against_itself(flat_folder):
    from benchmark.corpora.sim import SimCorpus

    signals = SimCorpus(size=1000, seed=0).get_batch(np.arange(N))
    features = cr.measure(signals, "sim").features()
    assert features.shape == (N, len(cr.FEATURES)) and np.isfinite(features).all()
    scaled = (features - features.mean(0)) / features.std(0)
    assert abs(cr.mmd2_rbf(scaled, scaled)) < 0.05


def test_permutation_test_gives_the_report_mmd_and_a_calibrated_p_value():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(150, 3)), rng.normal(size=(120, 3))
    mmd2, p_same = cr.mmd2_permutation_test(x, y, 1.5, 200, seed=0)
    assert mmd2 == pytest.approx(cr.mmd2_rbf(x, y, 1.5), abs=1e-12) and p_same > 0.05
    assert cr.mmd2_permutation_test(x, y, 1.5, 200, seed=0) == (mmd2, p_same)  # seeded
    _, p_shifted = cr.mmd2_permutation_test(x, y + 0.6, 1.5, 200, seed=0)
    assert p_shifted == pytest.approx(1 / 201)  # no permutation reaches a real shift
    # under the null, p-values spread over (0, 1]: not all small, not all large
    p_values = [cr.mmd2_permutation_test(rng.normal(size=(40, 2)), rng.normal(size=(40, 2)), 1.0, 50, seed=s)[1]
                for s in range(40)]
    assert 0.02 < np.mean(np.array(p_values) < 0.2) < 0.45
    assert all(math.isnan(v) for v in cr.mmd2_permutation_test(x[:1], y))


def test_classifier_two_sample_test_is_at_chance_for_one_distribution_and_not_for_two(one_openmp_thread):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(300, 4)), rng.normal(size=(300, 4))
    auroc, p_value = cr.classifier_two_sample_test(x, y, seed=0)
    assert abs(auroc - 0.5) < 0.07 and p_value > 0.01
    y[:, 2] = np.abs(y[:, 2])  # one feature folded: same mean shift small, shape different
    auroc, p_value = cr.classifier_two_sample_test(x, y, seed=0)
    assert auroc > 0.65 and p_value < 1e-4
    assert cr.classifier_two_sample_test(x, y, seed=0) == (auroc, p_value)
    result = cr.two_sample_test(x, y, 2.0, seed=0, n_permutations=50)
    assert set(result) == {"mmd2", "mmd2_pvalue", "frechet", "c2st_auroc", "c2st_pvalue"}


def _feature_means(signals: np.ndarray) -> dict[str, float]:
    return dict(zip(cr.FEATURES, cr.measure(signals, n_jobs=1).features().mean(axis=0), strict=True))


def test_features_see_the_simulator_augmentations_bursts_and_steps():
    # the same simulated ECGs with one of the authors' augmentation kinds (Poisson(1.5) of them), vs
    # none: noise bursts and level steps must each move the feature made to see them
    from pretraining.simulators.gaussian import AUGMENT_KINDS, GaussianBeat, GaussianBeatConfig

    def only(kind: str) -> np.ndarray:
        weights = tuple(float(k == kind) for k in AUGMENT_KINDS)
        config = GaussianBeatConfig(augment_rate=1.5 if kind else 0.0, augment_kind_weights=weights
                                    if kind else (1.0,) * 7)
        return GaussianBeat(config).simulate(np.arange(40), seed=0)

    clean = _feature_means(only(""))
    burst, step = (_feature_means(only(k)) for k in ("white_partial", "square_partial"))
    assert burst["burst_share"] > clean["burst_share"] + 0.1
    assert burst["log10_burst_ratio"] > clean["log10_burst_ratio"] + 0.5
    assert step["max_step"] > clean["max_step"] + 0.3
    assert step["log10_dct_0.1-0.5Hz"] > clean["log10_dct_0.1-0.5Hz"] + 0.1
    assert 0.3 < clean["beat_corr"] <= 1 and 0 <= clean["rr_cv"] < 0.5


def test_dct_bands_resolve_frequencies_below_half_a_hertz():
    t = np.arange(5000) / 500
    trend = np.cos(np.pi * (np.arange(5000) + 0.5) / 5000)  # DCT coefficient 1: 0.05 Hz
    wander = np.sin(2 * np.pi * 0.3 * t)
    fast = np.sin(2 * np.pi * 10 * t)
    shares = cr.dct_shares(cr.zscored(np.stack([trend, wander, fast, np.zeros(5000)])))
    np.testing.assert_allclose(shares[0], [1, 0], atol=1e-9)
    assert shares[1, 1] > 0.9 and shares[1, 0] < 0.05
    assert shares[2].sum() < 0.01 and np.all(shares[3] == 0)


def test_beat_statistics_of_regular_and_irregular_beats():
    t = np.arange(5000)
    peaks = np.arange(200, 4900, 400)
    signal = sum(np.exp(-0.5 * ((t - p) / 4.0) ** 2) for p in peaks)
    rr_cv, corr = cr.beat_statistics(signal, peaks)
    assert rr_cv == pytest.approx(0) and corr == pytest.approx(1)
    jittered = peaks + np.tile([0, 60], len(peaks))[: len(peaks)]
    rr_cv, _ = cr.beat_statistics(signal, jittered)
    assert rr_cv > 0.1
    assert all(math.isnan(v) for v in cr.beat_statistics(signal, peaks[:1]))


def test_nonfinite_ecgs_are_counted_and_left_out():
    signals = np.zeros((3, 5000), np.float32)
    signals[0, 10] = np.nan
    signals[1] = np.sin(np.arange(5000) / 50.0)
    m = cr.measure(signals, "odd")
    row = cr.summarize(m)
    assert row["nonfinite_share"] == pytest.approx(1 / 3) and row["flat_share"] == pytest.approx(1 / 3)
    assert m.features().shape == (2, len(cr.FEATURES))


def test_distances_rank_flat_below_sim_against_held_out_ptbxl(tmp_path, flat_folder, shared_data):
    frame = cr.compare_corpora(["sim", "folder"], N, 0, tmp_path, data_dir=shared_data,
                               overrides=_overrides(flat_folder)).set_index("corpus")
    assert frame.loc["folder", "mmd2"] > frame.loc["sim", "mmd2"] > 0
    assert frame.loc["folder", "frechet"] > frame.loc["sim", "frechet"] > 0
    assert frame.attrs["reference"]["n"] == N and frame.attrs["distance"]["bandwidth"] > 0
    # the reference against itself, on the report's own feature scale
    signals, info = cr.reference_signals(N, 0, shared_data)
    assert signals.shape == (N, 5000) and info["available"] >= N
    features = cr.measure(signals, "ref").features()
    scale = cr.FeatureScale.of(features)
    assert abs(cr.mmd2_rbf(scale(features), scale(features), scale.bandwidth)) < 0.05


def test_reference_is_the_test_split_records_the_ptbxl_corpus_leaves_out(shared_data):
    from benchmark.corpora.ptbxl import PTBXLCorpus, PTBXLOptions

    corpus = PTBXLCorpus(None, 0, PTBXLOptions(data_dir=str(shared_data)))
    every = PTBXLCorpus(None, 0, PTBXLOptions(data_dir=str(shared_data), folds="1-10", exclude_test_splits=False))
    reference, info = cr.reference_signals(10_000, 0, shared_data)
    assert len(reference) == info["available"] == len(info["record_ids"]) > 0
    assert not set(info["record_ids"]) & set(corpus.record_ids)
    assert set(info["record_ids"]) | set(corpus.record_ids) <= set(every.record_ids)
    assert len(set(info["record_ids"])) == len(info["record_ids"])


def test_ptbxl_corpus_is_measured_with_data_dir(tmp_path, shared_data):
    frame = cr.compare_corpora(["ptbxl"], 1000, 0, tmp_path, data_dir=shared_data)
    row = frame.iloc[0]
    assert 10 < row["n"] < 1000  # the subset holds fewer: all of them are measured
    assert row["r_peak_share"] > 0.9 and 40 < row["hr_median"] < 120 and not row["sees_test_records"]
    assert abs(row["mmd2"]) < 0.1  # training records are distributed like the held-out ones


def test_route_overrides():
    names = ["sim", "folder"]
    routed = cr.route_overrides(names, ["pretrain.corpus_options.gaussian.augment_rate=0",
                                        "sources.folder.corpus_options.path=/x",
                                        "pretrain.corpus_options.lead=II"])
    assert routed == {"sim": ["pretrain.corpus_options.gaussian.augment_rate=0"],
                      "folder": ["pretrain.corpus_options.path=/x", "pretrain.corpus_options.lead=II"]}
    with pytest.raises(ConfigError, match="must name one of the compared"):
        cr.route_overrides(names, ["sources.ptbxl.corpus_options.folds=1-8"])
    with pytest.raises(ConfigError, match="none of the compared corpora"):
        cr.route_overrides(names, ["pretrain.corpus_options.nonsense=1"])


def test_bad_requests_are_one_clear_error(tmp_path, capsys):
    assert main(["corpus", "compare", "sim", "nope", "--out", str(tmp_path), "--no-mlflow"]) == 2
    err = capsys.readouterr().err
    assert "unknown corpus 'nope'" in err and "sim" in err and "folder" in err and len(err.splitlines()) == 1
    assert main(["corpus", "compare", "sim", "--n", "5", "--out", str(tmp_path), "--no-mlflow"]) == 2
    assert "--n must be" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="named twice"):
        cr.check_request(["sim", "sim"], 100)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_cli_writes_files_prints_the_table_and_logs_one_mlflow_run(tmp_path, tracking_uri, capsys):
    from mlflow.tracking import MlflowClient

    out = tmp_path / "report"
    argv = ["corpus", "compare", "sim", "--n", "20", "--seed", "1", "--out", str(out), "--data-dir",
            str(tmp_path / "no-data"), "--tracking-uri", tracking_uri, *sum((["--set", s] for s in SIM_SET), [])]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "hr_median" in printed and printed.splitlines()[1].split()[0] == "sim"
    table = pd.read_csv(out / "corpus_report.csv")
    assert list(table["corpus"]) == ["sim"] and table.loc[0, "n"] == 20
    assert all((out / name).is_file() for name in cr.PLOTS)

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("simecg-bench/corpus-report")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["kind"] == "report" and run.data.tags["corpora"] == "sim"
    assert run.data.metrics["sim.hr_median"] == pytest.approx(table.loc[0, "hr_median"], rel=1e-5)
    assert "sim.mmd2" not in run.data.metrics  # NaN is not logged
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"corpus_report.csv", "corpus_report.json", *cr.PLOTS} <= artifacts

    assert main([*argv[:-4], "--no-mlflow", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["corpus"] == "sim"
    assert len(client.search_runs([experiment.experiment_id])) == 1
