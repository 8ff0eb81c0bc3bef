"""The ``folder`` corpus: a user's own ECGs (WFDB records or NumPy files) as a pretraining corpus.

Every ``.hea`` (WFDB) and ``.npy`` file under ``path`` (recursively, sorted) is read:

* WFDB records: the lead named ``lead`` (default ``II``, case-insensitive; a one-channel
  record is taken as it is), in mV whatever the header's units;
* ``.npy``: a 1-D array is one ECG, a 2-D array ``(n_ecgs, n_samples)`` holds one ECG per row;
  their sampling rate is the ``fs`` option (default 500 Hz).

Signals are resampled to 500 Hz when needed and cut into non-overlapping 10-s windows; each
window is one corpus item. Bad files (unreadable, missing lead or signal file, no ECG in it,
shorter than 10 s, NaN or infinite values, a constant ECG, which z-scoring cannot scale, complex
values) raise :class:`DataError` naming the file when the corpus is built, or are skipped with a
warning when ``skip_bad=true``: every signal is read once then. Nothing is ever written into the
folder.

Options (:class:`FolderOptions`, set as ``pretrain.corpus_options.<key>``)::

    simecg-bench pretrain --corpus folder --set pretrain.corpus_options.path=DIR \
        --set pretrain.corpus_options.fs=250
    simecg-bench corpus build folder --n 10000 --out STORE --set pretrain.corpus_options.path=DIR

The identity (:meth:`FolderCorpus.identity`) holds the used files relative to the folder with
the SHA-256 of each one's content (a WFDB record's header and signal files), never the folder's
location, so a copied folder gives the same encoder fingerprint and an edited file a new one.
Digests are cached under ``<cache>/hashes`` keyed by (resolved path, size, mtime), so an
unchanged folder is not read again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from pretraining.corpora.base import CorpusBase
from simecg import integrity, paths
from simecg.errors import CacheError, ConfigError, DataError, DataMissingError
from simecg.seeding import rng_for
from simecg.signal import FS, N_SAMPLES

log = logging.getLogger(__name__)

# A digest is trusted from the cache only if the file was last modified at least this long before
# it was hashed: file times are coarse (a clock tick, or seconds on some filesystems), so a file
# rewritten within the tick it was hashed in could keep its size and mtime.
RACY_NS = 2_000_000_000
_HASH_CACHE_VERSION = 1

_UNIT_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3, "nu": 1.0, "": 1.0}


def _resample(x: np.ndarray, fs: float) -> np.ndarray:
    """``x`` sampled at ``fs`` Hz, resampled to 500 Hz (polyphase, anti-aliased)."""
    if fs == FS:
        return x
    from scipy.signal import resample_poly

    ratio = Fraction(FS / fs).limit_denominator(1000)
    return resample_poly(x, ratio.numerator, ratio.denominator).astype(np.float32)


def _check_values(signal: np.ndarray, file: Path) -> np.ndarray:
    """``signal`` if every value is finite and it is not constant; else a DataError naming ``file``.

    A constant ECG has no scale: z-scoring it (docs/protocol.md, "Signals") divides by zero, and
    training on the zeros it becomes teaches nothing while looking like success.
    """
    if not np.all(np.isfinite(signal)):
        raise DataError(f"{file}: the ECG contains NaN or infinite values; clean or remove the file "
                        "(or set pretrain.corpus_options.skip_bad=true)")
    if signal.size and float(np.ptp(signal)) == 0.0:
        raise DataError(f"{file}: the ECG is constant ({float(signal[0]):g} throughout), which cannot be z-scored; "
                        "remove the file (or set pretrain.corpus_options.skip_bad=true)")
    return signal


def digest_cache_path(root: Path | str) -> Path:
    """The digest cache file of the folder ``root``: ``<cache>/hashes/<hash of its resolved path>.json``."""
    folder = str(Path(root).resolve())
    return paths.cache_dir() / "hashes" / f"{hashlib.sha256(folder.encode()).hexdigest()[:24]}.json"


def file_digests(files: list[Path], root: Path | None = None) -> list[str]:
    """SHA-256 of each file's content, from the digest cache when the file is unchanged.

    The cache is one JSON file per folder ``root`` (default: the files' common folder) under
    ``<cache>/hashes``, holding each file's digest keyed by its resolved path, size and
    ``mtime_ns``; it is written atomically with a SHA-256 of its entries (``check``), and a corrupt,
    unreadable or unchecked one is ignored with a warning (and rewritten): a damaged digest would
    otherwise give a changed corpus the identity of the old one.
    """
    if not files:
        return []
    resolved = [Path(f).resolve() for f in files]
    folder = str(Path(root).resolve()) if root is not None else os.path.commonpath([str(r.parent) for r in resolved])
    cache_file = digest_cache_path(folder)
    entries: dict[str, Any] = {}
    try:
        stored = json.loads(cache_file.read_text())
        if isinstance(stored, dict) and stored.get("version") == _HASH_CACHE_VERSION \
                and isinstance(stored.get("files"), dict):
            if stored.get("check") == _entries_check(stored["files"]):
                entries = stored["files"]
            else:
                log.warning("file-digest cache %s is damaged (its entries do not match their checksum); "
                            "hashing the files again", cache_file)
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        log.warning("file-digest cache %s is unreadable (%s); hashing the files again", cache_file,
                    exc.__class__.__name__)
    out: list[str] = []
    changed = False
    for path in resolved:
        try:
            stat = path.stat()
            entry = entries.get(str(path))
            if (isinstance(entry, dict) and entry.get("size") == stat.st_size
                    and entry.get("mtime_ns") == stat.st_mtime_ns and isinstance(entry.get("sha256"), str)
                    and isinstance(entry.get("hashed_ns"), int) and stat.st_mtime_ns + RACY_NS <= entry["hashed_ns"]):
                out.append(entry["sha256"])
                continue
            hashed_ns = time.time_ns()
            digest = integrity.digest(path)
        except OSError as exc:
            raise DataError(f"{path}: cannot read it to hash its content ({exc})") from None
        entries[str(path)] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest,
                              "hashed_ns": hashed_ns}
        out.append(digest)
        changed = True
    if changed:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            integrity.write_json(cache_file, {"version": _HASH_CACHE_VERSION, "folder": folder, "files": entries,
                                              "check": _entries_check(entries)})
        except (OSError, CacheError) as exc:  # a read-only cache only costs speed
            log.warning("could not write the file-digest cache %s: %s", cache_file, exc)
    return out


def _entries_check(entries: dict[str, Any]) -> str:
    """SHA-256 of the digest cache's entries (canonical JSON), stored beside them."""
    return hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class FolderOptions:
    """Options of the ``folder`` corpus (``pretrain.corpus_options.*``).

    ``path``: the folder (required); ``lead``: the WFDB lead to read (II); ``fs``: the sampling
    rate of ``.npy`` files in Hz (500); ``skip_bad``: skip unusable files with a warning instead
    of failing (false).
    """

    path: str | None = None
    lead: str = "II"
    fs: float = float(FS)
    skip_bad: bool = False

    def __post_init__(self) -> None:
        if self.path is not None:
            object.__setattr__(self, "path", str(self.path))
            if not self.path.strip():  # an empty --set ...path= would read the current folder
                raise ConfigError("pretrain.corpus_options.path (folder corpus) is empty; give the folder of your "
                                  "ECGs: --set pretrain.corpus_options.path=DIR")
        if not 0 < self.fs < float("inf"):  # NaN fails too
            raise ConfigError(f"pretrain.corpus_options.fs (folder corpus) must be a positive number of Hz, "
                              f"got {self.fs}")
        if not str(self.lead).strip():
            raise ConfigError("pretrain.corpus_options.lead (folder corpus) must name a lead, e.g. II")


class FolderCorpus(CorpusBase):
    """A folder of your own WFDB records or .npy files (lead II, 10-s windows); see the module docstring.

    Built as ``FolderCorpus(size=, seed=, options=FolderCorpus.Options(path=DIR))``; ``size`` None
    (or more than there are) takes every window, fewer draws a seeded subset.
    """

    name = "folder"
    Options = FolderOptions

    def __init__(self, size: int | None = None, seed: int = 0, options: FolderOptions | None = None):
        options = FolderOptions() if options is None else options
        if not isinstance(options, FolderOptions):
            raise ConfigError(f"folder corpus: options must be a FolderCorpus.Options, got {type(options).__name__}")
        if options.path is None:
            raise ConfigError("the folder corpus needs a path: --set pretrain.corpus_options.path=DIR")
        self.options = options
        self.path = Path(options.path).expanduser()
        if not self.path.is_dir():
            raise DataMissingError(
                f"folder corpus: {self.path} is not a folder; pass --set pretrain.corpus_options.path=DIR"
            )
        self.lead = str(options.lead)
        self.fs = float(options.fs)
        self.seed = int(seed)
        self.skip_bad = bool(options.skip_bad)
        self.files: list[Path] = []
        self.sources: list[list[Path]] = []  # per used file: the files its ECGs are read from
        self._identity: dict[str, Any] | None = None
        self.skipped: list[dict[str, str]] = []
        windows: list[tuple[int, int, int]] = []  # (file number, row, start sample at 500 Hz)
        candidates = sorted(p for p in self.path.rglob("*") if p.suffix in (".hea", ".npy") and p.is_file()
                            and not any(part.startswith(".") for part in p.relative_to(self.path).parts))
        for file in candidates:
            try:
                counts, sources = self._scan(file)
            except DataError as exc:
                if not self.skip_bad:
                    raise
                log.debug("folder corpus: skipping %s", exc)
                self.skipped.append({"file": str(file), "reason": str(exc)})
                continue
            number = len(self.files)
            self.files.append(file)
            self.sources.append(sources)
            for row, n_windows in enumerate(counts):
                windows.extend((number, row, w * N_SAMPLES) for w in range(n_windows))
        if not windows:
            raise DataError(
                f"folder corpus: no usable 10-s ECG in {self.path} (looked for WFDB .hea and .npy files; "
                f"{len(candidates)} found, {len(self.skipped)} skipped)"
            )
        if self.skipped:
            log.warning("folder corpus: skipped %d of %d files in %s (first: %s)", len(self.skipped),
                        len(candidates), self.path, self.skipped[0]["reason"])
        table = np.asarray(windows, dtype=np.int64)
        if size is not None and size < len(table):
            keep = np.sort(rng_for(seed, "folder-subset").choice(len(table), size, replace=False))
            table = table[keep]
        elif size is not None and size > len(table):
            log.info("folder corpus: %s has %d windows, fewer than the requested %d; using all", self.path,
                     len(table), size)
        self.windows = table
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    # ---- scanning ----------------------------------------------------------------------------
    def _scan(self, file: Path) -> tuple[list[int], list[Path]]:
        """Number of 10-s windows of each ECG in ``file`` (one entry per ECG), and the files read."""
        sources = [file]
        if file.suffix == ".npy":
            array = self._open_npy(file)
            lengths = [array.shape[-1]] * (1 if array.ndim == 1 else array.shape[0])
            if not lengths or not array.size:
                raise DataError(f"{file}: holds no ECG (an array of shape {array.shape}); remove it or set "
                                "pretrain.corpus_options.skip_bad=true")
            fs = self.fs
        else:
            header = self._header(file)
            self._channel(header, file)
            lengths, fs = [int(header.sig_len or 0)], float(header.fs)
            for name in dict.fromkeys(getattr(header, "file_name", None) or []):
                signal_file = file.parent / str(name)
                if not signal_file.is_file():
                    raise DataError(f"{file}: its signal file {signal_file.name} is missing (copy it next to the "
                                    "header, or remove the record)")
                sources.append(signal_file)
        counts = [int(n * FS / fs) // N_SAMPLES for n in lengths]
        if min(counts) == 0:
            seconds = min(lengths) / fs
            raise DataError(f"{file}: an ECG lasts {seconds:.1f} s, shorter than the 10 s a corpus item needs "
                            "(remove it or set pretrain.corpus_options.skip_bad=true)")
        # the values now, so skip_bad can skip the file and training never meets it
        if file.suffix == ".npy":
            rows = array.reshape(-1, array.shape[-1])
            for start in range(0, len(rows), 256):  # in blocks: a memory-mapped file is not read whole
                for signal in np.asarray(rows[start:start + 256], dtype=np.float32):
                    _check_values(signal, file)
        else:
            _check_values(self._read(file, 0), file)
        return counts, sources

    def _open_npy(self, file: Path) -> np.ndarray:
        try:
            array = np.load(file, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise DataError(f"{file}: not a readable NumPy array ({exc})") from None
        if array.ndim not in (1, 2) or not np.issubdtype(array.dtype, np.number) \
                or np.issubdtype(array.dtype, np.complexfloating):
            raise DataError(f"{file}: expected a real numeric array of shape (samples,) or (n_ecgs, samples), "
                            f"found {array.dtype} {array.shape}" + (" (complex values have no voltage to read)"
                                                                    if np.iscomplexobj(array) else ""))
        return array

    def _header(self, file: Path) -> Any:
        import wfdb

        try:
            return wfdb.rdheader(str(file.with_suffix("")))
        except Exception as exc:
            raise DataError(f"{file}: unreadable WFDB header ({type(exc).__name__}: {exc}); fix the header "
                            "(e.g. a record line must name the record without extension) or remove it") from None

    def _channel(self, header: Any, file: Path) -> int:
        names = [str(n) for n in (header.sig_name or [])]
        lowered = [n.lower() for n in names]
        if self.lead.lower() in lowered:
            return lowered.index(self.lead.lower())
        if len(names) == 1:
            return 0
        raise DataError(f"{file}: no lead {self.lead!r} among {names}; choose pretrain.corpus_options.lead=NAME")

    # ---- reading -----------------------------------------------------------------------------
    def _load(self, number: int, row: int) -> np.ndarray:
        """The whole ECG (row ``row`` of file ``number``) at 500 Hz, in mV, cached per process."""
        key = (number, row)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        file = self.files[number]
        signal = _check_values(self._read(file, row), file)  # a file changed since the scan
        if len(self._cache) >= 64:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = signal
        return signal

    def _read(self, file: Path, row: int) -> np.ndarray:
        """ECG ``row`` of ``file`` at 500 Hz, in mV (unchecked, uncached)."""
        if file.suffix == ".npy":
            array = self._open_npy(file)
            signal = np.asarray(array if array.ndim == 1 else array[row], dtype=np.float32)
            return _resample(signal, self.fs)
        import wfdb

        header = self._header(file)
        channel = self._channel(header, file)
        try:
            record = wfdb.rdrecord(str(file.with_suffix("")), channels=[channel])
        except Exception as exc:
            raise DataError(f"{file}: cannot read the signal ({type(exc).__name__}: {exc})") from None
        unit = str((record.units or [""])[0]).strip().lower()
        scale = _UNIT_TO_MV.get(unit)
        if scale is None:
            raise DataError(f"{file}: unknown signal unit {unit!r}; expected mV, uV or V")
        return _resample(record.p_signal[:, 0].astype(np.float32) * scale, float(record.fs))

    def __len__(self) -> int:
        return len(self.windows)

    def get_batch(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise DataError(
                f"folder corpus: indices must lie in [0, {len(self)}), got {indices.min()}..{indices.max()}"
            )
        out = np.empty((len(indices), N_SAMPLES), dtype=np.float32)
        for i, (number, row, start) in enumerate(self.windows[indices]):
            out[i] = self._load(int(number), int(row))[start:start + N_SAMPLES]
        return out

    def identity(self) -> dict[str, Any]:
        """Name, size, seed, lead/fs/skip_bad and ``files``: each file read (path relative to the
        folder, sorted) with the SHA-256 of its content. Never the folder's location. Computed once
        per corpus; digests of unchanged files come from the cache (:func:`file_digests`)."""
        if self._identity is None:
            used = sorted({source for sources in self.sources for source in sources})
            names = [Path(os.path.relpath(source, self.path)).as_posix() for source in used]
            digests = file_digests(used, root=self.path)
            self._identity = {
                "name": self.name, "size": len(self), "seed": self.seed, "lead": self.lead, "fs": self.fs,
                "skip_bad": self.skip_bad, "files": dict(sorted(zip(names, digests, strict=True))),
            }
        return self._identity

    def __repr__(self) -> str:
        return f"FolderCorpus({self.path}, {len(self)} windows from {len(self.files)} files)"
