"""A pipeline and a cluster shape, as the file a cluster engine takes (`tfnlp launch --emit`).

Three engines, each of which gives every process its cluster role, so tfnlp runs inside
unchanged:

- **Kubeflow training operator v1 `TFJob`** (YAML): the operator writes each replica's
  `TF_CONFIG` (`tfjob_tf_configs` mirrors its rule);
- **Slurm** (an `sbatch` script): `srun` starts one task per node, and tfnlp builds
  `TF_CONFIG` from Slurm's variables (`tfnlp.training.slurm`);
- **Vertex AI** (a `CustomJobSpec` for `gcloud ai custom-jobs create --config`): Vertex writes
  `TF_CONFIG` for its worker pools (pool 0 "chief", 1 "worker", 2 "ps").

`emit` builds the document, checks it the way the engine would (parsed back; `bash -n` for
the script), writes it atomically and returns the one command that submits it.

Example:
    >>> request = LaunchRequest("pipelines/tweets_lstm.yaml", "tweets_lstm", workers=2,
    ...                         image="registry.example.com/tfnlp:0.1")
    >>> job = tfjob(request)
    >>> job["metadata"]["name"], list(job["spec"]["tfReplicaSpecs"])
    ('tweets-lstm', ['Worker'])
    >>> [c["cluster"]["worker"][c["task"]["index"]] for c in tfjob_tf_configs(job)]
    ['tweets-lstm-worker-0.default.svc:2222', 'tweets-lstm-worker-1.default.svc:2222']
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from tfnlp import atomic

EMIT_KINDS = ("tfjob", "slurm", "vertex")
FILE_NAMES = {"tfjob": "tfjob.yaml", "slurm": "job.sbatch", "vertex": "custom_job_spec.json"}

# The training operator's names (kubeflow.org/v1 tensorflow_types.go): the container it
# reads the port from, that port's name, and its default.
CONTAINER_NAME = "tensorflow"
PORT_NAME = "tfjob-port"
PORT = 2222
REPLICA_TYPES = ("Chief", "Master", "Worker", "PS", "Evaluator")
RESTART_POLICIES = ("Always", "OnFailure", "Never", "ExitCode")
MOUNT_PATH = "/shared"  # where the TFJob mounts the shared volume
VOLUME_NAME = "shared"

DEFAULTS = {"namespace": "default", "volume_claim": "tfnlp-shared", "backoff_limit": 3,
            "machine_type": "n1-standard-8"}
# The options that only some engines take, and the flag that sets each.
ENGINE_OPTIONS = {
    "image": (("tfjob", "vertex"), "--image"),
    "namespace": (("tfjob",), "--namespace"),
    "volume_claim": (("tfjob",), "--volume-claim"),
    "backoff_limit": (("tfjob",), "--backoff-limit"),
    "machine_type": (("vertex",), "--machine-type"),
    "region": (("vertex",), "--region"),
}
# Parameter-server workers and servers: `python -m tfnlp.training.cluster serve`.
SERVE_ARGV = ("python", "-m", "tfnlp.training.cluster", "serve")
# Parameter-server RPCs report a dead worker to the coordinator at once (as `tfnlp launch`).
PS_ENV = {"GRPC_FAIL_FAST": "use_caller"}

_URL = re.compile(r"\A[a-z][a-z0-9+.-]*://")
# A Kubernetes object name the TFJob webhook accepts (DNS-1035 label).
_DNS_1035 = re.compile(r"\A[a-z]([-a-z0-9]*[a-z0-9])?\Z")
_DNS_LABEL_MAX = 63


@dataclass(frozen=True)
class LaunchRequest:
    """A pipeline and the cluster to run it on.

    Attributes:
        pipeline: the pipeline file, as the job's processes see it (inside the image, or on
            the shared file system).
        name: the pipeline's `name` (the job's name derives from it).
        workers: training workers (multi-worker mirrored), or the parameter-server workers.
        ps: parameter servers; 0 means multi-worker mirrored.
        overrides: `--set` values for every training process.
        run_dir: the run directory; None takes the engine's default.
        export: publish the export when training ends (False: `--no-export`).
        image: the container image with tfnlp installed (tfjob, vertex).
        namespace: the TFJob's namespace.
        volume_claim: the ReadWriteMany PersistentVolumeClaim the TFJob mounts at /shared.
        backoff_limit: the TFJob's retries before it is marked failed.
        machine_type: Vertex's machine type for every pool.
        region: Vertex's region, in the submit command.
    """

    pipeline: str
    name: str
    workers: int = 2
    ps: int = 0
    overrides: tuple[str, ...] = ()
    run_dir: str | None = None
    export: bool = True
    image: str | None = None
    namespace: str | None = None
    volume_claim: str | None = None
    backoff_limit: int | None = None
    machine_type: str | None = None
    region: str | None = None

    @property
    def strategy(self) -> str:
        return "parameter_server" if self.ps else "multi_worker_mirrored"

    def option(self, name: str):
        """The option's value, or its default."""
        value = getattr(self, name)
        return DEFAULTS.get(name) if value is None else value

    @property
    def export_dir_override(self) -> str | None:
        """The last `--set export.dir=` value, if any."""
        values = [o.partition("=")[2] for o in self.overrides
                  if o.partition("=")[0].strip() == "export.dir"]
        return str(yaml.safe_load(values[-1])) if values else None

    def train_argv(self, run_dir: str | None, export_dir: str | None) -> list[str]:
        """`tfnlp train PIPELINE [--run-dir] --set ... distribute.strategy=... [export.dir=]`."""
        argv = ["tfnlp", "train", self.pipeline]
        if run_dir:
            argv += ["--run-dir", run_dir]
        sets = [*self.overrides, f"distribute.strategy={self.strategy}"]
        if export_dir:
            sets.append(f"export.dir={export_dir}")
        argv += ["--set", *sets]
        return argv + ([] if self.export else ["--no-export"])


