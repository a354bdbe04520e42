"""Run configuration: the schema (typed sections), each data set's settings, and reading YAML presets.

    >>> from varsep.config import load_config
    >>> config = load_config("waveeq", {"trainer.max_steps": 100})   # a packaged preset with an override

Presets (``presets/*.yaml``, also at ``configs/`` in the repository) hold the paper's hyperparameters for
each experiment; any file of the same layout works.
"""

from varsep.config.datasets import DATA_CONFIGS
from varsep.config.loading import (
    PRESETS,
    apply_overrides,
    config_from_dict,
    data_config_class,
    load_config,
    parse_override_args,
    read_yaml,
    resolve_config_path,
)
from varsep.config.schema import (
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainerConfig,
    require_non_negative,
    require_positive,
)

__all__ = [
    "DATA_CONFIGS", "PRESETS", "DataConfig", "LossConfig", "ModelConfig", "OptimConfig", "RunConfig",
    "TrainerConfig", "apply_overrides", "config_from_dict", "data_config_class", "load_config",
    "parse_override_args", "read_yaml", "require_non_negative", "require_positive", "resolve_config_path",
]
