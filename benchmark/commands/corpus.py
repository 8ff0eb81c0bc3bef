"""``simecg-bench corpus ...`` (owned by the simulators work)."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Added by pretraining.simulators work; nothing yet."""
