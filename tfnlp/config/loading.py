"""Load a pipeline YAML file into a validated `PipelineConfig`.

YAML is read with `yaml.safe_load` (a `!!python/...` tag is refused), unknown keys get a
"did you mean" suggestion, and every error starts with the file and the key path.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from tfnlp.config.schema import FieldError, PipelineConfig, shown


class ConfigError(ValueError):
    """A pipeline file or override that does not match the schema."""


def load_pipeline(path: str | Path, overrides: typing.Sequence[str] = ()) -> PipelineConfig:
    """Reads, overrides and validates a pipeline file.

    Args:
        path: the YAML pipeline file.
        overrides: `key.path=value` strings (values parsed as YAML), applied before validation.

    Returns:
        The frozen `PipelineConfig`.

    Raises:
        ConfigError: naming the file and key path of the first problem, and how to fix it.

    Example:
        >>> config = load_pipeline("pipelines/tweets_bilstm.yaml", ["train.epochs=1"])
        >>> config.name, config.model.name, config.train.epochs
        ('tweets_bilstm', 'bilstm', 1)
        >>> load_pipeline("pipelines/tweets_bilstm.yaml", ["model.dropout=1.5"])
        Traceback (most recent call last):
        ...
        tfnlp.config.loading.ConfigError: pipelines/tweets_bilstm.yaml: `model.dropout` must be
        between 0.0 and 0.99. Received: model.dropout=1.5.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the pipeline file ({error.strerror}).") from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8."
        ) from None
    try:
        raw = yaml.safe_load(text)
    except (RecursionError, ValueError) as error:  # PyYAML lets these through
        raise ConfigError(f"{path}: {_unreadable(error)}.") from None
    except yaml.YAMLError as error:
        raise ConfigError(
            f"{path}: not valid YAML (only plain YAML is accepted): {error}"
        ) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections.")
    raw.setdefault("name", path.stem)
    for override in overrides:
        apply_override(raw, override, source=str(path))
    return from_dict(raw, source=str(path))


def apply_override(raw: dict, override: str, source: str = "--set") -> None:
    """Sets `key.path=value` in a raw config mapping (the value is parsed as YAML).

    Example:
        >>> raw = {"train": {"epochs": 8}}
        >>> apply_override(raw, "train.epochs=3")
        >>> apply_override(raw, "data.labels=[negative, positive]")
        >>> raw
        {'train': {'epochs': 3}, 'data': {'labels': ['negative', 'positive']}}
    """
    key, sep, value = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"--set {override!r}: expected key.path=value, e.g. --set train.epochs=3."
        )
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    except (RecursionError, ValueError) as error:
        raise ConfigError(f"{source}: --set {key}: {_unreadable(error)}.") from None
    node = raw
    parts = key.strip().split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: --set {key}: `{part}` is not a section.")
        node = child
    node[parts[-1]] = parsed


def _unreadable(error: RecursionError | ValueError) -> str:
    """Why PyYAML could not build a value: nesting past Python's recursion limit, or an
    integer past its 4,300-digit conversion limit."""
    if isinstance(error, RecursionError):
        return "the value nests too deeply to read (keep it under a few hundred levels)"
    return f"a value cannot be read ({shown(str(error))})"


def from_dict(raw: dict, source: str = "<config>") -> PipelineConfig:
    """Builds a validated `PipelineConfig` from plain mappings (e.g. a run's config.yaml).

    Example:
        >>> from_dict({"name": "demo", "train": {"epochs": 2}}).train.epochs
        2
        >>> from_dict({"name": "demo", "task": "language_model", "model": {"name": "bilstm"}})
        Traceback (most recent call last):
        ...
        tfnlp.config.loading.ConfigError: <config>: `model.name` must be 'lstm' or 'transformer'
        for `task: language_model`. Received: model.name='bilstm'.
    """
    config = _build(PipelineConfig, raw, source, "")
    try:
        config.validate()
    except FieldError as error:
        raise ConfigError(f"{source}: {error}") from None
    return config


