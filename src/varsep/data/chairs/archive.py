"""The 3D Warehouse Chairs archive (Aubry et al. 2014, "Seeing 3D chairs") and its preprocessing cache.

Layout of the public ``rendered_chairs.tar``, unpacked (``data.root`` names ``rendered_chairs/`` or the
folder holding it)::

    rendered_chairs/<chair>/renders/image_NNN_pPPP_tTTT_rRRR.png   62 views per chair, 600×600 RGB
    rendered_chairs/all_chair_names.mat                              (ignored, as are other plain files)

In a file name, p is the camera elevation in degrees (020 or 030), t the azimuth in degrees (31 values
360/31 ≈ 11.6° apart: t000, t011, t023, … t348), r the camera distance and NNN the image number.
PNGs named otherwise (e.g. ``0.png`` … ``61.png``, which the authors' preprocessing script writes into
the same folders) are ignored; so are hidden folders.

View order (:func:`view_order`): by elevation, then by azimuth modulo 360, both ascending — the order in
which the chair turns from right to left (see varsep.data.chairs).

Preprocessing (:func:`preprocess_image`): RGB (an alpha channel is composited on white, the renders'
background), centre crop 400×400, Lanczos resize to 64×64 with Pillow, uint8.

Cache (:func:`load_frames`): ``varsep-chairs-c400-64px.npy``, uint8 (chairs, views, 3, 64, 64) in view
order, memory-mappable, and ``varsep-chairs-c400-64px.json`` (chair names, views, settings and a
fingerprint of the source listing: every render's name, size and modification time), in ``cache_dir`` or
else in the ``rendered_chairs`` folder. It is rebuilt when the listing or the settings change or when it is
corrupt; it is written under a temporary name and renamed into place, the .json last.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from varsep.errors import DataError

ARCHIVE = "rendered_chairs"
VIEW_NAME = re.compile(r"image_(\d+)_p(\d+)_t(\d+)_r(\d+)\.png", re.IGNORECASE)
FORMAT, FORMAT_VERSION = "varsep-chairs-cache", 1
HINT = ("download and unpack rendered_chairs.tar (Aubry et al. 2014, 'Seeing 3D chairs'), "
        "then set data.root to the rendered_chairs folder or its parent")


# ------------------------------------------------------------------------------------------------ views
class View(NamedTuple):
    """One rendered view, parsed from its file name."""

    number: int  # NNN
    elevation: int  # p, degrees
    azimuth: int  # t, degrees
    distance: int  # r

    @property
    def angle(self) -> tuple[int, int, int]:
        return self.elevation, self.azimuth % 360, self.distance


def parse_view(name: str) -> View | None:
    """The view encoded in an archive file name, or None for other file names."""
    m = VIEW_NAME.fullmatch(name)
    return View(*(int(g) for g in m.groups())) if m else None


def view_order(views: Sequence[View]) -> list[int]:
    """Positions of ``views`` sorted by elevation, then azimuth mod 360 (the chair turns right to left)."""
    return sorted(range(len(views)), key=lambda i: (views[i].angle, views[i].number))


# ---------------------------------------------------------------------------------------- the archive
@dataclass
class Chair:
    name: str
    files: list[Path]  # in view order
    views: list[View]  # in view order


def archive_folder(root: str | Path | None) -> Path:
    """The ``rendered_chairs`` folder: ``root`` itself or ``root/rendered_chairs``."""
    if root is None:
        raise DataError(f"data.root is not set for 3D Warehouse Chairs; {HINT}")
    root = Path(root).expanduser()
    if (root / ARCHIVE).is_dir():
        return root / ARCHIVE
    if not root.is_dir():
        raise DataError(f"3D Warehouse Chairs folder {root} does not exist; {HINT}")
    return root


def scan_archive(folder: Path, views_per_chair: int | None = 62) -> list[Chair]:
    """Every chair folder (sorted by name) with its render files in view order; checks the layout."""
    dirs = sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)
    if not dirs:
        raise DataError(f"{folder} holds no chair folders (expected {ARCHIVE}/<chair>/renders/*.png); {HINT}")
    chairs: list[Chair] = []
    for d in dirs:
        renders = d / "renders"
        if not renders.is_dir():
            raise DataError(f"chair folder {d} has no renders/ subfolder "
                            f"(expected {ARCHIVE}/<chair>/renders/image_NNN_pPPP_tTTT_rRRR.png)")
        parsed = [(p, v) for p in renders.iterdir() if (v := parse_view(p.name)) is not None]
        if not parsed:
            raise DataError(f"{renders} holds no renders named image_NNN_pPPP_tTTT_rRRR.png")
        order = view_order([v for _, v in parsed])
        chair = Chair(d.name, [parsed[i][0] for i in order], [parsed[i][1] for i in order])
        angles = [v.angle for v in chair.views]
        if len(set(angles)) != len(angles):
            raise DataError(f"{renders} holds two renders of the same view (elevation, azimuth, distance)")
        if views_per_chair is not None and len(angles) != views_per_chair:
            raise DataError(f"{renders} holds {len(angles)} renders; expected {views_per_chair} "
                            f"(data.views_per_chair)")
        if chairs and angles != [v.angle for v in chairs[0].views]:
            extra = sorted(set(angles) ^ {v.angle for v in chairs[0].views})
            raise DataError(f"{renders} does not hold the same views as {chairs[0].name} "
                            f"(differing (elevation, azimuth, distance): {extra[:3]}); every chair must be "
                            f"rendered from the same angles")
        chairs.append(chair)
    return chairs


def preprocess_image(path: Path, *, source_size: int = 600, crop_size: int = 400,
                     frame_size: int = 64) -> np.ndarray:
    """One render as uint8 (3, frame_size, frame_size): RGB, centre crop, Lanczos resize (Pillow)."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.size != (source_size, source_size):
                raise DataError(f"{path}: image of {im.size[0]}×{im.size[1]} pixels; expected "
                                f"{source_size}×{source_size} (data.source_size)")
            if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                rgb = Image.new("RGB", rgba.size, (255, 255, 255))
                rgb.paste(rgba, mask=rgba.getchannel("A"))
            else:
                rgb = im.convert("RGB")
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError) as err:
        raise DataError(f"{path} is not a readable PNG ({err}); extract it again from {ARCHIVE}.tar"
                        ) from None
    lo = (source_size - crop_size) // 2
    small = rgb.crop((lo, lo, lo + crop_size, lo + crop_size)).resize((frame_size, frame_size),
                                                                      Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.uint8).transpose(2, 0, 1)


