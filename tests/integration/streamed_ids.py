"""One worker of a 2-worker MultiWorkerMirrored cluster reading streamed shards.

`python -m tests.integration.streamed_ids SOURCE OUT_DIR` (TF_CONFIG set by `launch_cluster`)
writes the texts this worker's replicas received in each of 2 epochs to OUT_DIR/worker_N.json.
"""

import json
import os
import sys

from tfnlp.config.schema import DataConfig, DistributeConfig
from tfnlp.data.streaming import scan, split_dataset
from tfnlp.training.strategy import create_strategy

if __name__ == "__main__":
    strategy, _ = create_strategy(DistributeConfig(strategy="multi_worker_mirrored"))
    source, out_dir = sys.argv[1:3]
    data = scan(DataConfig(source=source), seed=1, sample_size=100)
    dataset = split_dataset(data, "train", batch_size=16, shuffle=True, seed=1,
                            shuffle_buffer=64, workers=2)
    options = dataset.options().experimental_distribute
    epochs = []
    for _ in range(2):
        seen = []
        for texts, _labels in strategy.experimental_distribute_dataset(dataset):
            for part in strategy.experimental_local_results(texts):
                seen += [text.decode() for text in part.numpy()]
        epochs.append(seen)
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    with open(os.path.join(out_dir, f"worker_{index}.json"), "w") as file:
        json.dump({"epochs": epochs, "train_rows": data.sizes["train"],
                   "policy": str(options.auto_shard_policy)}, file)
    print(f"worker {index}: {[len(seen) for seen in epochs]} texts", flush=True)
