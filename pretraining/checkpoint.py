"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

Two kinds of file, both plain dicts of tensors and JSON-like values (no pickled classes, so
loading never runs code from the file):

* a *training checkpoint* ``step-XXXXXXXX.pt``: model, optimizer, step, history and RNG state,
  and the best validation so far (its step, loss and encoder weights), everything needed to
  resume exactly, including which checkpoint the run will hand out;
* an *encoder file* ``encoder.pt``: the encoder weights and the :class:`MAEConfig` they need,
  what downstream fine-tuning loads with :func:`load_encoder`: the best-validation weights or
  the last ones (``pretrain.select``; docs/protocol.md, "MAE pretraining").

A file is written to a temporary name in the same folder, flushed to disk and renamed over
the target, so a crash never leaves a half-written checkpoint behind a valid name. Before the
rename, its size and SHA-256 go into a sidecar ``<file>.integrity.json``
(:mod:`simecg.integrity`): a cached file that no longer matches it (truncated, overwritten) is
never used. :func:`read` refuses a file that contradicts its sidecar (a file without one, e.g.
a user's own, is read as it is); :func:`latest_checkpoint` skips and removes damaged training
checkpoints, and the provisioning code (``benchmark.run.encoders``) fetches or retrains a damaged
or unsealed ``encoder.pt``. A full disk or a read-only folder is one :class:`~simecg.errors.CacheError` line.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

from pretraining.mae import ECGEncoder, MAEConfig
from simecg import integrity, paths
from simecg.errors import CheckpointError

log = logging.getLogger(__name__)

FORMAT = "simecg-mae/1"
_STEP_FILE = re.compile(r"^step-(\d{8,})\.pt$")


def atomic_save(obj: dict[str, Any], path: Path) -> Path:
    """``torch.save`` to ``path`` atomically (temporary file + fsync + sidecar + rename).

    The temporary is removed if anything fails; a full disk or an unwritable folder raises
    :class:`~simecg.errors.CacheError` naming the file. The checkpoint is serialised in memory
    first and written with plain file writes: torch's own writer turns a write failing part-way
    (a disk filling up) into ``RuntimeError: unexpected pos``, which says nothing of the disk.
    """
    import io

    path = Path(path)
    with paths.writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with integrity.staged(path, seal=True) as tmp, open(tmp, "xb") as fh:
        fh.write(buffer.getbuffer())
        fh.flush()
        os.fsync(fh.fileno())
    return path


def damage(path: Path) -> str | None:
    """What is wrong with a cached checkpoint against its sidecar (None: intact; no sidecar is a problem)."""
    return integrity.check_file(path)


def discard(path: Path) -> None:
    """Remove a damaged checkpoint and its sidecar (quietly, if the folder is read-only)."""
    integrity.discard(path)


def copy_checkpoint(source: Path, target: Path) -> Path:
    """Copy an intact checkpoint with a new sidecar (the source is checked first); atomic like :func:`atomic_save`."""
    import shutil

    problem = damage(source)
    if problem is not None:
        raise CheckpointError(f"checkpoint {source} is damaged ({problem}); it cannot be copied")
    target = Path(target)
    with paths.writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
    with integrity.staged(target, seal=True) as tmp:
        shutil.copyfile(source, tmp)
    return target


def read(path: Path) -> dict[str, Any]:
    """Load a checkpoint dict safely (``weights_only=True``) or raise :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; run `simecg-bench pretrain` to create it")
    if integrity.sidecar(path).is_file():  # a file of ours: it must be the one written
        problem = damage(path)
        if problem is not None:
            raise CheckpointError(f"checkpoint {path} is damaged ({problem}); delete it and pretrain again, or "
                                  "rerun the command that made it (it is fetched or made again)")
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
    """The newest intact training checkpoint in ``folder``, so training resumes from the last good one.

    Damaged ones are removed with a warning; unsealed ones (no sidecar: written by an older
    version) are skipped with a warning and left for training to overwrite or prune.
    """
    for _, path in reversed(list_checkpoints(folder)):
        problem = damage(path)
        if problem is None:
            return path
        log.warning("not resuming from checkpoint %s (%s)", path, problem)
        if integrity.sidecar(path).is_file():
            discard(path)
    return None


def prune_checkpoints(folder: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` training checkpoints (``keep <= 0`` keeps all)."""
    if keep <= 0:
        return
    for _, path in list_checkpoints(folder)[:-keep]:
        discard(path)


def config_to_dict(config: MAEConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_dict(data: dict[str, Any], source: Path | str = "checkpoint") -> MAEConfig:
    known = {f.name for f in dataclasses.fields(MAEConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise CheckpointError(f"{source}: unknown model settings {', '.join(unknown)}; written by a newer version?")
    return MAEConfig(**data)


def encoder_weights(encoder: ECGEncoder) -> dict[str, torch.Tensor]:
    """A CPU copy of the encoder's weights, which later training steps leave as they are."""
    return {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()}


def save_encoder(encoder: ECGEncoder, path: Path, extra: dict[str, Any] | None = None) -> Path:
    """Write the encoder weights and architecture as an encoder file."""
    return save_encoder_weights(encoder_weights(encoder), encoder.config, path, extra)


def save_encoder_weights(weights: dict[str, torch.Tensor], config: MAEConfig, path: Path,
                         extra: dict[str, Any] | None = None) -> Path:
    """Write encoder weights taken earlier (:func:`encoder_weights`) as an encoder file of architecture ``config``."""
    payload = {"format": FORMAT, "kind": "encoder", "model_config": config_to_dict(config), "encoder": weights}
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