@dataclass(frozen=True)
class LaunchFile:
    """An emitted file and the one command that submits it."""

    path: Path
    submit: str


def emit(kind: str, request: LaunchRequest, out_dir: str | Path) -> LaunchFile:
    """Writes the engine's file for `request` into `out_dir` and says how to submit it.

    Args:
        kind: "tfjob", "slurm" or "vertex".
        request: the pipeline and cluster shape.
        out_dir: the directory for the file (created).

    Returns:
        The file written (tfjob.yaml, job.sbatch or custom_job_spec.json) and its submit
        command.

    Raises:
        ValueError: an unknown kind, a cluster shape or option the engine cannot take, or a
            document the engine would refuse; the message names the flag and the fix.
    """
    if kind not in EMIT_KINDS:
        raise ValueError(f"`--emit` must be one of {', '.join(EMIT_KINDS)}. Received: "
                         f"emit={kind!r}.")
    _check_request(kind, request)
    path = Path(out_dir) / FILE_NAMES[kind]
    quoted = shlex.quote(str(path))
    if kind == "tfjob":
        text = yaml.safe_dump(tfjob(request), sort_keys=False, width=100)
        check_tfjob(yaml.safe_load(text))
        submit = f"kubectl create -f {quoted}"
    elif kind == "slurm":
        text = slurm_script(request)
        check_shell_syntax(text)
        submit = f"sbatch {quoted}"
    else:
        text = json.dumps(vertex_job_spec(request), indent=2) + "\n"
        check_vertex_job_spec(json.loads(text))
        # With --config, gcloud reads the file as the CustomJobSpec; the name is a flag.
        submit = (f"gcloud ai custom-jobs create --region={request.region or 'REGION'} "
                  f"--display-name={shlex.quote(request.name)} --config={quoted}")
    return LaunchFile(atomic.write_text(path, text), submit)


