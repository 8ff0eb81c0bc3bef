"""``simecg-bench corpus build|preview`` and ``bench simulators`` argument wiring."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.registries import BENCHES
from pretraining.config import PretrainConfig, build_corpus


def sim(size: int, **options):
    return build_corpus(PretrainConfig(corpus="sim", corpus_size=size, corpus_options=options))


def test_corpus_build_cli_writes_a_store_and_resumes(tmp_path, capsys):
    out = tmp_path / "store"
    args = ["corpus", "build", "sim", "--n", "40", "--out", str(out), "--shard-size", "16", "--workers", "1",
            "--set", "pretrain.corpus_options.simulator=gaussian"]
    assert main(args) == 0
    assert "3 written, 0 already there" in capsys.readouterr().out
    assert main(args) == 0
    assert "0 written, 3 already there" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["content"]["weights"] == {"gaussian": 1.0}
    stored = sim(40, simulator="gaussian", path=str(out))
    live = sim(40, simulator="gaussian")
    np.testing.assert_array_equal(stored.get_batch(np.arange(40)), live.get_batch(np.arange(40)))


def test_corpus_build_cli_reads_a_folder_given_as_a_corpus_option(tmp_path, capsys):
    ecgs = tmp_path / "my ecgs"
    ecgs.mkdir()
    signals = np.sin(np.linspace(0, 300, 3 * 5000)).astype(np.float32).reshape(3, 5000)
    np.save(ecgs / "a.npy", signals)
    out = tmp_path / "store"
    assert main(["corpus", "build", "folder", "--n", "3", "--out", str(out), "--workers", "1",
                 "--set", f"pretrain.corpus_options.path={ecgs}", "--set", "pretrain.corpus_options.fs=500"]) == 0
    assert "3 ECGs" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["path"] == str(ecgs) and manifest["content"]["files"].keys() == {"a.npy"}
    np.testing.assert_array_equal(np.load(out / "shard-000000.npy"), signals)


def test_corpus_cli_takes_only_corpus_options_in_the_suite_dialect(tmp_path, capsys):
    out = str(tmp_path / "store")
    assert main(["corpus", "build", "sim", "--n", "8", "--out", out, "--set", "simulator=gaussian"]) == 2
    assert "did you mean --set pretrain.corpus_options.simulator=gaussian?" in capsys.readouterr().err
    assert main(["corpus", "build", "folder", "--n", "8", "--out", out, "--set", f"path={out}"]) == 2
    err = capsys.readouterr().err
    assert f"did you mean --set pretrain.corpus_options.path={out}?" in err and "pretrain.steps" not in err
    assert main(["corpus", "build", "sim", "--n", "8", "--out", out, "--set", "pretrain.steps=3"]) == 2
    assert "only pretrain.corpus_options.*" in capsys.readouterr().err
    assert main(["corpus", "preview", "sim", "--out", out, "--set", "pretrain.corpus_options.colour=red"]) == 2
    err = capsys.readouterr().err
    assert "pretrain.corpus_options.colour" in err and "valid: ecgsyn, gaussian, path, simulator, weights" in err
    assert main(["corpus", "build", "folder", "--n", "8", "--out", out]) == 2
    assert "--set pretrain.corpus_options.path=DIR" in capsys.readouterr().err


def test_corpus_build_cli_reports_a_mismatched_folder_as_one_line(tmp_path, capsys):
    out = tmp_path / "store"
    assert main(["corpus", "build", "sim", "--n", "8", "--out", str(out), "--workers", "1"]) == 0
    assert main(["corpus", "build", "sim", "--n", "8", "--out", str(out), "--workers", "1", "--seed", "9"]) == 2
    assert "different corpus" in capsys.readouterr().err


def test_corpus_preview_cli_saves_an_image(tmp_path):
    out = tmp_path / "grid.png"
    assert main(["corpus", "preview", "sim", "--out", str(out), "--n", "4", "--size", "50",
                 "--set", "pretrain.corpus_options.simulator=mixture"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_simulators_bench_is_registered_with_its_options():
    bench = BENCHES.get("simulators")
    assert callable(bench.run) and callable(bench.add_arguments)


@pytest.mark.slow
def test_simulators_bench_prints_the_issue_keys_as_its_last_json_line(capsys):
    assert main(["bench", "simulators", "--json", "--n", "64", "--neurokit-n", "1", "--heart-rates", "70",
                 "--workers", "2"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("ecgsyn_per_s", "gaussian_per_s", "neurokit2_per_s", "speedup_vs_neurokit2", "min_waveform_corr"):
        assert figures[key] > 0
    assert figures["min_waveform_corr"] > 0.99
