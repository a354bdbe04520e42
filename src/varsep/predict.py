"""`varsep predict`: forecast from a file of observations, write the forecast in the same format.

Input: the observations before the forecast, as
- ``.npy`` — (T, *frame) for one sequence or (B, T, *frame) for several; an ``.npz`` names its array
  with ``--variable`` (or holds only one);
- ``.nc`` (NetCDF) or ``.zarr`` — a variable (``--variable``, or the only data variable) with dimensions
  (time, *frame) or (sequence, time, *frame); a frame of one channel may omit its channel dimension.
The last τ+1 observations (the last conditioning window) of each sequence are used. Values are raw
(as in the training files): when the run recorded a value transform, it is applied on the way in and
inverted on the way out.

Output: ``.npy`` (the forecast, with the input's layout: (n, *frame) or (B, n, *frame)), or NetCDF matching
the input (same variable name, dimensions, attributes and spatial coordinates; the time coordinate
continued at the input's spacing), plus a PNG of the first sequence next to the output file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from varsep.config.datasets import CustomConfig
from varsep.data.custom.read import SEQUENCE_NAMES, TIME_NAMES
from varsep.errors import ConfigError, DataError
from varsep.forecaster import Forecaster, load
from varsep.guards import check_fits_in_memory, check_not_an_input
from varsep.precision import Precision


@dataclass
class Observations:
    """Observations read from a file, (B, T, *frame), with what is needed to write a matching file."""

    values: np.ndarray
    single: bool  # the file held one sequence (no sequence axis)
    source: Path
    dataset: Any = None  # the xarray Dataset of a NetCDF/Zarr input
    variable: str | None = None
    squeeze_channel: bool = False  # the file's frames had no channel axis
    dims: tuple[str, ...] | None = None  # NetCDF/Zarr: the dims of ``values`` ([sequence,] time, *frame)
    described: str | None = None  # NetCDF/Zarr: the variable's dims and sizes, for messages


def read_observations(path: str | Path, frame_shape: tuple[int, ...], *, variable: str | None = None,
                      names: dict[str, str | None] | None = None) -> Observations:
    """Observations from a file; ``names`` (time_dim, sequence_dim, channel_dim) say which NetCDF/Zarr dims
    are which when the run was trained on such a file with those settings."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"input file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise DataError(f"{path} is not a readable NumPy file ({err})") from None
        if suffix == ".npz":
            keys = list(data.keys())
            if variable is None and len(keys) != 1:
                raise DataError(f"{path} holds {keys}; choose one with --variable")
            if variable is not None and variable not in keys:
                raise DataError(f"{path} has no array {variable!r}; it holds {keys}")
            data = data[variable or keys[0]]
        return _shape(np.asarray(data, dtype=np.float32), frame_shape, path)
    if suffix in (".nc", ".nc4", ".netcdf", ".zarr"):
        return _read_xarray(path, frame_shape, variable, names=names)
    raise DataError(f"{path}: unsupported input format {suffix!r}; use .npy, .npz, .nc or .zarr")


def _shape(values: np.ndarray, frame_shape: tuple[int, ...], path: Path, **extra: Any) -> Observations:
    nf = len(frame_shape)
    squeeze = False
    if tuple(values.shape[-nf:]) != frame_shape and frame_shape[0] == 1 and nf == 3 \
            and tuple(values.shape[-2:]) == frame_shape[1:]:
        values = values[..., None, :, :]  # frames without their single channel axis
        squeeze = True
    if tuple(values.shape[-nf:]) != frame_shape or values.ndim not in (nf + 1, nf + 2):
        held = extra.get("described") or f"an array of shape {values.shape}"
        raise DataError(f"{path}: the model takes observations of shape {frame_shape}; the file holds {held}, "
                        f"expected (time, {', '.join(map(str, frame_shape))}) or "
                        f"(sequence, time, {', '.join(map(str, frame_shape))})")
    single = values.ndim == nf + 1
    return Observations(values[None] if single else values, single, path, squeeze_channel=squeeze, **extra)