def _check_request(kind: str, request: LaunchRequest) -> None:
    """The cluster shape and options `kind` can take (paths are checked by each builder)."""
    least = 2 if kind == "slurm" else 1
    if request.workers < least:
        raise ValueError(
            f"`--workers` must be at least {least} for `--emit {kind}`. Received: "
            f"workers={request.workers}."
            + (" A one-task Slurm step is no cluster: on one node, run `tfnlp train` in an "
               "ordinary sbatch script." if kind == "slurm" else ""))
    if request.ps < 0:
        raise ValueError(f"`--ps` must be 0 or more. Received: ps={request.ps}.")
    if kind == "slurm" and request.ps:
        raise ValueError(
            "`--ps` must be 0 for `--emit slurm`: tfnlp builds a workers-only TF_CONFIG from "
            f"Slurm's variables (multi-worker mirrored). Received: ps={request.ps}. Use "
            "--emit tfjob or vertex for parameter-server training."
        )
    for name, (kinds, flag) in ENGINE_OPTIONS.items():
        if getattr(request, name) is not None and kind not in kinds:
            raise ValueError(f"`{flag}` applies to `--emit {' / '.join(kinds)}` only. "
                             f"Received: {flag} {getattr(request, name)} with --emit {kind}.")
    if request.backoff_limit is not None and request.backoff_limit < 0:
        raise ValueError(f"`--backoff-limit` must be 0 or more. Received: "
                         f"backoff_limit={request.backoff_limit}.")
    if kind in ("tfjob", "vertex") and not request.image:
        raise ValueError(f"`--image` is required for `--emit {kind}`: the container image "
                         "with tfnlp installed and the pipeline in it, e.g. --image "
                         "registry.example.com/tfnlp:0.1.")


def is_url(path: str | None) -> bool:
    """True for remote paths such as gs://bucket/runs (no volume needed to share them)."""
    return bool(path and _URL.match(path))


# --- Kubeflow training operator v1: TFJob ---------------------------------------------------

def kubernetes_name(name: str, longest_suffix: str = "") -> str:
    """`name` as a DNS-1035 label (the TFJob webhook's rule), short enough that the
    operator's service names `<name><suffix>` (e.g. "-worker-11") stay within 63 characters.

    Example:
        >>> kubernetes_name("tweets_lstm")
        'tweets-lstm'
        >>> kubernetes_name("2024.Run_A")
        'tfnlp-2024-run-a'
    """
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    if not label[:1].isalpha():
        label = f"tfnlp-{label}"
    return label[: _DNS_LABEL_MAX - len(longest_suffix)].rstrip("-")


def tfjob(request: LaunchRequest) -> dict:
    """The TFJob: Worker replicas (multi-worker mirrored), or Chief + Worker + PS.

    Every replica spec restarts by exit code (the operator retries 128-255, e.g. a pod killed
    by a signal, and fails the job on 1-127, tfnlp's errors), `runPolicy.backoffLimit` bounds
    the retries, and `cleanPodPolicy: Running` stops the parameter-server replicas, which
    never exit by themselves, once the chief is done. A ReadWriteMany volume holds the run
    directory and the export, unless both are remote (gs://).

    Raises:
        ValueError: a local run or export directory outside the shared volume.
    """
    run_dir = request.run_dir or f"{MOUNT_PATH}/runs/{request.name}"
    export_dir = None
    if request.export and request.export_dir_override is None:
        export_dir = f"{run_dir}/saved_models" if is_url(run_dir) else f"{MOUNT_PATH}/saved_models"
    exported_to = (export_dir or request.export_dir_override) if request.export else None
    local = _shared_local_paths(run_dir, exported_to, request.name)
    env = PS_ENV if request.ps else {}
    train = _container(request.image, request.train_argv(run_dir, export_dir), env, bool(local))
    serve = _container(request.image, list(SERVE_ARGV), env, False)
    claim = request.option("volume_claim") if local else None
    if request.ps:
        replicas = {"Chief": (1, train), "Worker": (request.workers, serve),
                    "PS": (request.ps, serve)}
    else:
        replicas = {"Worker": (request.workers, train)}
    longest = max(f"-{kind.lower()}-{count - 1}" for kind, (count, _) in replicas.items())
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": {"name": kubernetes_name(request.name, longest),
                     "namespace": request.option("namespace")},
        "spec": {
            "runPolicy": {"backoffLimit": request.option("backoff_limit"),
                          "cleanPodPolicy": "Running"},
            "tfReplicaSpecs": {kind: _replica_spec(count, container, claim if
                                                   container is train else None)
                               for kind, (count, container) in replicas.items()},
        },
    }


