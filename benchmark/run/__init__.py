"""Running a suite: cells and their identities (:mod:`~benchmark.run.cells`), what a run will do
(:mod:`~benchmark.run.planning`, ``--dry-run``), the runner and one cell's run, tuning, the encoders
and generators built once and shared, and the claims that let many workers share a suite."""
