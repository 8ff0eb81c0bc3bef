"""Every command README.md shows works as shown.

The test reads README's fenced ``bash`` blocks, splits them into commands (``\\`` continuations
joined, ``&&`` chains split, comments dropped) and runs each ``simecg-bench`` command in this
process, on a temporary store holding results of the suites README names, from a temporary folder.
Commands that would take minutes or serve until stopped run as the variant :data:`SUBSTITUTED`
names (``--dry-run`` plans a run without training; ``--help`` parses the command line); commands
of other tools are listed in :data:`NOT_RUN` with the reason. A command README shows that is in
neither list and fails, or one no rule covers, fails the test: README cannot drift from the CLI.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.tracking.tags import RunTags
from benchmark.tracking.tracker import Tracker

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
# commands of other tools README shows, and why this test does not run them
NOT_RUN = {
    "python3": "makes a virtual environment (the test runs inside an installed one)",
    ".venv/bin/pip": "installs packages",
    "pip": "installs an example plugin (tests/test_corpus_plugin.py and tests/test_baselines_plugin.py install them)",
    "createdb": "creates PostgreSQL databases (tests/test_workers.py runs a PostgreSQL server)",
    "mlflow": "a long-running tracking server (tests/test_tracking_server.py runs one)",
    "export": "sets the variables of the cluster recipe",
    "pretrain=$(sbatch": "submits SLURM jobs",
    "sbatch": "submits SLURM jobs",
}
NOT_RUN_PYTHON = {"-m pytest": "the test suite itself"}
# simecg-bench commands that take minutes, download data or serve until stopped: the variant run instead
SUBSTITUTED = {
    "run": "--dry-run: plans the cells, pretrains and trains nothing",
    "pretrain": "--help: pretraining takes minutes",
    "data download": "--help: downloads gigabytes from PhysioNet",
    "bench": "--help: speed benchmarks take minutes",
    "ui": "--help: serves until stopped (tests/test_browser.py and tests/test_report.py run it)",
}
REMOTE = "http://mlflow-host:5000"  # a cluster's server in README: commands naming it run with --help
PLUGIN = ("tiny-cnn", "mega")  # README's example plugin, not installed here: a built-in baseline stands in
# README's example corpus plugin, not installed here: its commands parse (--help); tests/test_corpus_plugin.py
# installs it and runs them
PLUGIN_CORPUS = "deepfake"


def readme_commands(text: str) -> list[str]:
    """The shell commands of README's ``bash`` blocks, one per ``&&``-separated command."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if not words:
                continue
            command: list[str] = []
            for word in [*words, "&&"]:
                if word == "&&":
                    commands.append(shlex.join(command))
                    command = []
                else:
                    command.append(word)
    return commands


def _store(uri: str) -> None:
    """Finished cells of the suites README's commands read (no training: the leaderboard and the
    report only read runs)."""
    for suite in ("smoke", "corpora"):
        tracker = Tracker(uri, suite)
        with tracker.run(suite, RunTags(kind="invocation", suite=suite, corpora="sim")) as invocation:
            for model, base in (("mae:sim", 0.7), ("resnet18-1d", 0.6)):
                for task in ("ptbxl/LVH", "ptbxl/LAFB"):
                    for seed in (1, 2):
                        tags = RunTags(kind="cell", fingerprint=f"{suite}{model}{task}{seed}", suite=suite,
                                       model=model, task=task, lead="II", seed=seed)
                        with tracker.run(tags.run_name(), tags, parent=invocation.run_id) as run:
                            run.log_metrics({"test_f1": base + 0.01 * seed, "test_auroc": base + 0.1,
                                             "test_auprc": base - 0.1, "test_n_pos": 4, "test_n_neg": 40})


def _as_run(words: list[str], data: Path) -> tuple[list[str], str]:
    """The argv this test runs for a README command, and what it changed (empty: run as shown)."""
    args = [str(data) if w in ("../shared/data", "~/ecg-data") else w for w in words[1:]]
    args = [str(data / "ptbxl") if w == "~/ecg-data/ptbxl" else w for w in args]
    args = [w.replace(*PLUGIN) for w in args]
    changed = "" if args == words[1:] else "data paths: the shared subsets; tiny-cnn: mega"
    subcommand = next((key for key in SUBSTITUTED if " ".join(args[: len(key.split())]) == key), None)
    if any(PLUGIN_CORPUS in w for w in args):
        head = args[:2] if args[0] in ("corpus", "data") else args[:1]
        return [*head, "--help"], f"the {PLUGIN_CORPUS} plugin is not installed here: --help"
    if REMOTE in args:
        return [*args[: 1 + (args[:2] == ["data", "download"])], "--help"], f"{REMOTE} is not reachable here: --help"
    if subcommand == "run":
        return [*args, "--dry-run"], SUBSTITUTED[subcommand]
    if subcommand is not None:
        return [*subcommand.split(), "--help"], SUBSTITUTED[subcommand]
    return args, changed


def test_readme_commands_are_all_classified() -> None:
    commands = readme_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(commands) >= 15
    for command in commands:
        words = shlex.split(command)
        program = words[0].removeprefix(".venv/bin/")
        if program == "simecg-bench":
            continue
        if program == "python" and " ".join(words[1:3]) in NOT_RUN_PYTHON:
            continue
        assert words[0] in NOT_RUN or command.split(" ", 1)[0] in NOT_RUN or program == "ruff", (
            f"README command {command!r}: neither a simecg-bench command nor in NOT_RUN; run it here or say why not")


def test_every_simecg_bench_command_of_the_readme_works(tmp_path: Path, monkeypatch, shared_data: Path,
                                                        capsys) -> None:
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    _store(uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # README's commands use the default store
    monkeypatch.chdir(tmp_path)  # a report they write lands here
    ran = []
    for command in readme_commands((ROOT / "README.md").read_text(encoding="utf-8")):
        words = shlex.split(command)
        if words[0].removeprefix(".venv/bin/") != "simecg-bench":
            continue
        args, changed = _as_run(words, shared_data)
        with pytest.raises(SystemExit) if args[-1] == "--help" else _nothing():
            code = main(args)
            assert code == 0, f"README command {command!r} ({changed or 'as shown'}) exited {code}: " \
                              f"{capsys.readouterr().err[-2000:]}"
        ran.append((command, changed))
    capsys.readouterr()
    assert sum(1 for _, changed in ran if not changed) >= 7  # the leaderboard and report ones exactly as shown
    assert (tmp_path / "report.html").is_file()  # `report --out report.html` wrote its file


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False
