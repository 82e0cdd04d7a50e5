"""`tfnlp launch --emit`: TFJob, sbatch and Vertex files; sparse clusters; Vertex's AIP_* dirs."""

import json
import logging
import os
import shlex
import subprocess

import pytest
import yaml

from tests.conftest import REPO
from tfnlp import cli
from tfnlp.config.schema import DistributeConfig
from tfnlp.training.launch_files import (
    SERVE_ARGV,
    LaunchRequest,
    check_tfjob,
    check_vertex_job_spec,
    dynamic_worker_tf_config,
    emit,
    kubernetes_name,
    tfjob,
    tfjob_tf_configs,
    vertex_tf_configs,
)
from tfnlp.training.strategy import create_strategy, is_chief_task, tf_config
from tfnlp.training.vertex import output_locations, tensorboard_dir

PIPELINE = "pipelines/tweets_lstm.yaml"
IMAGE = "registry.example.com/tfnlp:0.1"


def launch(capsys, out, *args):
    """`tfnlp launch --emit ...` in this process: (exit status, stdout lines, stderr)."""
    status = cli.main(["launch", PIPELINE, *args, "--out", str(out)])
    captured = capsys.readouterr()
    return status, captured.out.splitlines(), captured.err


def containers(document, kind):
    return document["spec"]["tfReplicaSpecs"][kind]["template"]["spec"]["containers"]


def test_tfjob_for_multi_worker_mirrored(tmp_path, capsys):
    status, lines, _ = launch(capsys, tmp_path, "--emit", "tfjob", "--workers", "3", "--image",
                              IMAGE, "--set", "train.epochs=1", "--backoff-limit", "5",
                              "--namespace", "nlp")
    path = tmp_path / "tfjob.yaml"
    assert status == 0
    assert lines == [f"wrote {path}", f"submit: kubectl create -f {path}"]
    assert os.listdir(tmp_path) == ["tfjob.yaml"]  # no temporary file left behind
    document = yaml.safe_load(path.read_text())
    assert document["apiVersion"] == "kubeflow.org/v1" and document["kind"] == "TFJob"
    assert document["metadata"] == {"name": "tweets-lstm", "namespace": "nlp"}
    assert document["spec"]["runPolicy"] == {"backoffLimit": 5, "cleanPodPolicy": "Running"}
    specs = document["spec"]["tfReplicaSpecs"]
    assert list(specs) == ["Worker"]
    assert specs["Worker"]["replicas"] == 3 and specs["Worker"]["restartPolicy"] == "ExitCode"
    (container,) = containers(document, "Worker")
    assert container["name"] == "tensorflow" and container["image"] == IMAGE
    assert container["ports"] == [{"name": "tfjob-port", "containerPort": 2222}]
    assert container["command"] == [
        "tfnlp", "train", PIPELINE, "--run-dir", "/shared/runs/tweets_lstm", "--set",
        "train.epochs=1", "distribute.strategy=multi_worker_mirrored",
        "export.dir=/shared/saved_models"]
    assert container["volumeMounts"] == [{"name": "shared", "mountPath": "/shared"}]
    assert specs["Worker"]["template"]["spec"]["volumes"] == [
        {"name": "shared", "persistentVolumeClaim": {"claimName": "tfnlp-shared"}}]
    assert "env" not in container  # GRPC_FAIL_FAST is for parameter servers


def test_tfjob_for_parameter_servers_on_gcs_needs_no_volume(tmp_path, capsys):
    run_dir = "gs://bucket/runs/tweets_lstm"
    status, _, _ = launch(capsys, tmp_path, "--emit", "tfjob", "--workers", "2", "--ps", "1",
                          "--image", IMAGE, "--run-dir", run_dir)
    text = (tmp_path / "tfjob.yaml").read_text()
    document = yaml.safe_load(text)
    assert status == 0 and "&id" not in text  # no YAML aliases between replica specs
    specs = document["spec"]["tfReplicaSpecs"]
    assert {kind: spec["replicas"] for kind, spec in specs.items()} == {
        "Chief": 1, "Worker": 2, "PS": 1}
    assert all(spec["restartPolicy"] == "ExitCode" for spec in specs.values())
    (chief,) = containers(document, "Chief")
    assert chief["command"] == [
        "tfnlp", "train", PIPELINE, "--run-dir", run_dir, "--set",
        "distribute.strategy=parameter_server", f"export.dir={run_dir}/saved_models"]
    for kind in ("Worker", "PS"):
        (server,) = containers(document, kind)
        assert server["command"] == list(SERVE_ARGV) == [
            "python", "-m", "tfnlp.training.cluster", "serve"]
        assert server["env"] == [{"name": "GRPC_FAIL_FAST", "value": "use_caller"}]
    assert "volumes" not in text and "volumeMounts" not in text
    check_tfjob(document)


