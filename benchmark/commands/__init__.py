"""CLI command groups; each module exposes ``add_commands(subparsers)``."""