def _shared_local_paths(run_dir: str, export_dir: str | None, name: str) -> list[str]:
    """The local paths the replicas share (they need the volume); each must be on it."""
    local = []
    checks = (("--run-dir", "run_dir", run_dir, f"--run-dir {MOUNT_PATH}/runs/{name}"),
              ("--set export.dir", "export.dir", export_dir,
               f"--set export.dir={MOUNT_PATH}/saved_models"))
    for flag, key, path, fix in checks:
        if not path or is_url(path):
            continue
        if not (path == MOUNT_PATH or path.startswith(f"{MOUNT_PATH}/")):
            raise ValueError(
                f"`{flag}` must be under the shared volume's mount path {MOUNT_PATH}, or a "
                "gs:// path, for `--emit tfjob`: every replica and every restart must see it. "
                f"Received: {key}={path!r}. Use e.g. {fix}."
            )
        local.append(path)
    return local


def _container(image: str, argv: list[str], env: dict[str, str], mounted: bool) -> dict:
    container = {
        "name": CONTAINER_NAME,  # the operator reads the port from this container
        "image": image,
        "command": argv,
        "ports": [{"name": PORT_NAME, "containerPort": PORT}],
    }
    if env:
        container["env"] = [{"name": name, "value": value} for name, value in env.items()]
    if mounted:
        container["volumeMounts"] = [{"name": VOLUME_NAME, "mountPath": MOUNT_PATH}]
    return container


def _replica_spec(replicas: int, container: dict, claim: str | None) -> dict:
    pod = {"containers": [copy.deepcopy(container)]}  # no YAML aliases between replicas
    if claim:
        pod["volumes"] = [{"name": VOLUME_NAME, "persistentVolumeClaim": {"claimName": claim}}]
    return {"replicas": replicas, "restartPolicy": "ExitCode", "template": {"spec": pod}}


def check_tfjob(document: dict) -> None:
    """The checks the training operator's TFJob webhook makes, and the fields tfnlp relies on.

    Raises:
        ValueError: the first problem found.
    """
    def fail(what: str) -> None:
        raise ValueError(f"The TFJob is not one the training operator accepts: {what}.")

    if document.get("apiVersion") != "kubeflow.org/v1" or document.get("kind") != "TFJob":
        fail("apiVersion must be kubeflow.org/v1 and kind TFJob")
    name = document.get("metadata", {}).get("name", "")
    if not _DNS_1035.match(name) or len(name) > _DNS_LABEL_MAX:
        fail(f"metadata.name {name!r} must be a DNS-1035 label")
    spec = document.get("spec", {})
    backoff = spec.get("runPolicy", {}).get("backoffLimit")
    if backoff is not None and (not isinstance(backoff, int) or backoff < 0):
        fail(f"runPolicy.backoffLimit {backoff!r} must be a whole number >= 0")
    replicas = spec.get("tfReplicaSpecs") or {}
    if not replicas:
        fail("spec.tfReplicaSpecs must name at least one replica type")
    if sum(kind in ("Chief", "Master") for kind in replicas) > 1:
        fail("there must not be more than 1 Chief or Master role")
    for kind, replica in replicas.items():
        containers = replica.get("template", {}).get("spec", {}).get("containers") or []
        if kind not in REPLICA_TYPES:
            fail(f"replica type {kind!r} must be one of {', '.join(REPLICA_TYPES)}")
        if replica.get("restartPolicy", "Never") not in RESTART_POLICIES:
            fail(f"{kind}.restartPolicy must be one of {', '.join(RESTART_POLICIES)}")
        if kind in ("Chief", "Master") and replica.get("replicas", 1) != 1:
            fail(f"{kind} must have 1 replica")
        if not any(c.get("name") == CONTAINER_NAME for c in containers):
            fail(f"{kind} must have a container named {CONTAINER_NAME!r}")
        if not all(c.get("image") for c in containers):
            fail(f"every {kind} container needs an image")


def tfjob_tf_configs(document: dict) -> list[dict]:
    """The `TF_CONFIG` the training operator (v1) gives each replica of a TFJob, in order.

    The operator's rule (pkg/controller.v1/tensorflow/tensorflow.go): one job per replica type,
    lower-cased; task i of job j is the headless service `<name>-<j>-<i>.<namespace>.svc`
    at the `tensorflow` container's `tfjob-port` (default 2222).
    """
    name = document["metadata"]["name"]
    namespace = document["metadata"].get("namespace", "default")
    cluster = {}
    for kind, replica in document["spec"]["tfReplicaSpecs"].items():
        job = kind.lower()
        port = next((p["containerPort"] for c in replica["template"]["spec"]["containers"]
                     if c.get("name") == CONTAINER_NAME for p in c.get("ports", [])
                     if p.get("name") == PORT_NAME), PORT)
        cluster[job] = [f"{name}-{job}-{index}.{namespace}.svc:{port}"
                        for index in range(replica.get("replicas", 1))]
    return [{"cluster": cluster, "task": {"type": job, "index": index}, "environment": "cloud"}
            for job, addresses in cluster.items() for index in range(len(addresses))]