def to_dict(config: PipelineConfig) -> dict[str, Any]:
    """The config as plain data, ready for `yaml.safe_dump`.

    Example:
        >>> to_dict(from_dict({"name": "demo"}))["train"]["epochs"]
        8
    """
    return dataclasses.asdict(config)


def _build(cls, raw: Any, source: str, prefix: str):
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: `{prefix.rstrip('.') or 'top level'}` must be a mapping.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" Did you mean `{prefix}{close[0]}`?" if close else ""
            raise ConfigError(
                f"{source}: unknown key `{prefix}{key}`.{hint} Known keys here: {', '.join(names)}."
            )
    values = {}
    for f in dataclasses.fields(cls):
        key_path = prefix + f.name
        if f.name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{source}: missing required key `{key_path}`.")
            continue
        values[f.name] = _coerce(hints[f.name], raw[f.name], source, key_path)
    return cls(**values)


def _optional_section(hint):
    """The section class of an optional section (`MeshConfig | None`), else None."""
    if typing.get_origin(hint) not in (Union, types.UnionType):
        return None
    sections = [option for option in typing.get_args(hint) if dataclasses.is_dataclass(option)]
    return sections[0] if len(sections) == 1 else None


def _coerce(hint, value, source: str, key_path: str):
    section = _optional_section(hint)
    if section is not None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: `{key_path}` must be a mapping or null. "
                              f"Received: {key_path}={shown(value)}.")
        hint = section
    if dataclasses.is_dataclass(hint):
        return _build(hint, value if value is not None else {}, source, key_path + ".")
    checked = _check_type(hint, value)
    if checked is _INVALID:
        raise ConfigError(
            f"{source}: `{key_path}` must be {_describe(hint)}. "
            f"Received: {key_path}={shown(value)}."
        )
    return checked


_INVALID = object()
# PyYAML (YAML 1.1) reads `1e-4` as a string: it wants a dot (`1.0e-4`). YAML 1.2 and every
# user mean a float, so a float field takes it as one.
_EXPONENT_FLOAT = re.compile(r"\A[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+\Z")


def _check_type(hint, value):
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        for option in typing.get_args(hint):
            result = _check_type(option, value)
            if result is not _INVALID:
                return result
        return _INVALID
    if origin is Literal:
        return value if value in typing.get_args(hint) else _INVALID
    if origin is list:
        if not isinstance(value, list):
            return _INVALID
        (item,) = typing.get_args(hint)
        items = [_check_type(item, v) for v in value]
        return _INVALID if any(i is _INVALID for i in items) else items
    if origin is dict:
        if not isinstance(value, dict):
            return _INVALID
        key_hint, value_hint = typing.get_args(hint)
        pairs = [(_check_type(key_hint, k), _check_type(value_hint, v)) for k, v in value.items()]
        return _INVALID if any(_INVALID in pair for pair in pairs) else dict(pairs)
    if hint is type(None):
        return None if value is None else _INVALID
    if hint is bool:
        return value if isinstance(value, bool) else _INVALID
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _INVALID
    if hint is float:
        if isinstance(value, str) and _EXPONENT_FLOAT.match(value):
            value = float(value)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        try:
            return float(value) if ok else _INVALID
        except OverflowError:  # an integer beyond float's range
            return _INVALID
    if hint is str:
        return value if isinstance(value, str) else _INVALID
    return _INVALID


def _describe(hint) -> str:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(option) for option in typing.get_args(hint))
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(hint))
    if origin is list:
        return f"a list of {_describe(typing.get_args(hint)[0])}"
    if origin is dict:
        key_hint, value_hint = typing.get_args(hint)
        return f"a mapping of {_describe(key_hint)} to {_describe(value_hint)}"
    if hint is type(None):
        return "null"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        hint, str(hint)
    )