def _read_xarray(path: Path, frame_shape: tuple[int, ...], variable: str | None, *,
                 names: dict[str, str | None] | None = None) -> Observations:
    """Read a NetCDF/Zarr variable by its dimension names, as training does (varsep.data.custom.read):
    time is the dim named time/t (or data.time_dim), sequences the dim named sequence/member/… (or
    data.sequence_dim); the frame dims are the others, in the file's order."""
    import xarray as xr

    names = names or {}
    try:
        ds = xr.open_zarr(path) if path.suffix == ".zarr" else xr.open_dataset(path)
    except ImportError as err:
        raise DataError(f"reading {path} needs an optional package ({err}); for Zarr: pip install varsep[zarr]") \
            from None
    except (OSError, ValueError) as err:
        raise DataError(f"{path} is not a readable NetCDF/Zarr store ({err})") from None
    data_vars = list(ds.data_vars)
    if variable is None:
        if len(data_vars) != 1:
            raise DataError(f"{path} holds the variables {data_vars}; choose one with --variable")
        variable = data_vars[0]
    if variable not in ds.data_vars:
        raise DataError(f"{path} has no variable {variable!r}; it holds {data_vars}")
    da = ds[variable]
    dims = tuple(str(d) for d in da.dims)
    described = "(" + ", ".join(f"{d}: {n}" for d, n in zip(dims, da.shape, strict=True)) + ")"
    where = f"{path}: variable {variable!r} with dims {described}"
    time_dim = _named_dim(dims, names.get("time_dim"), TIME_NAMES, "time", where)
    seq_dim = _named_dim(dims, names.get("sequence_dim"), SEQUENCE_NAMES, "sequence", where)
    if time_dim is None:
        others = [d for d in dims if d != seq_dim]
        if len(dims) - (seq_dim is not None) - 1 not in (len(frame_shape), len(frame_shape) - 1) or not others:
            time_dim = None
        else:
            time_dim = others[0]  # training's rule: without a dim named time, the first other dim
    if time_dim is None or time_dim == seq_dim:
        raise DataError(f"{where}: no dimension is named time, and the model takes ([sequence,] time, "
                        f"{', '.join(map(str, frame_shape))}); name the time dimension time")
    frame_dims = [d for d in dims if d not in (time_dim, seq_dim)]
    channel = names.get("channel_dim")
    if channel is not None and channel in frame_dims:
        frame_dims.remove(channel)
        frame_dims.insert(0, channel)
    if len(frame_dims) not in (len(frame_shape), len(frame_shape) - 1):
        expected = ", ".join(map(str, frame_shape))
        raise DataError(f"{where}: the model takes frames of shape ({expected}); besides {time_dim}"
                        f"{' and ' + seq_dim if seq_dim else ''} the variable has {len(frame_dims)} dims "
                        f"({', '.join(frame_dims) or 'none'}), expected {len(frame_shape)}")
    order = ([seq_dim] if seq_dim else []) + [time_dim, *frame_dims]
    try:
        values = np.asarray(da.transpose(*order).values, dtype=np.float32)
    except Exception as err:  # a truncated file fails only when its data are read
        raise DataError(f"{where} cannot be read ({type(err).__name__}: {err})") from None
    return _shape(values, frame_shape, path, dataset=ds, variable=variable, dims=tuple(order), described=described)


def _named_dim(dims: tuple[str, ...], given: str | None, known: tuple[str, ...], what: str, where: str
               ) -> str | None:
    if given is not None:
        if given not in dims:
            raise DataError(f"{where}: the run reads its {what} dimension from {given!r}, which this variable "
                            f"does not have")
        return given
    return next((d for d in dims if d.lower() in known), None)  # the first, as training picks it


def write_forecast(obs: Observations, forecast: np.ndarray, times: np.ndarray, out: Path) -> Path:
    """Write ``forecast`` (B, n, *frame) like the input: .npy, or NetCDF matching an xarray input."""
    values = forecast[:, :, 0] if obs.squeeze_channel else forecast
    values = values[0] if obs.single else values
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        np.save(out, values)
        return out
    if out.suffix not in (".nc", ".nc4"):
        raise DataError(f"{out}: write the forecast as .npy or .nc")
    if obs.dataset is None:
        import xarray as xr

        dims = (["sequence"] if not obs.single else []) + ["time"] + [f"dim_{i}" for i in range(values.ndim - 1 -
                                                                                                  (not obs.single))]
        xr.Dataset({"forecast": (dims, values)}, coords={"time": times}).to_netcdf(out)
        return out
    return _write_like_input(obs, values, times, out)


