"""Materialized corpora: memory-mapped ``.npy`` shards plus a JSON manifest.

Build one with ``simecg-bench corpus build NAME --n N --out DIR --set pretrain.corpus_options.KEY=VALUE``
(or :func:`build_store` on a ``PretrainConfig``); the ``sim`` corpus reads it back with
``--set pretrain.corpus_options.path=DIR``.

Layout of a store folder::

    manifest.json          content identity of the corpus (and its hash), n, shard size, dtype
    shard-000000.npy       ECGs [0, shard_size) as float32 (n, 5000), readable with mmap
    shard-000001.npy       ...

Building is resumable and idempotent: a shard is written to a temporary file and renamed into
place only when complete, so after a kill the finished shards are kept, the unfinished one is
redone, and nothing is ever written twice. Because ECG ``i`` depends only on (config, seed, i),
shards are independent jobs, spread over all cores by default.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pretraining.corpora.base import without_store_paths
from simecg.config import stable_hash, to_dict
from simecg.errors import ConfigError, DataError, DataMissingError
from simecg.identity import Identity
from simecg.registries import CORPORA
from simecg.signal import N_SAMPLES

if TYPE_CHECKING:
    from pretraining.config import PretrainConfig

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
DEFAULT_SHARD_SIZE = 4096
CHUNK = 256  # ECGs simulated per call inside a shard (bounds worker memory)


def shard_name(k: int) -> str:
    return f"shard-{k:06d}.npy"


@dataclass(frozen=True)
class BuildResult:
    """What a build did: where, how many ECGs, how many shards were written now vs. already there."""

    path: Path
    n: int
    shards_total: int
    shards_written: int
    shards_skipped: int
    seconds: float


class CorpusStore:
    """Read access to a materialized corpus (memory-mapped shards)."""

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.path = path
        self.manifest = manifest
        self.n = int(manifest["n"])
        self.shard_size = int(manifest["shard_size"])
        self._shards: dict[int, np.ndarray] = {}

    @classmethod
    def open(cls, path: Path) -> CorpusStore:
        """Open a complete store; raise DataMissingError/DataError with what to do otherwise."""
        manifest_path = Path(path) / MANIFEST
        if not manifest_path.is_file():
            raise DataMissingError(
                f"no corpus store at {path} (missing {MANIFEST}); build one with "
                f"`simecg-bench corpus build sim --n N --out {path}`"
            )
        manifest = read_manifest(manifest_path)
        if not manifest.get("complete"):
            raise DataError(
                f"corpus store {path} is incomplete ({MANIFEST} has complete=false); rerun the same "
                "`simecg-bench corpus build` command to finish it"
            )
        return cls(Path(path), manifest)

    def __len__(self) -> int:
        return self.n

    def check_matches(self, content_identity: dict[str, Any]) -> None:
        """Refuse a store whose ECGs would differ from the requested corpus (its content identity)."""
        want = stable_hash(content_identity)
        have = self.manifest.get("config_hash")
        if want != have:
            stored = self.manifest.get("content")
            diffs = Identity("corpus", content_identity).differences(stored) if isinstance(stored, dict) else []
            what = "; ".join(diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")
            raise ConfigError(
                f"corpus store {self.path} holds other ECGs than the requested corpus (content {have} vs "
                f"{want}{'; stored -> requested: ' + what if what else ''}). Use the options it was built "
                "with (see its manifest.json), or build a new store"
            )

    def shard(self, k: int) -> np.ndarray:
        if k not in self._shards:
            file = self.path / shard_name(k)
            try:
                self._shards[k] = np.load(file, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise DataError(f"cannot read corpus shard {file}: {exc}; rebuild the store") from None
        return self._shards[k]

    def get_batch(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        out = np.empty((len(indices), N_SAMPLES), dtype=np.float32)
        shard_of = indices // self.shard_size
        for k in np.unique(shard_of):
            mask = shard_of == k
            out[mask] = self.shard(int(k))[indices[mask] - k * self.shard_size]
        return out


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read corpus manifest {path}: {exc}; delete the folder and rebuild") from None


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _shard_ok(file: Path, rows: int) -> bool:
    """A finished shard exists with the expected shape (renamed into place only when complete)."""
    if not file.is_file():
        return False
    try:
        arr = np.load(file, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return arr.shape == (rows, N_SAMPLES) and arr.dtype == np.float32


_CORPORA_BUILT: dict[str, Any] = {}  # per process: the corpus of the build, made once


def _corpus(corpus_name: str, size: int, seed: int, options: Any) -> Any:
    key = json.dumps([corpus_name, size, seed, to_dict(options)], sort_keys=True, default=str)
    if key not in _CORPORA_BUILT:
        _CORPORA_BUILT.clear()
        _CORPORA_BUILT[key] = CORPORA.get(corpus_name)(size=size, seed=seed, options=options)
    return _CORPORA_BUILT[key]


def _build_shard(corpus_name: str, size: int, seed: int, options: Any, out: str, k: int,
                 start: int, stop: int) -> int:
    """Worker job: compute ECGs [start, stop) and write shard ``k`` atomically."""
    corpus = _corpus(corpus_name, size, seed, options)
    final = Path(out) / shard_name(k)
    tmp = Path(out) / f".{shard_name(k)}.tmp{os.getpid()}"
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(stop - start, N_SAMPLES))
    for lo in range(start, stop, CHUNK):
        hi = min(lo + CHUNK, stop)
        arr[lo - start : hi - start] = corpus.get_batch(np.arange(lo, hi))
    arr.flush()
    del arr
    os.replace(tmp, final)
    return stop - start


def build_store(
    config: PretrainConfig,
    out: Path,
    workers: int | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    progress: bool | None = None,
    on_shard: Callable[[int], None] | None = None,
) -> BuildResult:
    """Materialize the corpus of ``config`` (``corpus``, ``corpus_size``, ``corpus_seed``,
    ``corpus_options``) into ``out``: its ECGs ``[0, len)``; resumable, all cores by default.

    Options are resolved exactly as for pretraining (:func:`pretraining.config.corpus_options`),
    except that an option naming a store to read (``STORE_PATH``, e.g. ``sim``'s ``path``) is
    ignored: a store is always computed from the corpus itself. ``on_shard`` (tests) is called with
    each shard index after it is written in this process.
    """
    from pretraining.config import corpus_options

    if shard_size <= 0:
        raise ConfigError(f"corpus build: shard size must be positive, got {shard_size}")
    corpus_name, seed = config.corpus, config.corpus_seed
    options = without_store_paths(corpus_options(config))
    corpus = _corpus(corpus_name, config.corpus_size, seed, options)
    if hasattr(corpus, "prepare"):  # a corpus sampled from a trained model (vae, gan): train or find it first
        corpus.prepare(progress=sys.stderr.isatty() if progress is None else progress)
    n = len(corpus)
    if n <= 0:
        raise ConfigError(f"corpus build: corpus {corpus_name!r} holds no ECG")
    if n < config.corpus_size:
        log.warning("corpus %s holds %d ECGs, fewer than the requested %d; storing them all", corpus_name, n,
                    config.corpus_size)
    content = corpus.content_identity() if hasattr(corpus, "content_identity") else corpus.identity()
    config_hash = stable_hash(content)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    if manifest_path.exists():
        old = read_manifest(manifest_path)
        if old.get("config_hash") != config_hash or int(old.get("shard_size", -1)) != shard_size:
            raise ConfigError(
                f"{out} already holds a different corpus (config {old.get('config_hash')}, shard size "
                f"{old.get('shard_size')}); requested config {config_hash}, shard size {shard_size}. "
                "Choose another --out folder or delete that one"
            )
    manifest = {
        "format": FORMAT_VERSION,
        "corpus": corpus_name,
        "seed": seed,
        "options": to_dict(options),
        "content": content,
        "config_hash": config_hash,
        "n": n,
        "shard_size": shard_size,
        "dtype": "float32",
        "length": N_SAMPLES,
        "shards": [shard_name(k) for k in range((n + shard_size - 1) // shard_size)],
        "complete": False,
    }
    _write_json_atomic(manifest_path, manifest)
    jobs = []
    for k in range(len(manifest["shards"])):
        start, stop = k * shard_size, min((k + 1) * shard_size, n)
        if not _shard_ok(out / shard_name(k), stop - start):
            jobs.append((k, start, stop))
    skipped = len(manifest["shards"]) - len(jobs)
    workers = workers or os.cpu_count() or 1
    t0 = time.perf_counter()
    from tqdm.auto import tqdm

    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=n, initial=n - sum(s - a for _, a, s in jobs), unit="ECG", disable=not show,
               desc=f"corpus {corpus_name}", smoothing=0.1)
    try:
        if workers == 1 or len(jobs) <= 1:
            for k, start, stop in jobs:
                bar.update(_build_shard(corpus_name, config.corpus_size, seed, options, str(out), k, start, stop))
                if on_shard:
                    on_shard(k)
        else:
            with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
                pending = {pool.submit(_build_shard, corpus_name, config.corpus_size, seed, options, str(out),
                                       k, a, s): k for k, a, s in jobs}
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        k = pending.pop(fut)
                        bar.update(fut.result())
                        if on_shard:
                            on_shard(k)
    finally:
        bar.close()
        _CORPORA_BUILT.clear()
    manifest["complete"] = True
    _write_json_atomic(manifest_path, manifest)
    for stale in out.glob(".shard-*.tmp*"):  # leftovers of killed workers
        stale.unlink(missing_ok=True)
    return BuildResult(out, n, len(manifest["shards"]), len(jobs), skipped, time.perf_counter() - t0)
