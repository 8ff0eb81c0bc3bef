"""The benchmark: downstream datasets and tasks, the protocol, training, tracking and reports."""
