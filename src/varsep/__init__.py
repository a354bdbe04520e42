"""varsep: spatiotemporal forecasting by separation of variables (Dona et al., ICLR 2021).

The public API, re-exported here (everything else is reachable through its module, but may change):

    >>> import varsep
    >>> config = varsep.load_config("waveeq", {"data.root": "data/waveeq"})
    >>> run_dir = varsep.fit(config, "runs/waveeq")
    >>> model = varsep.load(run_dir)                       # a varsep.Forecaster
    >>> future = model.forecast(cond, horizon=40)
    >>> report = varsep.evaluate(model, options=varsep.EvalOptions(limit=1000, figures=False))

Names are imported on first use, so ``import varsep`` (and ``varsep --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name → the module that defines it
_EXPORTS = {
    "load": "varsep.forecaster",
    "load_checkpoint": "varsep.forecaster",
    "Forecaster": "varsep.forecaster",
    "fit": "varsep.train.runner",
    "evaluate": "varsep.eval.evaluation",
    "EvalOptions": "varsep.eval.evaluation",
    "load_config": "varsep.config.loading",
    "RunConfig": "varsep.config.schema",
    "DataSpec": "varsep.spec",
    "VarsepError": "varsep.errors",
    "ConfigError": "varsep.errors",
    "DataError": "varsep.errors",
    "CheckpointError": "varsep.errors",
    "TrainingError": "varsep.errors",
    "Interrupted": "varsep.errors",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # for type checkers and editors; at run time names resolve lazily in __getattr__
    # ruff: noqa: F401
    from varsep.config.loading import load_config
    from varsep.config.schema import RunConfig
    from varsep.errors import CheckpointError, ConfigError, DataError, Interrupted, TrainingError, VarsepError
    from varsep.eval.evaluation import EvalOptions, evaluate
    from varsep.forecaster import Forecaster, load, load_checkpoint
    from varsep.spec import DataSpec
    from varsep.train.runner import fit


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'varsep' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
