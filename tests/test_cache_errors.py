"""A cache that cannot be used is one line naming the path and the cause, never a traceback.

``SIMECG_CACHE`` pointing at a file (or under one), a read-only cache and a full disk each end the
command with exit code 2 and one line on stderr; a read-only cache still serves what it holds
(an encoder, a data cache). Tests run as root in CI, where ``chmod`` stops nothing: a read-only
file system is simulated by making every write under the cache fail with ``EROFS``, as the
kernel would (the ``chmod`` variant runs only as a normal user).
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cli import main
from simecg import integrity, paths
from simecg.errors import CacheError

CLI = str(Path(sys.executable).with_name("simecg-bench"))
PRETRAIN = ["--preset", "tiny", "--set", "pretrain.steps=4", "--set", "pretrain.corpus_size=64", "--set",
            "pretrain.val_size=8", "--set", "pretrain.batch_size=8", "--set", "pretrain.val_every=4", "--set",
            "pretrain.checkpoint_every=4", "--set", "pretrain.num_workers=0", "--set", "pretrain.threads=1"]


def _error_line(stderr: str) -> str:
    """The whole of stderr, which must be exactly one line."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# ---- SIMECG_CACHE is not a folder ----------------------------------------------------------------

def test_a_cache_that_is_a_file_is_one_line_from_the_cli(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    env = {**os.environ, "SIMECG_CACHE": str(blocker)}
    done = subprocess.run([CLI, "run", "--suite", "demo", "--dry-run", "--tracking-uri",
                           f"sqlite:///{tmp_path / 'm.db'}"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    line = _error_line(done.stderr)
    assert line == f"simecg-bench: error: cache folder {blocker} (SIMECG_CACHE) is a file, not a folder; " \
                   "point SIMECG_CACHE at a folder"


def test_a_cache_under_a_file_cannot_be_created_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("SIMECG_CACHE", str(blocker / "cache"))
    assert main(["pretrain", "--corpus", "sim", "--no-mlflow", "--no-progress", *PRETRAIN]) == 2
    line = _error_line(capsys.readouterr().err)
    assert line.startswith(f"simecg-bench: error: cannot create the cache folder {blocker / 'cache'} (SIMECG_CACHE)")
    assert f"{blocker} is a file, not a folder" in line


# ---- read-only caches ----------------------------------------------------------------------------

@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch):
    """``read_only(root)``: from now on every write under ``root`` fails with EROFS (a read-only mount)."""

    def install(root: Path) -> None:
        top = os.path.abspath(root)

        def inside(*names: object) -> bool:
            for name in names:
                if isinstance(name, str | bytes | os.PathLike) and not isinstance(name, int):
                    path = os.path.abspath(os.fsdecode(os.fspath(name)))
                    if path == top or path.startswith(top + os.sep):
                        return True
            return False

        def deny(name: object) -> None:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(os.fspath(name)))

        real_open, real_os_open = builtins.open, os.open

        def fake_open(file, mode="r", *args, **kwargs):
            if inside(file) and any(c in mode for c in "wax+"):
                deny(file)
            return real_open(file, mode, *args, **kwargs)

        def fake_os_open(path, flags, *args, **kwargs):
            if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                deny(path)
            return real_os_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(io, "open", fake_open)
        monkeypatch.setattr(os, "open", fake_os_open)
        for name in ("mkdir", "rmdir", "unlink", "remove", "replace", "rename"):
            real = getattr(os, name)

            def guarded(*args, _real=real, _name=name, **kwargs):
                if inside(*args[:2]) and not (_name == "mkdir" and os.path.isdir(args[0])):
                    deny(args[0])
                return _real(*args, **kwargs)

            monkeypatch.setattr(os, name, guarded)

    return install


def _config(seed: int = 0):
    from pretraining.config import PretrainConfig

    return PretrainConfig(corpus="sim", preset="tiny", corpus_size=64, val_size=8, batch_size=8, steps=4,
                          val_every=4, checkpoint_every=4, num_workers=0, threads=1, seed=seed)


def test_a_read_only_cache_serves_what_it_holds_and_refuses_new_work_in_one_line(
        shared_data: Path, read_only, capsys: pytest.CaptureFixture, one_thread) -> None:
    from benchmark.data.tasks import load_task
    from benchmark.run.encoders import provision_encoder
    from pretraining.checkpoint import load_encoder

    made = provision_encoder(_config(), progress=False)
    data = load_task("ptbxl/AFIB", shared_data)
    integrity.forget()
    cache = paths.cache_dir()
    read_only(cache)

    again = provision_encoder(_config(), progress=False)  # read: no lock file, no write
    assert again.path == made.path and not again.trained_now
    load_encoder(again.path)
    assert load_task("ptbxl/AFIB", shared_data).data_version == data.data_version

    with pytest.raises(CacheError, match=r"cannot write .*: read-only file system; point SIMECG_CACHE"):
        provision_encoder(_config(seed=1), progress=False)  # refused before any training step
    assert main(["pretrain", "--corpus", "sim", "--no-mlflow", "--no-progress", *PRETRAIN, "--set",
                 "pretrain.seed=2"]) == 2
    line = _error_line(capsys.readouterr().err)
    assert str(cache / "encoders") in line and "read-only file system" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod; the EROFS simulation above covers root")
def test_a_chmod_read_only_cache_still_serves_a_complete_encoder(tmp_path: Path, monkeypatch, one_thread) -> None:
    from benchmark.run.encoders import provision_encoder

    monkeypatch.setenv("SIMECG_CACHE", str(tmp_path / "cache"))
    made = provision_encoder(_config(), progress=False)
    folders = [p for p in (tmp_path / "cache").rglob("*") if p.is_dir()] + [tmp_path / "cache"]
    for folder in folders:
        folder.chmod(0o555)
    try:
        assert provision_encoder(_config(), progress=False).path == made.path
        with pytest.raises(CacheError, match="permission denied"):
            provision_encoder(_config(seed=1), progress=False)
    finally:
        for folder in folders:
            folder.chmod(0o755)


# ---- a full disk ---------------------------------------------------------------------------------

def _disk_full_after(monkeypatch: pytest.MonkeyPatch, allowed_bytes: int = 0) -> None:
    """Cache files written through :class:`simecg.integrity.CacheFile` fill the disk after ``allowed_bytes``."""
    real_open = builtins.open
    budget = {"left": allowed_bytes}

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            size = len(memoryview(data).cast("B"))
            if size > budget["left"]:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            budget["left"] -= size
            return self.fh.write(data)

        def close(self):
            self.fh.close()

    def fake_open(path, mode="r", **kwargs):  # reads (integrity.digest hashing a source file) are left alone
        fh = real_open(path, mode, **kwargs)
        return fh if "r" in mode else Full(fh)

    monkeypatch.setattr(integrity, "open", fake_open, raising=False)


def test_a_full_disk_while_building_a_data_cache_names_the_file_and_leaves_nothing(
        shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmark.data.tasks import load_task

    _disk_full_after(monkeypatch, allowed_bytes=100_000)
    with pytest.raises(CacheError) as caught:
        load_task("ptbxl/AFIB", shared_data, cache_dir=tmp_path / "cache")
    message = str(caught.value)
    assert message.startswith("disk full writing ") and "signals.f32" in message and "\n" not in message
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()], "the partial cache was removed"


def test_a_full_disk_is_one_line_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture, one_thread) -> None:
    _disk_full_after(monkeypatch)
    out = tmp_path / "store"
    assert main(["corpus", "build", "sim", "--n", "8", "--out", str(out), "--workers", "1"]) == 2
    line = _error_line(capsys.readouterr().err)
    assert line.startswith(f"simecg-bench: error: disk full writing {out}/") and "shard-000000.npy" in line
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]  # no partial shard

    _checkpoints_fill_the_disk(monkeypatch)
    monkeypatch.setenv("SIMECG_CACHE", str(tmp_path / "cache"))  # an empty cache: the encoder must be trained
    assert main(["pretrain", "--corpus", "sim", "--no-mlflow", "--no-progress", *PRETRAIN]) == 2
    line = _error_line(capsys.readouterr().err)
    assert line.startswith("simecg-bench: error: disk full writing ") and "step-00000004.pt" in line
    assert "SIMECG_CACHE" in line  # the encoder cache: pointing elsewhere is a way out


