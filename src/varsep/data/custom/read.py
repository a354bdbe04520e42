"""Readers of the user's own files (``data.kind``): arrays, NetCDF, Zarr and folders of images.

Every reader returns :class:`RawData`: one array of *rows* (R, *frame) — the observations of all sequences
back to back, in the file's units (image pixels read as [0, 1]) — the row range of each sequence, and a
:class:`DataDescription` of where the values came from (dims, coordinates, attributes), so forecasts can be
written back in the input's layout. Nothing is normalised here (see varsep.data.custom_norm).

- array: ``.npy`` (memory-mapped, never read whole) or ``.npz`` (loaded), shaped (N, T, C, H, W) frames,
  (N, T, H, W) one-channel frames or (N, T, m) vectors.
- netcdf / zarr (via xarray; Zarr needs the optional ``zarr`` package): a variable with a time dimension,
  optionally a sequence dimension, and observation dims (C, H, W), (H, W) or (m,). Read lazily, window by
  window (varsep.data.custom.lazy); NetCDF may be several files (a list, a glob, a folder) along time.
- frames: a folder of images (one sequence) or a folder of sub-folders (one sequence each), frames in
  natural order of their file names, 8-bit grey or RGB kept as uint8, 16-bit grey kept as uint16.
"""

from __future__ import annotations

import importlib
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from varsep.config.datasets import CUSTOM_KINDS as KINDS  # the vocabulary of data.kind
from varsep.data.custom.lazy import LazyRows, Part, time_chunk
from varsep.data.files import natural_key
from varsep.errors import DataError

ARRAY_SHAPES = "(N, T, C, H, W) frames, (N, T, H, W) one-channel frames or (N, T, m) vectors"
NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
DEEP_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")  # 16-bit (and 32-bit integer) grey images
TIME_NAMES = ("time", "t")
SEQUENCE_NAMES = ("sequence", "sequences", "seq", "sample", "samples", "member", "ensemble", "realization",
                  "run", "trajectory")


