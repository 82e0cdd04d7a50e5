import typing

import pytest

from tests.conftest import PIPELINES
from tfnlp.config import (
    LANGUAGE_MODEL_NAMES,
    SAFE_NAME,
    ConfigError,
    FieldError,
    ModelConfig,
    PipelineConfig,
    from_dict,
    load_pipeline,
    to_dict,
)


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_every_shipped_pipeline_validates(path):
    config = load_pipeline(path)
    assert isinstance(config, PipelineConfig)
    assert config.name == path.stem


def test_default_pipeline_values():
    config = load_pipeline("pipelines/tweets_bilstm.yaml")
    assert config.model.name == "bilstm"
    assert config.data.source == "tweets"
    assert config.export.dir == "saved_models"
    assert config.distribute.strategy == "auto"
    assert config.precision.policy == "float32"


def test_overrides_are_parsed_as_yaml_and_validated():
    config = load_pipeline(
        "pipelines/tweets_bilstm.yaml",
        [
            "train.epochs=3",
            "data.limit=100",
            "precision.policy=mixed_bfloat16",
            "data.labels=[negative, neutral, positive]",
        ],
    )
    assert config.train.epochs == 3
    assert config.data.limit == 100
    assert config.precision.policy == "mixed_bfloat16"
    assert config.data.labels == ["negative", "neutral", "positive"]


@pytest.mark.parametrize("written, value", [("1e-4", 1e-4), ("2E-3", 2e-3), (".5e-1", 0.05),
                                            ("+1.0e-4", 1e-4)])
def test_exponent_floats_without_a_dot_are_floats(tmp_path, written, value):
    # PyYAML alone reads `1e-4` as the string "1e-4".
    config = load_pipeline("pipelines/tweets_bilstm.yaml", [f"train.learning_rate={written}"])
    assert config.train.learning_rate == value
    path = tmp_path / "p.yaml"
    path.write_text(f"name: p\ntrain:\n  learning_rate: {written}\n")
    assert load_pipeline(path).train.learning_rate == value


def test_round_trip_through_plain_data():
    config = load_pipeline("pipelines/tweets_transformer.yaml")
    assert from_dict(to_dict(config)) == config


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "name: x\ntrain:\n  epoch: 3\n",
            r"unknown key `train.epoch`. Did you mean `train.epochs`",
        ),
        (
            "name: x\ntrain:\n  epochs: three\n",
            r"`train.epochs` must be an integer. Received: train.epochs='three'",
        ),
        ("name: x\ntrain:\n  epochs: 0\n", r"`train.epochs` must be >= 1"),
        (
            "name: x\nmodel:\n  name: gru\n",
            r"`model.name` must be one of 'lstm', 'bilstm', 'transformer'",
        ),
        ("name: x\nmodel:\n  dropout: 1.5\n", r"`model.dropout` must be between 0.0 and 0.99"),
        ("name: x\ndata: [1, 2]\n", r"`data` must be a mapping"),
        ("name: x\nmodle:\n  name: lstm\n", r"Did you mean `model`"),
        ("- just\n- a list\n", r"top level must be a mapping"),
        ("name: !!python/object/apply:os.system ['echo pwned']\n", r"not valid YAML"),
        ("name: [unclosed\n", r"not valid YAML"),
        ("name: ../../etc\n", r"`name` must be letters, digits"),
        ("name: /abs\n", r"`name` must be letters, digits"),
        ("name: ok\nexport:\n  name: ../x\n", r"`export.name` must be letters, digits"),
        ("name: x\ndata:\n  test_files: t-*\n", r"`data.test_files` must be null unless the "
         "data is streamed"),
        ("name: x\ntask: language_model\nmodel:\n  name: lstm\ndata:\n  source: a-*.txt\n",
         r"`data.source` must be one file or a built-in dataset for `task: language_model`"),
    ],
)
def test_bad_files_name_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as error:
        load_pipeline(path)
    assert str(path) in str(error.value)


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="expected key.path=value"):
        load_pipeline("pipelines/tweets_bilstm.yaml", ["train.epochs"])


def test_missing_file():
    with pytest.raises(ConfigError, match="cannot read the pipeline file"):
        load_pipeline("pipelines/does_not_exist.yaml")


BILSTM = "pipelines/tweets_bilstm.yaml"
LM = "pipelines/tweets_lm.yaml"
_SAFE = "letters, digits, '.', '_' or '-' (not starting with '.' or '-'), at most 128 characters"
_M_BY_N = "two integers [m, n] with 0 < m < n, e.g. [2, 4]"


