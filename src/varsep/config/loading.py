"""Reading configs: YAML files and packaged presets in, ``--section.key value`` overrides applied, a
validated :class:`~varsep.config.schema.RunConfig` out.

Why not LightningCLI/jsonargparse: the CLI has commands beyond fit/validate (generate, evaluate, demo, ablate,
report, predict, prepare) that share one config, the network shapes are derived from the data set at build
time rather than linked argument by argument, and we want typo suggestions and range checks in plain
language. The YAML layout and the override syntax follow LightningCLI's, so its users feel at home.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from varsep.config.datasets import DATA_CONFIGS
from varsep.config.schema import (
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainerConfig,
)
from varsep.errors import ConfigError
from varsep.guards import short_repr
from varsep.registry import suggest

PRESETS = Path(__file__).parent / "presets"
# A config holds a few hundred values; YAML aliases that expand past this many (a "billion laughs" file)
# are refused before anything walks the expanded value.
MAX_YAML_NODES = 100_000


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` merges are meant to be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                line = seen.get(key)
            except TypeError:  # an unhashable key: the base class explains it
                break
            if line is not None:
                raise ConfigError(f"{_source(self)}line {key_node.start_mark.line + 1}: the key {short_repr(key)} "
                                  f"is given twice (first on line {line}); keep one")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)



def _source(loader: yaml.SafeLoader) -> str:
    name = getattr(loader, "_varsep_source", None)
    return f"{name}: " if name else ""


def _count_nodes(node: yaml.Node, source: str) -> None:
    """Walk the composed document as its aliases expand it, stopping at MAX_YAML_NODES."""
    count = 0
    stack = [node]
    while stack:
        current = stack.pop()
        count += 1
        if count > MAX_YAML_NODES:
            raise ConfigError(f"{source}YAML aliases expand to more than {MAX_YAML_NODES:,} values; a config "
                              f"needs far fewer: write the values out instead of nesting aliases")
        if isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
        elif isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack.extend((key, value))


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's multi-line report as one line: where, what, and in what."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}" + (f" ({context})" if context else "")


def parse_yaml(text: str, source: str | None = None) -> Any:
    """YAML text → Python values: safe types only, duplicate keys and alias bombs refused (ConfigError)."""
    loader = _StrictLoader(text)
    loader._varsep_source = source
    prefix = f"{source}: " if source else ""
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _count_nodes(node, prefix)
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source + ' is not valid YAML' if source else 'not valid YAML'}: "
                          f"{_yaml_problem(err)}") from None
    finally:
        loader.dispose()


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a YAML/CLI value to the annotated type, or raise a ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {short_repr(value)} does not fit {tp}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        text = str(value) if not isinstance(value, bool) else value
        if text in allowed:
            return text
        raise ConfigError(f"{where} must be one of {', '.join(map(repr, allowed))}, got {short_repr(value)}."
                          f"{suggest(str(value), [str(a) for a in allowed])}")
    if origin is dict:
        if isinstance(value, str):
            value = parse_yaml(value, where)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{where} must be a mapping of settings (name: value), got {short_repr(value)}")
        return dict(value)
    if origin in (list, tuple):
        if isinstance(value, str):
            value = parse_yaml(value, where)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list, got {short_repr(value)}")
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise ConfigError(f"{where} must be true or false, got {short_repr(value)}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be an integer, got {short_repr(value)}")
        if isinstance(value, int):
            return value
        try:
            as_float = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{where} must be an integer, got {short_repr(value)}") from None
        if not math.isfinite(as_float) or not as_float.is_integer():
            raise ConfigError(f"{where} must be an integer, got {short_repr(value)}")
        return int(as_float)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be a number, got {short_repr(value)}")
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{where} must be a number, got {short_repr(value)}") from None
        if not math.isfinite(number):
            raise ConfigError(f"{where} must be a finite number, got {value}")
        return number
    if tp is str:
        if isinstance(value, dict | list):
            raise ConfigError(f"{where} must be a string, got {short_repr(value)}")
        return str(value)
    if tp is Any:
        return value
    raise TypeError(f"unsupported config type {tp} at {where}")


def _section_mapping(values: Any, where: str) -> dict[str, Any]:
    """A copy of section ``where``'s settings (an empty section is no settings), or a ConfigError."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"the {where} section must be a mapping of settings (key: value lines under "
                          f"{where}:), got {_kind(values)} {short_repr(values)}")
    return dict(values)


