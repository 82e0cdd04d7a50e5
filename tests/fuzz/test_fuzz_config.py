"""Property tests of the pipeline loader (`load_pipeline`) and the `--set` parser.

Whatever the file or the override holds (arbitrary text or bytes, deep nesting, numbers too
big for a float or for int(str)), the result is a valid `PipelineConfig` or a `ConfigError`
whose message starts with the file (or `--set` for a malformed override). Any other exception
(RecursionError, OverflowError, UnicodeDecodeError, a bare ValueError) fails the test: the
CLI turns only the project's errors into a one-line message.
"""

import dataclasses
import json
import math
import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.strategies import DEPTH, DIGITS, FUZZ, RAW_BYTES, TEXT
from tfnlp.config import ConfigError, PipelineConfig, apply_override, load_pipeline


def key_paths(cls, prefix=""):
    """Every key path of the schema ("train", "train.epochs", ...)."""
    paths = []
    for name, hint in typing.get_type_hints(cls).items():
        paths.append(prefix + name)
        if dataclasses.is_dataclass(hint):
            paths += key_paths(hint, f"{prefix}{name}.")
    return paths


KEYS = key_paths(PipelineConfig)
# A YAML scalar or flow value, as text: the shapes that reach the type checks and the
# parser's limits, not only what a random string would.
YAML_VALUE = st.one_of(
    st.integers().map(str),
    st.floats().map(lambda x: f"{x:.17e}" if math.isfinite(x) else str(x)),
    st.sampled_from(["true", "null", "~", ".nan", "-.inf", "auto", "[]", "{}", "''", "0o17",
                     "1_000", "0x_ff", "1e-4", "2001-01-01", "!!binary aGk=", "[1, [2]]",
                     "{stable: 1}", "!!python/object:os.system", "*nope", "&a [*a]", "- a"]),
    DIGITS.map(lambda digits: "9" * digits),
    DIGITS.map(lambda digits: "0x" + "f" * digits),
    DIGITS.map(lambda digits: f"1.0e+{digits}"),
    DEPTH.map(lambda depth: "[" * depth + "]" * depth),
    DEPTH.map(lambda depth: "{a: " * depth + "1" + "}" * depth),
    TEXT.map(json.dumps),
    TEXT,
)
KEY = st.one_of(st.sampled_from(KEYS), TEXT)
OVERRIDE = st.one_of(
    st.builds(lambda key, value: f"{key}={value}", KEY, YAML_VALUE),
    TEXT,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    # One folder for the module: each example overwrites its file (see test_fuzz_readers).
    return tmp_path_factory.mktemp("fuzz_config")


def load_or_clear_error(path, overrides=()):
    """The config, or None after checking the error is a ConfigError naming the file."""
    try:
        config = load_pipeline(path, overrides)
    except ConfigError as error:
        message = str(error)
        assert message.startswith((f"{path}: ", "--set ")), message
        return None
    assert isinstance(config, PipelineConfig)
    return config


@FUZZ
@given(st.one_of(TEXT, st.text(max_size=2000)))
def test_any_text_file_is_a_config_or_a_clear_error(folder, text):
    path = folder / "text.yaml"
    path.write_text(text, encoding="utf-8")
    load_or_clear_error(path)


@FUZZ
@given(RAW_BYTES)
def test_any_bytes_file_is_a_config_or_a_clear_error(folder, data):
    path = folder / "bytes.yaml"
    path.write_bytes(data)
    load_or_clear_error(path)


@FUZZ
@given(st.lists(st.tuples(KEY, YAML_VALUE), max_size=6))
def test_a_config_shaped_file_is_a_config_or_a_clear_error(folder, entries):
    # key.path: value lines nested as YAML blocks, so values reach the schema's type checks.
    path = folder / "shaped.yaml"
    lines = []
    for key, value in entries:
        *sections, last = key.split(".")
        lines += [f"{'  ' * depth}{section}:" for depth, section in enumerate(sections)]
        lines.append(f"{'  ' * len(sections)}{last}: {value}")
    path.write_text("\n".join(lines), encoding="utf-8")
    load_or_clear_error(path)


@FUZZ
@given(st.lists(OVERRIDE, min_size=1, max_size=4))
def test_any_override_is_a_config_or_a_clear_error(folder, overrides):
    path = folder / "base.yaml"
    path.write_text("name: fuzz\n", encoding="utf-8")
    load_or_clear_error(path, overrides)


@FUZZ
@given(OVERRIDE)
def test_apply_override_sets_the_key_or_raises_a_clear_error(override):
    raw = {"train": {"epochs": 3}, "name": "fuzz"}
    try:
        apply_override(raw, override, source="pipeline.yaml")
    except ConfigError as error:
        assert str(error).startswith(("pipeline.yaml: --set ", "--set ")), str(error)
        return
    # Set: the key path now leads to a value.
    node = raw
    for part in override.partition("=")[0].strip().split("."):
        assert isinstance(node, dict) and part in node, (override, raw)
        node = node[part]


def float_text(x: float) -> str:
    # PyYAML (YAML 1.1) reads a float only with a "." and a signed exponent: 1e-05 is a str.
    return f"{x:.17e}"


VALID = st.one_of(
    st.tuples(st.just("train.epochs"), st.integers(1, 10**30).map(lambda n: (str(n), n))),
    st.tuples(st.just("seed"), st.integers(0, 10**30).map(lambda n: (str(n), n))),
    st.tuples(st.just("model.dropout"), st.floats(0.0, 0.99).map(lambda x: (float_text(x), x))),
    st.tuples(st.just("train.learning_rate"),
              st.floats(1e-8, 10.0).map(lambda x: (float_text(x), x))),
    st.tuples(st.just("model.name"),
              st.sampled_from(["lstm", "bilstm", "transformer"]).map(lambda s: (s, s))),
    st.tuples(st.just("data.labels"),
              st.lists(st.from_regex(r"\A[a-z]{1,8}\Z"), max_size=4).map(
                  lambda labels: (json.dumps(labels), labels))),
    st.tuples(st.just("export.labels"),
              st.dictionaries(st.from_regex(r"\A[a-z][a-z0-9_-]{0,8}\Z"), st.integers(1, 99),
                              max_size=3).map(lambda labels: (json.dumps(labels), labels))),
)


@FUZZ
@given(VALID)
def test_a_valid_override_takes_effect(folder, drawn):
    key, (text, value) = drawn
    path = folder / "valid.yaml"
    path.write_text("name: fuzz\nmodel:\n  embedding_dim: 120\n  num_heads: 4\n",
                    encoding="utf-8")
    config = load_pipeline(path, [f"{key}={text}"])
    node = config
    for part in key.split("."):
        node = getattr(node, part)
    assert node == value


# The smallest inputs the targets above found leaking a bare Python exception, pinned so
# each fix is checked. Each must give a ConfigError that names the file.
def bomb(levels: int) -> str:
    """A few hundred bytes of YAML aliases that expand to 10**(levels + 1) strings."""
    items = ["&a0 [x, x, x, x, x, x, x, x, x, x]"] + [
        f"&a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return f"name: [{', '.join(items)}]\n"


@pytest.mark.parametrize("text, overrides", [
    pytest.param(b"name: \x80\n", [], id="invalid-utf8-file"),  # UnicodeDecodeError
    pytest.param("name: " + "[" * 1000 + "]" * 1000, [], id="deep-file"),  # RecursionError
    pytest.param("name: fuzz", ["model.units=" + "[" * 1000 + "]" * 1000],
                 id="deep-override"),  # RecursionError
    pytest.param("name: fuzz", ["seed=" + "9" * 4301], id="4301-digit-int"),  # ValueError
    pytest.param("name: fuzz", ["model.dropout=" + "9" * 309],
                 id="int-beyond-float"),  # OverflowError
    pytest.param("name: fuzz", ["name=0x" + "f" * 3600],
                 id="hex-int-in-message"),  # ValueError from repr() in the message
    pytest.param("name: fuzz", ["model.units=-0x" + "f" * 3600],
                 id="hex-int-in-field-error"),  # the same, from FieldError (schema.py)
])
def test_found_inputs_give_a_config_error(folder, text, overrides):
    path = folder / "found.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    assert load_or_clear_error(path, overrides) is None


def test_an_alias_bomb_gives_a_short_error(folder):
    # 323 bytes whose value's repr is 5.8 MB (one level more: 58 MB, then 580 MB, ...).
    path = folder / "bomb.yaml"
    path.write_text(bomb(5), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_pipeline(path)
    assert len(str(error.value)) < 10_000