# One case per rule: the pipeline, the overrides that break it, the exact message after "<file>: ".
# fmt: off
@pytest.mark.parametrize("path, overrides, message", [
    (BILSTM, ["seed=-1"], "`seed` must be >= 0. Received: seed=-1."),
    (BILSTM, ["data.limit=0"], "`data.limit` must be >= 1. Received: data.limit=0."),
    (BILSTM, ["data.test_fraction=1.5"],
     "`data.test_fraction` must be between 0.0 and 1.0. Received: data.test_fraction=1.5."),
    (BILSTM, ["data.validation_fraction=0.5", "data.test_fraction=0.5"],
     "`data.test_fraction` must be below 1 - `data.validation_fraction` = 0.5, so that some data "
     "is left to train on. Received: data.test_fraction=0.5."),
    (BILSTM, ["preprocessing.vocab_size=15"],
     "`preprocessing.vocab_size` must be >= 16. Received: preprocessing.vocab_size=15."),
    (BILSTM, ["model.dropout=1.0"],
     "`model.dropout` must be between 0.0 and 0.99. Received: model.dropout=1.0."),
    (BILSTM, ["model.name=transformer", "model.embedding_dim=30"],
     "`model.embedding_dim` must be a multiple of `model.num_heads` (4) for "
     "`model.name: transformer`, e.g. 32. Received: model.embedding_dim=30."),
    (BILSTM, ["train.learning_rate=0"],
     "`train.learning_rate` must be between 1e-08 and 10.0. Received: train.learning_rate=0.0."),
    (BILSTM, ["distribute.cpu_replicas=65"],
     "`distribute.cpu_replicas` must be between 1 and 64. Received: distribute.cpu_replicas=65."),
    (BILSTM, ["export.version=0"], "`export.version` must be >= 1. Received: export.version=0."),
    (BILSTM, ["export.name=.hidden"],
     f"`export.name` must be {_SAFE}. Received: export.name='.hidden'."),
    (BILSTM, ["name=a/b"], f"`name` must be {_SAFE}. Received: name='a/b'."),
    (BILSTM, ["compression.m_by_n=[4, 2]"],
     f"`compression.m_by_n` must be {_M_BY_N}. Received: compression.m_by_n=[4, 2]."),
    (BILSTM, ["compression.m_by_n=[2, 4, 8]"],
     f"`compression.m_by_n` must be {_M_BY_N}. Received: compression.m_by_n=[2, 4, 8]."),
    (BILSTM, ["compression.m_by_n=[0, 4]"],
     f"`compression.m_by_n` must be {_M_BY_N}. Received: compression.m_by_n=[0, 4]."),
    (BILSTM, ["compression.number_of_clusters=1"],
     "`compression.number_of_clusters` must be between 2 and 256. "
     "Received: compression.number_of_clusters=1."),
    (LM, ["model.name=bilstm"],
     "`model.name` must be 'lstm' or 'transformer' for `task: language_model`. "
     "Received: model.name='bilstm'."),
    (LM, ["language_model.sequence_length=1"],
     "`language_model.sequence_length` must be >= 2. Received: language_model.sequence_length=1."),
    (BILSTM, ["model.name=transformer", "model.unroll=true"],
     "`model.unroll` must be false unless `task: classification` with `model.name` lstm or "
     "bilstm (only their LSTMs unroll). Received: model.unroll=True."),
    (BILSTM, ["train.jit_compile=true"],
     "`train.jit_compile` must be false unless `preprocessing.in_dataset: true` (XLA cannot "
     "compile the string ops of tokenizing inside the model). Received: train.jit_compile=True."),
    (BILSTM, ["model.unroll=true", "model.num_layers=2"],
     "`model.unroll` must be false for a bilstm of more than one layer (tf-keras zeroes the "
     "unrolled backward LSTM's real steps between layers). Received: model.unroll=True."),
])
# fmt: on
def test_invalid_values_give_the_exact_message(path, overrides, message):
    with pytest.raises(ConfigError) as error:
        load_pipeline(path, overrides)
    assert str(error.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    "path, overrides",
    [
        (LM, ["language_model.stride=256"]),  # skips tokens; build_windows accepts it
        (BILSTM, ["model.name=transformer", "model.num_heads=8", "model.embedding_dim=64"]),
        (BILSTM, ["data.validation_fraction=0.0", "data.test_fraction=0.0"]),
        (BILSTM, ["compression.m_by_n=[1, 2]", "export.version=auto", "export.name=v1.2-b"]),
        (BILSTM, ["model.unroll=true", "preprocessing.in_dataset=true", "train.jit_compile=true"]),
    ],
)
def test_valid_edge_values_load(path, overrides):
    assert isinstance(load_pipeline(path, overrides), PipelineConfig)


def test_safe_name_is_one_exact_component():
    for name in ("tweets_bilstm", "v1.2-b", "A" * 128):
        assert SAFE_NAME.match(name)
    for name in ("", ".", "..", "-x", "a/b", "a\\b", "A" * 129, "ok\n"):
        assert not SAFE_NAME.match(name), name


def test_language_model_names_are_model_names():
    names = typing.get_args(typing.get_type_hints(ModelConfig)["name"])
    assert set(LANGUAGE_MODEL_NAMES) <= set(names)


def test_configs_built_in_code_validate_without_a_file():
    config = PipelineConfig(name="demo", model=ModelConfig(name="transformer", num_heads=3))
    with pytest.raises(FieldError) as error:
        config.validate()
    assert (error.value.key, error.value.value) == ("model.embedding_dim", 128)
    PipelineConfig(name="demo").validate()
