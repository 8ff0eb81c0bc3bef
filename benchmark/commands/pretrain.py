"""``simecg-bench pretrain ...`` (owned by the pretrain work)."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Added by pretraining.pretrain work; nothing yet."""