def test_tfjob_tf_configs_mirror_the_operators_service_names():
    document = tfjob(LaunchRequest(PIPELINE, "tweets_lstm", workers=2, ps=1, image=IMAGE,
                                   namespace="nlp"))
    configs = tfjob_tf_configs(document)
    assert [(c["task"]["type"], c["task"]["index"]) for c in configs] == [
        ("chief", 0), ("worker", 0), ("worker", 1), ("ps", 0)]
    assert configs[0]["cluster"] == {
        "chief": ["tweets-lstm-chief-0.nlp.svc:2222"],
        "worker": ["tweets-lstm-worker-0.nlp.svc:2222", "tweets-lstm-worker-1.nlp.svc:2222"],
        "ps": ["tweets-lstm-ps-0.nlp.svc:2222"]}
    assert all(c["cluster"] == configs[0]["cluster"] for c in configs)


def test_long_names_leave_room_for_the_operators_service_names():
    name = kubernetes_name("a" * 80, "-worker-11")
    assert len(f"{name}-worker-11") == 63
    document = tfjob(LaunchRequest(PIPELINE, "Run_" + "x" * 70, workers=12, image=IMAGE))
    hosts = [a.split(".")[0] for a in tfjob_tf_configs(document)[0]["cluster"]["worker"]]
    assert hosts[-1].endswith("-worker-11") and max(len(host) for host in hosts) == 63


@pytest.mark.parametrize("mutate, problem", [
    (lambda d: containers(d, "Worker")[0].update(name="main"), "container named 'tensorflow'"),
    (lambda d: containers(d, "Worker")[0].update(image=""), "needs an image"),
    (lambda d: d["metadata"].update(name="Tweets_LSTM"), "DNS-1035 label"),
    (lambda d: d["spec"]["tfReplicaSpecs"].update(
        Chief=d["spec"]["tfReplicaSpecs"]["Worker"], Master=d["spec"]["tfReplicaSpecs"]["Worker"]),
     "more than 1 Chief or Master"),
    (lambda d: d["spec"]["tfReplicaSpecs"]["Worker"].update(restartPolicy="Sometimes"),
     "restartPolicy must be one of"),
    (lambda d: d["spec"]["runPolicy"].update(backoffLimit=-1), "backoffLimit"),
])
def test_tfjob_check_refuses_what_the_operator_would(mutate, problem):
    document = tfjob(LaunchRequest(PIPELINE, "tweets_lstm", image=IMAGE))
    check_tfjob(document)
    mutate(document)
    with pytest.raises(ValueError, match=problem):
        check_tfjob(document)


def test_sbatch_script(tmp_path, capsys):
    status, lines, _ = launch(capsys, tmp_path, "--emit", "slurm", "--workers", "4",
                              "--run-dir", "/scratch/runs/t", "--set", "data.labels=[a, b]",
                              "--no-export")
    path = tmp_path / "job.sbatch"
    assert status == 0 and lines == [f"wrote {path}", f"submit: sbatch {path}"]
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    script = path.read_text().splitlines()
    assert script[0] == "#!/bin/bash"
    directives = [line for line in script if line.startswith("#SBATCH")]
    assert directives == ["#SBATCH --job-name=tweets_lstm", "#SBATCH --nodes=4",
                          "#SBATCH --ntasks-per-node=1", "#SBATCH --output=tweets_lstm-%j.out"]
    first_command = next(i for i, line in enumerate(script) if not line.startswith("#"))
    assert all(script.index(line) < first_command for line in directives)  # sbatch reads these
    (srun,) = [shlex.split(line) for line in script if line.startswith("srun ")]
    assert srun == ["srun", "--kill-on-bad-exit=1", "tfnlp", "train", PIPELINE, "--run-dir",
                    "/scratch/runs/t", "--set", "data.labels=[a, b]",
                    "distribute.strategy=multi_worker_mirrored", "--no-export"]


