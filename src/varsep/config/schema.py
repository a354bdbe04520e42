"""The run configuration's schema: typed sections with their defaults and range checks.

A run is described by five sections (``data``, ``model``, ``loss``, ``optim``, ``trainer``) plus a seed.
The ``data`` section's class depends on ``data.name`` (varsep.config.datasets), so a key that data set
does not know is an error that lists the keys it does know. This module imports nothing of varsep but
its errors: every layer may read a config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from varsep.errors import ConfigError
from varsep.registry import suggest

# The forecasters a run can train: the paper's separable model, and the baselines of varsep.baselines (whose
# table must list exactly these names; tests/baselines/test_harness.py checks it).
BASELINE_KINDS = ("convlstm", "predrnn", "predrnn_v2", "predrnnpp", "mim", "e3dlstm", "phydnet", "simvp", "tau",
                  "drnet", "svg", "pknl", "ddpae")
MODEL_KINDS = ("separable", *BASELINE_KINDS)


# --------------------------------------------------------------------------------------------- sections
@dataclass
class DataConfig:
    """Settings every data set has. Data sets subclass this to add their own."""

    name: str = "waveeq"
    root: str | None = None
    cond_frames: int = 5  # τ+1 conditioning frames given to the encoders
    pred_frames: int = 20  # frames predicted after the conditioning window, in training
    test_horizons: list[int] = field(default_factory=lambda: [40])
    batch_size: int = 128
    batches_per_epoch: int | None = None  # None: one pass over the training windows
    val_batch_size: int = 256
    # Threads that read and prepare training batches ahead of the step (0: in the step's own thread).
    # Batches stay a function of (seed, epoch, index), so runs are identical with any number.
    num_workers: int = 0
    # Training on subsampled sequences (continuous time): observe every time_stride-th frame (the model then
    # forecasts the frames in between too), and/or supervise each training window at a random subset of the
    # frames after its conditioning window, each kept with probability keep_prob (irregular times).
    time_stride: int = 1
    keep_prob: float | None = None

    def validate(self) -> None:
        require_positive(self, "cond_frames", "batch_size", "val_batch_size", "time_stride")
        if self.keep_prob is not None and not 0 < self.keep_prob <= 1:
            raise ConfigError(f"data.keep_prob must be in (0, 1], got {self.keep_prob}")
        require_non_negative(self, "pred_frames", "num_workers")
        require_positive(self, "batches_per_epoch")
        if not self.test_horizons or any(h < 1 for h in self.test_horizons):
            raise ConfigError(f"data.test_horizons must be a non-empty list of positive integers, "
                              f"got {self.test_horizons}")


@dataclass
class ModelConfig:
    """The separable model: encoders E_S/E_T, decoder D, latent sizes, dynamics (docs/model.md) — or, with
    ``kind`` set to a baseline's name, that baseline with the constructor settings in ``baseline``
    (docs/baselines.md); the other settings then do not apply."""

    kind: str = "separable"  # separable (the paper's model) or a baseline: see BASELINE_KINDS
    baseline: dict[str, Any] = field(default_factory=dict)  # a baseline's hyperparameters (its constructor's)
    encoder: str | None = None  # network family of E_S and E_T; None: the data set's default
    decoder: str | None = None  # network family of D; None: the data set's default
    encoder_hidden: list[int] = field(default_factory=lambda: [1200, 1200])  # MLP families only
    decoder_hidden: list[int] = field(default_factory=lambda: [1200, 1200, 1200])  # MLP families only
    s_dim: int = 32  # d, size (or channels) of the content code S
    t_dim: int = 32  # p, size (or channels) of the dynamic code T
    combine: Literal["concat", "mul"] = "concat"
    content: bool = True  # False: the "without S" ablation (T of size d+p, no L_reg^S / L_reg^T)
    skips: bool = False  # E_S also passes its feature maps to D (U-Net-like skips, SST and KTH)
    dynamics: Literal["residual", "gru"] = "residual"
    blocks: int = 1  # K residual blocks per integration step
    width: int = 512  # H hidden width (channels for the convolutional integrator)
    gain: float = 0.71  # orthogonal initialisation gain of the integrator
    final_activation: Literal["auto", "sigmoid", "none"] = "auto"  # auto: sigmoid iff the data lie in [0, 1]
    reconstruct_cond: bool = True  # True: T_t0 stands for the first conditioning frame (offset τ+1)
    # What the forecast is anchored on: "none" = v̂_t = D(S, T_t) (the paper); "last_residual" = plus the model's
    # error on the last conditioning frame, v_last − D(S, T_last) (needs reconstruct_cond); "last_frame" = D
    # renders departures from it, v̂_t = v_last + D(S, T_t); "auto" = the data set's choice (last_residual for
    # your own data, none for the paper's data sets). docs/model.md
    anchor: Literal["auto", "none", "last_residual", "last_frame"] = "auto"
    # BatchNorm of the decoder in training: "per_frame" = each decoded frame normalised with its own batch
    # statistics and one running-statistics update per frame (the authors' one call per frame, kept in one
    # call); "pooled" = statistics pooled over the frames of a forecast (one update per call).
    batch_stats: Literal["per_frame", "pooled"] = "per_frame"
    # 2-D codes (SST): the convolutional integrator's blocks. "authors": BatchNorm after the last conv too and
    # BatchNorm weights drawn N(1, gain), as the authors' code; "plain": no BatchNorm after the last conv,
    # BatchNorm weights 1.
    conv_integrator: Literal["authors", "plain"] = "authors"

    def validate(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ConfigError(f"model.kind must be one of {', '.join(MODEL_KINDS)}, got {self.kind!r}."
                              f"{suggest(self.kind, list(MODEL_KINDS))}")
        if self.baseline and self.kind == "separable":
            raise ConfigError("model.baseline holds a baseline's settings; set model.kind to that baseline "
                              f"({', '.join(BASELINE_KINDS)})")
        require_positive(self, "s_dim", "t_dim", "blocks", "width")
        if self.gain <= 0:
            raise ConfigError(f"model.gain must be > 0, got {self.gain}")
        if any(h < 1 for h in self.encoder_hidden + self.decoder_hidden):
            raise ConfigError("model.encoder_hidden and model.decoder_hidden hold positive layer widths")
        if self.combine == "mul" and self.content and self.s_dim != self.t_dim:
            raise ConfigError(f"model.combine 'mul' multiplies S and T element-wise, so model.s_dim "
                              f"({self.s_dim}) must equal model.t_dim ({self.t_dim})")


@dataclass
class LossConfig:
    """L = λ_pred L_pred + λ_AE L_AE + λ_S L_reg^S + λ_T L_reg^T (eq. 13)."""

    lambda_pred: float = 45.0
    lambda_ae: float = 1.0
    lambda_s: float = 45.0
    lambda_t: float = 1e-3
    # L_reg^T: "half_sum" = 0.5·Σ_dims T_t0² averaged over the batch (the authors' default);
    # "half_mean" = 0.5·mean over all elements (the authors' SST 2-D codes); "mean" = mean over all elements;
    # "paper" = (1/p)‖T_t0‖² (eq. 12).
    t_reg: Literal["half_sum", "half_mean", "mean", "paper"] = "half_sum"
    # L_reg^S with skip maps: "concat" = one mean squared difference over the code and the skip maps together
    # (the authors'); "per_tensor" = the sum of one mean squared difference per tensor.
    s_reg: Literal["concat", "per_tensor"] = "concat"

    def validate(self) -> None:
        for name in ("lambda_pred", "lambda_ae", "lambda_s", "lambda_t"):
            if getattr(self, name) < 0:
                raise ConfigError(f"loss.{name} must be ≥ 0, got {getattr(self, name)}")


@dataclass
class OptimConfig:
    """Adam with an optional step schedule (docs/model.md, "Training")."""

    lr: float = 4e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    milestones: list[int] = field(default_factory=list)  # epochs where the learning rate is multiplied by gamma
    gamma: float = 0.5
    weight_decay: float = 0.0  # Adam's L2 penalty added to the gradient (coupled, torch.optim.Adam's); PKnl: 4e-4
    fused: bool = True  # fused Adam kernel (same maths, fewer passes over the weights)
    # "milestones": the step schedule above (the paper's); "onecycle": OneCycle over the run's planned steps
    # (OpenSTL's default for its baselines: 30 % warm-up, cosine annealing, β1 cycled 0.95 → 0.85 → 0.95)
    schedule: Literal["milestones", "onecycle"] = "milestones"

    def validate(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"optim.lr must be > 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"optim.betas must be two numbers in [0, 1), got {self.betas}")
        if self.gamma <= 0:
            raise ConfigError(f"optim.gamma must be > 0, got {self.gamma}")
        if self.weight_decay < 0:
            raise ConfigError(f"optim.weight_decay must be ≥ 0, got {self.weight_decay}")
        if sorted(self.milestones) != self.milestones or any(m < 1 for m in self.milestones):
            raise ConfigError(f"optim.milestones must be increasing positive epochs, got {self.milestones}")


@dataclass
class TrainerConfig:
    """Lightning Trainer settings and our own run-time knobs."""

    max_epochs: int = 250
    max_steps: int = -1  # stop after this many optimiser steps (-1: no limit)
    max_time_minutes: float | None = None  # stop after this much training time, counted over every resume
    stop_below_val_mse: float | None = None  # stop once validation MSE is at or below this (e.g. a paper's number)
    # "auto": bf16 autocast where the hardware runs it natively and faster, else fp32 (varsep.precision);
    # "bf16": bf16 autocast (fp32 weights and optimiser) on any hardware; "32": fp32.
    precision: Literal["auto", "32", "bf16"] = "auto"
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    threads: int | None = None  # intra-op threads; None: all cores of this process
    val_every_n_epochs: int = 10
    val_every_n_steps: int | None = None  # validate every N optimiser steps instead (runs with short epochs)
    # last.ckpt every N steps, at the end of training, and at the end of each epoch of at least N batches
    # (a run of one-batch epochs is not checkpointed every step); resume continues exactly mid-epoch too
    checkpoint_every_n_steps: int = 50
    snapshot_every_n_epochs: int | None = None  # keep weights-only snapshots (for curves of a metric over training)
    log_every_n_steps: int = 10
    progress_bar: bool = True
    compile: bool = False  # torch.compile the sub-networks (benchmarked in docs/performance.md)
    profiler: Literal["none", "simple", "advanced", "pytorch"] = "none"  # report in RUN_DIR/profile/

    def validate(self) -> None:
        require_positive(self, "max_epochs", "num_nodes", "val_every_n_epochs", "checkpoint_every_n_steps",
                  "log_every_n_steps")
        require_positive(self, "threads", "snapshot_every_n_epochs", "val_every_n_steps")
        if self.max_time_minutes is not None and self.max_time_minutes <= 0:
            raise ConfigError(f"trainer.max_time_minutes must be > 0, got {self.max_time_minutes}")
        if self.stop_below_val_mse is not None and not self.stop_below_val_mse > 0:
            raise ConfigError(f"trainer.stop_below_val_mse must be > 0, got {self.stop_below_val_mse}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError(f"trainer.max_steps must be -1 (no limit) or positive, got {self.max_steps}")
        devices = self.devices
        if isinstance(devices, int) and devices < 1 and devices != -1:
            raise ConfigError(f"trainer.devices must be ≥ 1 (how many), -1 (all), 'auto' or a list such as "
                              f"'0,1', got {devices}")
        if isinstance(devices, str) and devices != "auto":
            items = [d.strip() for d in devices.strip("[]").split(",") if d.strip()]
            if not items or not all(d.isdigit() or d == "-1" for d in items):
                raise ConfigError(f"trainer.devices must be a number of devices, -1 (all), 'auto' or a list "
                                  f"of device indices such as '0,1', got {devices!r}")


@dataclass
class RunConfig:
    """Everything that defines a training run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seed: int = 0

    def validate(self) -> None:
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed must be in [0, 2³²), got {self.seed}")
        for section in (self.data, self.model, self.loss, self.optim, self.trainer):
            section.validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ------------------------------------------------------------------------------------------ validation
def require_positive(section: Any, *names: str) -> None:
    """ConfigError unless each named setting is ≥ 1 (None, meaning "not set", is allowed)."""
    for name in names:
        value = getattr(section, name)
        if value is not None and value < 1:
            raise ConfigError(f"{_section_name(section)}.{name} must be ≥ 1, got {value}")


def require_non_negative(section: Any, *names: str) -> None:
    """ConfigError unless each named setting is ≥ 0 (None, meaning "not set", is allowed)."""
    for name in names:
        value = getattr(section, name)
        if value is not None and value < 0:
            raise ConfigError(f"{_section_name(section)}.{name} must be ≥ 0, got {value}")


def _section_name(section: Any) -> str:
    for name, cls in (("data", DataConfig), ("model", ModelConfig), ("loss", LossConfig),
                      ("optim", OptimConfig), ("trainer", TrainerConfig)):
        if isinstance(section, cls):
            return name
    return type(section).__name__
