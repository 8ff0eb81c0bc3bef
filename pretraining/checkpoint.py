"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

Two kinds of file, both plain dicts of tensors and JSON-like values (no pickled classes, so
loading never runs code from the file):

* a *training checkpoint* ``step-XXXXXXXX.pt``: model, optimizer, step, history and RNG state,
  everything needed to resume exactly;
* an *encoder file* ``encoder.pt``: the encoder weights and the :class:`MAEConfig` they need,
  what downstream fine-tuning loads with :func:`load_encoder`.

A file is written to a temporary name in the same folder, flushed to disk and renamed over
the target, so a crash never leaves a half-written checkpoint behind a valid name.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from pretraining.mae import ECGEncoder, MAEConfig
from simecg.errors import CheckpointError

FORMAT = "simecg-mae/1"
_STEP_FILE = re.compile(r"^step-(\d{8,})\.pt$")


def atomic_save(obj: dict[str, Any], path: Path) -> Path:
    """``torch.save`` to ``path`` atomically (temporary file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read(path: Path) -> dict[str, Any]:
    """Load a checkpoint dict safely (``weights_only=True``) or raise :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; run `simecg-bench pretrain` to create it")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise CheckpointError(
            f"cannot read checkpoint {path} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "expected a file written by `simecg-bench pretrain`; delete it and pretrain again"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(
            f"checkpoint {path} is not a SimECG MAE checkpoint (format {found!r}, expected {FORMAT!r})"
        )
    return data


def step_path(folder: Path, step: int) -> Path:
    return Path(folder) / f"step-{step:08d}.pt"


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """Training checkpoints in ``folder`` as ``(step, path)``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _STEP_FILE.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(folder: Path) -> Path | None:
    found = list_checkpoints(folder)
    return found[-1][1] if found else None


def prune_checkpoints(folder: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` training checkpoints (``keep <= 0`` keeps all)."""
    if keep <= 0:
        return
    for _, path in list_checkpoints(folder)[:-keep]:
        path.unlink(missing_ok=True)


def config_to_dict(config: MAEConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_dict(data: dict[str, Any], source: Path | str = "checkpoint") -> MAEConfig:
    known = {f.name for f in dataclasses.fields(MAEConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise CheckpointError(f"{source}: unknown model settings {', '.join(unknown)}; written by a newer version?")
    return MAEConfig(**data)


def save_encoder(encoder: ECGEncoder, path: Path, extra: dict[str, Any] | None = None) -> Path:
    """Write the encoder weights and architecture as an encoder file."""
    state = {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()}
    payload = {"format": FORMAT, "kind": "encoder", "model_config": config_to_dict(encoder.config), "encoder": state}
    if extra:
        payload["extra"] = extra
    return atomic_save(payload, path)


# Settings that change the encoder's weights' shapes or meaning; the mask ratio and the
# decoder do not matter for a downstream encoder.
_ENCODER_FIELDS = ("signal_length", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "qk_norm")


def load_encoder(path: Path, expected: MAEConfig | None = None) -> ECGEncoder:
    """The pretrained :class:`ECGEncoder` stored in ``path`` (encoder file or training checkpoint).

    Raises :class:`CheckpointError` when the file is missing or unreadable, or when its
    architecture differs from ``expected`` in any encoder setting (the message lists them).
    """
    path = Path(path)
    data = read(path)
    try:
        config = config_from_dict(dict(data["model_config"]), path)
        if data.get("kind") == "encoder":
            state = data["encoder"]
        else:
            state = {k[len("encoder."):]: v for k, v in data["model"].items() if k.startswith("encoder.")}
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} lacks {exc}; it is incomplete, pretrain again") from None
    if expected is not None:
        mismatched = [name for name in _ENCODER_FIELDS if getattr(config, name) != getattr(expected, name)]
        if mismatched:
            raise CheckpointError(
                f"checkpoint {path} holds a different encoder architecture: "
                + ", ".join(f"{n}={getattr(config, n)!r} (expected {getattr(expected, n)!r})" for n in mismatched)
                + "; "
                "choose the matching model preset or pretrain an encoder for this one"
            )
    encoder = ECGEncoder(config)
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise CheckpointError(f"checkpoint {path} does not fit its declared architecture: {' '.join(first)}") from None
    return encoder