def test_vertex_custom_job_spec_for_multi_worker_mirrored(tmp_path, capsys):
    status, lines, _ = launch(capsys, tmp_path, "--emit", "vertex", "--workers", "3", "--image",
                              IMAGE, "--run-dir", "gs://bucket/runs/t", "--region",
                              "europe-west4", "--machine-type", "n2-standard-4")
    path = tmp_path / "custom_job_spec.json"
    assert status == 0
    assert lines == [f"wrote {path}", "submit: gcloud ai custom-jobs create "
                     f"--region=europe-west4 --display-name=tweets_lstm --config={path}"]
    spec = json.loads(path.read_text())
    assert spec["baseOutputDirectory"] == {"outputUriPrefix": "gs://bucket/runs/t"}
    pools = spec["workerPoolSpecs"]
    assert [pool["replicaCount"] for pool in pools] == [1, 2]  # the chief + 2 workers train
    for pool in pools:
        assert pool["machineSpec"] == {"machineType": "n2-standard-4"}
        assert pool["containerSpec"] == {
            "imageUri": IMAGE, "command": ["tfnlp"],
            # No --run-dir / export.dir: AIP_CHECKPOINT_DIR and AIP_MODEL_DIR say where.
            "args": ["train", PIPELINE, "--set", "distribute.strategy=multi_worker_mirrored"]}
    configs = vertex_tf_configs(spec)
    assert configs[0]["cluster"] == {"chief": ["workerpool0-0:2222"],
                                     "worker": ["workerpool1-0:2222", "workerpool1-1:2222"]}
    # The chief (pool 0) writes the results; TF's MultiWorkerMirrored counts it as a worker.
    assert [is_chief_task(c) for c in configs] == [True, False, False]


def test_vertex_custom_job_spec_for_parameter_servers_on_gcs_fuse(tmp_path):
    request = LaunchRequest(PIPELINE, "tweets_lstm", workers=2, ps=1, image=IMAGE,
                            run_dir="/gcs/bucket/runs/t")
    spec = json.loads(emit("vertex", request, tmp_path).path.read_text())
    pools = spec["workerPoolSpecs"]
    assert [pool["replicaCount"] for pool in pools] == [1, 2, 1]
    assert "baseOutputDirectory" not in spec
    assert pools[0]["containerSpec"]["args"] == [
        "train", PIPELINE, "--run-dir", "/gcs/bucket/runs/t", "--set",
        "distribute.strategy=parameter_server", "export.dir=/gcs/bucket/runs/t/saved_models"]
    for pool in pools[1:]:
        assert pool["containerSpec"]["command"] == ["python"]
        assert pool["containerSpec"]["args"] == ["-m", "tfnlp.training.cluster", "serve"]
        assert pool["containerSpec"]["env"] == [{"name": "GRPC_FAIL_FAST", "value": "use_caller"}]
    assert [c["task"]["type"] for c in vertex_tf_configs(spec)] == ["chief", "worker", "worker",
                                                                     "ps"]


@pytest.mark.parametrize("mutate, problem", [
    (lambda s: s["workerPoolSpecs"][0].update(replicaCount=2), "replicaCount 1"),
    (lambda s: s["workerPoolSpecs"][0]["containerSpec"].update(image_uri="x"), "camelCase"),
    (lambda s: s["workerPoolSpecs"][0]["machineSpec"].pop("machineType"), "machineType"),
    (lambda s: s.update(baseOutputDirectory={"outputUriPrefix": "s3://b"}), "gs:// path"),
])
def test_vertex_check_refuses_what_vertex_would(tmp_path, mutate, problem):
    request = LaunchRequest(PIPELINE, "tweets_lstm", image=IMAGE, run_dir="gs://b/r")
    spec = json.loads(emit("vertex", request, tmp_path).path.read_text())
    mutate(spec)
    with pytest.raises(ValueError, match=problem):
        check_vertex_job_spec(spec)


