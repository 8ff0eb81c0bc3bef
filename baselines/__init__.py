"""Supervised baselines; importing this package registers every built-in baseline.

One import line per baseline module (each registers itself in ``simecg.registries.BASELINES``).
"""
