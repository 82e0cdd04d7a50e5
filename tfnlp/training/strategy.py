"""Turn the `distribute:` section into a `tf.distribute.Strategy`, and the rules that go with it.

One function, `create_strategy`, picks and builds the strategy (and says why); the small helpers
below derive what depends on it: the per-replica batch, learning-rate scaling, the tf.data
auto-shard policy, TPU-friendly static batches, the parameter-server dataset function, and
which process is the chief (the only one that writes final results).
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfnlp.backend import tf
from tfnlp.config.schema import DistributeConfig

logger = logging.getLogger("tfnlp")

# Strategies that span several processes: the process that runs them is one task of a cluster.
MULTI_PROCESS = ("multi_worker_mirrored", "parameter_server")


def split_cpu(replicas: int) -> None:
    """Splits the host CPU into `replicas` logical devices (before TensorFlow initialises)."""
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * replicas
        )
    except RuntimeError:
        current = len(tf.config.list_logical_devices("CPU"))
        if current != replicas:
            raise RuntimeError(
                f"`distribute.cpu_replicas`={replicas} must be applied before TensorFlow "
                f"initialises its devices, but it already has {current} CPU device(s). Set it "
                "in the pipeline file rather than after building models in the same process."
            ) from None


def tf_config() -> dict:
    """The parsed `TF_CONFIG` environment variable ({} when unset and not in a Slurm step).

    Two other descriptions of a cluster become the plain form, which is then exported to
    `os.environ["TF_CONFIG"]` (so TensorFlow's `TFConfigClusterResolver` reads the same) and
    logged once:

    - unset `TF_CONFIG` inside a multi-task Slurm step: built from Slurm's variables
      (`tfnlp.training.slurm`);
    - a `sparseCluster` (Kubeflow's training operator before 1.7 with `enableDynamicWorker`)
      is read as `cluster`; see `_dense_enough` for what a sparse job becomes.

    Raises:
        ValueError: `TF_CONFIG` is not JSON with a `cluster` (or `sparseCluster`) mapping, or
            Slurm's variables are malformed.
    """
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        from tfnlp.training.slurm import slurm_tf_config

        built = slurm_tf_config()
        if built is None:
            return {}
        return _export(built, "built from Slurm's variables (SLURM_STEP_NODELIST="
                              f"{os.environ['SLURM_STEP_NODELIST']})")
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"`TF_CONFIG` must be JSON. Received: TF_CONFIG={raw[:80]!r} ({error}). Set it to "
            '\'{"cluster": {"worker": ["host:port", ...]}, '
            '"task": {"type": "worker", "index": 0}}\'.'
        ) from None
    if isinstance(parsed, dict) and "cluster" not in parsed \
            and isinstance(parsed.get("sparseCluster"), dict):
        rest = {key: value for key, value in parsed.items() if key != "sparseCluster"}
        return _export({**rest, "cluster": _dense_enough(parsed["sparseCluster"], rest)},
                       "its sparseCluster read as cluster (Kubeflow enableDynamicWorker)")
    if not isinstance(parsed, dict) or not isinstance(parsed.get("cluster"), dict):
        raise ValueError(
            f"`TF_CONFIG` must hold a `cluster` mapping. Received: TF_CONFIG={raw[:80]!r}."
        )
    return parsed


def _dense_enough(sparse: dict, config: dict) -> dict:
    """A sparse cluster as `tf.train.ClusterSpec` takes it.

    The operator sends a worker only its own address as `{"<index>": address}` (ClusterSpec
    reads string keys as task indices), a parameter server only its own address as a
    one-item list whatever its index, and empty jobs for the rest. Empty jobs are dropped, and
    this task's one-item list is keyed by its index, so `tf.distribute.Server` finds itself.
    """
    task = config.get("task", {})
    kind, index = task.get("type"), int(task.get("index", 0))
    cluster = {job: tasks for job, tasks in sparse.items() if tasks}
    own = cluster.get(kind)
    if isinstance(own, list) and len(own) == 1 and index > 0:
        cluster[kind] = {str(index): own[0]}
    return cluster


def _export(config: dict, origin: str) -> dict:
    os.environ["TF_CONFIG"] = json.dumps(config)
    task = config.get("task", {})
    jobs = ", ".join(f"{job} x{len(tasks)}" for job, tasks in config["cluster"].items())
    logger.info("TF_CONFIG: %s; this is %s %s (cluster: %s)", origin, task.get("type"),
                task.get("index", 0), jobs or "empty")
    return config


def _missing_peers(config: dict, strategy: str) -> str | None:
    """What a training task's cluster lacks: multi-worker mirrored needs every worker's
    address, the parameter-server coordinator every worker's and parameter server's."""
    cluster = config.get("cluster", {})
    needed = ("worker", "ps") if strategy == "parameter_server" else ("worker",)
    for job in needed:
        tasks = cluster.get(job)
        if strategy == "multi_worker_mirrored" and tasks is None and "chief" in cluster:
            continue  # a chief alone is a one-worker cluster
        if not tasks:
            return f"no `{job}` addresses"
        if isinstance(tasks, dict) and sorted(int(i) for i in tasks) != list(range(len(tasks))):
            return f"only {job} task(s) {sorted(int(i) for i in tasks)} (a sparse cluster)"
    return None


def is_chief_task(config: dict | None = None) -> bool:
    """True for the process that writes final results: the chief, else worker 0, else alone."""
    config = tf_config() if config is None else config
    if not config:
        return True
    task = config.get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    if "chief" in config["cluster"]:
        return kind == "chief"
    return kind == "worker" and index == 0


def _communication(config: DistributeConfig):
    implementation = {
        "auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
        "ring": tf.distribute.experimental.CommunicationImplementation.RING,
        "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL,
    }[config.communication]
    return tf.distribute.experimental.CommunicationOptions(
        implementation=implementation, timeout_seconds=config.all_reduce.timeout_seconds,
        bytes_per_pack=config.all_reduce.bytes_per_pack)


def _configure_heartbeats(spec: tf.train.ClusterSpec, timeout_seconds: float) -> None:
    """Sets the coordination service's heartbeat time-out before MultiWorkerMirrored starts it.

    The strategy configures the service itself only when nothing has (with TensorFlow's 10 s
    time-out and no argument to change it), so this makes the same call it would, leader and
    coordinated jobs included, with our time-out. There is no public API for it.
    """
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.eager import context

    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=spec.num_tasks(job))
            for job in ("chief", "worker") if job in spec.jobs]
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=multi_worker_util.coordination_leader(spec),
        heartbeat_timeout_in_ms=int(timeout_seconds * 1000),
        coordinated_jobs=jobs,
    )


def _mirrored_cross_device_ops(name: str, devices: list[str] | None):
    # One host has no ring collectives; "ring" means "no NCCL": reduce through one device.
    if name == "nccl":
        return tf.distribute.NcclAllReduce()
    if name == "ring":
        return tf.distribute.ReductionToOneDevice()
    if devices and all("CPU" in device.upper() for device in devices):
        # CPU replicas share one memory: collectives gain nothing there, and their instance
        # keys clash between strategies created in one process ("Shape mismatch in the
        # collective instance"), so reduce through one device.
        return tf.distribute.ReductionToOneDevice()
    return None  # TensorFlow's choice: NCCL between GPUs


def _tpu_strategy(target: str | None) -> tf.distribute.Strategy:
    """Connects to and initialises a TPU system. Raises ValueError when none is reachable."""
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=target)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        raise ValueError(
            f"`distribute.tpu` must name a reachable TPU. Received: tpu={target!r} ({error}). "
            "Set `distribute.tpu` to the TPU name, grpc://host:port or 'local' on a TPU VM, "
            "or use another `distribute.strategy`."
        ) from None
    return tf.distribute.TPUStrategy(resolver)


def _auto_choice(config: DistributeConfig) -> tuple[str, str]:
    """What `strategy: auto` becomes here, and why."""
    cluster = tf_config().get("cluster", {})
    if "ps" in cluster:
        return "parameter_server", "TF_CONFIG names parameter servers"
    if len(cluster.get("worker", [])) + len(cluster.get("chief", [])) > 1:
        return "multi_worker_mirrored", "TF_CONFIG names several workers"
    if config.tpu or os.environ.get("TPU_NAME"):
        return "tpu", f"a TPU is named ({config.tpu or os.environ['TPU_NAME']})"
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        return "mirrored", f"{len(gpus)} GPUs"
    if config.cpu_replicas and config.cpu_replicas > 1:
        return "mirrored", f"cpu_replicas={config.cpu_replicas}"
    where = "1 GPU" if gpus else "no GPU/TPU"
    return "default", f"{where}: one device"


def _engine_devices(config: DistributeConfig) -> str | None:
    """For DTensor and pipeline runs, which place the model themselves (see
    `tfnlp.training.engines`): the devices they need, split from the CPU when there are not
    enough GPUs, and the log's reason. None for tf.distribute strategies."""
    if config.strategy == "dtensor":
        needed, what = config.mesh.devices, f"dtensor mesh {config.mesh.batch}x{config.mesh.model}"
    elif config.pipeline is not None and config.pipeline.stages > 1:
        needed, what = config.pipeline.stages, f"pipeline of {config.pipeline.stages} stages"
    else:
        return None
    on_gpus = len(tf.config.list_physical_devices("GPU")) >= needed
    if not on_gpus and not config.cpu_replicas:
        split_cpu(needed)
    if config.strategy == "dtensor":
        from tfnlp.training.dtensor import initialize  # DTensor is imported only when used

        initialize("GPU" if on_gpus else "CPU")
    where = "GPUs" if on_gpus else f"{needed} logical CPU devices"
    return f"{what} on {where}; the default strategy (the engine places the model)"


def create_strategy(config: DistributeConfig) -> tuple[tf.distribute.Strategy, str]:
    """Creates the configured strategy.

    Multi-worker strategies read the cluster from `TF_CONFIG` and must be created before
    TensorFlow runs any op in this process.

    Args:
        config: the `distribute:` section.

    Returns:
        (strategy, one-sentence reason for the run log).

    Raises:
        ValueError: inconsistent settings, a missing `TF_CONFIG`, or no reachable TPU.
    """
    if config.cpu_replicas:
        split_cpu(config.cpu_replicas)
    engine = _engine_devices(config)
    if engine:
        return tf.distribute.get_strategy(), engine
    name, reason = config.strategy, "configured"
    if name == "auto":
        name, reason = _auto_choice(config)
        if name == "tpu":
            try:
                strategy = _tpu_strategy(config.tpu)
                return strategy, f"auto -> tpu: {reason}"
            except ValueError as error:
                logger.warning("auto: %s; falling back", error)
                name, reason = "default", "the named TPU is unreachable"
        reason = f"auto -> {name}: {reason}"
    if name == "default":
        # Unlike OneDeviceStrategy, the default strategy works with BackupAndRestore.
        return tf.distribute.get_strategy(), f"{reason} (no distribution)"
    if name == "one_device":
        device = (config.devices or ["/cpu:0"])[0]
        return tf.distribute.OneDeviceStrategy(device), f"{reason}: one_device on {device}"
    if name == "mirrored":
        devices = config.devices
        if devices is None and config.cpu_replicas and not tf.config.list_logical_devices("GPU"):
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(
            devices, cross_device_ops=_mirrored_cross_device_ops(config.communication, devices)
        )
        return strategy, (f"{reason}: mirrored over {strategy.num_replicas_in_sync} replica(s), "
                          f"communication {config.communication}")
    if name in MULTI_PROCESS and not tf_config():
        raise ValueError(
            f"`distribute.strategy: {name}` must run in a cluster described by TF_CONFIG. "
            "Received: TF_CONFIG unset. Start it with `tfnlp launch --workers N "
            f"{'--ps M ' if name == 'parameter_server' else ''}PIPELINE`, or set TF_CONFIG "
            "on every host."
        )
    missing = _missing_peers(tf_config(), name) if name in MULTI_PROCESS else None
    if missing:
        raise ValueError(
            f"`distribute.strategy: {name}` needs the whole cluster in TF_CONFIG. Received: "
            f"{missing}. Give every task the full TF_CONFIG (Kubeflow's `enableDynamicWorker` "
            "sends a sparse one: leave it off, as `tfnlp launch --emit tfjob` does)."
        )
    if name == "multi_worker_mirrored":
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        _configure_heartbeats(resolver.cluster_spec(), config.heartbeat_timeout_seconds)
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            cluster_resolver=resolver,
            communication_options=_communication(config),
        )
        workers = strategy.extended._num_workers  # no public accessor
        return strategy, (f"{reason}: multi_worker_mirrored, {workers} worker(s), "
                          f"{strategy.num_replicas_in_sync} replica(s), "
                          f"communication {config.communication}")
    if name == "parameter_server":
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        if resolver.task_type not in ("chief", None):
            raise ValueError(
                "`distribute.strategy: parameter_server` trains from the coordinator (the "
                f"'chief' task). Received: task type {resolver.task_type!r}. Workers and "
                "parameter servers run `python -m tfnlp.training.cluster serve`."
            )
        strategy = tf.distribute.experimental.ParameterServerStrategy(resolver)
        spec = resolver.cluster_spec().as_dict()
        return strategy, (f"{reason}: parameter_server, {len(spec.get('worker', []))} "
                          f"worker(s), {len(spec.get('ps', []))} parameter server(s), "
                          "asynchronous updates")
    if name == "tpu":
        return _tpu_strategy(config.tpu), f"{reason}: tpu ({config.tpu or 'from TPU_NAME'})"
    raise ValueError(
        f"`distribute.strategy` must be one of auto, default, one_device, mirrored, "
        f"multi_worker_mirrored, parameter_server, tpu, dtensor. Received: strategy={name!r}."
    )


def strategy_kind(strategy: tf.distribute.Strategy) -> str:
    """The `distribute.strategy` name of a strategy object."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker_mirrored"
    if isinstance(strategy, tf.distribute.experimental.ParameterServerStrategy):
        return "parameter_server"
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    if isinstance(strategy, tf.distribute.OneDeviceStrategy):
        return "one_device"
    return "default"


def fix_metric_reduction(model, strategy: tf.distribute.Strategy) -> None:
    """Reports per-batch metrics once, not once per worker, under multi-worker mirrored.

    The metrics are synchronised variables, equal on every worker; Keras's default reduction
    ("auto" -> "sum") adds the workers' copies again, so per-batch logs (progress bar,
    `on_train_batch_end`) showed N x the loss on N workers. Epoch logs were right.
    """
    if strategy_kind(strategy) == "multi_worker_mirrored":
        model.distribute_reduction_method = "first"


def per_replica_batch_size(global_batch_size: int, replicas: int, *, strict: bool = False) -> int:
    """The batch each replica sees when `global_batch_size` is split over `replicas`.

    Args:
        global_batch_size: `train.batch_size` (always the global batch).
        replicas: `strategy.num_replicas_in_sync`.
        strict: require an exact split (TPUs need identical static shapes on every core).

    Raises:
        ValueError: under `strict`, a global batch that does not divide evenly.
    """
    if strict and global_batch_size % replicas:
        raise ValueError(
            f"`train.batch_size` must be a multiple of the {replicas} replicas on a TPU. "
            f"Received: batch_size={global_batch_size}. Use "
            f"{max(replicas, global_batch_size // replicas * replicas)}."
        )
    return max(1, global_batch_size // replicas)


def scaled_learning_rate(learning_rate: float, replicas: int, enabled: bool) -> float:
    """The linear scaling rule: `learning_rate × replicas` when enabled, else unchanged."""
    return learning_rate * replicas if enabled else learning_rate


@dataclass(frozen=True)
class TaskRole:
    """Which task of a cluster this process is, and where it may write.

    Attributes:
        kind: the strategy name (see `strategy_kind`).
        is_chief: this process writes the final checkpoint, export and metrics.
        task: "worker 1", "chief 0", or "local".
    """

    kind: str
    is_chief: bool
    task: str

    def write_dir(self, run_dir: Path) -> Path:
        """The chief's run directory, or a worker's temporary one inside it (removed at the end).

        The same `workertemp_<id>` pattern as Keras's own checkpoint callbacks.
        """
        if self.is_chief:
            return run_dir
        return run_dir / f"workertemp_{self.task.split()[-1]}"

    @property
    def trains_on_a_cluster(self) -> bool:
        return self.kind in MULTI_PROCESS


def task_role(strategy: tf.distribute.Strategy) -> TaskRole:
    """This process's role under `strategy` (from its cluster resolver)."""
    kind = strategy_kind(strategy)
    if kind not in MULTI_PROCESS:
        return TaskRole(kind, True, "local")
    task = tf_config().get("task", {})
    return TaskRole(kind, is_chief_task(), f"{task.get('type')} {task.get('index', 0)}")


