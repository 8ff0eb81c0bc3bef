"""benchmark.run.provision.provision: the one procedure encoders and generators are got by.

A fake item and a fake store record what the procedure does, so the order (cache, then a FINISHED
run's sealed artifact, then building) and the kill-window repair are checked without training
anything; tests/test_encoder_reuse.py, test_generators.py and test_kill_resume.py cover the real ones.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from benchmark.run.provision import Provisioned, provision
from simecg import integrity
from simecg.errors import CacheError, CheckpointError
from simecg.identity import Identity


@dataclass
class Item:
    folder: Path
    repairs: bool = False
    events: list[str] = field(default_factory=list)
    kind: str = "widget"
    verb: str = "assembling"
    file: str = "widget.bin"
    identity: Identity = field(default_factory=lambda: Identity("widget", {"size": 3}))

    def is_complete(self) -> bool:
        path = self.folder / self.file
        return path.is_file() and integrity.check_file(path) is None

    def check(self, fetched: Path) -> None:
        if fetched.read_bytes() != b"good":
            raise CheckpointError("the stored file is not this widget")

    def lock(self) -> contextlib.AbstractContextManager[Any]:
        self.events.append("lock")
        return contextlib.nullcontext()

    def repair(self, tracker: Any) -> Provisioned | None:
        self.events.append("repair")
        return Provisioned(self.folder / self.file, self.identity, "repair-run") if self.repairs else None

    def build(self) -> Provisioned:
        self.events.append("build")
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / self.file).write_bytes(b"good")
        integrity.seal_file(self.folder / self.file)
        return Provisioned(self.folder / self.file, self.identity, "build-run", trained_now=True)


def outcome(result: Provisioned) -> tuple[str, str | None]:
    """What provision did: built it, repaired its run, or found it (with the run it names)."""
    assert result.folder.name in ("w", "v") and result.path.name == "widget.bin"
    if result.trained_now:
        return ("built", None)
    return ("repaired", None) if result.run_id == "repair-run" else ("found", result.run_id)


class Store:
    """A store holding at most one FINISHED run, whose sealed artifact is ``content``."""

    def __init__(self, run_id: str | None, content: bytes = b"good"):
        self.run_id, self.content = run_id, content

    def finished_run(self, fingerprint: str, everywhere: bool = False) -> Any:
        return SimpleNamespace(info=SimpleNamespace(run_id=self.run_id)) if self.run_id else None

    def fetch_sealed(self, run_id: str, artifact_dir: str, target: Path, check: Any) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name("download")
        staged.write_bytes(self.content)
        check(staged)
        staged.replace(target)
        integrity.seal_file(target)


def test_an_empty_cache_without_a_run_builds_under_the_lock_then_serves_from_the_cache(tmp_path: Path) -> None:
    item = Item(tmp_path / "w")
    assert outcome(provision(item, None)) == ("built", None)
    assert item.events == ["lock", "build"]
    item.events.clear()
    assert outcome(provision(item, Store("r1"))) == ("found", "r1")
    assert item.events == []  # an intact file: no lock, nothing written


def test_a_finished_run_is_fetched_and_a_bad_download_is_built_instead(tmp_path: Path, caplog) -> None:
    item = Item(tmp_path / "w")
    assert outcome(provision(item, Store("r1"))) == ("found", "r1")
    assert item.events == ["lock"] and (item.folder / item.file).read_bytes() == b"good"

    other = Item(tmp_path / "v")
    with caplog.at_level(logging.WARNING):
        assert outcome(provision(other, Store("r2", content=b"evil"))) == ("built", None)
    assert other.events == ["lock", "build"]
    assert "could not fetch widget" in caplog.text and "assembling it here" in caplog.text


def test_a_damaged_file_is_named_and_replaced(tmp_path: Path, caplog) -> None:
    item = Item(tmp_path / "w")
    provision(item, None)
    (item.folder / item.file).write_bytes(b"bad!")  # same size, other content: fails its sidecar
    with caplog.at_level(logging.WARNING):
        assert outcome(provision(item, None)) == ("built", None)
    assert "widget" in caplog.text and "is damaged" in caplog.text and "assembling it again" in caplog.text


def test_a_complete_file_without_a_finished_run_is_repaired_when_the_kind_can(tmp_path: Path) -> None:
    item = Item(tmp_path / "w", repairs=True)
    provision(item, None)
    item.events.clear()
    assert outcome(provision(item, Store(None))) == ("repaired", None)
    plain = Item(tmp_path / "w", repairs=False)
    assert outcome(provision(plain, Store(None))) == ("found", None) and plain.events == ["repair"]
    assert outcome(provision(plain, Store(None), distributed=True)) == ("found", None)  # ranks never repair
    assert plain.events == ["repair"]


def test_a_cache_that_cannot_take_the_download_stops_instead_of_building(tmp_path: Path) -> None:
    class FullStore(Store):
        def fetch_sealed(self, *args: Any) -> None:
            raise CacheError("disk full writing widget.bin")

    item = Item(tmp_path / "w")
    with pytest.raises(CacheError, match="disk full"):
        provision(item, FullStore("r1"))
    assert "build" not in item.events
