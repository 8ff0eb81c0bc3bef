"""Materialized corpora: memory-mapped ``.npy`` shards plus a JSON manifest.

Build one with ``simecg-bench corpus build NAME --n N --out DIR --set pretrain.corpus_options.KEY=VALUE``
(or :func:`build_store` on a ``PretrainConfig``); the ``sim`` corpus reads it back with
``--set pretrain.corpus_options.path=DIR``.

Layout of a store folder::

    manifest.json          content identity of the corpus (and its hash), n, shard size, dtype,
                           and each finished shard's size and SHA-256 ("files")
    shard-000000.npy       ECGs [0, shard_size) as float32 (n, 5000), readable with mmap
    shard-000001.npy       ...

Building is resumable and idempotent: a shard is written to a temporary file and renamed into
place only when complete, then its size and hash are added to the manifest, so after a kill the
finished shards are kept, the unfinished one is redone, and nothing is ever written twice.
Because ECG ``i`` depends only on (config, seed, i), shards are independent jobs, spread over
all cores by default.

A shard is checked against its manifest entry when a process first reads it (its size, and its
hash once per process: :mod:`simecg.integrity`). A damaged shard, or one without an entry (a
store of format 1), is never used: it is computed again from the corpus the manifest describes,
with a warning, and written back when the folder is writable (a rebuild of the store does the
same for every shard).
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
from filelock import FileLock
from tqdm.auto import tqdm

from pretraining.corpora.base import TrainedCorpus, without_store_paths
from simecg import integrity, paths
from simecg.config import to_dict
from simecg.errors import CacheError, ConfigError, DataError, DataMissingError
from simecg.identity import Identity, corpus_content_hash
from simecg.registries import CORPORA
from simecg.signal import N_SAMPLES

if TYPE_CHECKING:
    from pretraining.config import PretrainConfig

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT_VERSION = 2  # 2: + "files", each shard's size and SHA-256 (1: no checksum; its shards are rebuilt)
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
        self._source: Any = None  # the corpus the manifest describes, made to rebuild a damaged shard

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
        if not isinstance(manifest.get("files"), dict):
            log.warning("corpus store %s has no checksums (format %s, written by an older version): each shard is "
                        "computed again when first read; rerun `simecg-bench corpus build` on it to rebuild them all",
                        path, manifest.get("format"))
        return cls(Path(path), manifest)

    @classmethod
    def open_matching(cls, path: Path, content_identity: dict[str, Any]) -> CorpusStore:
        """The store at ``path``, refused (:meth:`check_matches`) unless it holds exactly the ECGs of the
        corpus whose content identity is given: how a corpus's ``path`` option opens its store."""
        store = cls.open(path)
        store.check_matches(content_identity)
        return store

    def __len__(self) -> int:
        return self.n

    def check_matches(self, content_identity: dict[str, Any]) -> None:
        """Refuse a store whose ECGs would differ from the requested corpus (its content identity)."""
        want = corpus_content_hash(content_identity)
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
        """Shard ``k``, memory-mapped once checked against the manifest (rebuilt if damaged)."""
        if k not in self._shards:
            file = self.path / shard_name(k)
            problem = integrity.check(file, (self.manifest.get("files") or {}).get(file.name))
            if problem is None:
                try:
                    self._shards[k] = np.load(file, mmap_mode="r")
                except (OSError, ValueError) as exc:
                    problem = f"unreadable ({exc})"
            if problem is not None:
                self._shards[k] = self._rebuild(k, problem)
        return self._shards[k]

    def _rebuild(self, k: int, problem: str) -> np.ndarray:
        """Compute shard ``k`` again from the corpus of the manifest; write it back if the folder allows."""
        file = self.path / shard_name(k)
        if "older version" not in problem:
            log.warning("corpus shard %s is damaged (%s); computing it again", file, problem)
        if self._source is None:
            self._source = _manifest_corpus(self.manifest, self.path)
        start, stop = k * self.shard_size, min((k + 1) * self.shard_size, self.n)
        try:
            entry = _write_shard(self._source, self.path, k, start, stop)
        except CacheError as exc:  # a read-only store still serves the right values
            log.warning("could not write the rebuilt shard back (%s); using it from memory", exc)
            return self._source.get_batch(np.arange(start, stop))
        _record_shard(self.path, k, entry)
        self.manifest.setdefault("files", {})[file.name] = entry
        return np.load(file, mmap_mode="r")

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
    integrity.write_json(path, data)


