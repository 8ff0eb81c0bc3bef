"""Downstream datasets; importing this package registers every built-in dataset and task.

One import line per dataset module (each registers itself in DATASETS / TASKS / CORPORA).
"""
