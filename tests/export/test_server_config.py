"""The files TF-Serving is started with: models.config (version policy and labels), the
batching parameters and the monitoring config, all beside the export root."""

import pytest
from google.protobuf import text_format

from tests.conftest import REPO
from tfnlp.config import ConfigError, load_pipeline
from tfnlp.export.model_config import (
    models_config_text,
    parse_models_config_proto,
    write_version_labels,
)
from tfnlp.export.server_config import (
    BATCHING_FILE,
    MONITORING_FILE,
    batching_parameters_text,
    write_server_configs,
)


@pytest.fixture
def root(tmp_path):
    for version in (1, 2, 3):
        (tmp_path / "m" / str(version)).mkdir(parents=True)
    (tmp_path / "other" / "1").mkdir(parents=True)
    return tmp_path


def test_labels_give_a_specific_version_policy_that_tf_serving_parses(root):
    write_version_labels(root / "m", {"stable": 2, "canary": 3})
    (root / "models.config").write_text(models_config_text(root))
    config = parse_models_config_proto(root / "models.config")
    entries = {entry.name: entry for entry in config.model_config_list.config}
    assert set(entries) == {"m", "other"}
    m = entries["m"]
    assert list(m.model_version_policy.specific.versions) == [2, 3]
    assert dict(m.version_labels) == {"canary": 3, "stable": 2}
    # A model without labels keeps TF-Serving's default policy: the newest version.
    assert not entries["other"].HasField("model_version_policy")
    assert not entries["other"].version_labels


def test_a_label_must_name_an_exported_version_and_empty_labels_remove_them(root):
    with pytest.raises(ValueError, match=r"`export.labels.canary` must name an exported "
                                         r"version of m. Received: export.labels.canary=7; "
                                         r"the versions are \[1, 2, 3\]"):
        write_version_labels(root / "m", {"canary": 7})
    write_version_labels(root / "m", {"stable": 1})
    write_version_labels(root / "m", {})
    assert "version_labels" not in models_config_text(root)


def test_a_label_on_a_pruned_version_is_dropped(root):
    write_version_labels(root / "m", {"stable": 1, "canary": 3})
    (root / "m" / "1").rmdir()  # as `export.keep` would
    text = models_config_text(root)
    assert 'key: "canary"' in text and 'key: "stable"' not in text


def test_a_typo_in_models_config_is_caught(root):
    (root / "models.config").write_text(models_config_text(root).replace("base_path",
                                                                         "basepath"))
    with pytest.raises(text_format.ParseError, match="basepath"):
        parse_models_config_proto(root / "models.config")


def test_batching_and_monitoring_files_are_written_once(tmp_path):
    batching, monitoring = write_server_configs(tmp_path)
    assert batching.name == BATCHING_FILE and monitoring.name == MONITORING_FILE
    assert "batch_timeout_micros { value: 0 }" in batching.read_text()
    assert "num_batch_threads { value: 2 }" in batching_parameters_text(2)
    assert 'path: "/monitoring/prometheus/metrics"' in monitoring.read_text()
    batching.write_text("max_batch_size { value: 16 }\n")  # the user's measured choice
    write_server_configs(tmp_path)
    assert batching.read_text() == "max_batch_size { value: 16 }\n"


def test_every_export_root_gets_the_server_files(tiny_run):
    root = tiny_run.export_path.parent.parent
    assert (root / BATCHING_FILE).is_file() and (root / MONITORING_FILE).is_file()


@pytest.mark.parametrize("labels, accepted", [
    ("{stable: 1, canary: 2}", True),
    ("{Stable: 1}", False),
    ("{stable: 0}", False),
    ("[1, 2]", False),
])
def test_export_labels_are_validated_when_the_pipeline_loads(labels, accepted):
    overrides = [f"export.labels={labels}"]
    if accepted:
        config = load_pipeline(REPO / "pipelines" / "tweets_lstm.yaml", overrides)
        assert config.export.labels == {"stable": 1, "canary": 2}
    else:
        with pytest.raises(ConfigError, match="`export.labels` must be"):
            load_pipeline(REPO / "pipelines" / "tweets_lstm.yaml", overrides)
