"""Serving a data set to Lightning: the resumable training stream and the validation batches."""

from __future__ import annotations

from typing import Any

import lightning as L

from varsep.config import RunConfig
from varsep.data.base import SequenceDataset
from varsep.train.stream import TrainStream, WindowBatches


class SequenceDataModule(L.LightningDataModule):
    """Serves a :class:`SequenceDataset` to Lightning: a resumable training stream and validation batches."""

    def __init__(self, dataset: SequenceDataset, config: RunConfig, ae_choices: int,
                 keep: tuple[int, float] | None = None) -> None:
        super().__init__()
        self.dataset = dataset
        self.config = config
        self.ae_choices = ae_choices
        self.keep = keep
        self.train_stream: TrainStream | None = None
        self._stream_state: dict[str, int] | None = None

    # The stream's position is saved here as well as by Lightning's loader-state mechanism: Lightning
    # restores loader states only when resuming mid-epoch, while data-module states are always restored.
    def state_dict(self) -> dict[str, Any]:
        return {"train_stream": self.train_stream.state_dict()} if self.train_stream is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._stream_state = state.get("train_stream")

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> TrainStream:
        data = self.config.data
        rank, world = self._rank()
        per_epoch = data.batches_per_epoch or self.dataset.default_batches_per_epoch
        self.train_stream = TrainStream(self.dataset.train_source(), batch_size=data.batch_size,
                                        batches_per_epoch=per_epoch, seed=self.config.seed,
                                        ae_choices=self.ae_choices, rank=rank, world_size=world, keep=self.keep,
                                        workers=data.num_workers)
        if self._stream_state is not None:
            self.train_stream.load_state_dict(self._stream_state)
        return self.train_stream

    def val_dataloader(self) -> WindowBatches | list:
        windows = self.dataset.val_windows()
        if len(windows) == 0:
            return []
        rank, world = self._rank()
        return WindowBatches(windows, self.config.data.val_batch_size, rank=rank, world_size=world)
