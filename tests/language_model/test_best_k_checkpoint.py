"""The classic `weights-improvement-{epoch:02d}-{loss:.4f}` checkpoints, best K kept."""

import pytest

from tfnlp.backend import keras
from tfnlp.training.best_k_checkpoint import BestKCheckpoint


@pytest.fixture
def model():
    model = keras.Sequential([keras.layers.Dense(2, input_shape=(3,))])
    return model


def _epochs(callback, model, losses, start=0):
    callback.set_model(model)
    for epoch, loss in enumerate(losses, start):
        callback.on_epoch_end(epoch, {"loss": loss, "val_loss": loss + 1})


def test_keeps_the_best_k_files_named_by_the_template(model, tmp_path):
    template = tmp_path / "weights-improvement-{epoch:02d}-{loss:.4f}-{val_loss:.2f}.h5"
    callback = BestKCheckpoint(template, monitor="loss", keep_best=2)
    _epochs(callback, model, [3.0, 2.5, 2.7, 2.6, 2.9, float("nan")])
    names = sorted(p.name for p in tmp_path.glob("*.h5"))
    assert names == ["weights-improvement-02-2.5000-3.50.h5",
                     "weights-improvement-04-2.6000-3.60.h5"]
    # A resumed run (a new callback) reads the ranking and keeps pruning the same set.
    resumed = BestKCheckpoint(template, monitor="loss", keep_best=2)
    _epochs(resumed, model, [2.0], start=6)
    names = sorted(p.name for p in tmp_path.glob("*.h5"))
    assert names == ["weights-improvement-02-2.5000-3.50.h5",
                     "weights-improvement-07-2.0000-3.00.h5"]
    # A fresh run forgets them.
    BestKCheckpoint(template, monitor="loss", keep_best=2).forget()
    assert list(tmp_path.iterdir()) == []


def test_bad_template_and_keep_best(model, tmp_path):
    with pytest.raises(ValueError, match="`keep_best` must be a positive integer"):
        BestKCheckpoint(tmp_path / "w.h5", keep_best=0)
    callback = BestKCheckpoint(tmp_path / "w-{acc:.2f}.h5")
    with pytest.raises(ValueError, match="uses \\{acc\\}, which is not logged"):
        _epochs(callback, model, [1.0])