def dynamic_worker_tf_config(config: dict, key: str = "sparseCluster") -> dict:
    """What the operator sends instead of `config` when `enableDynamicWorker` is on.

    A worker gets its own address (as `{"<index>": address}`) and every parameter server's; a
    parameter server only its own; any other task (the chief) nothing. The operator writes
    this under `sparseCluster` before v1.7 and under `cluster` since (#1798).

    Example:
        >>> config = {"cluster": {"worker": ["w0:1", "w1:1"], "ps": ["p0:1"]},
        ...           "task": {"type": "worker", "index": 1}}
        >>> dynamic_worker_tf_config(config)
        {'sparseCluster': {'worker': {'1': 'w1:1'}, 'ps': ['p0:1']},
         'task': {'type': 'worker', 'index': 1}}
    """
    kind, index = config["task"]["type"], config["task"]["index"]
    cluster = config["cluster"]
    sparse = {"worker": {}, "ps": []}
    if kind == "ps":
        sparse["ps"] = [cluster["ps"][index]]
    elif kind == "worker":
        sparse = {"worker": {str(index): cluster["worker"][index]}, "ps": cluster.get("ps", [])}
    return {key: sparse, "task": dict(config["task"])}


# --- Slurm: sbatch ---------------------------------------------------------------------------

def slurm_script(request: LaunchRequest) -> str:
    """An sbatch script: one node per worker, one task per node, `srun tfnlp train ...`.

    tfnlp builds each task's TF_CONFIG from Slurm's variables, workers only, so this is
    multi-worker mirrored (`emit` refuses parameter servers and fewer than 2 workers); the
    run directory must be on a file system every node shares.
    """
    run_dir = request.run_dir or f"runs/{request.name}"
    srun = ["srun", "--kill-on-bad-exit=1", *request.train_argv(run_dir, None)]
    return "\n".join([
        "#!/bin/bash",
        f"#SBATCH --job-name={request.name}",
        f"#SBATCH --nodes={request.workers}",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --output={request.name}-%j.out",
        "# Written by `tfnlp launch --emit slurm`. Each srun task is one MultiWorkerMirrored",
        "# worker; tfnlp builds its TF_CONFIG from SLURM_PROCID, SLURM_STEP_NODELIST and",
        "# SLURM_STEP_TASKS_PER_NODE (port $TFNLP_SLURM_PORT, default 2222). --kill-on-bad-exit",
        "# stops every task as soon as one fails. Add your site's --partition / --time here.",
        "set -euo pipefail",
        shlex.join(srun),
        "",
    ])


def check_shell_syntax(script: str) -> None:
    """`bash -n`: the script parses (skipped where bash is not installed).

    Raises:
        ValueError: bash's complaint.
    """
    bash = shutil.which("bash")
    if bash is None:
        return
    done = subprocess.run([bash, "-n"], input=script, text=True, capture_output=True,
                          timeout=30)
    if done.returncode:
        raise ValueError(f"The sbatch script does not parse (bash -n): {done.stderr.strip()}")


# --- Vertex AI: CustomJobSpec ----------------------------------------------------------------

