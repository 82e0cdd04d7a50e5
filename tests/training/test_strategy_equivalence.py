"""All-reduce correctness: same global batch and seed, same per-step loss on 1 or 2 replicas.

Tolerance: 1e-5 absolute on the loss (float32 all-reduce sums in another order; measured
~1e-7). A strategy that trained each replica on its own gradients would differ by ~1e-2
from the second step on.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from tests.integration.step_losses import EPOCHS, EXAMPLES, GLOBAL_BATCH, step_losses
from tfnlp.backend import tf
from tfnlp.config.schema import DistributeConfig
from tfnlp.training.cluster import launch_cluster
from tfnlp.training.strategy import create_strategy

TOLERANCE = 1e-5
STEPS = EPOCHS * EXAMPLES // GLOBAL_BATCH


@pytest.fixture(scope="module")
def one_replica_losses():
    losses = step_losses(tf.distribute.get_strategy())
    assert len(losses) == STEPS
    assert max(losses) - min(losses) > 1e-3  # the loss moves: the comparison means something
    return np.array(losses)


def test_mirrored_two_cpu_replicas_match_one_replica(one_replica_losses):
    strategy, _ = create_strategy(DistributeConfig(strategy="mirrored",
                                                   devices=["CPU:0", "CPU:1"]))
    assert strategy.num_replicas_in_sync == 2
    losses = np.array(step_losses(strategy))
    np.testing.assert_allclose(losses, one_replica_losses, rtol=0, atol=TOLERANCE)


def test_two_worker_multi_worker_mirrored_matches_and_shards_without_overlap(
    one_replica_losses, tmp_path, capfd
):
    status = launch_cluster(
        [sys.executable, "-m", "tests.integration.step_losses", str(tmp_path)], workers=2,
        env={"PYTHONPATH": str(REPO)}, timeout=400)
    output = capfd.readouterr().out
    assert status == 0, output[-3000:]
    assert "[worker 1] worker 1: 12 steps" in output
    workers = [json.loads((tmp_path / f"worker_{i}.json").read_text()) for i in range(2)]
    assert [w["replicas"] for w in workers] == [2, 2]
    # DATA sharding: each worker reads its own half of every global batch, none twice.
    ids = [set(w["ids"]) for w in workers]
    assert len(workers[0]["ids"]) == len(ids[0]) == EXAMPLES // 2
    assert not ids[0] & ids[1] and ids[0] | ids[1] == set(range(EXAMPLES))
    for worker in workers:
        np.testing.assert_allclose(worker["losses"], one_replica_losses, rtol=0,
                                   atol=TOLERANCE)


def test_launch_fails_fast_when_a_worker_fails(capfd):
    code = ("import json, os, sys, time\n"
            "index = json.loads(os.environ['TF_CONFIG'])['task']['index']\n"
            "print('hello from', index, flush=True)\n"
            "time.sleep(120) if index == 0 else sys.exit(3)\n")
    status = launch_cluster([sys.executable, "-c", code], workers=2, timeout=60)
    output = capfd.readouterr().out
    assert status == 3
    assert "[worker 0] hello from 0" in output and "[worker 1] hello from 1" in output
    assert "[launch] exit status 3" in output


def test_cli_launch_rejects_a_bad_pipeline_before_starting_workers(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tfnlp", "launch", "--workers", "2", str(tmp_path / "no.yaml")],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "tfnlp: error:" in result.stderr and "[launch]" not in result.stdout