@dataclass
class DataDescription:
    """Where the observations come from: enough to write forecasts in the input's layout and units.

    ``frame_dims`` name the dims of one stored observation (e.g. ``("lat", "lon")``); the model sees
    ``frame_shape`` — a channel axis is added to (H, W) observations (``channel_added``) and frames may be
    resized. ``coords`` holds the 1-D coordinates of the time, sequence and observation dims that the file
    has; ``attrs`` the variable's attributes (units, long_name…). Sequence s is rows
    ``starts[s] … starts[s] + lengths[s] − 1``. ``normalization`` is set by the data set once fitted.
    """

    kind: str
    source: Path
    variable: str | None
    time_dim: str
    sequence_dim: str | None
    frame_dims: tuple[str, ...]
    frame_shape: tuple[int, ...]
    starts: np.ndarray
    lengths: np.ndarray
    sequence_names: list[str]
    coords: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    file_attrs: dict[str, Any] = field(default_factory=dict)
    channel_added: bool = False
    resized: bool = False
    frame_files: list[Path] | None = None  # kind frames: the image file of each row
    normalization: Any = None  # varsep.data.custom_norm.Normalization
    time_attrs: dict[str, Any] = field(default_factory=dict)  # NetCDF: the time coordinate's (units, calendar…)
    files: list[Path] | None = None  # several NetCDF files: in time order

    @property
    def num_sequences(self) -> int:
        return len(self.starts)

    def locate(self, rows: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        """(sequence, time index within it) of global ``rows``."""
        rows = np.asarray(rows, dtype=np.int64)
        seq = np.searchsorted(self.starts, rows, side="right") - 1
        return seq, rows - self.starts[seq]

    def time_label(self, sequence: int, time: int) -> str | None:
        """The time coordinate of a frame (e.g. a date), or its file name for image folders."""
        if self.frame_files is not None:
            return self.frame_files[int(self.starts[sequence]) + time].name
        coord = self.coords.get(self.time_dim)
        if coord is None or time >= len(coord):
            return None
        value = coord[time]
        return np.datetime_as_string(value, unit="auto") if isinstance(value, np.datetime64) else str(value)

    def to_dataarray(self, values: np.ndarray, sequence: int, times: np.ndarray):
        """Observations ``values`` (k, *frame_shape), in the data's units, of frames ``times`` of
        ``sequence`` as an xarray DataArray laid out like the input variable (dims, coords, attrs)."""
        import xarray as xr

        values = np.asarray(values)
        if self.channel_added:
            values = values[:, 0]
        times = np.asarray(times, dtype=np.int64)
        coords: dict[str, Any] = {}
        if self.time_dim in self.coords:
            coords[self.time_dim] = (self.time_dim, self.coords[self.time_dim][times])
        else:
            coords[self.time_dim] = (self.time_dim, times)
        if not self.resized:
            for dim in self.frame_dims:
                if dim in self.coords:
                    coords[dim] = (dim, self.coords[dim])
        if self.sequence_dim is not None:
            seq_coord = self.coords.get(self.sequence_dim)
            coords[self.sequence_dim] = seq_coord[sequence] if seq_coord is not None else sequence
        return xr.DataArray(values, dims=(self.time_dim, *self.frame_dims), coords=coords,
                            attrs=dict(self.attrs), name=self.variable or "values")


@dataclass
class RawData:
    """All observations back to back (R, *frame), their sequences and what they are."""

    rows: np.ndarray  # any numeric dtype; may be a read-only memory map
    description: DataDescription
    raw_scale: float | None = None  # multiply rows by this to get the data's units (1/255 for images)

    @property
    def bounds(self) -> list[tuple[int, int]]:
        d = self.description
        return [(int(a), int(a + n)) for a, n in zip(d.starts, d.lengths, strict=True)]


def guess_kind(path: Path) -> str | None:
    """The kind of ``path`` from its name: .npy/.npz, .nc, .zarr, or a folder (images)."""
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        return "array"
    if suffix in NETCDF_SUFFIXES:
        return "netcdf"
    if suffix == ".zarr" or any((path / n).exists() for n in ("zarr.json", ".zgroup", ".zarray")):
        return "zarr"
    return "frames" if path.is_dir() else None


def read(kind: str, path: Path | list[Path], *, variable: str | None = None, time_dim: str | None = None,
         sequence_dim: str | None = None, channel_dim: str | None = None, channels: int | None = None,
         resize: tuple[int, int] | None = None) -> RawData:
    """Open ``path`` as ``kind`` (see the module docstring); NetCDF may be a list of files."""
    if isinstance(path, list):
        if kind != "netcdf":
            raise DataError(f"several files are read for kind netcdf only, not {kind}")
        return read_xarray(kind, path, variable, time_dim=time_dim, sequence_dim=sequence_dim,
                           channel_dim=channel_dim)
    if not path.exists():
        raise DataError(f"data.path {path} does not exist; expected a {KINDS[kind]}")
    if kind == "array":
        return read_array(path, variable)
    if kind in ("netcdf", "zarr"):
        return read_xarray(kind, path, variable, time_dim=time_dim, sequence_dim=sequence_dim,
                           channel_dim=channel_dim)
    return read_frames(path, channels=channels, resize=resize)


# ----------------------------------------------------------------------------------------------- arrays
def read_array(path: Path, variable: str | None) -> RawData:
    suffix = path.suffix.lower()
    if path.is_dir() or suffix not in (".npy", ".npz"):
        raise DataError(f"{path}: kind array reads a .npy or .npz file of shape {ARRAY_SHAPES}")
    source = path.name
    try:
        if suffix == ".npy":
            if variable is not None:
                raise DataError(f"{path}: data.variable ({variable!r}) names an array inside a .npz file; "
                                f"a .npy file holds a single array, so leave it unset")
            array = np.load(path, mmap_mode="r")
        else:
            with np.load(path) as npz:
                keys = list(npz.files)
                if variable is None:
                    if len(keys) != 1:
                        raise DataError(f"{path} holds the arrays {', '.join(keys) or 'none'}; set "
                                        f"data.variable to the one to train on")
                    variable = keys[0]
                if variable not in keys:
                    raise DataError(f"{path}: array {variable!r} missing; the file holds "
                                    f"{', '.join(keys) or 'no array'}")
                array = npz[variable]
                source = f"{path.name}[{variable!r}]"
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path} is not a readable {suffix} file ({err})") from None
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool) or np.iscomplexobj(array):
        raise DataError(f"{source} holds {array.dtype} values; expected real numbers")
    if array.ndim not in (3, 4, 5):
        raise DataError(f"{source} has shape {array.shape} ({array.ndim} dimensions); expected "
                        f"{ARRAY_SHAPES}")
    n, t = array.shape[:2]
    if n == 0 or t == 0:
        raise DataError(f"{source} has shape {array.shape}: no sequence or no frame")
    frame = array.shape[2:]
    rows = array.reshape(n * t, *frame)  # a view for C-ordered files: a memory map stays a memory map
    added = array.ndim == 4
    if added:
        rows = rows[:, None]
    dims = {5: ("channel", "y", "x"), 4: ("y", "x"), 3: ("feature",)}[array.ndim]
    description = DataDescription(
        kind="array", source=path, variable=variable, time_dim="time", sequence_dim="sequence",
        frame_dims=dims, frame_shape=tuple(rows.shape[1:]), starts=np.arange(n, dtype=np.int64) * t,
        lengths=np.full(n, t, dtype=np.int64), sequence_names=[f"sequence {i}" for i in range(n)],
        channel_added=added)
    return RawData(rows, description)


