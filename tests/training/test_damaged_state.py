"""Damaged and foreign state: backups a crashed machine left truncated or bit-flipped, and
checkpoints copied in from another run, given to `train`, `evaluate`, `export` and `compress`.
"""

import shutil

import pytest

from tests.conftest import REPO, TINY_OVERRIDES
from tests.training.test_trainer import StopAfterEpoch
from tfnlp.compression.pipeline import compress_run
from tfnlp.config import load_pipeline
from tfnlp.training.resume import ResumeError, checkpoint_problem
from tfnlp.training.run import train_pipeline
from tfnlp.training.run_directory import CheckpointMismatch
from tfnlp.training.trained import CheckpointDamaged, evaluate_run, export_run, load_trained

OVERRIDES = TINY_OVERRIDES + ["train.epochs=3", "model.num_layers=1", "data.limit=300"]


def lstm_config(*extra):
    return load_pipeline(REPO / "pipelines" / "tweets_lstm.yaml", OVERRIDES + list(extra))


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A run that crashed as its third epoch began: its backup holds epochs 1 and 2."""
    run_dir = tmp_path_factory.mktemp("interrupted") / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_pipeline(lstm_config(), run_dir, export=False, extra_callbacks=[StopAfterEpoch(2)])
    return run_dir


@pytest.fixture
def crashed(interrupted, tmp_path):
    """A private copy of the interrupted run, to damage."""
    return shutil.copytree(interrupted, tmp_path / "run")


def flip_a_byte(path, fraction=0.1):
    data = bytearray(path.read_bytes())
    data[int(len(data) * fraction)] ^= 0x10
    path.write_bytes(bytes(data))


def backup_data(run_dir, number):
    return run_dir / "backup" / "chief" / f"ckpt-{number}.data-00000-of-00001"


def test_the_two_newest_backups_are_kept_and_intact(interrupted):
    chief = interrupted / "backup" / "chief"
    assert sorted(p.name for p in chief.glob("ckpt-*.index")) == ["ckpt-1.index", "ckpt-2.index"]
    assert checkpoint_problem(chief / "ckpt-1") is None
    assert checkpoint_problem(chief / "ckpt-2") is None


@pytest.mark.parametrize("damage", ["bit flip", "truncation"])
def test_a_damaged_newest_backup_falls_back_to_the_one_before(crashed, caplog, damage):
    newest = backup_data(crashed, 2)
    flip_a_byte(newest) if damage == "bit flip" else newest.write_bytes(newest.read_bytes()[:99])
    with caplog.at_level("WARNING", logger="tfnlp"):
        result = train_pipeline(lstm_config(), crashed, export=False)
    assert f"backup {crashed / 'backup' / 'chief' / 'ckpt-2'} is damaged" in caplog.text
    # Resumed after epoch 1 (the intact backup): epochs 2 and 3 ran again.
    assert result.metrics["train"]["epochs_run"] == 2
    assert (crashed / "backup-damaged" / newest.name).is_file()  # kept, not deleted


def test_a_damaged_state_file_is_rewritten_from_the_intact_backups(crashed):
    (crashed / "backup" / "chief" / "checkpoint").write_text("model_checkpoint_path: \"ckpt-")
    result = train_pipeline(lstm_config(), crashed, export=False)
    assert result.metrics["train"]["epochs_run"] == 1  # resumed after epoch 2


def test_no_intact_backup_refuses_by_default_and_says_how_to_start_fresh(crashed):
    flip_a_byte(backup_data(crashed, 1))
    flip_a_byte(backup_data(crashed, 2))
    with pytest.raises(ResumeError, match=r"no intact backup.*train\.resume: auto"):
        train_pipeline(lstm_config(), crashed, export=False)
    with pytest.raises(ResumeError):  # the refusal stands until the user decides
        train_pipeline(lstm_config(), crashed, export=False)


def test_a_first_backup_killed_while_written_starts_fresh_even_when_strict(crashed, caplog):
    """A SIGKILL during the first backup leaves only its temporary shard: no epoch recorded."""
    chief = crashed / "backup" / "chief"
    for path in chief.iterdir():
        path.unlink()
    (chief / "ckpt-1_temp").mkdir()
    (chief / "ckpt-1_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\0" * 99)
    with caplog.at_level("WARNING", logger="tfnlp"):
        result = train_pipeline(lstm_config(), crashed, export=False)
    assert "first backup was never completed" in caplog.text
    assert result.metrics["train"]["epochs_run"] == 3
    assert not (crashed / "backup").exists()  # removed by the finished run, as always


def test_resume_auto_starts_fresh_and_keeps_what_was_left(crashed, caplog):
    flip_a_byte(backup_data(crashed, 1))
    flip_a_byte(backup_data(crashed, 2))
    with caplog.at_level("WARNING", logger="tfnlp"):
        result = train_pipeline(lstm_config("train.resume=auto"), crashed, export=False)
    assert "starting fresh" in caplog.text
    assert result.metrics["train"]["epochs_run"] == 3
    assert len(list(crashed.glob("backup-damaged-*"))) == 1


@pytest.fixture
def bilstm_copy(tiny_run, tmp_path):
    """A private copy of the session's tiny BiLSTM run."""
    return shutil.copytree(tiny_run.run_dir, tmp_path / "bilstm")


def read_back(command, run_dir, tmp_path):
    if command == "evaluate":
        return evaluate_run(run_dir)
    if command == "export":
        return export_run(run_dir, str(tmp_path / "exports"))
    config = load_trained(run_dir).config
    return compress_run(config, run_dir, tmp_path / "compressed")


@pytest.mark.parametrize("command", ["evaluate", "export", "compress"])
def test_a_damaged_best_checkpoint_is_refused_naming_the_file(bilstm_copy, tmp_path, command):
    flip_a_byte(bilstm_copy / "checkpoints" / "best.data-00000-of-00001")
    with pytest.raises(CheckpointDamaged, match=r"checkpoints/best: damaged \(.*Checksum"):
        read_back(command, bilstm_copy, tmp_path)
    assert not (tmp_path / "exports").exists() or not any((tmp_path / "exports").rglob("1"))


@pytest.mark.parametrize("command", ["evaluate", "export", "compress"])
def test_checkpoints_from_another_run_are_refused_naming_both(bilstm_copy, interrupted, tmp_path,
                                                              command):
    shutil.rmtree(bilstm_copy / "checkpoints")
    shutil.copytree(interrupted / "checkpoints", bilstm_copy / "checkpoints")
    with pytest.raises(CheckpointMismatch,
                       match=r"another model or vocabulary.*model\.name: 'lstm' there, "
                             r"'bilstm' here"):
        read_back(command, bilstm_copy, tmp_path)


def test_checkpoint_files_without_their_identity_are_refused_by_shape(bilstm_copy, interrupted,
                                                                       tmp_path):
    for path in (interrupted / "checkpoints").glob("best.*"):
        shutil.copy(path, bilstm_copy / "checkpoints" / path.name)
    with pytest.raises(CheckpointMismatch, match="does not fit the model"):
        export_run(bilstm_copy, str(tmp_path / "exports"))
