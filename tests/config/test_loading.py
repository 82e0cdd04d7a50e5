import pytest

from tests.conftest import PIPELINES
from tfnlp.config import ConfigError, PipelineConfig, from_dict, load_pipeline, to_dict


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
        ["train.epochs=3", "data.limit=100", "precision.policy=mixed_bfloat16",
         "data.labels=[negative, neutral, positive]"],
    )
    assert config.train.epochs == 3
    assert config.data.limit == 100
    assert config.precision.policy == "mixed_bfloat16"
    assert config.data.labels == ["negative", "neutral", "positive"]


def test_round_trip_through_plain_data():
    config = load_pipeline("pipelines/tweets_transformer.yaml")
    assert from_dict(to_dict(config)) == config


@pytest.mark.parametrize(
    "text, message",
    [
        ("name: x\ntrain:\n  epoch: 3\n",
         r"unknown key `train.epoch`. Did you mean `train.epochs`"),
        ("name: x\ntrain:\n  epochs: three\n",
         r"`train.epochs` must be an integer. Received: train.epochs='three'"),
        ("name: x\ntrain:\n  epochs: 0\n", r"`train.epochs` must be >= 1"),
        ("name: x\nmodel:\n  name: gru\n",
         r"`model.name` must be one of 'lstm', 'bilstm', 'transformer'"),
        ("name: x\nmodel:\n  dropout: 1.5\n", r"`model.dropout` must be between 0.0 and 0.99"),
        ("name: x\ndata: [1, 2]\n", r"`data` must be a mapping"),
        ("name: x\nmodle:\n  name: lstm\n", r"Did you mean `model`"),
        ("- just\n- a list\n", r"top level must be a mapping"),
        ("name: !!python/object/apply:os.system ['echo pwned']\n", r"not valid YAML"),
        ("name: [unclosed\n", r"not valid YAML"),
        ("name: ../../etc\n", r"`name` must be letters, digits"),
        ("name: /abs\n", r"`name` must be letters, digits"),
        ("name: ok\nexport:\n  name: ../x\n", r"`export.name` must be letters, digits"),
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
