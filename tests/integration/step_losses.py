"""Per-step training losses of one small tfnlp model under a given strategy.

Shared by the in-process Mirrored test and the 2-worker MultiWorkerMirrored test, which runs
`python -m tests.integration.step_losses OUT_DIR` in each worker (TF_CONFIG set by
`launch_cluster`). Same data, seed, global batch and model everywhere: the losses may differ
only by all-reduce rounding.
"""

import json
import os
import sys

import numpy as np

from tfnlp.backend import keras, tf

EXAMPLES, GLOBAL_BATCH, EPOCHS, SEED = 96, 16, 2, 7
WORDS = ["good", "bad", "fine", "awful", "great", "meh", "love", "hate", "ok", "so"]


def dataset() -> tf.data.Dataset:
    """(text, one-hot label, id) batches: a fixed, unshuffled stream of seeded random texts."""
    rng = np.random.default_rng(SEED)
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(2, 9))) for _ in range(EXAMPLES)]
    labels = rng.integers(0, 3, size=EXAMPLES)
    return tf.data.Dataset.from_tensor_slices(
        (np.array(texts, dtype=object), np.eye(3, dtype=np.float32)[labels],
         np.arange(EXAMPLES, dtype=np.int64))
    ).batch(GLOBAL_BATCH)


class StepLosses(keras.callbacks.Callback):
    """Records the loss after every training step (Keras reports the epoch's running mean)."""

    def __init__(self):
        super().__init__()
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


def step_losses(strategy: tf.distribute.Strategy) -> list[float]:
    """Builds and trains the tfnlp LSTM classifier (dropout 0) under `strategy`."""
    from tfnlp.config.schema import ModelConfig
    from tfnlp.models import build_model
    from tfnlp.preprocessing import TextPreprocessor
    from tfnlp.training.strategy import fix_metric_reduction, with_shard_policy

    keras.utils.set_random_seed(SEED)
    preprocessor = TextPreprocessor(["[PAD]", "[UNK]", *WORDS], tokenizer="word", sequence_length=8)
    with strategy.scope():
        model = build_model(
            ModelConfig(name="lstm", embedding_dim=8, units=8, dropout=0.0), preprocessor, 3
        )
        model.compile(optimizer=keras.optimizers.SGD(0.5),
                      loss=keras.losses.CategoricalCrossentropy(from_logits=True))
        fix_metric_reduction(model, strategy)
    recorder = StepLosses()
    model.fit(with_shard_policy(dataset().map(lambda text, label, _: (text, label))),
              epochs=EPOCHS, callbacks=[recorder], verbose=0)
    return recorder.losses


def ids_seen(strategy: tf.distribute.Strategy) -> list[int]:
    """The example ids this worker's replicas receive from the distributed dataset."""
    from tfnlp.training.strategy import with_shard_policy

    seen = []
    for batch in strategy.experimental_distribute_dataset(with_shard_policy(dataset())):
        for ids in strategy.experimental_local_results(batch[2]):
            seen += ids.numpy().tolist()
    return seen


if __name__ == "__main__":
    # One worker of a MultiWorkerMirrored cluster: writes its ids and losses to argv[1].
    from tfnlp.config.schema import DistributeConfig
    from tfnlp.training.strategy import create_strategy

    strategy, _ = create_strategy(DistributeConfig(strategy="multi_worker_mirrored"))
    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    result = {"ids": ids_seen(strategy), "losses": step_losses(strategy),
              "replicas": strategy.num_replicas_in_sync}
    with open(os.path.join(sys.argv[1], f"worker_{task}.json"), "w") as file:
        json.dump(result, file)
    print(f"worker {task}: {len(result['losses'])} steps")
