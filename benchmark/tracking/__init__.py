"""Tracking: the MLflow store every run is logged to (:mod:`~benchmark.tracking.tracker`) and the
typed tags that say what each run is (:mod:`~benchmark.tracking.tags`)."""
