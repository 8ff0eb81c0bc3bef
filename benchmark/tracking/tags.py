"""The one schema of the MLflow tags SimECG-Bench writes and reads back.

Every run carries :class:`RunTags`: the writer (the runner, ``pretrain``) fills the dataclass,
:meth:`RunTags.to_mlflow` turns it into tag strings, and readers (resumption, the leaderboard)
get typed values back from :meth:`RunTags.from_mlflow`, which refuses malformed tags with a
message naming the run instead of guessing. Tags are also what MLflow's UI filters on
(``tags.task = 'ptbxl/AFIB'``), so the names are plain words.

``schema`` is the version of this layout: runs of another schema are never mixed into results
(the leaderboard leaves them out and says how many).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from simecg.errors import TrackingError

TAG_SCHEMA = "2"
KINDS = ("invocation", "pretrain", "cell", "report", "generator", "tuning", "trial")
_CELL_FIELDS = ("model", "task", "lead", "budget", "positives_only", "seed", "shift", "dataset", "data_version",
                "synthetic", "study", "corpus", "encoder", "sees_test_records")
# the fields that describe a run of each kind, written even at their default (budget 0 = the whole split,
# shift "" = none); any other field is written only when set, so a run carries no tag that says nothing
KIND_FIELDS = {
    "invocation": ("corpora", "shard", "synthetic"),
    "pretrain": ("corpus", "preset", "sees_test_records"),
    "generator": ("corpus", "preset"),
    "report": ("corpora",),
    "cell": _CELL_FIELDS,
    "tuning": _CELL_FIELDS,
    "trial": (*_CELL_FIELDS, "trial", "trial_state"),
}
_ALWAYS = ("kind", "suite", "schema")


@dataclass(frozen=True)
class RunTags:
    """What a run is. Fields that do not apply to a kind keep their empty default."""

    kind: str  # one of KINDS; "tuning": a session of a study (under the cell run that needed it), "trial": one
    # Optuna trial (under its tuning run)
    fingerprint: str = ""  # the identity of the result (cell, encoder); empty for invocations
    suite: str = ""
    schema: str = TAG_SCHEMA
    # cells
    model: str = ""  # the model's name (baselines.names.ModelName): registry name, "<entry>:<source>" if pretrained
    task: str = ""
    lead: str = ""
    budget: int = 0  # training samples per class; 0 = the whole training split
    positives_only: bool = False
    seed: int = 0
    shift: str = ""  # demographic shift, e.g. "sex:M->F"
    dataset: str = ""
    data_version: str = ""
    synthetic: bool = False
    study: str = ""  # the tuning study's fingerprint (cells that were tuned, tuning and trial runs)
    # trials
    trial: int = -1  # the Optuna trial number (kind "trial"); -1 otherwise
    trial_state: str = ""  # the trial's Optuna state once it ended: COMPLETE, PRUNED or FAIL
    # pretrained models and pretraining runs
    corpus: str = ""
    encoder: str = ""  # the encoder's fingerprint (cells of pretrained models)
    sees_test_records: bool = False  # pretrained on records of downstream test splits (ptbxl-authors)
    preset: str = ""
    # invocations
    corpora: str = ""  # comma-separated
    shard: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise TrackingError(f"run kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    def to_mlflow(self) -> dict[str, str]:
        """Tag strings (booleans as ``true``/``false``, integers in decimal): the fields of the run's
        kind (:data:`KIND_FIELDS`) and any other field that is set; :meth:`from_mlflow` reads an
        absent field as its default."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _ALWAYS or f.name in KIND_FIELDS[self.kind] or value != f.default:
                out[f.name] = str(value).lower() if isinstance(value, bool) else str(value)
        return out

    @classmethod
    def from_mlflow(cls, tags: Mapping[str, str], run_id: str = "?") -> RunTags:
        """Typed tags of a run written with this schema; :class:`TrackingError` if malformed."""
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in tags:
                continue
            text = tags[f.name]
            kind = hints[f.name]
            try:
                if kind is bool:
                    if text not in ("true", "false"):
                        raise ValueError(text)
                    values[f.name] = text == "true"
                elif kind is int:
                    values[f.name] = int(text)
                else:
                    values[f.name] = text
            except ValueError:
                raise TrackingError(f"run {run_id}: tag {f.name}={text!r} is not a valid {kind.__name__}") from None
        if "kind" not in values:
            raise TrackingError(f"run {run_id} has no 'kind' tag; it was not written by SimECG-Bench")
        return cls(**values)

    def run_name(self) -> str:
        """The run's name in MLflow: what it is in the fewest words, so the runs table's name column
        shows it whole (``mae:sim · ptbxl/LVH · seed 1``; a cell's lead, label budget and shift only
        when they are not the main view's lead II, whole training split and no shift)."""
        if self.kind not in ("cell", "tuning", "trial"):
            return self.kind
        parts = [self.model, self.task]
        if self.lead and self.lead != "II":
            parts.append(f"lead {self.lead}")
        if self.budget:
            parts.append(f"{self.budget}{'+' if self.positives_only else ''}/class")
        if self.shift:
            parts.append(self.shift)
        if self.kind == "cell":
            return " · ".join([*parts, f"seed {self.seed}"])
        if self.kind == "tuning":
            return " · ".join(["tuning", *parts])
        return " · ".join([f"trial {self.trial}", *parts])

    @staticmethod
    def schema_of(tags: Mapping[str, str]) -> str:
        """The schema a run's tags were written with (``"1"`` before the schema was tagged)."""
        return tags.get("schema", "1")