def _checkpoints_fill_the_disk(monkeypatch: pytest.MonkeyPatch, allowed_bytes: int = 4096) -> None:
    """Checkpoint files (:func:`pretraining.checkpoint.atomic_save`) fill the disk after ``allowed_bytes``."""
    from pretraining import checkpoint as ckpt

    real_open = builtins.open

    class FillsUp:
        def __init__(self, fh):
            self.fh, self.left = fh, allowed_bytes

        def write(self, data):
            size = len(memoryview(data).cast("B"))
            if size > self.left:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.left -= size
            return self.fh.write(data)

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(ckpt, "open", lambda path, mode: FillsUp(real_open(path, mode)), raising=False)


def test_location_errors_become_one_line_and_others_keep_their_type(tmp_path: Path) -> None:
    target = tmp_path / "x"
    for code, words in ((errno.ENOSPC, "disk full writing"), (errno.EROFS, "read-only file system"),
                        (errno.EACCES, "permission denied")):
        with pytest.raises(CacheError, match=words), paths.writing(target):
            raise OSError(code, os.strerror(code))
    with pytest.raises(FileNotFoundError), paths.writing(target):
        raise FileNotFoundError(errno.ENOENT, "gone")
    (tmp_path / "file").write_text("x")
    with pytest.raises(CacheError, match=r"is a file, not a folder"):
        paths.require_writable(tmp_path / "file" / "sub")


def test_a_cache_folder_another_worker_creates_meanwhile_is_used(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Four workers start at once on a fresh SIMECG_CACHE: whichever creates it, none may fail."""
    root = tmp_path / "cache"
    monkeypatch.setenv("SIMECG_CACHE", str(root))
    real_is_dir = Path.is_dir
    first = []

    def late_is_dir(self: Path) -> bool:  # the first look sees nothing; another worker mkdirs right after
        if self == root and not first:
            first.append(True)
            root.mkdir()
            return False
        return real_is_dir(self)

    monkeypatch.setattr(Path, "is_dir", late_is_dir)
    assert paths.cache_dir() == root and first


def test_a_disk_filling_up_in_the_middle_of_a_checkpoint_says_disk_full_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.save into a file whose writes fail with ENOSPC part-way reports 'unexpected pos' from its
    C++ writer; the checkpoint must say disk full and name the file, and leave no temporary."""
    import torch

    from pretraining import checkpoint as ckpt

    _checkpoints_fill_the_disk(monkeypatch)
    target = tmp_path / "checkpoints" / "step-00000004.pt"
    with pytest.raises(CacheError) as caught:
        ckpt.atomic_save({"weights": torch.zeros(100_000)}, target)
    assert str(caught.value).startswith("disk full writing ") and "step-00000004.pt" in str(caught.value)
    assert list(target.parent.iterdir()) == []
