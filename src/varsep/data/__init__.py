"""Data sets. Importing this package registers every data set (and its CLI commands) under its name."""

import importlib

from varsep.data.base import DATASETS, DataSpec, SequenceDataset, WindowSet, WindowSource, build_dataset

# One module per data set; each registers itself with @register("name") where it is defined.
DATASET_MODULES = ("waveeq", "mmnist", "sst", "taxibj", "chairs", "kth", "custom")
for _module in DATASET_MODULES:
    importlib.import_module(f"varsep.data.{_module}")

__all__ = ["DATASETS", "DataSpec", "SequenceDataset", "WindowSet", "WindowSource", "build_dataset"]
