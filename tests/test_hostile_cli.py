"""Hostile input for the command line: fuzzed argument values through ``benchmark.cli.main(argv)``.

Whatever values ``run --dry-run``, ``leaderboard``, ``corpus preview`` and ``data check`` get,
the command ends with exit code 0, 1 or 2 (argparse's own usage errors are a ``SystemExit(2)``)
and prints no traceback: expected failures are the suite's one-line ``simecg-bench: error:``.
One MLflow store serves the whole module (creating one costs seconds); values are drawn from
each option's edges (empty, negative, huge, unicode, paths that are files, folders or absent).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from benchmark.cli import main

pytestmark = pytest.mark.timeout(300)

CLI = settings(max_examples=25, deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# Real argv can hold any text but NUL (the OS cannot pass it); undecodable bytes arrive as lone surrogates.
TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=30)
EDGES = st.sampled_from(["", " ", "-", "--", "-1", "0", "1", "2", "1e999", "nan", "inf", str(2**64), "é", "记录",
                         "\udcff", "a" * 3000, "../..", "~", "%s", "{}", "None", "II", "sim", "demo", "mae"])
VALUES = st.one_of(EDGES, TEXT)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite MLflow store for every example (its creation costs seconds)."""
    folder = tmp_path_factory.mktemp("store")
    return f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, str]:
    """Paths of every kind an argument may name: a file, a folder, a missing one, one inside a file."""
    root = tmp_path_factory.mktemp("places")
    (root / "file.txt").write_text("not a folder\n")
    (root / "folder").mkdir()
    (root / "junk").mkdir()
    (root / "junk" / "E00001.hea").write_text("E00001 12 nan 5000\n")
    (root / "junk" / "A0001.mat").write_bytes(os.urandom(100))
    (root / "junk" / "ptbxl_database.csv").mkdir()
    (root / "suite.toml").write_text("[[grid]]\ntasks = 5\n")
    os.mkfifo(root / "fifo")
    return {"file": str(root / "file.txt"), "folder": str(root / "folder"), "missing": str(root / "missing" / "x"),
            "in_file": str(root / "file.txt" / "x"), "junk": str(root / "junk"), "suite": str(root / "suite.toml"),
            "fifo": str(root / "fifo"), "png": str(root / "folder" / "out.png"), "odd": str(root / "é x" / "o.png")}


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> int:
    """Exit code of ``main(argv)``; fails the test on any exception or a traceback in the output."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: usage errors (2) and --help (0)
        code = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    if currently_in_test_context():
        event(f"{argv[0]}: exit {code}")  # --hypothesis-show-statistics: how deep the examples got
    assert "Traceback" not in out + err, (argv, err[-2000:])
    assert code in (0, 1, 2), (argv, code, err[-2000:])
    if code == 2 and "simecg-bench: error:" in err:
        message = err.split("simecg-bench: error:", 1)[1].strip()
        assert message and "\n" not in message, (argv, err[-2000:])
    return code


def place_or_value(places: dict[str, str]):
    return st.one_of(st.sampled_from(sorted(places.values())), VALUES)


def mostly(good: list[str], junk: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A good value three times in four, so examples reach past argument checks, else junk."""
    return st.one_of(st.sampled_from(good), st.sampled_from(good), st.sampled_from(good), junk)


@pytest.mark.slow
@given(data=st.data())
@settings(CLI, max_examples=40)
def test_run_dry_run_with_fuzzed_values_exits_cleanly(data, store, places, capsys):
    argv = ["run", "--dry-run", "--no-progress", "--tracking-uri", store]
    argv += ["--suite", data.draw(mostly(["demo"], st.one_of(st.sampled_from(["nosuch", places["suite"]]),
                                                             place_or_value(places))))]
    for option, values in (("--set", mostly(["finetune.lr=0.01", "grid.leads=II,V1", "tuning.n_trials=2",
                                             "grid.seeds=1"],
                                            st.one_of(st.sampled_from(["finetune.lr=-1", "tuning.n_trials=-3",
                                                                       "grid.seeds=", "pretrain=1", "=", "a=b=c"]),
                                                      st.tuples(VALUES, VALUES).map("=".join), VALUES))),
                           ("--corpus", mostly(["sim"], st.one_of(st.sampled_from(["simm", "sim,sim", ","]), VALUES))),
                           ("--shard", mostly(["0/1", "1/2"], st.one_of(st.sampled_from(["2/2", "-1/2", "0/0", "a/b"]),
                                                                        VALUES))),
                           ("--format", st.sampled_from(["table", "json", "csv", "markdown", "xml"])),
                           ("--data-dir", place_or_value(places))):
        if data.draw(st.booleans()):
            argv += [option, data.draw(values)]
    if data.draw(st.booleans()):
        argv.append("--list")
    run_cli(argv, capsys)


