"""TF_CONFIG from a Slurm step: node lists, tasks per node, scontrol or the parser, errors."""

import json
import os

import pytest

from tfnlp.training.slurm import (
    expand_nodelist,
    expand_tasks_per_node,
    hostnames,
    slurm_tf_config,
)
from tfnlp.training.strategy import tf_config


def step(procid, tasks, nodelist, per_node, **more):
    """The variables srun sets in one task of a step (those tfnlp reads)."""
    return {"SLURM_PROCID": str(procid), "SLURM_STEP_NUM_TASKS": str(tasks),
            "SLURM_STEP_NODELIST": nodelist, "SLURM_STEP_TASKS_PER_NODE": per_node, **more}


@pytest.mark.parametrize("nodelist, hosts", [
    ("node[1-3,5]", ["node1", "node2", "node3", "node5"]),
    ("a[01-03]", ["a01", "a02", "a03"]),
    ("gpu-[1-2],cpu7", ["gpu-1", "gpu-2", "cpu7"]),
    ("n1,n[3-4]", ["n1", "n3", "n4"]),
    ("solo", ["solo"]),
    ("x[8-11]", ["x8", "x9", "x10", "x11"]),
    ("n[098-101]", ["n098", "n099", "n100", "n101"]),
    ("r[1-2]-c[1,3]", ["r1-c1", "r1-c3", "r2-c1", "r2-c3"]),
    (" a[1-2] , b ", ["a1", "a2", "b"]),
])
def test_compressed_node_lists_expand_in_slurms_order(nodelist, hosts):
    assert expand_nodelist(nodelist) == hosts


@pytest.mark.parametrize("nodelist, why", [
    ("node[1-3", "without its ']'"),
    ("node]1", "without its '['"),
    ("node[a-b]", "not a number"),
    ("node[3-1]", "runs backwards"),
    ("a,,b", "empty or broken host name"),
    ("", "empty"),
    ("a[[1-2]]", "nested"),
])
def test_malformed_node_lists_name_the_variable(nodelist, why):
    with pytest.raises(ValueError, match=r"`SLURM_STEP_NODELIST` must be a Slurm node list") as e:
        expand_nodelist(nodelist)
    assert why in str(e.value) and "Received: SLURM_STEP_NODELIST=" in str(e.value)


@pytest.mark.parametrize("value, counts", [
    ("2(x3),1", [2, 2, 2, 1]), ("1", [1]), ("4(x2)", [4, 4]), ("1,2,1", [1, 2, 1]),
])
def test_tasks_per_node_expand(value, counts):
    assert expand_tasks_per_node(value) == counts


@pytest.mark.parametrize("value", ["2(x)", "0", "a", "2(x3)1", ""])
def test_malformed_tasks_per_node_name_the_variable(value):
    with pytest.raises(ValueError, match="`SLURM_STEP_TASKS_PER_NODE` must be Slurm's tasks"):
        expand_tasks_per_node(value)


def test_tf_config_lists_workers_node_by_node_with_a_port_per_local_task():
    environ = step(3, 5, "cn[1-2],gpu7", "2(x2),1", TFNLP_SLURM_PORT="4000")
    config = slurm_tf_config(environ, scontrol=None)
    assert config == {
        "cluster": {"worker": ["cn1:4000", "cn1:4001", "cn2:4000", "cn2:4001", "gpu7:4000"]},
        "task": {"type": "worker", "index": 3},
    }
    assert slurm_tf_config(step(0, 2, "a,b", "1(x2)"), scontrol=None)["cluster"] == {
        "worker": ["a:2222", "b:2222"]}  # the default port


@pytest.mark.parametrize("environ", [
    {},  # not under Slurm
    {"SLURM_PROCID": "0"},  # a batch script, not a step
    step(0, 1, "n1", "1"),  # a step of one task: no cluster
])
def test_no_cluster_outside_a_multi_task_step(environ):
    assert slurm_tf_config(environ, scontrol=None) is None