# --------------------------------------------------------------------------------------- NetCDF / Zarr
def open_xarray(kind: str, path: Path):
    """An xarray Dataset of a NetCDF file or Zarr store; DataError naming the file if it cannot be read."""
    import xarray as xr

    if kind == "zarr":
        try:
            importlib.import_module("zarr")
        except ImportError:
            raise DataError(f"reading the Zarr store {path} needs the zarr package: "
                            f"pip install varsep[zarr]") from None
        opener = {"engine": "zarr", "chunks": None}
    else:
        opener = {"engine": "netcdf4"}
    try:
        try:
            with warnings.catch_warnings():  # a Zarr store without consolidated metadata is fine
                warnings.filterwarnings("ignore", message=".*consolidated metadata", category=RuntimeWarning)
                return xr.open_dataset(path, **opener)
        except ValueError:  # e.g. a time coordinate that does not decode to dates: keep the numbers
            return xr.open_dataset(path, decode_times=False, **opener)
    except Exception as err:  # netCDF4, h5py and zarr raise many types for a corrupt file
        what = "Zarr store" if kind == "zarr" else "NetCDF file"
        raise DataError(f"{path} is not a readable {what} ({type(err).__name__}: {err})") from None


def _pick(dims: tuple[str, ...], given: str | None, names: tuple[str, ...], setting: str, where: str
          ) -> str | None:
    if given is not None:
        if given not in dims:
            raise DataError(f"{where}: data.{setting} {given!r} is not one of its dims {', '.join(dims)}")
        return given
    return next((d for d in dims if d.lower() in names), None)


def netcdf_files(setting: str | list[str], root: Path | None = None) -> list[Path] | None:
    """The NetCDF files ``data.path`` names when it is a list, a glob or a folder of NetCDF files (in name
    order; read_xarray puts them in time order), or None for a single file or store."""
    def full(p: str) -> Path:
        path = Path(p).expanduser()
        return root / path if root is not None and not path.is_absolute() else path

    if isinstance(setting, list | tuple):
        files = [full(p) for p in setting]
        missing = [str(f) for f in files if not f.exists()]
        if missing:
            raise DataError(f"data.path lists {missing[0]}, which does not exist")
        return files
    if any(ch in setting for ch in "*?["):
        pattern = full(setting)
        files = sorted(pattern.parent.glob(pattern.name), key=lambda p: natural_key(p.name))
        if not files:
            raise DataError(f"data.path {setting} matches no file")
        return files
    path = full(setting)
    if path.is_dir() and guess_kind(path) != "zarr":
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in NETCDF_SUFFIXES
                        and not p.name.startswith(".")), key=lambda p: natural_key(p.name))
        return files or None
    return None


