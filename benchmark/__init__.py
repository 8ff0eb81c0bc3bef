"""The benchmark, in folders by stage: downstream ``data/`` (datasets, tasks, splits, budgets),
pretraining sources (``corpora/``), ``suites/``, ``tracking/`` (MLflow), ``results/`` (metrics,
leaderboard, reports), ``run/`` (cells, planning, the runner, tuning, provisioning, claims), and the
CLI (``cli.py``, ``commands/``); speed benchmarks in ``perf/``. A module imports only from its own
stage or an earlier one (tests/test_layering.py)."""
