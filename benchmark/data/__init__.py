"""Downstream data: the datasets' readers, the tasks, and the protocol's splits, label budgets and
demographic groups.

Readers (``ptbxl``, ``challenge`` for G12EC and CPSC2018, ``demo``) register their datasets in
``DATASETS`` and the task table (:mod:`~benchmark.data.tasks`, ``tasks.toml``) its tasks in ``TASKS``,
each through its entry point in ``pyproject.toml``, imported on the first lookup; importing this
package imports none of them (so the protocol's modules load no reader). Also here: shared reader
checks (:mod:`~benchmark.data.common`, :mod:`~benchmark.data.signals`), preprocessing into 10-s
windows, splits (:mod:`~benchmark.data.splits`), label budgets, demographic groups, ``data
download`` and ``data check``.
"""