def read_xarray(kind: str, path: Path | list[Path], variable: str | None, *, time_dim: str | None = None,
                sequence_dim: str | None = None, channel_dim: str | None = None) -> RawData:
    """A variable of one file/store or of several NetCDF files along time, read lazily (varsep.data.custom.lazy).

    Several files must hold the same variable with the same dims, observation shape and coordinates; they
    are put in time order (by their first time) and must not overlap. The time coordinate keeps its
    calendar (cftime dates for 360_day, noleap…) and its attributes, for forecasts written back."""
    paths = list(path) if isinstance(path, list | tuple) else [path]
    opened = [_open_variable(kind, p, variable, time_dim, sequence_dim, channel_dim) for p in paths]
    first = opened[0]
    for other in opened[1:]:
        _check_same(first, other)
    if len(opened) > 1:
        opened = _in_time_order(opened)
    da, tdim, seq, obs = first["da"], first["tdim"], first["seq"], first["obs"]
    where = first["where"]
    lengths_t = [int(o["da"].sizes[tdim]) for o in opened]
    t = sum(lengths_t)
    n = int(da.sizes[seq]) if seq else 1
    if n == 0 or t == 0:
        raise DataError(f"{where} has shape {tuple(da.shape)}: no sequence or no time step")
    parts = [Part(o["da"], tdim, seq, (tdim, *obs), time_chunk(o["da"], tdim), o["where"]) for o in opened]
    # Rows are sequence-major; within a sequence the files follow each other in time order.
    part_of_t = np.repeat(np.arange(len(parts)), lengths_t)
    time_in_part = np.concatenate([np.arange(k) for k in lengths_t])
    row_part = np.tile(part_of_t, n).astype(np.int32)
    row_time = np.tile(time_in_part, n).astype(np.int64)
    row_seq = np.repeat(np.arange(n), t).astype(np.int32)
    obs_shape = tuple(int(da.sizes[d]) for d in obs)
    added = len(obs) == 2
    frame_shape = (1, *obs_shape) if added else obs_shape
    rows = LazyRows(parts, row_part, row_seq, row_time, frame_shape, added)
    coords = dict(first["coords"])
    if tdim in coords:
        coords[tdim] = np.concatenate([o["coords"][tdim] for o in opened])
    seq_coord = coords.get(seq) if seq else None
    names_ = ([f"{seq} {v}" for v in seq_coord] if seq_coord is not None else
              [f"{seq} {i}" for i in range(n)] if seq else [first["variable"]])
    description = DataDescription(
        kind=kind, source=paths[0] if len(paths) == 1 else paths[0].parent, variable=first["variable"],
        time_dim=tdim, sequence_dim=seq, frame_dims=tuple(obs), frame_shape=frame_shape,
        starts=np.arange(n, dtype=np.int64) * t, lengths=np.full(n, t, dtype=np.int64), sequence_names=names_,
        coords=coords, attrs=first["attrs"], file_attrs=first["file_attrs"], channel_added=added,
        time_attrs=first["time_attrs"], files=[o["path"] for o in opened] if len(opened) > 1 else None)
    return RawData(rows, description)