def build_section(cls: type, values: dict[str, Any] | None, where: str) -> Any:
    """Build dataclass ``cls`` from ``values``, rejecting unknown keys with the list of valid ones."""
    values = _section_mapping(values, where)
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in values if k not in valid]
    if unknown:
        key = str(unknown[0])
        shown = key if len(key) <= 60 else key[:57] + "…"
        raise ConfigError(f"unknown setting {where}.{shown}.{suggest(key, valid)} "
                          f"Valid keys of {where}: {', '.join(valid)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in values.items()}
    return cls(**kwargs)


def data_config_class(name: str) -> type[DataConfig]:
    """The DataConfig subclass of data set ``name`` (an unknown name lists the valid ones)."""
    return DATA_CONFIGS.get(name)


def config_from_dict(raw: dict[str, Any]) -> RunConfig:
    """A validated RunConfig from a nested mapping (a parsed YAML file with overrides applied)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping of sections (data:, model:, …), got {_kind(raw)}")
    sections = {"data": None, "model": ModelConfig, "loss": LossConfig, "optim": OptimConfig,
                "trainer": TrainerConfig}
    valid = [*sections, "seed"]
    for key in raw:
        if key not in valid:
            raise ConfigError(f"unknown config section {short_repr(key)}.{suggest(str(key), valid)} "
                              f"Valid sections: {', '.join(valid)}")
    data_raw = _section_mapping(raw.get("data"), "data")
    if "kind" in data_raw and "name" not in data_raw:
        data_raw["name"] = "custom"  # `data: {kind: array, path: …}` is the your-own-data loader
    data_name = str(data_raw.get("name", DataConfig.name))
    kwargs: dict[str, Any] = {"data": build_section(data_config_class(data_name), data_raw, "data")}
    for name, cls in sections.items():
        if cls is not None:
            kwargs[name] = build_section(cls, raw.get(name), name)
    kwargs["seed"] = _coerce(raw.get("seed", 0), int, "seed")
    config = RunConfig(**kwargs)
    config.validate()
    return config


def _kind(value: Any) -> str:
    return {list: "a list", tuple: "a list", str: "a string", int: "a number", float: "a number",
            bool: "true/false"}.get(type(value), type(value).__name__)


def resolve_config_path(path_or_name: str | Path) -> Path:
    """A config file path; a bare name like ``waveeq`` (or ``baselines/phydnet``) means the packaged
    ``configs/waveeq.yaml`` (``configs/baselines/phydnet.yaml``)."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, not a config file; give a YAML file or a packaged name "
                          f"(e.g. -c waveeq)")
    relative = path.parent.relative_to("configs") if path.parts[:1] == ("configs",) else path.parent
    packaged = PRESETS / relative / f"{path.stem if path.suffix in ('.yaml', '.yml') else path.name}.yaml"
    if path.suffix == "" and packaged.is_file():
        return packaged
    if not path.exists() and packaged.is_file():
        return packaged
    names = sorted(str(p.relative_to(PRESETS).with_suffix("")) for p in PRESETS.rglob("*.yaml"))
    raise ConfigError(f"config file {str(path)!r} not found. Packaged configs (usable by name): "
                      f"{', '.join(names)}.{suggest(path.stem, names)}")


def read_yaml(path: Path) -> dict[str, Any]:
    """A config file's mapping of sections; a file that is empty, binary, not YAML or not a mapping is a
    ConfigError saying which."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text file (a config is YAML text)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder, not a config file") from None
    except OSError as err:
        raise ConfigError(f"cannot read {path} ({err.strerror})") from None
    if "\x00" in text:
        raise ConfigError(f"{path} is not a text file (a config is YAML text)")
    raw = parse_yaml(text, str(path))
    if raw is None:
        raise ConfigError(f"{path} is empty; a config needs at least a data section (start from a packaged one, "
                          f"e.g. -c waveeq)")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of sections (data:, model:, loss:, optim:, trainer:, "
                          f"seed:), got {_kind(raw)}")
    return raw


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys (``{"model.s_dim": 16}``) in a nested mapping; values are parsed as YAML."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        node = raw
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"cannot set {dotted}: {part} is a value, not a section")
            node = child
        node[parts[-1]] = parse_yaml(value, f"--{dotted}") if isinstance(value, str) else value
    return raw


def parse_override_args(args: list[str]) -> dict[str, Any]:
    """Turn ``["--model.s_dim", "16", "--loss.lambda_ae=0"]`` into ``{"model.s_dim": "16", ...}``."""
    overrides: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or "." not in arg.split("=", 1)[0] and not arg.startswith("--seed"):
            raise ConfigError(f"unexpected argument {arg!r}; settings are given as --section.key value "
                              f"(for example --trainer.max_epochs 10)")
        key = arg[2:]
        if "=" in key:
            key, value = key.split("=", 1)
        else:
            if i + 1 >= len(args):
                raise ConfigError(f"{arg} needs a value")
            value = args[i + 1]
            i += 1
        overrides[key] = value
        i += 1
    return overrides


def load_config(path_or_name: str | Path | None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML config (file path or packaged name), apply dotted overrides, validate."""
    raw = read_yaml(resolve_config_path(path_or_name)) if path_or_name is not None else {}
    return config_from_dict(apply_overrides(raw, overrides or {}))
