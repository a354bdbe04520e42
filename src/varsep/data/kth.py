"""KTH human actions (Schüldt et al. 2004; paper Appendix F.2, docs/data/kth.md).

The paper "follows the same dataset processing and evaluation procedure as Denton & Fergus (2018)" (SVG):
videos of 25 persons doing 6 actions (boxing, handclapping, handwaving, jogging, running, walking) in 4
scenarios d1…d4, turned into 64×64 grey frames; persons 1–16 train, 17–25 test; 10 conditioning frames,
10 predicted in training and 30 at test.

Layout read (SVG's processed KTH): ``processed/<action>/person<NN>_<action>_d<K>/<frame>.png``.
``data.root`` may point at the folder holding ``processed/`` or at ``processed/`` itself. Each video folder
is one sequence; its frames are ordered by natural sort of the file names (``image-2`` before
``image-10``), never lexicographically. Files that are not PNG (e.g. SVG's ``*.t7`` index files) are
ignored; a folder whose name does not follow the pattern is an error, so no video is silently left out.

Frames are converted to one grey channel (Pillow's ``L`` mode) and kept as uint8 in one array (about 1.1 GB
for the whole of KTH), scaled to [0, 1] as windows are taken. They must be 64×64 like SVG's processed
frames; ``data.resize: true`` instead squeezes frames of any size to 64×64 with a Lanczos filter (the
way SVG made them from the 160×120 videos).

Splits: persons 1–16 train and 17–25 test (``data.test_persons``); validation holds out training persons
``data.val_persons`` (default: person 16), so validation and training never share a person, as in the
test split. Windows lie inside one video. Training windows are drawn uniformly among all windows of the
training videos (SVG draws a video, then a start; longer videos weigh a little more here); an epoch is
1000 batches of 100, the paper's 100 000 sequences. Test and validation windows start every
``test_stride`` / ``val_stride`` frames of each video (every start would give ~10⁵ overlapping windows).
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from varsep.config.datasets import KTHConfig
from varsep.data.base import SequenceDataset, SetSource, WindowSet, WindowSource
from varsep.data.files import natural_key
from varsep.data.windows import SpanWindows
from varsep.errors import DataError
from varsep.spec import DataSpec

ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
SIZE = 64
VIDEO_NAME = re.compile(r"^person(\d+)_([a-z]+)_d(\d+)$", re.IGNORECASE)
LAYOUT = "processed/<action>/personNN_<action>_dK/*.png"


@dataclass(frozen=True)
class Video:
    """One video folder: its person, action, scenario and frame files in order."""

    path: Path
    person: int
    action: str
    scenario: int
    frames: tuple[Path, ...]

    @property
    def name(self) -> str:
        return self.path.name


def find_processed(root: str | Path | None) -> Path:
    """The ``processed`` folder from ``data.root`` (the folder holding it, or the folder itself)."""
    if root is None:
        raise DataError(f"data.root is not set for KTH; point it at the folder holding {LAYOUT}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"KTH folder {root} does not exist; expected the layout {LAYOUT}")
    if (root / "processed").is_dir():
        return root / "processed"
    if any((root / a).is_dir() for a in ACTIONS) or root.name == "processed":
        return root
    raise DataError(f"{root} holds no KTH data: expected {root / 'processed'} or action folders "
                    f"({', '.join(ACTIONS)}) laid out as {LAYOUT}")


def scan(processed: Path, actions: list[str] | None = None) -> list[Video]:
    """Every video folder under ``processed``, sorted by action, person and scenario."""
    action_dirs = sorted(p for p in processed.iterdir() if p.is_dir() and not p.name.startswith("."))
    if actions is not None:
        missing = [a for a in actions if not (processed / a).is_dir()]
        if missing:
            raise DataError(f"{processed}: action folder(s) {', '.join(missing)} missing; found "
                            f"{', '.join(p.name for p in action_dirs) or 'none'}")
        action_dirs = [processed / a for a in actions]
    if not action_dirs:
        raise DataError(f"{processed} is empty; expected action folders laid out as {LAYOUT}")
    videos = []
    for action_dir in action_dirs:
        entries = sorted((p for p in action_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
                         key=lambda p: natural_key(p.name))
        if not entries:
            raise DataError(f"{action_dir} holds no video folder; expected {action_dir}/personNN_"
                            f"{action_dir.name}_dK/*.png")
        for video_dir in entries:
            match = VIDEO_NAME.match(video_dir.name)
            if match is None:
                raise DataError(f"{video_dir}: folder name does not follow personNN_<action>_dK (e.g. "
                                f"person01_{action_dir.name}_d1)")
            if match.group(2).lower() != action_dir.name.lower():
                raise DataError(f"{video_dir}: a {match.group(2)} video inside the {action_dir.name} folder")
            frames = sorted((p for p in video_dir.iterdir() if p.suffix.lower() == ".png" and p.is_file()),
                            key=lambda p: natural_key(p.name))
            if not frames:
                raise DataError(f"{video_dir} holds no PNG frame")
            videos.append(Video(video_dir, int(match.group(1)), action_dir.name, int(match.group(3)),
                                tuple(frames)))
    return videos


def read_frame(path: Path, resize: bool) -> np.ndarray:
    """One frame as uint8 (64, 64) grey; DataError naming the file if it is corrupt or of the wrong size."""
    try:
        with Image.open(path) as img:
            img.load()
            grey = img.convert("L")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path} is not a readable PNG image ({err})") from None
    if grey.size != (SIZE, SIZE):
        if not resize:
            raise DataError(f"{path} is {grey.size[0]}×{grey.size[1]}; KTH frames must be {SIZE}×{SIZE} "
                            f"(set data.resize: true to resize them as they are read)")
        grey = grey.resize((SIZE, SIZE), Image.LANCZOS)
    return np.asarray(grey, dtype=np.uint8)


def load_frames(videos: list[Video], *, resize: bool, threads: int | None = None) -> np.ndarray:
    """All frames of ``videos`` back to back, (N, 1, 64, 64) uint8 (PNG decoding in a thread pool)."""
    lengths = [len(v.frames) for v in videos]
    out = np.empty((sum(lengths), 1, SIZE, SIZE), dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum(lengths)])

    def fill(i: int) -> None:
        for k, path in enumerate(videos[i].frames):
            out[offsets[i] + k, 0] = read_frame(path, resize)

    workers = threads or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool, tqdm(total=len(videos), desc="KTH", unit="video",
                                                   disable=None if len(videos) > 50 else True) as bar:
        for _ in pool.map(fill, range(len(videos))):
            bar.update()
    return out


class KTHDataset(SequenceDataset):
    """64×64 grey videos of people boxing, clapping, waving, jogging, running and walking."""

    config_class = KTHConfig
    default_encoder = "vgg64_skip"
    default_decoder = "vgg64_skip"
    default_batches_per_epoch = 1000  # 100 000 sequences of batch 100 (Appendix F.2)
    nominal_frame_shape = (1, SIZE, SIZE)

    def __init__(self, config: KTHConfig) -> None:
        super().__init__(config)
        self.root = find_processed(config.root)
        wanted = set(config.train_persons) | set(config.test_persons)
        self.videos = [v for v in scan(self.root, config.actions) if v.person in wanted]
        self.frames = load_frames(self.videos, resize=config.resize)
        lengths = np.array([len(v.frames) for v in self.videos], dtype=np.int64)
        ends = np.cumsum(lengths)
        self.bounds = list(zip((ends - lengths).tolist(), ends.tolist(), strict=True))
        val, test = set(config.val_persons), set(config.test_persons)
        train = set(config.train_persons) - val
        self.split = {
            "train": [i for i, v in enumerate(self.videos) if v.person in train],
            "val": [i for i, v in enumerate(self.videos) if v.person in val],
            "test": [i for i, v in enumerate(self.videos) if v.person in test],
        }
        for part, persons in (("train", train), ("test", test)):
            if not self.split[part]:
                raise DataError(f"{self.root}: no video of the {part} persons {sorted(persons)}")
        self.require_windows(str(self.root), train_part="any training video", test_part="any test video")

    @property
    def spec(self) -> DataSpec:
        return self.make_spec((1, SIZE, SIZE))

    def _windows(self, part: str, length: int, stride: int = 1) -> SpanWindows:
        ids = self.split[part]
        return SpanWindows.over_segments(self.frames, [self.bounds[i] for i in ids], length, stride=stride,
                                         scale=1 / 255, names=[self.videos[i].name for i in ids])

    def train_source(self) -> WindowSource:
        return SetSource(self._windows("train", self.spec.train_length))

    def val_windows(self) -> WindowSet:
        length = self.window_length(max(self.config.test_horizons))
        return self._windows("val", length, self.config.val_stride)

    def test_windows(self, horizon: int) -> WindowSet:
        return self._windows("test", self.window_length(horizon), self.config.test_stride)
