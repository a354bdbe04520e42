"""Data sets: sequences of observations served as windows (the contract: varsep.data.base).

``build_dataset(config.data)`` opens the data set named by ``data.name``. Each family lives in its own
module, imported only when a config names it (so reading a config never loads NetCDF, HDF5 or image
libraries); its settings are in varsep.config.datasets, and the simulators and preparation commands that
write its files in varsep.datagen.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from varsep.config import DataConfig
from varsep.data.base import SequenceDataset, SetSource, WindowSet, WindowSource
from varsep.errors import ConfigError, DataError
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
    cls = dataset_class(config.name)
    if config.root is not None and Path(config.root).expanduser().is_file():  # every data set's root is a folder
        raise DataError(f"data.root {config.root} is a file, not a folder; point data.root at the folder that "
                        f"holds the {config.name} data" + (" (a single file goes in data.path)"
                                                           if config.name == "custom" else ""))
    return cls(config)


__all__ = ["DATASETS", "SequenceDataset", "SetSource", "WindowSet", "WindowSource", "build_dataset",
           "dataset_class"]
