"""``simecg-bench data ...`` (owned by the data work)."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Added by pretraining.data work; nothing yet."""
