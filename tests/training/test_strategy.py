"""The `distribute:` section: config, auto choice, batch split, LR scaling, sharding, TPU shapes."""

import json

import numpy as np
import pytest

from tests.conftest import REPO, run_python
from tfnlp.backend import tf
from tfnlp.config import load_pipeline
from tfnlp.config.loading import ConfigError
from tfnlp.config.schema import DistributeConfig
from tfnlp.training.cluster import cluster_spec, free_ports
from tfnlp.training.strategy import (
    _auto_choice,
    create_strategy,
    dataset_function,
    is_chief_task,
    per_replica_batch_size,
    prepare_input,
    scaled_learning_rate,
    static_batches,
    steps_per_epoch,
    strategy_kind,
    task_role,
    tf_config,
    with_shard_policy,
)

PIPELINE = REPO / "pipelines" / "tweets_lstm.yaml"


def test_multi_worker_cluster_gets_the_configured_heartbeat_timeout():
    # The strategy must start before any op runs, so in a fresh process: a one-worker cluster.
    code = """
import json
from tensorflow.python.eager import context
from tfnlp.config.schema import DistributeConfig
from tfnlp.training.strategy import create_strategy
create_strategy(DistributeConfig(strategy="multi_worker_mirrored", heartbeat_timeout_seconds=42))
service = context.context().config.experimental.coordination_config
print(json.dumps([service.service_type, service.heartbeat_timeout_in_ms, service.service_leader,
                  [[job.name, job.num_tasks] for job in service.coordinated_job_list]]))
"""
    cluster = {"cluster": {"worker": [f"localhost:{free_ports(1)[0]}"]},
               "task": {"type": "worker", "index": 0}}
    result = run_python(code, env={"TF_CONFIG": json.dumps(cluster)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.splitlines()[-1]) == [
        "standalone", 42_000, "/job:worker/replica:0/task:0", [["worker", 1]]]


def test_heartbeat_timeout_defaults_to_a_minute_and_is_range_checked():
    assert load_pipeline(PIPELINE).distribute.heartbeat_timeout_seconds == 60.0
    with pytest.raises(ConfigError, match="distribute.heartbeat_timeout_seconds"):
        load_pipeline(PIPELINE, ["distribute.heartbeat_timeout_seconds=0"])


def test_distribute_section_reads_the_new_keys():
    config = load_pipeline(PIPELINE, [
        "distribute.strategy=multi_worker_mirrored", "distribute.communication=ring",
        "distribute.tpu=local", "distribute.scale_learning_rate=true",
        "distribute.cpu_replicas=2",
    ]).distribute
    assert config == DistributeConfig(
        strategy="multi_worker_mirrored", communication="ring", tpu="local",
        scale_learning_rate=True, cpu_replicas=2,
    )
    defaults = load_pipeline(PIPELINE).distribute
    assert (defaults.communication, defaults.tpu, defaults.scale_learning_rate) == (
        "auto", None, False)


@pytest.mark.parametrize("override", [
    "distribute.communication=mpi", "distribute.strategy=horovod",
    "distribute.scale_learning_rate=maybe",
])
def test_invalid_distribute_values_name_the_key(override):
    with pytest.raises(ConfigError, match=override.split("=")[0].split(".")[1]):
        load_pipeline(PIPELINE, [override])


@pytest.mark.parametrize("tf_config_value, env, expected, reason", [
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}, {},
     "multi_worker_mirrored", "several workers"),
    ({"cluster": {"chief": ["a:1"], "worker": ["b:2"], "ps": ["c:3"]},
      "task": {"type": "chief", "index": 0}}, {}, "parameter_server", "parameter servers"),
    (None, {"TPU_NAME": "my-tpu"}, "tpu", "my-tpu"),
    (None, {}, "default", "no GPU/TPU"),
])
def test_auto_says_what_it_picked_and_why(monkeypatch, tf_config_value, env, expected, reason):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("TPU_NAME", raising=False)
    if tf_config_value is not None:
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config_value))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    name, why = _auto_choice(DistributeConfig())
    assert name == expected and reason in why


