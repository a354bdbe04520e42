"""Load OpenSTL's recurrent model classes from a local source checkout, for equivalence tests only.

The model files need just torch, but ``import openstl`` pulls in every method (timm, Lightning, …). So this
builds a throw-away ``openstl`` / ``openstl.modules`` package in ``sys.modules`` holding only the recurrent cells,
then executes OpenSTL's own model files against it. Nothing is copied; the source is read where it lies
(``$VARSEP_OPENSTL_ROOT``, default /work/research/chengtan9907+OpenSTL). Returns None when it is not there.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(os.environ.get("VARSEP_OPENSTL_ROOT", "/work/research/chengtan9907+OpenSTL"))
_CELLS = ("convlstm_modules", "predrnn_modules", "predrnnv2_modules", "predrnnpp_modules", "mim_modules")
_MODELS = ("convlstm_model", "predrnn_model", "predrnnv2_model", "predrnnpp_model", "mim_model")
_PACKAGE = "_openstl_reference"


def _exec(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load() -> SimpleNamespace | None:
    """OpenSTL's ConvLSTM_Model, PredRNN_Model, PredRNNv2_Model, PredRNNpp_Model, MIM_Model and the
    ``predrnn_utils`` functions (reshape_patch, schedule_sampling, reserve_schedule_sampling_exp), or None."""
    src = ROOT / "openstl"
    cells = all((src / "modules" / f"{m}.py").is_file() for m in _CELLS)
    if not (src / "utils" / "predrnn_utils.py").is_file() or not cells or \
            not all((src / "models" / f"{m}.py").is_file() for m in _MODELS):
        return None
    saved = {k: sys.modules.get(k) for k in ("openstl", "openstl.modules")}
    try:
        package = types.ModuleType("openstl")
        package.__path__ = []
        cells = types.ModuleType("openstl.modules")
        sys.modules["openstl"], sys.modules["openstl.modules"] = package, cells
        for m in _CELLS:
            module = _exec(f"{_PACKAGE}.{m}", src / "modules" / f"{m}.py")
            for k, v in vars(module).items():
                if isinstance(v, type):
                    setattr(cells, k, v)
        out = {}
        for m in _MODELS:
            module = _exec(f"{_PACKAGE}.{m}", src / "models" / f"{m}.py")
            out.update({k: v for k, v in vars(module).items() if k.endswith("_Model")})
        utils = _exec(f"{_PACKAGE}.predrnn_utils", src / "utils" / "predrnn_utils.py")
        for k in ("reshape_patch", "reshape_patch_back", "schedule_sampling", "reserve_schedule_sampling_exp"):
            out[k] = getattr(utils, k)
        return SimpleNamespace(**out)
    except (ImportError, AttributeError, SyntaxError, TypeError, NameError):  # incompatible checkout: skip
        return None
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def configs(frame_shape: tuple[int, int, int], cond_frames: int, horizon: int, *, patch_size: int,
            filter_size: int = 5, layer_norm: int = 0, reverse: int = 0, **extra: Any) -> SimpleNamespace:
    """The ``configs`` namespace OpenSTL's models read."""
    c, h, w = frame_shape
    return SimpleNamespace(in_shape=(cond_frames, c, h, w), patch_size=patch_size, filter_size=filter_size,
                           stride=1, layer_norm=layer_norm, pre_seq_length=cond_frames, aft_seq_length=horizon,
                           total_length=cond_frames + horizon, reverse_scheduled_sampling=reverse, device="cpu",
                           **extra)
