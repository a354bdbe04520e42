"""Batches for training and evaluation.

Training batches are a pure function of ``(seed, epoch, index)``: the windows of batch ``index`` in epoch
``epoch`` and its auto-encoding index are drawn from a generator seeded with exactly those numbers. Hence

- a run resumed mid-epoch continues with the very batches the uninterrupted run would have seen
  (:class:`TrainStream` is *stateful* in Lightning's sense: its position is saved in checkpoints);
- with data parallelism every process computes the same global batch and keeps its own slice, so
  R processes with batch B/R each see what one process with batch B sees.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import Any

import numpy as np
import torch

from varsep.data.base import WindowSet, WindowSource
from varsep.errors import ConfigError


class TrainStream:
    """Deterministic, resumable training batches (an iterable Lightning treats as a dataloader).

    Each batch is a dict: ``frames`` (b, L, *frame) float32, ``ae_index`` (the window offset i of the
    auto-encoding loss, drawn once per batch) and ``key`` = (epoch, index).
    """

    def __init__(
        self,
        source: WindowSource,
        *,
        batch_size: int,
        batches_per_epoch: int | None,
        seed: int,
        ae_choices: int,
        rank: int = 0,
        world_size: int = 1,
        keep: tuple[int, float] | None = None,
        workers: int = 0,
    ) -> None:
        if batch_size % world_size:
            raise ConfigError(f"batch size {batch_size} is not divisible by the {world_size} processes: set "
                              f"data.batch_size to a multiple of {world_size} (it is the global batch)")
        self.source = source
        self.batch_size = batch_size
        self.seed = seed
        self.ae_choices = max(1, ae_choices)
        self.rank, self.world_size = rank, world_size
        self.workers = workers  # threads preparing the next batches while the step computes
        # Irregular supervision: of the ``targets`` forecast frames of a window, keep round(p·targets) at
        # random (at least one), a different subset per sequence; the auto-encoding offset is then 0.
        self.keep = None if keep is None else (keep[0], max(1, round(keep[1] * keep[0])))
        windows = source.windows
        if batches_per_epoch is None:
            if windows is None:
                raise ValueError("a generated data source needs data.batches_per_epoch")
            self.passes = True  # an epoch is one shuffled pass over the finite set of windows
            self.batches_per_epoch = max(1, len(windows) // batch_size)
        else:
            self.passes = False  # an epoch is batches_per_epoch batches of windows drawn at random
            self.batches_per_epoch = batches_per_epoch
        self._iter_from = (0, 0)  # where the next iter() starts: (epoch, batch index)
        self._next = (0, 0)  # the next batch to train on: the resume point stored in checkpoints
        self._perm: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # A generator: nothing runs until the first batch is asked for, so an iter() that only probes
        # (Lightning checks that loaders are iterable) does not start an epoch. Lightning stops after
        # len(self) batches without exhausting the iterator, so the position moves to the next epoch as
        # soon as this one starts.
        epoch, start = self._iter_from
        self._iter_from = (epoch + 1, 0)
        indices = range(start, self.batches_per_epoch)
        if self.workers == 0:
            for index in indices:
                yield self.batch(epoch, index)
            return
        # Reading ahead: up to 2 batches per thread in flight, served in order. Reading (NetCDF/Zarr
        # decoding, numpy gathers) releases the GIL, so it overlaps the model's compute.
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="varsep-batches")
        pending: deque[Future] = deque()
        ahead = iter(indices)
        try:
            for index in islice(ahead, 2 * self.workers):
                pending.append(pool.submit(self.batch, epoch, index))
            while pending:
                batch = pending.popleft().result()
                following = next(ahead, None)
                if following is not None:
                    pending.append(pool.submit(self.batch, epoch, following))
                yield batch
        finally:  # also when Lightning stops mid-epoch (max_steps, a signal): drop what is not needed
            pool.shutdown(wait=True, cancel_futures=True)

    def batch(self, epoch: int, index: int) -> dict[str, Any]:
        """Batch ``index`` of ``epoch`` (this process's slice of it)."""
        rng = np.random.default_rng([self.seed, epoch, index])
        ae_index = int(rng.integers(0, self.ae_choices)) if self.keep is None else 0
        part = slice(self.rank * self.batch_size // self.world_size,
                     (self.rank + 1) * self.batch_size // self.world_size)
        windows = self.source.windows
        if self.passes:
            assert windows is not None
            order = self._permutation(epoch, len(windows))
            frames = windows.take(order[index * self.batch_size:(index + 1) * self.batch_size][part])
        elif windows is not None:
            frames = windows.take(rng.integers(0, len(windows), size=self.batch_size)[part])
        else:
            frames = self.source.draw(rng, self.batch_size)[part]
        batch = {"frames": torch.from_numpy(frames), "ae_index": ae_index, "key": torch.tensor([epoch, index])}
        if self.keep is not None:
            targets, kept = self.keep
            chosen = np.sort(np.argsort(rng.random((self.batch_size, targets)), axis=1)[:, :kept], axis=1)
            batch["keep"] = torch.from_numpy(chosen[part])
        return batch

    def _permutation(self, epoch: int, n: int) -> np.ndarray:
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch, 2**32 - 1]).permutation(n))
        return self._perm[1]

    # --- resumability: the training step reports each batch it has used; checkpoints store the next one.
    def mark_trained(self, key: torch.Tensor | tuple[int, int]) -> None:
        epoch, index = (int(k) for k in key)
        self._next = (epoch + 1, 0) if index + 1 >= self.batches_per_epoch else (epoch, index + 1)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self._next[0], "start": self._next[1]}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._next = self._iter_from = (int(state["epoch"]), int(state["start"]))


class WindowBatches:
    """Every window of a set, in order, in batches; with several processes each takes a contiguous share."""

    def __init__(self, windows: WindowSet, batch_size: int, *, rank: int = 0, world_size: int = 1,
                 limit: int | None = None) -> None:
        n = len(windows) if limit is None else min(limit, len(windows))
        share = np.array_split(np.arange(n), world_size)[rank]
        self.windows = windows
        self.indices = share
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for lo in range(0, len(self.indices), self.batch_size):
            idx = self.indices[lo:lo + self.batch_size]
            yield {"frames": torch.from_numpy(self.windows.take(idx)), "index": torch.from_numpy(idx)}