@pytest.mark.parametrize("environ, message", [
    (step(0, 2, "n1", "1"), "`SLURM_STEP_TASKS_PER_NODE` must give one count per node"),
    (step(0, 3, "n[1-2]", "1(x2)"), "adding up to SLURM_STEP_NUM_TASKS=3"),
    (step(0, 2, "", "1(x2)"), "`SLURM_STEP_NODELIST` must be set"),
    (step(2, 2, "n[1-2]", "1(x2)"), "`SLURM_PROCID` must be an integer from 0 to 1"),
    (step(0, "two", "n[1-2]", "1(x2)"), "`SLURM_STEP_NUM_TASKS` must be an integer"),
    (step(0, 2, "n[1-2", "1(x2)"), "`SLURM_STEP_NODELIST` must be a Slurm node list"),
    (step(0, 2, "n1", "2", TFNLP_SLURM_PORT="65535"), "`TFNLP_SLURM_PORT` must be an integer"),
    # Cyclic distribution: rank 1 sits on n1 (local task 1 there), not on n2.
    (step(1, 4, "n[1-2]", "2(x2)", SLURMD_NODENAME="n2", SLURM_LOCALID="0"),
     "srun --distribution=block"),
])
def test_bad_slurm_variables_say_which_and_how_to_fix(environ, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        slurm_tf_config(environ, scontrol=None)


def test_block_distribution_passes_the_node_check():
    environ = step(1, 4, "n[1-2]", "2(x2)", SLURMD_NODENAME="n1", SLURM_LOCALID="1")
    assert slurm_tf_config(environ, scontrol=None)["task"]["index"] == 1


def fake_scontrol(directory, body):
    script = directory / "scontrol"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return directory


def test_scontrol_expands_the_list_when_on_path_else_the_parser(tmp_path, monkeypatch):
    # The fake prints host names the parser could not have produced: proof it was asked.
    fake_scontrol(tmp_path, '[ "$1 $2" = "show hostnames" ] && printf "h-a\\nh-b\\n"')
    monkeypatch.setenv("PATH", str(tmp_path))
    assert hostnames("anything[1-2]") == ["h-a", "h-b"]
    config = slurm_tf_config(step(1, 2, "anything[1-2]", "1(x2)"))
    assert config["cluster"]["worker"] == ["h-a:2222", "h-b:2222"]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # scontrol absent
    assert hostnames("anything[1-2]") == ["anything1", "anything2"]


def test_a_failing_scontrol_names_the_variable(tmp_path, monkeypatch):
    fake_scontrol(tmp_path, 'echo "scontrol: error: bad list" >&2; exit 1')
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ValueError, match="`SLURM_STEP_NODELIST` could not be expanded.*bad list"):
        hostnames("n[1-2")


def test_tf_config_builds_and_exports_it_for_tensorflow(monkeypatch, caplog):
    from tfnlp.backend import tf

    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")  # the parser, whatever this machine has
    for name, value in step(1, 2, "localhost", "2", TFNLP_SLURM_PORT="3100").items():
        monkeypatch.setenv(name, value)
    with caplog.at_level("INFO", logger="tfnlp"):
        config = tf_config()
    expected = {"cluster": {"worker": ["localhost:3100", "localhost:3101"]},
                "task": {"type": "worker", "index": 1}}
    assert config == expected and json.loads(os.environ["TF_CONFIG"]) == expected
    assert "TF_CONFIG: built from Slurm's variables (SLURM_STEP_NODELIST=localhost)" in caplog.text
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    assert resolver.cluster_spec().as_dict() == expected["cluster"]
    assert (resolver.task_type, resolver.task_id) == ("worker", 1)
    caplog.clear()
    with caplog.at_level("INFO", logger="tfnlp"):
        assert tf_config() == expected  # read back from TF_CONFIG: logged once
    assert "Slurm" not in caplog.text
