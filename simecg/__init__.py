"""Core shared by every SimECG-Bench package: errors, registries, configs, paths.

Dependencies point one way: ``simecg`` <- ``pretraining`` <- ``baselines`` <- ``benchmark``.
The core holds no model, data or tracking code so that any package (ours or a plugin) can
import it cheaply.
"""

__version__ = "0.1.0"