def _record_shard(out: Path, k: int, entry: dict[str, Any]) -> None:
    """Add shard ``k``'s size and hash to the manifest on disk (under a lock: readers may repair shards too)."""
    manifest_path = Path(out) / MANIFEST
    with paths.writing(manifest_path), FileLock(Path(out) / f".{MANIFEST}.lock"):
        manifest = read_manifest(manifest_path)
        manifest.setdefault("files", {})[shard_name(k)] = entry
        manifest["format"] = FORMAT_VERSION
        _write_json_atomic(manifest_path, manifest)


def _shard_ok(file: Path, rows: int, entry: Any = None) -> bool:
    """A finished shard exists with the expected shape and matches its manifest ``entry`` (size, hash)."""
    if not file.is_file():
        return False
    problem = integrity.check(file, entry)
    if problem is not None:
        if "older version" not in problem:
            log.warning("corpus shard %s is damaged (%s); building it again", file, problem)
        return False
    try:
        arr = np.load(file, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return arr.shape == (rows, N_SAMPLES) and arr.dtype == np.float32


def _manifest_corpus(manifest: dict[str, Any], where: Path) -> Any:
    """The corpus a store's manifest describes (to compute a shard again), refused if its content differs."""
    from pretraining.config import PretrainConfig, corpus_options

    try:
        config = PretrainConfig(corpus=manifest["corpus"], corpus_size=int(manifest["n"]),
                                corpus_seed=int(manifest["seed"]), corpus_options=dict(manifest["options"]))
        corpus = CORPORA.get(config.corpus)(size=config.corpus_size, seed=config.corpus_seed,
                                            options=without_store_paths(corpus_options(config)))
        content = corpus.content_identity()
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise DataError(f"corpus store {where}: a shard is damaged and the manifest cannot describe its corpus "
                        f"({exc}); build the store again") from None
    if corpus_content_hash(content) != manifest.get("config_hash"):
        raise DataError(f"corpus store {where}: a shard is damaged and this version computes other ECGs than "
                        "the store holds; build the store again")
    return corpus


_CORPORA_BUILT: dict[str, Any] = {}  # per process: the corpus of the build, made once


def _corpus(corpus_name: str, size: int, seed: int, options: Any) -> Any:
    key = json.dumps([corpus_name, size, seed, to_dict(options)], sort_keys=True, default=str)
    if key not in _CORPORA_BUILT:
        _CORPORA_BUILT.clear()
        _CORPORA_BUILT[key] = CORPORA.get(corpus_name)(size=size, seed=seed, options=options)
    return _CORPORA_BUILT[key]


def _build_shard(corpus_name: str, size: int, seed: int, options: Any, out: str, k: int,
                 start: int, stop: int) -> tuple[int, dict[str, Any]]:
    """Worker job: compute ECGs [start, stop) and write shard ``k`` atomically; ``(rows, manifest entry)``."""
    corpus = _corpus(corpus_name, size, seed, options)
    return stop - start, _write_shard(corpus, Path(out), k, start, stop)


def _write_shard(corpus: Any, out: Path, k: int, start: int, stop: int) -> dict[str, Any]:
    """Write ECGs [start, stop) of ``corpus`` as shard ``k`` (a temporary renamed into place); its entry.

    Plain writes, chunk by chunk, not a memory map: a full disk is then an error naming the file
    (a write into a memory map on a full disk kills the process with SIGBUS).
    """
    final = out / shard_name(k)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
              "shape": (stop - start, N_SAMPLES)}
    with integrity.staged(final) as tmp:  # the folder's manifest, written last, seals the shards
        with integrity.CacheFile(tmp) as fh:
            np.lib.format.write_array_header_1_0(fh, header)  # type: ignore[arg-type]  # only calls write()
            for lo in range(start, stop, CHUNK):
                hi = min(lo + CHUNK, stop)
                fh.write(np.ascontiguousarray(corpus.get_batch(np.arange(lo, hi)), dtype=np.float32).tobytes())
        entry = integrity.describe(tmp)
    return entry


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
    if isinstance(corpus, TrainedCorpus):  # sampled from a trained model (vae, gan): train or find it first
        corpus.prepare(progress=sys.stderr.isatty() if progress is None else progress)
    n = len(corpus)
    if n <= 0:
        raise ConfigError(f"corpus build: corpus {corpus_name!r} holds no ECG")
    if n < config.corpus_size:
        log.warning("corpus %s holds %d ECGs, fewer than the requested %d; storing them all", corpus_name, n,
                    config.corpus_size)
    content = corpus.content_identity()
    config_hash = corpus_content_hash(content)
    out = Path(out)
    paths.require_writable(out)
    integrity.sweep(out)  # temporaries of killed builds
    manifest_path = out / MANIFEST
    old: dict[str, Any] = {}
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
        "files": {},
        "complete": False,
    }
    known = old.get("files") if isinstance(old.get("files"), dict) else {}
    jobs = []
    for k in range(len(manifest["shards"])):
        start, stop = k * shard_size, min((k + 1) * shard_size, n)
        if _shard_ok(out / shard_name(k), stop - start, known.get(shard_name(k))):
            manifest["files"][shard_name(k)] = known[shard_name(k)]
        else:
            jobs.append((k, start, stop))
    _write_json_atomic(manifest_path, manifest)
    skipped = len(manifest["shards"]) - len(jobs)
    workers = workers or os.cpu_count() or 1
    t0 = time.perf_counter()

    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=n, initial=n - sum(s - a for _, a, s in jobs), unit="ECG", disable=not show,
               desc=f"corpus {corpus_name}", smoothing=0.1)

    def finished(k: int, rows: int, entry: dict[str, Any]) -> None:
        manifest["files"][shard_name(k)] = entry
        _write_json_atomic(manifest_path, manifest)  # a kill after this keeps the shard
        bar.update(rows)
        if on_shard:
            on_shard(k)

    try:
        if workers == 1 or len(jobs) <= 1:
            for k, start, stop in jobs:
                finished(k, *_build_shard(corpus_name, config.corpus_size, seed, options, str(out), k, start, stop))
        else:
            with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
                pending = {pool.submit(_build_shard, corpus_name, config.corpus_size, seed, options, str(out),
                                       k, a, s): k for k, a, s in jobs}
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        k = pending.pop(fut)
                        finished(k, *fut.result())
    finally:
        bar.close()
        _CORPORA_BUILT.clear()
    manifest["complete"] = True
    _write_json_atomic(manifest_path, manifest)
    integrity.sweep(out)  # leftovers of killed workers
    return BuildResult(out, n, len(manifest["shards"]), len(jobs), skipped, time.perf_counter() - t0)


def stored_or_computed(name: str, size: int, indices: Any, compute: Callable[[np.ndarray], np.ndarray],
                       store: Any = None) -> np.ndarray:
    """``get_batch`` of a corpus that computes its ECGs: float32 ``(len(indices), 5000)``.

    Indices outside ``[0, size)`` raise :class:`ConfigError` naming corpus ``name``. Those a
    ``store`` holds (a :class:`CorpusStore` of the same ECGs, built by
    ``corpus build``: its first ``len(store)`` indices) are read from it, the others come from
    ``compute`` (indices -> ECGs): a store saves time and never changes a value, so a corpus
    larger than its store still works, and an option naming it stays out of the identity.
    """
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if indices.size and (indices.min() < 0 or indices.max() >= size):
        raise ConfigError(f"{name} corpus index out of range [0, {size}): got {indices.min()}..{indices.max()}")
    out = np.empty((len(indices), N_SAMPLES), dtype=np.float32)
    todo = np.ones(len(indices), dtype=bool)
    if store is not None:
        stored = indices < len(store)
        if stored.any():
            out[stored] = store.get_batch(indices[stored])
        todo &= ~stored
    if todo.any():
        out[todo] = compute(indices[todo])
    return out
