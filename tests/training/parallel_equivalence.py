"""Trains one tiny model under every kind of parallelism from the same initial weights and
prints each one's per-step losses and its variables' shard shapes as JSON.

Run as a script, in its own process: DTensor must start before TensorFlow initialises, and
the mesh needs 4 logical CPU devices (the test process has 2).

    python tests/training/parallel_equivalence.py FAMILY [FAMILY ...] > out.json

FAMILY is transformer, bilstm or transformer_lm. Every run reads the same batches (no
shuffle, dropout 0) through the engine's own `build`, `optimizer`, `fit_kwargs` and
`fit_scope`, as `tfnlp train` does.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from tfnlp.backend import keras, tf
from tfnlp.config import load_pipeline
from tfnlp.config.schema import MeshConfig, PipelineParallelConfig
from tfnlp.tasks import get_task
from tfnlp.training.dtensor import dtensor, initialize
from tfnlp.training.engines import parallelism_for
from tfnlp.training.run import compile_for_training
from tfnlp.training.strategy import create_strategy, split_cpu

REPO = Path(__file__).resolve().parents[2]
STEPS, BATCH, LENGTH, VOCAB = 10, 16, 8, 48
TINY = ["model.embedding_dim=16", "model.units=8", "model.num_layers=2", "model.num_heads=2",
        "model.ff_dim=32", "model.dropout=0.0", f"train.batch_size={BATCH}",
        "train.learning_rate=0.01", "train.weight_decay=0.0", "train.label_smoothing=0.0"]
FAMILIES = {
    "transformer": ("tweets_transformer.yaml", ["model.num_layers=1",
                                                "preprocessing.in_dataset=true",
                                                f"preprocessing.sequence_length={LENGTH}"]),
    "bilstm": ("tweets_bilstm.yaml", ["preprocessing.in_dataset=true",
                                      f"preprocessing.sequence_length={LENGTH}"]),
    "transformer_lm": ("tweets_lm_char.yaml", ["model.name=transformer", "model.num_layers=1",
                                          f"language_model.sequence_length={LENGTH}",
                                          "language_model.checkpoint_filepath=w"]),
}
# name -> changes to the `distribute:` section
RUNS = {
    "one_device": {},
    "dtensor_1x2": {"strategy": "dtensor", "mesh": MeshConfig(batch=1, model=2)},
    "dtensor_2x2": {"strategy": "dtensor", "mesh": MeshConfig(batch=2, model=2)},
    "pipeline_2x4": {"strategy": "default",
                     "pipeline": PipelineParallelConfig(stages=2, micro_batches=4)},
    "mirrored_fp16": {"strategy": "mirrored", "devices": ["/cpu:0", "/cpu:1"],
                      "all_reduce": "float16"},
}


def batches(family: str) -> tf.data.Dataset:
    """STEPS fixed batches: padded token ids (lengths 1..LENGTH) and targets."""
    rng = np.random.default_rng(7)
    rows = STEPS * BATCH
    ids = rng.integers(3, VOCAB, size=(rows, LENGTH)).astype("int32")
    if family == "transformer_lm":
        return tf.data.Dataset.from_tensor_slices((ids, np.roll(ids, -1, axis=1))).batch(BATCH)
    lengths = rng.integers(1, LENGTH + 1, size=rows)
    ids[np.arange(LENGTH)[None, :] >= lengths[:, None]] = 0
    labels = np.eye(3, dtype="float32")[rng.integers(0, 3, size=rows)]
    return tf.data.Dataset.from_tensor_slices((ids, labels)).batch(BATCH)


def configured(family: str, run: str):
    pipeline, overrides = FAMILIES[family]
    config = load_pipeline(REPO / "pipelines" / pipeline, TINY + overrides)
    changes = dict(RUNS[run])
    if "all_reduce" in changes:
        changes["all_reduce"] = dataclasses.replace(config.distribute.all_reduce,
                                                    dtype=changes["all_reduce"])
    return dataclasses.replace(config, distribute=dataclasses.replace(config.distribute,
                                                                      **changes))


def vocabulary(family: str) -> list[str]:
    special = ["[PAD]", "[UNK]", "[EOS]"] if family == "transformer_lm" else ["[PAD]", "[UNK]"]
    return special + [f"t{index}" for index in range(VOCAB - len(special))]


def train(family: str, run: str, initial: str | None):
    """(per-step losses, {variable name: [global shape, first shard's shape]}, checkpoint)."""
    config = configured(family, run)
    strategy = (create_strategy(config.distribute)[0] if run.startswith("mirrored")
                else tf.distribute.get_strategy())
    task = get_task(config)
    task.labels = ["negative", "neutral", "positive"]
    preprocessor = task.preprocessor_from(vocabulary(family))
    parallelism = parallelism_for(config, strategy)

    def make_models():
        model = task.build_model(preprocessor)
        return model, task.trainable_model(model)

    with strategy.scope():
        _, fitted = parallelism.build(make_models)
        if initial is None:
            initial = str(Path(tempfile.mkdtemp()) / "initial")
            fitted.save_weights(initial)
        else:
            fitted.load_weights(initial).assert_existing_objects_matched()
        compile_for_training(fitted, task, config, parallelism)
    kwargs = parallelism.fit_kwargs({"x": batches(family).repeat()}, STEPS * BATCH, BATCH)
    kwargs["steps_per_epoch"] = STEPS
    means = RunningMeans()
    with parallelism.fit_scope():
        fitted.fit(**kwargs, epochs=1, verbose=0, callbacks=[means])
    return means.per_step(), shard_shapes(fitted), parallelism.report(fitted), initial


class RunningMeans(keras.callbacks.Callback):
    """Keras logs the epoch's running mean loss after each batch; this recovers each step's."""

    def on_train_begin(self, logs=None):
        self.means = []

    def on_train_batch_end(self, batch, logs=None):
        self.means.append(float(logs["loss"]))

    def per_step(self) -> list[float]:
        totals = np.arange(1, len(self.means) + 1) * np.asarray(self.means, np.float64)
        return np.diff(totals, prepend=0.0).tolist()


def shard_shapes(fitted: keras.Model) -> dict:
    shapes = {}
    for variable in fitted.weights:
        name = variable.name.split(":")[0]
        if hasattr(variable, "layout"):
            shards = dtensor.unpack(variable.read_value())
            shapes[name] = [list(variable.shape), [list(s.shape) for s in shards]]
        else:
            shapes[name] = [list(variable.shape), [list(variable.shape)], variable.device]
    return shapes


def main(families: list[str]) -> None:
    split_cpu(4)
    initialize("CPU")
    results = {}
    for family in families:
        keras.utils.set_random_seed(0)  # the same initial weights in every session
        initial = None
        for run in RUNS:
            if family == "bilstm" and run.startswith("dtensor"):
                continue  # refused: DTensor shards Transformers only
            losses, shapes, report, initial = train(family, run, initial)
            results[f"{family}/{run}"] = {"losses": losses, "shapes": shapes, "report": report}
            print(f"{family}/{run}: {np.round(losses, 5).tolist()}", file=sys.stderr)
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:] or list(FAMILIES))
