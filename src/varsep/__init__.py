"""varsep: spatiotemporal forecasting by separation of variables (Dona et al., ICLR 2021)."""

__version__ = "0.1.0"