def vertex_job_spec(request: LaunchRequest) -> dict:
    """The CustomJobSpec: pool 0 the chief (1 replica), 1 the workers, 2 the parameter servers.

    Vertex names pool 0 "chief" in TF_CONFIG. Under multi-worker mirrored the chief trains as
    one of the `--workers` (pool 1 holds the other N-1), which TensorFlow's
    MultiWorkerMirroredStrategy accepts; tfnlp's chief writes the results. With a gs:// run
    directory it is the job's `baseOutputDirectory`, and tfnlp takes Vertex's
    AIP_CHECKPOINT_DIR, AIP_MODEL_DIR and AIP_TENSORBOARD_LOG_DIR under it
    (`tfnlp.training.vertex`).

    Raises:
        ValueError: a `--run-dir` neither gs:// nor /gcs/ (a custom job's containers keep
            nothing).
    """
    run_dir = request.run_dir
    if not run_dir or not run_dir.startswith(("gs://", "/gcs/")):
        raise ValueError(
            "`--run-dir` must be a gs:// path (the job's baseOutputDirectory) or a Cloud "
            "Storage FUSE path /gcs/BUCKET/... for `--emit vertex`: a custom job's containers "
            f"keep nothing when it ends. Received: "
            f"{f'run_dir={run_dir!r}' if run_dir else '--run-dir unset'}."
        )
    if is_url(run_dir):  # Vertex's AIP_* directories under baseOutputDirectory
        train = request.train_argv(None, None)
    else:
        export_dir = (f"{run_dir}/saved_models"
                      if request.export and request.export_dir_override is None else None)
        train = request.train_argv(run_dir, export_dir)
    env = PS_ENV if request.ps else {}

    def pool(replicas: int, argv: list[str] | tuple[str, ...]) -> dict:
        container = {"imageUri": request.image, "command": list(argv[:1]),
                     "args": list(argv[1:])}
        if env:
            container["env"] = [{"name": name, "value": value} for name, value in env.items()]
        return {"machineSpec": {"machineType": request.option("machine_type")},
                "replicaCount": replicas, "containerSpec": container}

    if request.ps:
        pools = [pool(1, train), pool(request.workers, SERVE_ARGV), pool(request.ps, SERVE_ARGV)]
    else:
        pools = [pool(1, train)] + ([pool(request.workers - 1, train)]
                                    if request.workers > 1 else [])
    spec = {"workerPoolSpecs": pools}
    if is_url(run_dir):
        spec["baseOutputDirectory"] = {"outputUriPrefix": run_dir}
    return spec


VERTEX_POOL_TASKS = ("chief", "worker", "ps", "evaluator")  # TF_CONFIG's name for pool i


def vertex_tf_configs(spec: dict) -> list[dict]:
    """The `TF_CONFIG` shape Vertex gives each replica of a CustomJobSpec, in pool order.

    Pool i is task type `VERTEX_POOL_TASKS[i]`; Vertex picks the host names, so the addresses
    here (`workerpool<i>-<j>:2222`) are placeholders for the shape.
    """
    cluster = {VERTEX_POOL_TASKS[number]: [f"workerpool{number}-{j}:{PORT}"
                                           for j in range(pool["replicaCount"])]
               for number, pool in enumerate(spec["workerPoolSpecs"])}
    return [{"cluster": cluster, "task": {"type": job, "index": index}}
            for job, addresses in cluster.items() for index in range(len(addresses))]


def check_vertex_job_spec(spec: dict) -> None:
    """What Vertex requires of a CustomJobSpec's pools, and gcloud of its keys.

    Raises:
        ValueError: the first problem found.
    """
    def fail(what: str) -> None:
        raise ValueError(f"The CustomJobSpec is not one Vertex AI accepts: {what}.")

    def keys(node) -> list[str]:
        if isinstance(node, dict):
            return [*node, *(k for value in node.values() for k in keys(value))]
        return [k for item in node for k in keys(item)] if isinstance(node, list) else []

    pools = spec.get("workerPoolSpecs") or []
    if not pools or pools[0].get("replicaCount") != 1:
        fail("workerPoolSpecs[0] (the chief) must have replicaCount 1")
    for number, pool in enumerate(pools):
        container = pool.get("containerSpec", {})
        if not pool.get("machineSpec", {}).get("machineType"):
            fail(f"workerPoolSpecs[{number}].machineSpec.machineType is required")
        if not isinstance(pool.get("replicaCount"), int) or pool["replicaCount"] < 1:
            fail(f"workerPoolSpecs[{number}].replicaCount must be at least 1")
        if not container.get("imageUri") or not container.get("command"):
            fail(f"workerPoolSpecs[{number}].containerSpec needs imageUri and command")
    underscored = [key for key in keys(spec) if "_" in key]
    if underscored:  # gcloud: "keys with underscore are invalid"
        fail(f"keys must be camelCase, not {underscored}")
    prefix = spec.get("baseOutputDirectory", {}).get("outputUriPrefix", "gs://")
    if not prefix.startswith("gs://"):
        fail(f"baseOutputDirectory.outputUriPrefix {prefix!r} must be a gs:// path")