def test_run_dry_run_of_the_demo_suite_succeeds(store, capsys):
    """The fuzzed command above is reachable: with good values it exits 0 and lists the cells."""
    assert run_cli(["run", "--dry-run", "--suite", "demo", "--tracking-uri", store, "--no-progress"], capsys) == 0


@given(data=st.data())
@CLI
def test_leaderboard_with_fuzzed_values_exits_cleanly(data, store, capsys):
    argv = ["leaderboard", "--tracking-uri", store]
    for option, values in (("--suite", st.one_of(st.sampled_from(["demo", "nosuch"]), VALUES)),
                           ("--lead", st.one_of(st.sampled_from(["II", "ii", "XII"]), VALUES)),
                           ("--budget", st.one_of(st.integers(-(2**70), 2**70).map(str), VALUES)),
                           ("--shift", st.one_of(st.sampled_from(["sex:M->F", "age:<40->80+", "sex:X->Y"]), VALUES)),
                           ("--min-positives", st.one_of(st.integers(-5, 10**20).map(str), VALUES)),
                           ("--format", st.sampled_from(["table", "json", "csv", "markdown", "html"]))):
        if data.draw(st.booleans()):
            argv += [option, data.draw(values)]
    run_cli(argv, capsys)


@pytest.mark.parametrize("uri", ["not a uri", "sqlite:///", "file:///dev/null/x", "sqlite:////dev/null/m.db",
                                 "mysql://u@127.0.0.1:1/x"])
def test_leaderboard_on_unusable_store_addresses_is_one_line(uri, capsys):
    assert run_cli(["leaderboard", "--tracking-uri", uri], capsys) == 2


@given(data=st.data())
@settings(CLI, max_examples=15)
def test_corpus_preview_with_fuzzed_values_exits_cleanly(data, places, capsys):
    argv = ["corpus", "preview", data.draw(st.one_of(st.sampled_from(["sim", "sim", "simm", "ptbxl"]), VALUES)),
            "--out", data.draw(st.one_of(st.sampled_from([places["png"], places["odd"], places["file"] + ".svg"]),
                                         place_or_value(places)))]
    for option, values in (("--n", st.one_of(st.sampled_from(["1", "2", "0", "-3", "100000000"]), VALUES)),
                           ("--size", st.one_of(st.sampled_from(["1", "0", "-1", str(2**63)]), VALUES)),
                           ("--seed", st.one_of(st.sampled_from(["0", "-1", str(2**64)]), VALUES)),
                           ("--sample-seed", st.one_of(st.sampled_from(["0", "-1", str(2**64)]), VALUES)),
                           ("--set", st.one_of(st.sampled_from(["pretrain.corpus_options.simulator=nosuch",
                                                                "path=x", "pretrain.steps=1"]), VALUES))):
        if data.draw(st.booleans()):
            argv += [option, data.draw(values)]
    if "--n" not in argv:
        argv += ["--n", "2"]  # keep the images that do get drawn small
    run_cli(argv, capsys)


@given(data=st.data())
@settings(CLI, max_examples=30)
def test_data_check_with_fuzzed_folders_exits_cleanly(data, places, capsys):
    argv = ["data", "check", data.draw(place_or_value(places))]
    if data.draw(st.booleans()):
        argv += ["--format", data.draw(st.sampled_from(["text", "csv", "json", "yaml"]))]
    if data.draw(st.booleans()):
        argv.append("--usable")
    run_cli(argv, capsys)


def test_data_check_on_undecodable_file_names_prints_them(tmp_path, capsys):
    """A file name that is not UTF-8 (bytes from another system) is reported, not a UnicodeEncodeError."""
    folder = tmp_path / "g12ec"
    folder.mkdir()
    name = os.fsdecode(b"E\xff01.hea")
    (folder / name).write_text("E 12 500 5000\n")
    for fmt in ("text", "csv", "json"):
        assert run_cli(["data", "check", str(folder), "--format", fmt], capsys) in (1, 2)
    odd_folder = tmp_path / os.fsdecode(b"g\xfe12ec")
    odd_folder.mkdir()
    (odd_folder / "E00001.hea").write_text("E00001 12 500 5000\n")
    assert run_cli(["data", "check", str(odd_folder)], capsys) == 2


def test_data_download_with_a_mirror_that_is_not_a_url_is_one_line(tmp_path, capsys):
    for mirror in ("notaurl", "ftp://example.org", "http://", "file:///etc", "https://exa mple.org", ""):
        code = run_cli(["data", "download", "g12ec", "--dir", str(tmp_path), "--mirror", mirror], capsys)
        assert code == 2
    assert not list(tmp_path.rglob("*")), "nothing is created before the mirror is validated"


def test_data_download_mirror_error_says_what_a_mirror_looks_like(tmp_path, capsys):
    main(["data", "download", "g12ec", "--dir", str(tmp_path), "--mirror", "notaurl"])
    err = capsys.readouterr().err
    assert err.startswith("simecg-bench: error:") and "notaurl" in err and "https://" in err
    assert Path(tmp_path).is_dir()
