"""Streamed shards on a real 2-worker cluster, and memory that does not grow with the corpus.

Slow: each test starts processes that import TensorFlow; together about 2 minutes on 2 cores.
"""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.data.test_streaming import write_shards
from tfnlp.training.cluster import launch_cluster

pytestmark = pytest.mark.slow

# One child process: scan the shards, then read one epoch of the training split; prints how
# far its resident memory rose above what it held once TensorFlow was up (sampled every 5 ms:
# the process's lifetime peak, ru_maxrss, can be set by TensorFlow's own start-up alone).
# With `in_memory`, reads the same files into memory instead.
_PEAK_RSS = """
import os, sys, threading, time
from tfnlp.config.schema import DataConfig
from tfnlp.data.loading import read_source
from tfnlp.data.streaming import scan, split_dataset
import tensorflow as tf
tf.constant(0) + 1  # TensorFlow's runtime up before the baseline
def rss():
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
base, peak, done = rss(), [0.0], threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.005)
threading.Thread(target=sample, daemon=True).start()
source, mode = sys.argv[1:3]
if mode == "in_memory":
    examples, _ = read_source(DataConfig(source=source, stream=False))
    rows = len(examples)
else:
    data = scan(DataConfig(source=source), seed=1, sample_size=1000)
    rows = sum(len(texts) for texts, _ in split_dataset(
        data, "train", batch_size=256, shuffle=True, seed=1, shuffle_buffer=10_000))
peak[0] = max(peak[0], rss())
done.set()
print(rows, peak[0] - base)
"""


def peak_rss(source: str, mode: str) -> tuple[int, float]:
    done = subprocess.run([sys.executable, "-c", _PEAK_RSS, source, mode], capture_output=True,
                          text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows, megabytes = done.stdout.split()
    return int(rows), float(megabytes)


def test_two_workers_read_each_training_row_once_per_epoch_by_file(tmp_path, capfd):
    source = write_shards(tmp_path / "shards", rows_per_shard=50, shards=8)
    status = launch_cluster(
        [sys.executable, "-m", "tests.integration.streamed_ids", source, str(tmp_path)],
        workers=2, env={"PYTHONPATH": str(REPO)}, timeout=300)
    assert status == 0, capfd.readouterr().out[-3000:]
    workers = [json.loads((tmp_path / f"worker_{i}.json").read_text()) for i in range(2)]
    assert [w["policy"] for w in workers] == ["1", "1"]  # AutoShardPolicy.FILE
    for epoch in range(2):
        seen = [w["epochs"][epoch] for w in workers]
        assert all(len(texts) == len(set(texts)) > 0 for texts in seen)
        assert not set(seen[0]) & set(seen[1])
        assert len(seen[0]) + len(seen[1]) == workers[0]["train_rows"]


def test_launch_trains_on_streamed_shards(tmp_path):
    source = write_shards(tmp_path / "shards", rows_per_shard=60, shards=4)
    done = subprocess.run(
        [sys.executable, "-m", "tfnlp", "launch", "--workers", "2",
         str(REPO / "pipelines" / "tweets_lstm.yaml"), "--run-dir", str(tmp_path / "run"),
         "--no-export", "--timeout", "400", "--set", f"data.source={source}",
         "preprocessing.vocab_size=100", "model.embedding_dim=8", "model.units=4",
         "model.num_layers=1", "train.epochs=1", "train.batch_size=16"],
        capture_output=True, text=True, cwd=REPO, timeout=450)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "streaming 4 file(s), splits by text hash" in done.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert sum(metrics["data"].values()) == 240
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0


def test_peak_memory_stays_flat_when_the_corpus_grows_tenfold(tmp_path):
    filler = " x" * 400
    small = write_shards(tmp_path / "small", rows_per_shard=1500, shards=8, filler=filler)
    large = write_shards(tmp_path / "large", rows_per_shard=1500, shards=80, filler=filler)
    small_rows, small_mb = peak_rss(small, "stream")
    large_rows, large_mb = peak_rss(large, "stream")
    _, in_memory_mb = peak_rss(large, "in_memory")
    print(f"RSS growth, streamed: {small_mb:.0f} MB for {small_rows} training rows, "
          f"{large_mb:.0f} MB for {large_rows}; the large corpus in memory: {in_memory_mb:.0f} MB")
    assert large_rows > 9 * small_rows
    assert in_memory_mb > 60  # the measurement can see the corpus (77 MB of text)
    assert large_mb - small_mb < 30