@pytest.mark.parametrize("args, message", [
    (["--emit", "tfjob", "--workers", "0", "--image", IMAGE],
     "`--workers` must be at least 1 for `--emit tfjob`. Received: workers=0."),
    (["--emit", "tfjob"], "`--image` is required for `--emit tfjob`"),
    (["--emit", "tfjob", "--image", IMAGE, "--run-dir", "runs/x"],
     "`--run-dir` must be under the shared volume's mount path /shared"),
    (["--emit", "tfjob", "--image", IMAGE, "--set", "export.dir=out"],
     "Use e.g. --set export.dir=/shared/saved_models."),
    (["--emit", "tfjob", "--image", IMAGE, "--backoff-limit", "-1"],
     "`--backoff-limit` must be 0 or more"),
    (["--emit", "slurm", "--ps", "1"], "`--ps` must be 0 for `--emit slurm`"),
    (["--emit", "slurm", "--workers", "1"], "`--workers` must be at least 2 for `--emit slurm`"),
    (["--emit", "slurm", "--image", IMAGE], "`--image` applies to `--emit tfjob / vertex` only"),
    (["--emit", "vertex", "--image", IMAGE], "`--run-dir` must be a gs:// path"),
    (["--emit", "vertex", "--image", IMAGE, "--run-dir", "s3://b/r"], "run_dir='s3://b/r'"),
    (["--emit", "tfjob", "--image", IMAGE, "--timeout", "5"], "`--timeout` is for a local"),
])
def test_bad_launch_options_name_the_flag_and_the_fix(tmp_path, capsys, args, message):
    status, lines, err = launch(capsys, tmp_path, *args)
    assert status == 1 and lines == [] and message in err
    assert not any(tmp_path.iterdir())  # nothing written


def test_emit_and_out_go_together_and_engine_flags_need_emit(tmp_path, capsys):
    assert cli.main(["launch", PIPELINE, "--emit", "tfjob", "--image", IMAGE]) == 1
    assert "`--emit KIND` and `--out DIR` go together" in capsys.readouterr().err
    assert cli.main(["launch", PIPELINE, "--out", str(tmp_path)]) == 1
    assert "go together" in capsys.readouterr().err
    assert cli.main(["launch", PIPELINE, "--image", IMAGE]) == 1
    assert "`--image` goes with `--emit" in capsys.readouterr().err