def test_auto_with_cpu_replicas_mirrors_over_them(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("TPU_NAME", raising=False)
    strategy, why = create_strategy(DistributeConfig(cpu_replicas=2))
    assert strategy_kind(strategy) == "mirrored"
    assert strategy.num_replicas_in_sync == 2
    assert why.startswith("auto -> mirrored: cpu_replicas=2")


@pytest.mark.parametrize("communication", ["auto", "ring"])
def test_mirrored_communication_options(communication):
    strategy, why = create_strategy(DistributeConfig(
        strategy="mirrored", devices=["CPU:0", "CPU:1"], communication=communication))
    assert strategy.num_replicas_in_sync == 2 and f"communication {communication}" in why
    role = task_role(strategy)
    assert (role.kind, role.is_chief, role.trains_on_a_cluster) == ("mirrored", True, False)


@pytest.mark.parametrize("name", ["multi_worker_mirrored", "parameter_server"])
def test_cluster_strategies_need_tf_config(monkeypatch, name):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="tfnlp launch --workers N"):
        create_strategy(DistributeConfig(strategy=name))


def test_tf_config_parsing_and_the_chief(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="`TF_CONFIG` must be JSON"):
        tf_config()
    workers = {"worker": ["a:1", "b:2"]}
    assert is_chief_task({"cluster": workers, "task": {"type": "worker", "index": 0}})
    assert not is_chief_task({"cluster": workers, "task": {"type": "worker", "index": 1}})
    with_chief = {"chief": ["c:0"], **workers}
    assert is_chief_task({"cluster": with_chief, "task": {"type": "chief", "index": 0}})
    assert not is_chief_task({"cluster": with_chief, "task": {"type": "worker", "index": 0}})
    assert is_chief_task({})  # no cluster: a single process is its own chief


def test_per_replica_batch_and_learning_rate_scaling():
    assert per_replica_batch_size(64, 2) == 32
    assert per_replica_batch_size(33, 2) == 16  # uneven splits are allowed off TPUs
    with pytest.raises(ValueError, match="multiple of the 8 replicas.*Use 32"):
        per_replica_batch_size(36, 8, strict=True)
    assert scaled_learning_rate(0.002, 4, enabled=True) == pytest.approx(0.008)
    assert scaled_learning_rate(0.002, 4, enabled=False) == 0.002
    assert steps_per_epoch(479, 32) == 15 and steps_per_epoch(3, 32) == 1


def test_learning_rate_scaling_reaches_the_config(caplog):
    from tfnlp.training.distributed import distributed_settings

    config = load_pipeline(PIPELINE, ["distribute.scale_learning_rate=true"])
    strategy = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
    with caplog.at_level("INFO", logger="tfnlp"):
        scaled, role = distributed_settings(config, strategy)
    assert scaled.train.learning_rate == pytest.approx(2 * config.train.learning_rate)
    assert "batch: global 64 = 2 replica(s) x 32 per replica" in caplog.text
    assert role.write_dir(REPO) == REPO


def test_in_memory_data_is_sharded_by_element():
    policy = tf.data.experimental.AutoShardPolicy
    dataset = with_shard_policy(tf.data.Dataset.range(10).batch(4))
    assert dataset.options().experimental_distribute.auto_shard_policy == policy.DATA
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy.FILE
    chosen = with_shard_policy(tf.data.Dataset.range(10).with_options(options))
    assert chosen.options().experimental_distribute.auto_shard_policy == policy.FILE


def test_parameter_server_input_pipelines_cover_every_example_once():
    ids = np.arange(103)
    dataset_fn = dataset_function((ids,), 32, shuffle=True, seed=1)
    seen = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=2)
        dataset = dataset_fn(context)
        assert dataset.element_spec[0].shape.as_list() == [None]
        one_pass = len(range(pipeline, 103, 2))
        seen.append([int(i) for (i,) in dataset.unbatch().take(one_pass).as_numpy_iterator()])
        assert len(seen[-1]) == one_pass
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == ids.tolist()


