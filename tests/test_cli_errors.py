"""The CLI refuses bad values, counts and output paths before any work: one line, exit code 2, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli import main
from simecg.errors import ConfigError


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """An empty cache (absent until something creates it) and an MLflow store path nobody has created."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("SIMECG_CACHE", str(cache))
    store = tmp_path / "store" / "mlflow.db"
    store.parent.mkdir()
    return cache, store


def nothing_written(cache: Path, store: Path) -> bool:
    return not store.exists() and not any(store.parent.iterdir()) and (not cache.exists() or not any(cache.rglob("*")))


def one_line_error(capsys) -> str:
    """The error line of a command that failed with a SimECGError: exactly one line on stderr."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("simecg-bench: error: "), err
    return err


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "--set", "finetune.lr=-1"], "finetune.lr must be > 0, got -1"),
    (["run", "--set", "tuning.n_trials=-3"], "tuning.n_trials must be >= 0, got -3"),
    (["run", "--set", "pretrain.lr=nan"], "pretrain.lr: expected a number, got 'nan'"),
    (["run", "--set", "grid.seeds=1,-2"], "grid.seeds values must be >= 0"),
    (["run", "--set", "pretrain.model.mask_ratio=1"], "pretrain.model.mask_ratio must be > 0 and < 1, got 1"),
    (["run", "--corpus", "simm", "--dry-run"], "unknown corpus 'simm'"),
    (["run", "--dry-run", "--set", "finetune.lr=-1"], "finetune.lr must be > 0, got -1"),
    # an option of the corpus --corpus names is checked against that corpus, not the suite's own
    (["run", "--dry-run", "--corpus", "folder", "--set", "pretrain.corpus_options.fs=250"],
     "the folder corpus needs a path"),
    # a GPU this machine does not have: refused before any pretraining, in a dry run too
    (["run", "--dry-run", "--set", "finetune.device=cuda:7"], "finetune.device is 'cuda:7' but"),
    (["run", "--set", "finetune.device=cuda:7"], "finetune.device is 'cuda:7' but"),
])
def test_run_refuses_a_bad_value_before_pretraining_or_any_mlflow_write(argv, message, fresh, capsys) -> None:
    cache, store = fresh
    assert main([*argv, "--suite", "demo", "--tracking-uri", f"sqlite:///{store}"]) == 2
    assert message in one_line_error(capsys)
    assert nothing_written(cache, store)


def test_pretrain_refuses_bad_settings_before_opening_the_store(fresh, tmp_path, capsys) -> None:
    cache, store = fresh
    uri = f"sqlite:///{store}"
    assert main(["pretrain", "--preset", "tiny", "--set", "pretrain.lr=-1", "--tracking-uri", uri]) == 2
    assert "pretrain.lr must be > 0, got -1" in one_line_error(capsys)
    assert main(["pretrain", "--set", "pretrain.corpus_size=100", "--tracking-uri", uri]) == 2
    assert "pretrain.val_size 5000 leaves too little of the 100-ECG corpus" in one_line_error(capsys)
    assert main(["pretrain", "--set", "steps=10", "--tracking-uri", uri]) == 2
    assert "did you mean --set pretrain.steps=10?" in one_line_error(capsys)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert main(["pretrain", "--preset", "tiny", "--out", str(a_file), "--tracking-uri", uri]) == 2
    assert f"--out {a_file} is a file, not a folder" in one_line_error(capsys)
    assert nothing_written(cache, store)


@pytest.mark.parametrize(("out", "message"), [
    ("x.txt", "cannot write a file with extension '.txt'; give a name ending in .png, .pdf or .svg"),
    ("grid", "cannot write a file with no extension"),
    ("missing/x.png", "folder {tmp}/missing does not exist; create it first"),
    ("", "is a folder; give a file name in it"),
    ("a-file/x.png", "{tmp}/a-file is a file, not a folder"),
])
def test_corpus_preview_checks_its_output_file_first(out, message, tmp_path, capsys) -> None:
    (tmp_path / "a-file").write_text("x")
    before = sorted(tmp_path.rglob("*"))
    assert main(["corpus", "preview", "sim", "--size", "20", "--n", "2", "--out", str(tmp_path / out)]) == 2
    assert message.format(tmp=tmp_path) in one_line_error(capsys)
    assert sorted(tmp_path.rglob("*")) == before


def test_folder_outputs_must_not_be_files(fresh, tmp_path, capsys) -> None:
    cache, store = fresh
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert main(["corpus", "build", "sim", "--n", "10", "--out", str(a_file)]) == 2
    assert f"--out {a_file} is a file, not a folder" in one_line_error(capsys)
    assert main(["corpus", "build", "sim", "--n", "10", "--out", str(a_file / "store")]) == 2
    assert f"{a_file} is a file, not a folder" in one_line_error(capsys)
    assert main(["corpus", "compare", "sim", "--n", "10", "--out", str(a_file), "--tracking-uri",
                 f"sqlite:///{store}"]) == 2
    assert "is a file, not a folder" in one_line_error(capsys)
    assert main(["data", "download", "ptbxl", "--dir", str(a_file)]) == 2
    assert f"--dir {a_file} is a file, not a folder" in one_line_error(capsys)
    assert a_file.read_text() == "x" and nothing_written(cache, store)


def test_corpus_compare_checks_the_corpus_options_before_opening_the_store(fresh, tmp_path, capsys) -> None:
    cache, store = fresh
    assert main(["corpus", "compare", "sim", "--n", "10", "--out", str(tmp_path / "report"), "--tracking-uri",
                 f"sqlite:///{store}", "--set", "pretrain.corpus_options.simulator=nope"]) == 2
    assert "simulator" in one_line_error(capsys)
    assert nothing_written(cache, store) and not (tmp_path / "report").exists()


def test_report_checks_its_output_file_before_reading_the_store(fresh, tmp_path, capsys) -> None:
    cache, store = fresh
    uri = f"sqlite:///{store}"
    for out, message in ((tmp_path / "r.txt", "give a name ending in .html or .htm"),
                         (tmp_path / "nope" / "r.html", "does not exist; create it first"),
                         (tmp_path, "is a folder; give a file name in it")):
        assert main(["report", "--out", str(out), "--tracking-uri", uri]) == 2
        assert message in one_line_error(capsys)
    assert nothing_written(cache, store)


def test_corpus_build_folder_says_the_syntax_of_this_command(tmp_path, capsys) -> None:
    out = tmp_path / "store"
    assert main(["corpus", "build", "folder", "--n", "3", "--out", str(out), "--set", f"path={tmp_path}"]) == 2
    err = one_line_error(capsys)
    assert f"did you mean --set pretrain.corpus_options.path={tmp_path}?" in err
    assert "pretrain.steps" not in err and not out.exists()
    assert main(["corpus", "preview", "folder", "--out", str(tmp_path / "x.png"),
                 "--set", f"corpus_options.path={tmp_path}"]) == 2
    assert f"did you mean --set pretrain.corpus_options.path={tmp_path}?" in one_line_error(capsys)
    empty_path = "pretrain.corpus_options.path="
    assert main(["corpus", "build", "folder", "--n", "3", "--out", str(out), "--set", empty_path]) == 2
    assert "pretrain.corpus_options.path (folder corpus) is empty" in one_line_error(capsys)


@pytest.mark.parametrize(("argv", "message"), [
    (["corpus", "preview", "sim", "--out", "x.png", "--n", "-3"], "argument --n: must be an integer from 1 to 100"),
    (["corpus", "preview", "sim", "--out", "x.png", "--size", "0"], "argument --size: must be a positive integer"),
    (["corpus", "preview", "sim", "--out", "x.png", "--seed", "-1"], "argument --seed: must be a seed: an integer "
                                                                      "from 0 to 4294967295, got -1"),
    (["corpus", "build", "sim", "--out", "s", "--n", "0"], "argument --n: must be a positive integer, got 0"),
    (["corpus", "build", "sim", "--out", "s", "--n", "5", "--workers", "0"], "argument --workers: must be a positive"),
    (["corpus", "build", "sim", "--out", "s", "--n", "5", "--shard-size", "-1"], "argument --shard-size: must be a"),
    (["corpus", "build", "sim", "--out", "s", "--n", "many"], "argument --n: must be a positive integer, got 'many'"),
    (["pretrain", "--steps", "0"], "argument --steps: must be a positive integer, got 0"),
    (["data", "download", "ptbxl", "--workers", "0"], "argument --workers: must be a positive integer, got 0"),
    (["leaderboard", "--budget", "-1"], "argument --budget: must be an integer >= 0, got -1"),
    (["leaderboard", "--min-positives", "-5"], "argument --min-positives: must be an integer >= 0, got -5"),
    (["ui", "--port", "70000"], "argument --port: must be a TCP port from 1 to 65535, got 70000"),
    (["ui", "--workers", "0"], "argument --workers: must be a positive integer, got 0"),
    (["run", "--corpus", ","], "argument --corpus: must name at least one"),
])
def test_counts_and_ports_out_of_range_are_refused_by_the_parser(argv, message, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("simecg-bench ") and ": error: " in last and message in last, err
    assert "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_debug_still_shows_the_exception(capsys) -> None:
    with pytest.raises(ConfigError, match="finetune.lr must be > 0"):
        main(["--debug", "run", "--suite", "demo", "--set", "finetune.lr=-1"])


@pytest.mark.slow
def test_the_command_process_exits_2_with_one_line(tmp_path) -> None:
    """The real process (not main() in-process): exit code 2, one stderr line, no traceback, nothing written."""
    env = {"SIMECG_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    argv = ["run", "--suite", "demo", "--set", "finetune.lr=-1", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]
    done = subprocess.run([sys.executable, "-m", "benchmark.cli", *argv], capture_output=True, text=True, env=env,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr == "simecg-bench: error: finetune.lr must be > 0, got -1\n"
    assert list(tmp_path.iterdir()) == []


def test_a_suite_file_with_a_byte_order_mark_is_read(tmp_path, capsys) -> None:
    """Editors on Windows save UTF-8 with a BOM; tomllib alone calls it 'Invalid statement'."""
    suite = tmp_path / "bom.toml"
    suite.write_text('\ufeffname = "bom"\n[[grid]]\nmodels = ["resnet18-1d"]\ntasks = ["demo/af"]\nseeds = [1]\n',
                     encoding="utf-8")
    from benchmark.suites.config import load_suite

    assert load_suite(suite).name == "bom"
    suite.write_bytes(b"name = \"x\xff\"\n")  # not UTF-8 at all: one line naming the file
    with pytest.raises(ConfigError, match=str(suite)) as error:
        load_suite(suite)
    assert "\n" not in str(error.value) and "UTF-8" in str(error.value)


def test_a_damaged_optuna_database_is_one_line_naming_it_before_any_cell(fresh, tmp_path, capsys) -> None:
    """Random bytes over part of optuna.db: Optuna alone fails each cell with StorageInternalError."""
    from benchmark.run.claims import prepare_storage

    db = tmp_path / "optuna.db"
    prepare_storage(f"sqlite:///{db}")
    with db.open("r+b") as fh:
        fh.seek(4096)
        fh.write(np.random.default_rng(0).integers(0, 256, 20 * 4096, dtype=np.uint8).tobytes())
    cache, store = fresh
    argv = ["run", "--suite", "demo", "--set", "grid.tasks=demo/af", "--set", "grid.models=resnet18-1d",
            "--set", "grid.seeds=1", "--tracking-uri", f"sqlite:///{store}", "--optuna-storage", f"sqlite:///{db}"]
    assert main(argv) == 2
    line = one_line_error(capsys)
    assert str(db) in line and "damaged" in line