def _write_like_input(obs: Observations, values: np.ndarray, steps: np.ndarray, out: Path) -> Path:
    import xarray as xr

    src = obs.dataset[obs.variable]
    dims = obs.dims or tuple(str(d) for d in src.dims)
    time_dim = dims[0] if obs.single else dims[1]
    coords = {name: c for name, c in src.coords.items() if time_dim not in c.dims}
    coords[time_dim] = continue_times(src[time_dim].values, steps) if time_dim in src.coords else steps
    da = xr.DataArray(values, dims=dims, coords=coords, attrs=dict(src.attrs), name=obs.variable)
    da = da.transpose(*src.dims)  # the input's own order of dimensions
    ds = da.to_dataset()
    if time_dim in src.coords:  # the input's time attributes and CF encoding (units, calendar)
        ds[time_dim].attrs.update(src[time_dim].attrs)
        ds[time_dim].encoding.update({k: v for k, v in src[time_dim].encoding.items() if k in ("units", "calendar")})
    ds.attrs.update(obs.dataset.attrs)
    ds.attrs["varsep_forecast"] = "forecast after the last conditioning window of the input"
    ds.to_netcdf(out)
    return out


def continue_times(t: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Times ``steps`` (in observation intervals) after the last of ``t``, at the spacing of its last two."""
    if len(t) < 2:
        return steps
    if np.issubdtype(t.dtype, np.datetime64):
        last = t[-1].astype("datetime64[ns]")
        delta = (last - t[-2].astype("datetime64[ns]")).astype(np.int64)
        return last + np.round(delta * steps).astype("timedelta64[ns]")
    if t.dtype == object:  # cftime dates of a CF calendar (360_day, noleap…): steps in their own calendar
        delta = t[-1] - t[-2]
        return np.array([t[-1] + delta * float(k) for k in steps], dtype=object)
    return t[-1] + (t[-1] - t[-2]) * steps


def predict(run: str | Path | Forecaster, input_path: str | Path, out: str | Path, *, horizon: int | None = None,
            times: list[float] | None = None, method: str = "residual", checkpoint: str = "best",
            variable: str | None = None, figure: bool = True, precision: str | Precision = "auto") -> Path:
    """Forecast from the observations in ``input_path`` and write them to ``out``; returns ``out``."""
    out = Path(out)
    if (horizon is None) == (times is None):
        raise DataError("give either --horizon N or --times t1,t2,…")
    if horizon is not None and horizon < 1:
        raise ConfigError(f"the horizon must be ≥ 1, got {horizon}")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; name the forecast file, e.g. {out / 'forecast.npy'}")
    if out.suffix not in (".npy", ".nc", ".nc4"):
        raise ConfigError(f"--out {out}: write the forecast as .npy or .nc")
    written = [out, out.with_suffix(".png")] if figure else [out]
    sources = [Path(input_path)] + ([Path(run)] if not isinstance(run, Forecaster) else [])
    check_not_an_input(written, sources, "--out")
    model = run if isinstance(run, Forecaster) else load(run, checkpoint, precision=precision)
    if model.checkpoint is not None:
        check_not_an_input(written, [model.checkpoint], "--out")
    data = model.config.data
    names = ({"time_dim": data.time_dim, "sequence_dim": data.sequence_dim, "channel_dim": data.channel_dim}
             if isinstance(data, CustomConfig) else None)
    obs = read_observations(input_path, model.frame_shape, variable=variable, names=names)
    steps_count = horizon if times is None else len(times)
    check_fits_in_memory(4 * 3 * obs.values.shape[0] * steps_count * int(np.prod(model.frame_shape)),
                         f"a forecast of {steps_count} frames for {obs.values.shape[0]} sequence(s)",
                         "ask for a shorter --horizon (or fewer --times), or fewer sequences at a time")
    span = model.model.cond_span
    if obs.values.shape[1] < span:
        raise DataError(f"{obs.source}: the model conditions on the last {span} observations, the file holds "
                        f"{obs.values.shape[1]}")
    cond_raw = obs.values[:, -span:]
    valid = model.valid_mask  # masked cells (land) may hold NaN: they are written back as NaN
    if valid is not None:
        cond_raw = np.where(valid, cond_raw, 0).astype(np.float32)
    if not np.isfinite(cond_raw).all():
        raise DataError(f"{obs.source}: the last {span} observations hold NaN or Inf")
    cond = model.to_model(cond_raw)
    steps = np.arange(1, horizon + 1, dtype=np.float64) if times is None else np.asarray(times, np.float64)
    forecast = model.forecast(cond, times=steps, method=method) if times is not None else \
        model.forecast(cond, horizon)
    raw = model.from_model(np.asarray(forecast))
    if valid is not None:
        raw = np.where(valid, raw, np.nan).astype(np.float32)
    out = write_forecast(obs, raw, steps, Path(out))
    if figure and len(model.frame_shape) == 3:
        from varsep.eval import plots

        history = obs.values[0, -span:]
        plots.prediction_strip(history, raw[0], steps, out.with_suffix(".png"), title=f"forecast of {obs.source.name}")
    return out