def test_an_unknown_emit_kind_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["launch", PIPELINE, "--emit", "k8s", "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert "argument --emit: invalid choice: 'k8s' (choose from" in capsys.readouterr().err
    with pytest.raises(ValueError, match="`--emit` must be one of tfjob, slurm, vertex. "
                                         "Received: emit='k8s'."):
        emit("k8s", LaunchRequest(PIPELINE, "tweets_lstm"), tmp_path)


# --- sparse clusters (Kubeflow enableDynamicWorker) --------------------------------------------

FULL = {"cluster": {"chief": ["c0:1"], "worker": ["w0:1", "w1:1"], "ps": ["p0:1", "p1:1"]}}


def task(kind, index):
    return {**FULL, "task": {"type": kind, "index": index}}


@pytest.mark.parametrize("key", ["sparseCluster", "cluster"])  # operator < 1.7, >= 1.7
def test_a_sparse_worker_config_is_read_like_cluster(monkeypatch, key):
    from tfnlp.backend import tf

    monkeypatch.setenv("TF_CONFIG", json.dumps(dynamic_worker_tf_config(task("worker", 1), key)))
    config = tf_config()
    assert config["cluster"] == {"worker": {"1": "w1:1"}, "ps": ["p0:1", "p1:1"]}
    assert json.loads(os.environ["TF_CONFIG"])["cluster"] == config["cluster"]
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    assert resolver.cluster_spec().as_dict() == {"worker": {1: "w1:1"}, "ps": ["p0:1", "p1:1"]}
    assert (resolver.task_type, resolver.task_id) == ("worker", 1)


def test_a_parameter_servers_own_address_is_keyed_by_its_index(monkeypatch, caplog):
    from tfnlp.backend import tf

    monkeypatch.setenv("TF_CONFIG", json.dumps(dynamic_worker_tf_config(task("ps", 1))))
    with caplog.at_level("INFO", logger="tfnlp"):
        assert tf_config()["cluster"] == {"ps": {"1": "p1:1"}}  # empty jobs dropped
    assert "sparseCluster read as cluster (Kubeflow enableDynamicWorker)" in caplog.text
    spec = tf.distribute.cluster_resolver.TFConfigClusterResolver().cluster_spec()
    assert spec.task_address("ps", 1) == "p1:1"


@pytest.mark.parametrize("config, strategy, missing", [
    (dynamic_worker_tf_config(task("worker", 1)), "multi_worker_mirrored",
     "only worker task(s) [1] (a sparse cluster)"),
    (dynamic_worker_tf_config(task("chief", 0)), "parameter_server", "no `worker` addresses"),
])
def test_training_on_a_sparse_cluster_says_why_it_cannot(monkeypatch, config, strategy, missing):
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    with pytest.raises(ValueError, match="needs the whole cluster") as error:
        create_strategy(DistributeConfig(strategy=strategy))
    assert missing in str(error.value) and "enableDynamicWorker" in str(error.value)


# --- Vertex AI's output directories ----------------------------------------------------------

AIP = {"AIP_CHECKPOINT_DIR": "gs://b/job/checkpoints/", "AIP_MODEL_DIR": "gs://b/job/model/",
       "AIP_TENSORBOARD_LOG_DIR": "gs://b/job/logs/"}


def test_vertex_directories_are_honoured_unless_the_command_line_says(tmp_path):
    run_dir, overrides, notes = output_locations(None, ["train.epochs=1"], AIP)
    assert run_dir == "gs://b/job/checkpoints/"
    assert overrides == ["train.epochs=1", 'export.dir="gs://b/job/model/"']
    assert notes == ["run directory gs://b/job/checkpoints/ (from AIP_CHECKPOINT_DIR, Vertex AI)",
                     "export.dir gs://b/job/model/ (from AIP_MODEL_DIR, Vertex AI)"]
    assert output_locations("mine", [" export.dir =x"], AIP) == ("mine", [" export.dir =x"], [])
    assert output_locations(None, [], {}) == (None, [], [])
    assert tensorboard_dir(tmp_path / "logs", AIP) == "gs://b/job/logs/"
    assert tensorboard_dir(tmp_path / "logs", {}) == tmp_path / "logs"


@pytest.fixture
def quiet_tfnlp_logger():
    """`tfnlp train` configures the tfnlp logger; give it back as it was."""
    logger = logging.getLogger("tfnlp")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    for handler in saved[0]:
        logger.addHandler(handler)
    logger.propagate, logger.level = saved[1], saved[2]


@pytest.mark.parametrize("explicit", [False, True])
def test_tfnlp_train_takes_vertex_directories_and_explicit_flags_win(
        tmp_path, monkeypatch, quiet_tfnlp_logger, explicit):
    import tfnlp.training.run

    calls = []
    monkeypatch.setattr(tfnlp.training.run, "train_pipeline",
                        lambda config, run_dir, export: calls.append((config, run_dir)) or
                        type("Result", (), {"metrics": {}})())
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setenv("AIP_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("AIP_MODEL_DIR", str(tmp_path / "model"))
    flags = ["--run-dir", str(tmp_path / "mine"), "--set", "export.dir=elsewhere"] if explicit \
        else []
    assert cli.main(["train", str(REPO / PIPELINE), *flags]) == 0
    ((config, run_dir),) = calls
    assert str(run_dir) == str(tmp_path / ("mine" if explicit else "checkpoints"))
    assert config.export.dir == ("elsewhere" if explicit else str(tmp_path / "model"))


def test_the_tensorboard_callback_writes_where_vertex_says(tmp_path, monkeypatch):
    from tfnlp.backend import keras
    from tfnlp.training.callbacks import standard_callbacks

    monkeypatch.setenv("AIP_TENSORBOARD_LOG_DIR", str(tmp_path / "tb"))
    callbacks, _ = standard_callbacks(tmp_path / "run", monitor="val_accuracy", patience=1,
                                      examples_per_epoch=10)
    (board,) = [c for c in callbacks if isinstance(c, keras.callbacks.TensorBoard)]
    assert board.log_dir == str(tmp_path / "tb")