# -------------------------------------------------------------------------------------------- the cache
def _fingerprint(chairs: list[Chair], settings: dict) -> str:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for chair in chairs:
        for path in chair.files:
            st = path.stat()
            digest.update(f"{chair.name}/{path.name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _read_cache(npy: Path, meta_path: Path, fingerprint: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached frames if the cache is complete and matches the source; None if absent or stale."""
    if not npy.is_file() or not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        frames = np.load(npy, mmap_mode="r")
    except (OSError, ValueError, EOFError, UnicodeDecodeError) as err:
        warnings.warn(f"{npy} or its .json is corrupt ({err}); rebuilding the chairs cache", stacklevel=3)
        return None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("fingerprint") != fingerprint:
        return None
    if frames.dtype != np.uint8 or frames.shape != shape:
        warnings.warn(f"{npy} holds {frames.dtype} {frames.shape}, expected uint8 {shape}; rebuilding",
                      stacklevel=3)
        return None
    return frames


def load_frames(root: str | Path | None, *, cache_dir: str | Path | None = None, source_size: int = 600,
                crop_size: int = 400, frame_size: int = 64, views_per_chair: int | None = 62,
                workers: int | None = None, progress: bool = True) -> tuple[np.ndarray, dict]:
    """Preprocessed frames uint8 (chairs, views, 3, S, S) in view order, and the cache's metadata.

    Reads the cache when it matches the archive, else preprocesses every render in ``workers`` threads
    (Pillow decodes and resizes without holding the GIL) and writes the cache atomically.
    """
    folder = archive_folder(root)
    chairs = scan_archive(folder, views_per_chair)
    sizes = {"source_size": source_size, "crop_size": crop_size, "frame_size": frame_size}
    fingerprint = _fingerprint(chairs, {"version": FORMAT_VERSION, **sizes})
    shape = (len(chairs), len(chairs[0].views), 3, frame_size, frame_size)
    cache = Path(cache_dir).expanduser() if cache_dir else folder
    stem = f"varsep-chairs-c{crop_size}-{frame_size}px"
    npy, meta_path = cache / f"{stem}.npy", cache / f"{stem}.json"
    meta = {"format": FORMAT, "version": FORMAT_VERSION, **sizes, "fingerprint": fingerprint,
            "source": str(folder), "chairs": [c.name for c in chairs],
            "views": [v._asdict() for v in chairs[0].views], "shape": list(shape)}
    frames = _read_cache(npy, meta_path, fingerprint, shape)
    if frames is not None:
        return frames, meta
    try:
        cache.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{stem}.", suffix=".tmp", dir=cache)
        os.close(fd)
    except OSError as err:
        raise DataError(f"cannot write the chairs cache in {cache} ({err}); set data.cache_dir to a "
                        f"writable folder") from None
    tmp = Path(tmp_name)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        _preprocess_all(chairs, out, sizes, workers or min(8, os.cpu_count() or 1), progress)
        out.flush()
        del out
        with contextlib.suppress(FileNotFoundError):
            meta_path.unlink()  # no metadata until the new frames are in place: a crash leaves no stale pair
        os.replace(tmp, npy)
        meta_tmp = meta_path.with_name(f".{meta_path.name}.tmp")
        meta_tmp.write_text(json.dumps(meta, indent=1))
        os.replace(meta_tmp, meta_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return np.load(npy, mmap_mode="r"), meta


def _preprocess_all(chairs: list[Chair], out: np.ndarray, sizes: dict, workers: int, progress: bool) -> None:
    """Fill ``out[i]`` with chair i's preprocessed views, a few chairs per thread in flight at a time."""

    def one_chair(chair: Chair) -> np.ndarray:
        return np.stack([preprocess_image(p, **sizes) for p in chair.files])

    pool = ThreadPoolExecutor(workers)
    try:
        with tqdm(total=len(chairs), desc="Chairs: preprocessing", unit="chair", disable=not progress) as bar:
            block = 4 * workers  # bounds the memory held by finished chairs waiting for their turn
            for lo in range(0, len(chairs), block):
                for i, chair_frames in enumerate(pool.map(one_chair, chairs[lo:lo + block]), start=lo):
                    out[i] = chair_frames
                    bar.update(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on an error, do not preprocess the rest first
