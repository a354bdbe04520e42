"""Training on Lightning: ``fit(config, run_dir)`` and what it is made of.

- :mod:`varsep.train.runner` — `fit`: start, resume and continue runs (checks before anything is written);
- :mod:`varsep.train.rundir` — writing run folders: provenance, the pre-write checks, summary lines;
- :mod:`varsep.train.task` — the LightningModule (losses, optimiser, validation, checkpoint extras);
- :mod:`varsep.train.datamodule` / :mod:`varsep.train.stream` — deterministic, resumable batches;
- :mod:`varsep.train.trainer` / :mod:`varsep.train.callbacks` — the Trainer: checkpoints, time limits,
  targets, progress, logs (:mod:`varsep.train.logs`), atomic checkpoint I/O (:mod:`varsep.train.checkpoint_io`).
"""

from varsep.train.runner import fit, resolve_config, resume_config

__all__ = ["fit", "resolve_config", "resume_config"]