def test_tpu_static_shapes_drop_the_remainder():
    texts = tf.data.Dataset.from_tensor_slices(([b"a"] * 10, list(range(10)))).batch(4)
    static = static_batches(texts, 4)
    assert [spec.shape.as_list() for spec in static.element_spec] == [[4], [4]]
    assert [batch[1].tolist() for batch in static.as_numpy_iterator()] == [
        [0, 1, 2, 3], [4, 5, 6, 7]]
    # Other strategies keep the last partial batch (no example is dropped).
    kept = prepare_input(texts, tf.distribute.get_strategy(), 4)
    assert sum(len(batch[1]) for batch in kept.as_numpy_iterator()) == 10


def test_fit_inputs_run_without_the_autotune_model_that_stalls_between_epochs():
    texts = tf.data.Dataset.from_tensor_slices(([b"a"] * 10, list(range(10)))).batch(4)
    assert texts.options().autotune.enabled is None  # TensorFlow's default: on
    prepared = prepare_input(texts.prefetch(tf.data.AUTOTUNE), tf.distribute.get_strategy(), 4)
    assert prepared.options().autotune.enabled is False
    # The shard policy is still set, and AUTOTUNE still runs (prefetch tunes itself).
    assert (prepared.options().experimental_distribute.auto_shard_policy
            == tf.data.experimental.AutoShardPolicy.DATA)
    assert [batch[1].tolist() for batch in prepared.as_numpy_iterator()][-1] == [8, 9]


def test_local_cluster_addresses_are_distinct_loopback_ports():
    spec = cluster_spec(2, ps=1)
    assert [len(spec[k]) for k in ("chief", "worker", "ps")] == [1, 2, 1]
    addresses = [a for kind in spec.values() for a in kind]
    assert len(set(addresses)) == 4 and all(a.startswith("localhost:") for a in addresses)
    assert list(cluster_spec(3)) == ["worker"]
    assert len(set(free_ports(5))) == 5
    with pytest.raises(ValueError, match="`--workers` must be at least 1"):
        cluster_spec(0)


def test_parameter_server_inputs_and_callbacks(tmp_path):
    from tfnlp.backend import keras
    from tfnlp.data import Splits
    from tfnlp.data.records import LabelledTexts, LoadReport
    from tfnlp.tasks.classification import ClassificationData, ClassificationTask
    from tfnlp.training.callbacks import standard_callbacks
    from tfnlp.training.distributed import worker_callbacks
    from tfnlp.training.strategy import TaskRole

    config = load_pipeline(PIPELINE, ["train.batch_size=4"])
    train = LabelledTexts(texts=["a", "b", "c", "d", "e"], labels=["x", "y", "x", "y", "x"])
    validation = LabelledTexts(texts=["f", "g"], labels=["x", "y"])
    chief = TaskRole("parameter_server", True, "chief 0")
    splits = Splits(train, validation, validation)
    data = ClassificationData(splits, ["x", "y"], LoadReport("memory"))

    inputs = ClassificationTask(config).parameter_server_inputs(data)
    assert (inputs["steps_per_epoch"], inputs["validation_steps"]) == (2, 1)
    assert isinstance(inputs["x"], keras.utils.experimental.DatasetCreator)
    context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0)
    texts, labels = next(iter(inputs["validation_data"](context)))
    assert texts.numpy().tolist() == [b"f", b"g", b"f", b"g"]  # repeats; fit counts steps
    assert labels.numpy().tolist() == [[1, 0], [0, 1]] * 2

    callbacks, _ = standard_callbacks(tmp_path, monitor="val_accuracy", patience=1,
                                      examples_per_epoch=5)
    kept = worker_callbacks(list(callbacks), chief, tmp_path)
    assert not any(isinstance(c, keras.callbacks.TerminateOnNaN) for c in kept)
    worker = TaskRole("multi_worker_mirrored", False, "worker 1")
    temp = worker.write_dir(tmp_path)
    assert temp == tmp_path / "workertemp_1"
    logger = next(c for c in worker_callbacks(callbacks, worker, temp)
                  if isinstance(c, keras.callbacks.CSVLogger))
    assert logger.filename == str(temp / "history.csv")
