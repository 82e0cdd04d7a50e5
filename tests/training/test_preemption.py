"""SIGTERM during `fit` with `KeptBackupAndRestore`: a backup at the next step boundary,
`Preempted`, and a rerun that starts at the step after it (a toy model, 10 steps an epoch).

The real command, its exit status and its files: tests/integration/test_preemption.py (slow).
"""

import signal

import numpy as np
import pytest

from tfnlp.backend import keras, tf
from tfnlp.training.resume import END_OF_EPOCH, KeptBackupAndRestore, Preempted, resume_point

STEPS, EPOCHS = 10, 3


class SigtermAt(keras.callbacks.Callback):
    """Sends this process a SIGTERM at the end of one training step or in one validation."""

    def __init__(self, epoch, step=None):
        super().__init__()
        self.epoch, self.step = epoch, step

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.current, batch) == (self.epoch, self.step):
            signal.raise_signal(signal.SIGTERM)

    def on_test_begin(self, logs=None):
        if self.step is None and self.current == self.epoch:
            signal.raise_signal(signal.SIGTERM)


class StepsSeen(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append((self.current, batch))


def data(unknown_length=False):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4 * STEPS, 4)), rng.normal(size=(4 * STEPS, 1))
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if unknown_length:  # keeps every example, but tf.data can no longer count them
        dataset = dataset.filter(lambda *_: True)
    return dataset.batch(4)


def fit(backup_dir, *callbacks, unknown_length=False):
    """One `fit` as `tfnlp train` runs it: the backup first, SIGTERM noted around it.
    Returns the (epoch, step) pairs trained."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    backup, seen = KeptBackupAndRestore(str(backup_dir)), StepsSeen()
    before = signal.getsignal(signal.SIGTERM)
    try:
        with backup.sigterm_noted():
            model.fit(data(unknown_length), validation_data=data(), epochs=EPOCHS, verbose=0,
                      callbacks=[backup, seen, *callbacks])
    finally:
        assert signal.getsignal(signal.SIGTERM) is before  # put back, however fit ended
    return seen.seen


def saved_position(backup_dir):
    reader = tf.train.load_checkpoint(str(backup_dir / "chief"))
    return tuple(int(reader.get_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE"))
                 for name in ("ckpt_saved_epoch", "ckpt_saved_batch"))


def test_resume_point_is_the_next_step_or_the_next_epoch():
    assert resume_point(1, 4, STEPS) == (1, 5)
    assert resume_point(1, STEPS - 1, STEPS) == (2, 0)  # the epoch's last step
    assert resume_point(1, END_OF_EPOCH, STEPS) == (2, 0)
    assert resume_point(1, 4, None) == (1, 0)  # unknown length: the epoch again, in full


def test_sigterm_mid_epoch_backs_up_that_step_and_the_rerun_starts_at_the_next(tmp_path):
    with pytest.raises(Preempted, match=r"after epoch 2, step 5 of 10, which the backup holds; "
                                        r"the same command resumes at epoch 2, step 6"):
        fit(tmp_path, SigtermAt(epoch=1, step=3))  # noticed at the next step's end
    assert saved_position(tmp_path) == (1, 4)
    seen = fit(tmp_path)
    assert seen[0] == (1, 5)
    assert seen == [(1, s) for s in range(5, STEPS)] + [(2, s) for s in range(STEPS)]
    assert not (tmp_path / "chief").exists()  # a finished fit drops its backup, as before


def test_sigterm_in_validation_stops_at_the_next_epoch_without_another_step(tmp_path):
    with pytest.raises(Preempted, match=r"after epoch 1, which the backup holds; the same "
                                        r"command resumes at epoch 2\."):
        fit(tmp_path, SigtermAt(epoch=0))
    assert saved_position(tmp_path) == (0, END_OF_EPOCH)
    assert fit(tmp_path)[0] == (1, 0)


def test_sigterm_after_the_last_step_keeps_the_backup_so_the_rerun_trains_nothing(tmp_path):
    with pytest.raises(Preempted, match="resumes at evaluation and export"):
        fit(tmp_path, SigtermAt(epoch=EPOCHS - 1))
    assert saved_position(tmp_path) == (EPOCHS - 1, END_OF_EPOCH)
    assert fit(tmp_path) == []


def test_a_crash_after_an_epoch_still_resumes_at_the_next_epoch(tmp_path):
    class CrashAtEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(tmp_path, CrashAtEpoch())
    assert saved_position(tmp_path) == (1, END_OF_EPOCH)
    assert fit(tmp_path) == [(2, s) for s in range(STEPS)]


def test_with_an_unknown_epoch_length_the_interrupted_epoch_runs_again_in_full(tmp_path,
                                                                                caplog):
    with pytest.raises(Preempted):
        fit(tmp_path, SigtermAt(epoch=1, step=3), unknown_length=True)
    with caplog.at_level("WARNING", logger="tfnlp"):
        seen = fit(tmp_path, unknown_length=True)
    assert "resuming at the start of epoch 2" in caplog.text
    # Later epochs are whole: Keras counted the resumed epoch's steps from 0.
    assert seen == [(1, s) for s in range(STEPS)] + [(2, s) for s in range(STEPS)]
