"""The ``folder`` corpus: a user's own ECGs (WFDB records or NumPy files) as a pretraining corpus.

Every ``.hea`` (WFDB) and ``.npy`` file under ``path`` (recursively, sorted) is read:

* WFDB records: the lead named ``lead`` (default ``II``, case-insensitive; a one-channel
  record is taken as it is), in mV whatever the header's units;
* ``.npy``: a 1-D array is one ECG, a 2-D array ``(n_ecgs, n_samples)`` holds one ECG per row;
  their sampling rate is the ``fs`` option (default 500 Hz).

Signals are resampled to 500 Hz when needed and cut into non-overlapping 10-s windows; each
window is one corpus item. Bad files (unreadable, missing lead, shorter than 10 s, NaN) raise
:class:`DataError` naming the file, or are skipped with a warning when ``skip_bad=true``.
Nothing is ever written into the folder.
"""

from __future__ import annotations

import hashlib
import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from simecg.errors import ConfigError, DataError, DataMissingError
from simecg.registries import CORPORA
from simecg.seeding import rng_for
from simecg.signal import FS, N_SAMPLES

log = logging.getLogger(__name__)

_UNIT_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3, "nu": 1.0, "": 1.0}


def _resample(x: np.ndarray, fs: float) -> np.ndarray:
    """``x`` sampled at ``fs`` Hz, resampled to 500 Hz (polyphase, anti-aliased)."""
    if fs == FS:
        return x
    from scipy.signal import resample_poly

    ratio = Fraction(FS / fs).limit_denominator(1000)
    return resample_poly(x, ratio.numerator, ratio.denominator).astype(np.float32)


class FolderCorpus:
    """Windows of lead-``lead`` ECGs found in a folder; see the module docstring."""

    name = "folder"

    def __init__(self, path: Path, size: int | None = None, seed: int = 0, lead: str = "II",
                 fs: float = FS, skip_bad: bool = False):
        self.path = Path(path).expanduser()
        if not self.path.is_dir():
            raise DataMissingError(f"folder corpus: {self.path} is not a folder; pass corpus_options.path=DIR")
        if fs <= 0:
            raise ConfigError(f"folder corpus option fs must be positive, got {fs}")
        self.lead = str(lead)
        self.fs = float(fs)
        self.seed = seed
        self.skip_bad = skip_bad
        self.files: list[Path] = []
        self.skipped: list[dict[str, str]] = []
        windows: list[tuple[int, int, int]] = []  # (file number, row, start sample at 500 Hz)
        candidates = sorted(p for p in self.path.rglob("*") if p.suffix in (".hea", ".npy") and p.is_file()
                            and not any(part.startswith(".") for part in p.relative_to(self.path).parts))
        for file in candidates:
            try:
                counts = self._scan(file)
            except DataError as exc:
                if not skip_bad:
                    raise
                log.debug("folder corpus: skipping %s", exc)
                self.skipped.append({"file": str(file), "reason": str(exc)})
                continue
            number = len(self.files)
            self.files.append(file)
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
    def _scan(self, file: Path) -> list[int]:
        """Number of 10-s windows of each ECG in ``file`` (one entry per ECG)."""
        if file.suffix == ".npy":
            array = self._open_npy(file)
            lengths = [array.shape[-1]] * (1 if array.ndim == 1 else array.shape[0])
            fs = self.fs
        else:
            header = self._header(file)
            self._channel(header, file)
            lengths, fs = [int(header.sig_len or 0)], float(header.fs)
        counts = [int(n * FS / fs) // N_SAMPLES for n in lengths]
        if min(counts) == 0:
            seconds = min(lengths) / fs
            raise DataError(f"{file}: an ECG lasts {seconds:.1f} s, shorter than the 10 s a corpus item needs "
                            "(remove it or set corpus_options.skip_bad=true)")
        return counts

    def _open_npy(self, file: Path) -> np.ndarray:
        try:
            array = np.load(file, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise DataError(f"{file}: not a readable NumPy array ({exc})") from None
        if array.ndim not in (1, 2) or not np.issubdtype(array.dtype, np.number):
            raise DataError(f"{file}: expected a numeric array of shape (samples,) or (n_ecgs, samples), "
                            f"found {array.dtype} {array.shape}")
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
        raise DataError(f"{file}: no lead {self.lead!r} among {names}; choose corpus_options.lead=NAME")

    # ---- reading -----------------------------------------------------------------------------
    def _load(self, number: int, row: int) -> np.ndarray:
        """The whole ECG (row ``row`` of file ``number``) at 500 Hz, in mV, cached per process."""
        key = (number, row)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        file = self.files[number]
        if file.suffix == ".npy":
            array = self._open_npy(file)
            signal = np.asarray(array if array.ndim == 1 else array[row], dtype=np.float32)
            signal = _resample(signal, self.fs)
        else:
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
            signal = _resample(record.p_signal[:, 0].astype(np.float32) * scale, float(record.fs))
        if not np.all(np.isfinite(signal)):
            raise DataError(f"{file}: the ECG contains NaN or infinite values; clean or remove the file")
        if len(self._cache) >= 64:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = signal
        return signal

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
        digest = hashlib.sha256()
        for file in self.files:
            digest.update(f"{file.relative_to(self.path)}:{file.stat().st_size}\n".encode())
        return {
            "name": self.name, "path": str(self.path.resolve()), "size": len(self), "seed": self.seed,
            "lead": self.lead, "fs": self.fs, "skip_bad": self.skip_bad, "files": len(self.files),
            "data_version": digest.hexdigest()[:16],
        }

    def __repr__(self) -> str:
        return f"FolderCorpus({self.path}, {len(self)} windows from {len(self.files)} files)"


@CORPORA.register("folder", description="a folder of your own WFDB records or .npy files (lead II, 10-s windows)")
def folder(size: int | None = None, seed: int = 0, path: str | Path | None = None, **options: Any) -> FolderCorpus:
    """Options: ``path`` (required), ``lead`` (II), ``fs`` for .npy files (500), ``skip_bad`` (false)."""
    if path is None:
        raise ConfigError("the folder corpus needs a path: --set pretrain.corpus_options.path=DIR")
    valid = {"lead", "fs", "skip_bad"}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ConfigError(
            f"folder corpus: unknown option(s) {', '.join(unknown)}; valid: path, {', '.join(sorted(valid))}"
        )
    skip_bad = options.get("skip_bad", False)
    if isinstance(skip_bad, str):
        skip_bad = skip_bad.strip().lower() in ("1", "true", "yes", "on")
    return FolderCorpus(Path(path), size=size, seed=seed, lead=options.get("lead", "II"),
                        fs=float(options.get("fs", FS)), skip_bad=bool(skip_bad))
