"""varsep: spatiotemporal forecasting by separation of variables (Dona et al., ICLR 2021)."""

__version__ = "0.1.0"


def load(run_dir_or_checkpoint, which: str = "best", *, precision: str = "auto"):
    """A trained model (:class:`varsep.api.Forecaster`) from a run folder or checkpoint file."""
    from varsep.api import load as _load

    return _load(run_dir_or_checkpoint, which, precision=precision)
