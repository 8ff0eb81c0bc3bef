"""Results: what the runs' numbers say. Test metrics (:mod:`~benchmark.results.metrics`) and their
uncertainty (:mod:`~benchmark.results.statistics`), the leaderboard and the HTML report read from
the MLflow store, the corpus quality report, and the protocol's fidelity table."""