def with_shard_policy(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Shards an in-memory dataset by element (DATA) across workers.

    tfnlp reads every source into memory and slices it, so there are no files to shard by:
    the default AUTO policy would try FILE, fail, and fall back with a warning. DATA makes
    every worker read the same ordered stream and keep its own slice of each global batch,
    so no example is duplicated or missed. Streamed files set their own policy
    (`tfnlp.data.streaming.split_dataset`), which is kept.
    """
    policy = tf.data.experimental.AutoShardPolicy
    if dataset.options().experimental_distribute.auto_shard_policy != policy.AUTO:
        return dataset  # chosen by the input's maker (streamed files: FILE or DATA)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy.DATA
    return dataset.with_options(options)


def static_batches(dataset: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    """Re-batches to `batch_size` with `drop_remainder=True`: every batch the same static shape.

    TPUs compile one program per input shape; a smaller last batch would recompile (or fail).
    The texts' token ids are already padded to `preprocessing.sequence_length` in the model.
    """
    return dataset.unbatch().batch(batch_size, drop_remainder=True)


def prepare_input(
    dataset: tf.data.Dataset, strategy: tf.distribute.Strategy, global_batch_size: int
) -> tf.data.Dataset:
    """The input tweaks `fit` needs: a shard policy, static batches on TPUs, and no stall
    between epochs (`without_autotune_model`)."""
    kind = strategy_kind(strategy)
    if kind == "tpu":
        per_replica_batch_size(global_batch_size, strategy.num_replicas_in_sync, strict=True)
        dataset = static_batches(dataset, global_batch_size)
    return without_autotune_model(with_shard_policy(dataset))


def without_autotune_model(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Turns off tf.data's autotuning model for a dataset `fit` iterates once per epoch.

    Keras makes a new iterator every epoch and deletes the old one; on TensorFlow 2.21 the
    deletion waits for the autotuning thread, which often sleeps ~10 s first (measured:
    8-15 s idle between epochs of tweets_bilstm, 48 s of a 199 s job; a bare
    `from_tensor_slices` pipeline stalls 10.2 s at one deletion in four, none without the
    model). AUTOTUNE settings still work: parallel maps use the default parallelism and
    prefetch keeps its own buffer tuning.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def steps_per_epoch(examples: int, global_batch_size: int) -> int:
    """Batches in one pass over `examples` (the last one may be partial)."""
    return max(1, math.ceil(examples / global_batch_size))


def dataset_function(tensors: tuple, global_batch_size: int, *, shuffle: bool, seed: int,
                     transform=None, trace: bool = False):
    """A `dataset_fn(input_context)` for parameter-server training (a DatasetCreator).

    Each worker's input pipeline keeps every `num_input_pipelines`-th example starting at its
    own id, so the workers together see each example once per pass, then repeats forever:
    `model.fit` counts epochs with `steps_per_epoch`.

    Args:
        tensors: numpy arrays of equal length (texts, label ids[, weights]).
        global_batch_size: `train.batch_size`.
        shuffle: reshuffle each pass (seeded).
        seed: the shuffle seed.
        transform: an optional function mapped over the batches (e.g. one-hot labels).
        trace: print a line on the worker's stderr for every batch it reads (shows which
            worker runs each step; `TFNLP_TRACE_INPUT=1` turns it on in `tfnlp launch`).
    """
    tensors = tuple(np.asarray(t) for t in tensors)

    def dataset_fn(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
        batch = input_context.get_per_replica_batch_size(global_batch_size)
        dataset = tf.data.Dataset.from_tensor_slices(tensors).shard(
            input_context.num_input_pipelines, input_context.input_pipeline_id
        )
        if shuffle:
            dataset = dataset.shuffle(len(tensors[0]), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.repeat().batch(batch)
        if transform is not None:
            dataset = dataset.map(transform)
        if trace:
            pipeline = f"{input_context.input_pipeline_id} of {input_context.num_input_pipelines}"

            def traced(*batch):
                with tf.control_dependencies([tf.print("tfnlp input: pipeline", pipeline,
                                                       "batch of", tf.shape(batch[0])[0])]):
                    return tuple(tf.identity(t) for t in batch)

            dataset = dataset.map(traced)
        return dataset.prefetch(tf.data.AUTOTUNE)

    return dataset_fn