def _open_variable(kind: str, path: Path, variable: str | None, time_dim: str | None, sequence_dim: str | None,
                   channel_dim: str | None) -> dict[str, Any]:
    """One file's variable, lazily, with its dims sorted out (everything read_xarray needs of it)."""
    ds = open_xarray(kind, path)
    names = [str(v) for v in ds.data_vars]
    if variable is None:
        if len(names) != 1:
            raise DataError(f"{path} holds the variables {', '.join(names) or 'none'}; set data.variable "
                            f"to the one to train on")
        variable = names[0]
    if variable not in ds.data_vars:
        raise DataError(f"{path}: variable {variable!r} missing; the file holds "
                        f"{', '.join(names) or 'no data variable'}")
    da = ds[variable]
    where = f"{path}: variable {variable!r}"
    dims = tuple(str(d) for d in da.dims)
    seq = _pick(dims, sequence_dim, SEQUENCE_NAMES, "sequence_dim", where)
    tdim = _pick(dims, time_dim, TIME_NAMES, "time_dim", where)
    if tdim is None:
        tdim = next((d for d in dims if d != seq), None)
    if tdim is None or tdim == seq:
        raise DataError(f"{where} has dims {dims}; expected a time dimension (set data.time_dim)")
    obs = [d for d in dims if d not in (seq, tdim)]
    if channel_dim is not None:
        if channel_dim not in obs:
            raise DataError(f"{where}: data.channel_dim {channel_dim!r} is not one of its observation "
                            f"dims {', '.join(obs) or '(none)'}")
        obs.remove(channel_dim)
        obs.insert(0, channel_dim)
    if not 1 <= len(obs) <= 3:
        raise DataError(f"{where} has dims {dims} and shape {tuple(da.shape)}; expected ([sequence,] "
                        f"time, C, H, W), ([sequence,] time, H, W) or ([sequence,] time, m) — found "
                        f"{len(obs)} dims besides time{' and ' + seq if seq else ''}")
    if np.iscomplexobj(np.zeros(0, da.dtype)) or not (np.issubdtype(da.dtype, np.number) or da.dtype == bool):
        raise DataError(f"{where} holds {da.dtype} values; expected real numbers")
    order = ([seq] if seq else []) + [tdim, *obs]
    coords = {d: np.asarray(ds[d].values) for d in order if d in ds.coords and ds[d].ndim == 1}
    time_attrs: dict[str, Any] = {}
    if tdim in ds.coords:
        time_attrs = {**ds[tdim].attrs, **{k: v for k, v in ds[tdim].encoding.items() if k in ("units", "calendar")}}
    return {"path": path, "da": da, "where": where, "variable": variable, "tdim": tdim, "seq": seq, "obs": obs,
            "coords": coords, "attrs": dict(da.attrs), "file_attrs": dict(ds.attrs), "time_attrs": time_attrs}


def _check_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Two files of one data set: the same variable, dims, observation shape and coordinates."""
    da, db = a["da"], b["da"]
    if (a["variable"], a["tdim"], a["seq"], a["obs"]) != (b["variable"], b["tdim"], b["seq"], b["obs"]):
        raise DataError(f"{b['path']} does not match {a['path']}: variable {b['variable']!r} with dims "
                        f"{tuple(db.dims)} against {a['variable']!r} with {tuple(da.dims)}")
    for dim in [*([a["seq"]] if a["seq"] else []), *a["obs"]]:
        if da.sizes[dim] != db.sizes[dim]:
            raise DataError(f"{b['path']} does not match {a['path']}: {dim} has {db.sizes[dim]} entries "
                            f"against {da.sizes[dim]}")
        ca, cb = a["coords"].get(dim), b["coords"].get(dim)
        if (ca is None) != (cb is None) or (ca is not None and not np.array_equal(ca, cb)):
            raise DataError(f"{b['path']} does not match {a['path']}: the {dim} coordinates differ")
    cal_a, cal_b = a["time_attrs"].get("calendar"), b["time_attrs"].get("calendar")
    if cal_a != cal_b:
        raise DataError(f"{b['path']} uses the calendar {cal_b!r} and {a['path']} {cal_a!r}; one data set "
                        f"needs one calendar")


def _in_time_order(opened: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Files sorted by their first time; a DataError when two overlap (or a file has no time coordinate)."""
    tdim = opened[0]["tdim"]
    missing = [o["path"] for o in opened if tdim not in o["coords"] or len(o["coords"][tdim]) == 0]
    if missing:
        raise DataError(f"{missing[0]} has no {tdim} coordinate; several files are put in time order by it")
    ordered = sorted(opened, key=lambda o: o["coords"][tdim][0])
    for prev, nxt in zip(ordered[:-1], ordered[1:], strict=True):
        last, first = prev["coords"][tdim][-1], nxt["coords"][tdim][0]
        if not last < first:
            raise DataError(f"{nxt['path']} overlaps {prev['path']} in time: it starts at {first}, before "
                            f"or at {last}, where {prev['path'].name} ends")
    return ordered


