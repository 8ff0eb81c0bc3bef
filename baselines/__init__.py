"""Supervised baselines; importing this package registers every built-in baseline.

One import line per baseline module (each registers itself in ``simecg.registries.BASELINES``).
"""

from baselines import emb_rnn, luna, mega, resnet1d, transformer_scratch, xgboost_features  # noqa: F401
