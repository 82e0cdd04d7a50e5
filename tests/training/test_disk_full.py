"""A disk that fills in the middle of a checkpoint, an export or `compress`, on a real small
filesystem: a `tmpfs` mounted with `size=` (CI runs as root; elsewhere these tests skip, with
the reason). Each must fail with one sentence naming the directory and the space, keep what was
complete before, and leave nothing half-written where a reader (TF-Serving) would look.
"""

import os
import shutil
import subprocess
import uuid

import pytest

from tests.conftest import REPO, TINY_OVERRIDES
from tfnlp.backend import keras, tf
from tfnlp.config import load_pipeline
from tfnlp.disk import DiskFullError
from tfnlp.training.resume import checkpoint_problem
from tfnlp.training.run import train_pipeline
from tfnlp.training.trained import export_run

SENTENCE = r": the disk filled while writing {what} \([\d.]+ MB free, about [\d.]+ MB needed\)"


@pytest.fixture
def small_disk(tmp_path):
    """A 48 MB tmpfs mounted under `tmp_path` (skips where mounting is not permitted)."""
    mount_point = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here ({mounted.stderr.strip()}); "
                    "these tests need root, as in CI")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk, leave_bytes=4096):
    """Takes all but `leave_bytes` of the disk's free space, as another program would."""
    stats = os.statvfs(disk)
    free = stats.f_bavail * stats.f_frsize
    with open(disk / "filler", "wb") as file:
        file.write(b"\0" * max(free - leave_bytes, 0))


class FillDiskAfterFirstEpoch(keras.callbacks.Callback):
    """Fills the disk once the first epoch's checkpoints and backup are written."""

    def __init__(self, disk):
        super().__init__()
        self.disk = disk

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            fill(self.disk)


def test_disk_full_during_a_checkpoint_keeps_the_last_one_and_resumes(small_disk):
    config = load_pipeline(REPO / "pipelines" / "tweets_lstm.yaml",
                           TINY_OVERRIDES + ["model.num_layers=1", "data.limit=300"])
    run_dir = small_disk / "run"
    with pytest.raises(DiskFullError, match=f"{run_dir}" + SENTENCE.format(
            what="the epoch's checkpoints and backup")) as error:
        train_pipeline(config, run_dir, export=False,
                       extra_callbacks=[FillDiskAfterFirstEpoch(small_disk)])
    assert "resumes from the newest" in str(error.value)
    assert not list(run_dir.rglob("*_temp"))  # TensorFlow's half-written shards are gone
    backups = sorted((run_dir / "backup" / "chief").glob("ckpt-*.index"))
    assert [p.name for p in backups] == ["ckpt-1.index"]
    assert checkpoint_problem(backups[0].with_suffix("")) is None
    assert checkpoint_problem(run_dir / "checkpoints" / "best") is None
    (small_disk / "filler").unlink()
    result = train_pipeline(config, run_dir, export=False)
    assert result.metrics["train"]["epochs_run"] == 1  # resumed after epoch 1


def assert_only_complete_versions(model_dir, expected):
    names = sorted(p.name for p in model_dir.iterdir() if not p.name.startswith("."))
    assert [n for n in names if n.isdigit()] == expected
    assert not [p for p in model_dir.iterdir() if p.name.startswith(".tmp-export-")]
    for version in expected:
        assert (model_dir / version / "saved_model.pb").is_file()
        assert (model_dir / version / "variables" / "variables.index").is_file()


def test_disk_full_during_an_export_keeps_the_published_versions(tiny_run, small_disk):
    import tensorflow_text  # noqa: F401  (the export's text ops)

    root = small_disk / "saved_models"
    first = export_run(tiny_run.run_dir, str(root), name="tiny")
    fill(small_disk, leave_bytes=64 * 1024)
    with pytest.raises(DiskFullError, match=f"{root / 'tiny'}" + SENTENCE.format(
            what="the export")):
        export_run(tiny_run.run_dir, str(root), name="tiny")
    assert_only_complete_versions(root / "tiny", [first.name])
    loaded = tf.saved_model.load(str(first))
    assert loaded.signatures["serving_default"](text=tf.constant(["ok"]))["probabilities"].shape \
        == (1, 3)


@pytest.mark.slow
def test_disk_full_during_compress_keeps_the_earlier_outputs(tiny_run, small_disk):
    from tests.compression.test_compress_command import FAST
    from tfnlp.compression.passes import PASSES
    from tfnlp.compression.pipeline import compress_run

    config = load_pipeline(REPO / "pipelines" / "tweets_bilstm.yaml", TINY_OVERRIDES + FAST)
    out = small_disk / "compressed"
    compress_run(config, tiny_run.run_dir, out, passes=PASSES[:1])
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.suffix
              in (".tflite", ".json")}
    fill(small_disk, leave_bytes=16 * 1024)
    with pytest.raises(DiskFullError, match=f"{out}" + SENTENCE.format(what="the compressed .*")):
        compress_run(config, tiny_run.run_dir, out, passes=PASSES[:1])
    for path, content in before.items():
        assert path.read_bytes() == content, path
    shutil.rmtree(out)
