"""`tfnlp bench distribute` bookkeeping: ratios, JSON keys, PNG, failures (no real training).

The real runs are the lead's full-scale benchmark; here each configuration's training command
is replaced by one that writes a metrics.json with a known examples/s.
"""

import json

import pytest

from tfnlp.bench import distribute

PNG = b"\x89PNG\r\n\x1a\n"
SPEEDS = {"one_device": 100.0, "mirrored_2cpu": 150.0, "multi_worker_2": 80.0}


def fake_training(monkeypatch, fail=None):
    def write_metrics(command):
        run_dir = command[command.index("--run-dir") + 1]
        name = run_dir.rsplit("/", 1)[-1]
        if name == fail:
            return 3
        replicas = 1 if name == "one_device" else 2
        (distribute.Path(run_dir)).mkdir(parents=True)
        (distribute.Path(run_dir) / "metrics.json").write_text(json.dumps({"train": {
            "examples_per_second": SPEEDS[name], "replicas": replicas, "train_seconds": 1.0}}))
        return 0

    class Completed:
        def __init__(self, code):
            self.returncode = code

    monkeypatch.setattr(distribute.subprocess, "run",
                        lambda command, **kwargs: Completed(write_metrics(command)))
    monkeypatch.setattr(distribute, "launch_cluster",
                        lambda command, workers, **kwargs: write_metrics(command))


def test_bench_writes_ratios_json_and_png(tmp_path, monkeypatch, capsys):
    fake_training(monkeypatch)
    result = distribute.run_distribute_benchmark("p.yaml", ["data.limit=600"], tmp_path)
    saved = json.loads((tmp_path / "bench_distribute.json").read_text())
    assert saved == result
    runs = saved["runs"]
    assert list(runs) == ["one_device", "mirrored_2cpu", "multi_worker_2"]
    assert [runs[n]["examples_per_second"] for n in runs] == [100.0, 150.0, 80.0]
    assert [runs[n]["ratio_to_one_device"] for n in runs] == [1.0, 1.5, 0.8]
    assert runs["mirrored_2cpu"]["efficiency"] == pytest.approx(0.75)
    assert runs["multi_worker_2"]["workers"] == 2 and saved["overrides"] == ["data.limit=600"]
    assert (tmp_path / "bench_distribute.png").read_bytes()[:8] == PNG
    assert "x1.50 of one_device" in capsys.readouterr().out


def test_bench_names_the_failed_configuration(tmp_path, monkeypatch):
    fake_training(monkeypatch, fail="multi_worker_2")
    with pytest.raises(RuntimeError, match="multi_worker_2 failed with status 3.*_2.log"):
        distribute.run_distribute_benchmark("p.yaml", [], tmp_path)
    assert not (tmp_path / "bench_distribute.json").exists()


def test_steady_throughput_skips_the_tracing_epoch(tmp_path):
    log = tmp_path / "train.log"
    log.write_text(
        "12:00:01 INFO epoch 1/3: loss=1.1 (40.0 s, 12 examples/s)\n"
        "12:00:02 INFO epoch 2/3: loss=1.0 (2.0 s, 240 examples/s)\n"
        "12:00:03 INFO epoch 3/3: loss=0.9 (3.0 s, 160 examples/s)\n")
    assert distribute.steady_examples_per_second(log) == pytest.approx(960 / 5)
    log.write_text("12:00:01 INFO epoch 1/1: loss=1.1 (40.0 s, 12 examples/s)\n")
    assert distribute.steady_examples_per_second(log) is None
