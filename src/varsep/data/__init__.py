"""Data sets: sequences of observations served as windows (the contract: varsep.data.base).

``build_dataset(config.data)`` opens the data set named by ``data.name``. Each family lives in its own
module, imported only when a config names it (so reading a config never loads NetCDF, HDF5 or image
libraries); its settings are in varsep.config.datasets, and the simulators and preparation commands that
write its files in varsep.datagen.
"""

from __future__ import annotations

import importlib

from varsep.config import DataConfig
from varsep.data.base import SequenceDataset, SetSource, WindowSet, WindowSource
from varsep.errors import ConfigError
from varsep.registry import suggest

# data.name → "module:class"; adding a data set adds one line here (and its settings in config.datasets).
DATASETS: dict[str, str] = {
    "waveeq": "varsep.data.waveeq:WaveEqDataset",
    "waveeq100": "varsep.data.waveeq:WaveEq100Dataset",
    "mmnist": "varsep.data.mmnist:MovingMNISTDataset",
    "sst": "varsep.data.sst:SSTDataset",
    "taxibj": "varsep.data.taxibj:TaxiBJDataset",
    "chairs": "varsep.data.chairs:ChairsDataset",
    "kth": "varsep.data.kth:KTHDataset",
    "custom": "varsep.data.custom:CustomDataset",
}


def dataset_class(name: str) -> type[SequenceDataset]:
    """The class of data set ``name`` (its module is imported on first use)."""
    if name not in DATASETS:
        valid = sorted(DATASETS)
        raise ConfigError(f"unknown data set {name!r}; valid: {', '.join(valid)}.{suggest(name, valid)}")
    module, cls = DATASETS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def build_dataset(config: DataConfig) -> SequenceDataset:
    """Open the data set a data config names."""
    return dataset_class(config.name)(config)


__all__ = ["DATASETS", "SequenceDataset", "SetSource", "WindowSet", "WindowSource", "build_dataset",
           "dataset_class"]