# ------------------------------------------------------------------------------------- image folders
def _images(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not p.name.startswith(".")), key=lambda p: natural_key(p.name))


def scan_frames(folder: Path) -> list[tuple[str, list[Path]]]:
    """(name, image files in natural order) of each sequence of an image folder."""
    if not folder.is_dir():
        raise DataError(f"{folder}: kind frames reads a folder of images, or of sub-folders of images")
    own = _images(folder)
    subs = sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: natural_key(p.name))
    with_images = [(p.name, _images(p)) for p in subs]
    nested = [(name, files) for name, files in with_images if files]
    if own and nested:
        raise DataError(f"{folder} holds both image files and sub-folders of images ({nested[0][0]}, …); "
                        f"put every sequence in its own sub-folder, or keep one sequence of images")
    if own:
        return [(folder.name, own)]
    if not nested:
        raise DataError(f"{folder} holds no image ({', '.join(IMAGE_SUFFIXES)}) and no sub-folder of images")
    empty = [name for name, files in with_images if not files]
    if empty:
        raise DataError(f"{folder / empty[0]} holds no image; every sub-folder of {folder} is one sequence")
    return nested


def read_image(path: Path, channels: int, size: tuple[int, int] | None, *, deep: bool = False) -> np.ndarray:
    """One image as uint8 (C, H, W), or uint16 with ``deep`` (16-bit grey images: their full range is kept,
    and an 8-bit image among them is scaled by 257 to the same 0–65535 range); ``size`` = (H, W) resizes it
    (Lanczos)."""
    try:
        with Image.open(path) as img:
            img.load()
            sixteen = img.mode in DEEP_MODES
            # 16-bit grey as 32-bit integers: PIL resizes these, and no value is clipped
            img = img.convert("I" if deep and sixteen else "L" if channels == 1 else "RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path} is not a readable image ({err})") from None
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.LANCZOS)
    if deep:
        array = np.asarray(img).astype(np.int64)
        array = np.clip(array if sixteen else array * 257, 0, 65535).astype(np.uint16)
    else:
        array = np.asarray(img, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def read_frames(folder: Path, *, channels: int | None = None, resize: tuple[int, int] | None = None,
                threads: int | None = None) -> RawData:
    sequences = scan_frames(folder)
    files = [f for _, fs in sequences for f in fs]
    first = files[0]
    try:
        with Image.open(first) as img:
            mode, (width, height) = img.mode, img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{first} is not a readable image ({err})") from None
    channels = channels or (1 if mode in GREY_MODES else 3)
    deep = mode in DEEP_MODES and channels == 1  # 16-bit grey: kept as uint16, read as value / 65535
    size = tuple(resize) if resize is not None else (height, width)
    rows = np.empty((len(files), channels, *size), dtype=np.uint16 if deep else np.uint8)

    def fill(i: int) -> None:
        image = read_image(files[i], channels, size if resize is not None else None, deep=deep)
        if image.shape[1:] != size:
            raise DataError(f"{files[i]} is {image.shape[2]}×{image.shape[1]} but {first} is "
                            f"{width}×{height}; the frames must share one size (or set data.resize: [H, W] "
                            f"to resize them)")
        rows[i] = image

    with ThreadPoolExecutor(threads or min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(fill, range(len(files))))
    lengths = np.array([len(fs) for _, fs in sequences], dtype=np.int64)
    description = DataDescription(
        kind="frames", source=folder, variable=None, time_dim="time", sequence_dim="sequence"
        if len(sequences) > 1 else None, frame_dims=("channel", "y", "x"), frame_shape=tuple(rows.shape[1:]),
        starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64), lengths=lengths,
        sequence_names=[name for name, _ in sequences], resized=resize is not None, frame_files=files)
    return RawData(rows, description, raw_scale=1 / 65535 if deep else 1 / 255)
