"""ECG simulators, registered in ``simecg.registries.SIMULATORS``.

Importing this package registers every built-in simulator (one module each).
"""

from pretraining.simulators import ecgsyn, gaussian  # noqa: F401
from pretraining.simulators.base import Simulator

__all__ = ["Simulator"]
