"""`compress_run` reads a trained run without writing into it, and leaves Keras' policy alone.

One compress over a copy of the tiny run whose config says `mixed_bfloat16`: compressing such
a run used to switch the process's global policy to float32 for good, and its bfloat16 LSTM
did not convert. The only pass converts a tiny stand-in (an unrolled BiLSTM takes minutes to
convert here); everything around it — reading the run, the data, the report — is the real
thing.
"""

import dataclasses
import shutil

import pytest
import yaml

from tests.conftest import REPO, TINY_OVERRIDES
from tfnlp.backend import keras
from tfnlp.compression.passes import Artifact, PassResult, PostTrainingQuantization

CHEAP = ["compression.latency_calls=2", "compression.throughput_calls=1"]


@dataclasses.dataclass(frozen=True)
class _StandIn(PostTrainingQuantization):
    """The float32 reference converted from a one-Dense model; reports the dtypes it was given."""

    name: str = "stand_in"
    artifacts: tuple = (Artifact("float32", "float32"),)
    saved_model: str | None = None

    def apply(self, model, context):
        ids = keras.Input((model.input.shape[1],), dtype="int32")
        x = keras.layers.Embedding(1000, 4)(ids)
        x = keras.layers.GlobalAveragePooling1D()(x)
        stand_in = keras.Model(ids, keras.layers.Dense(len(context.data.labels))(x))
        policies = sorted({layer.dtype_policy.name for layer in model.layers if layer.weights})
        return PassResult(stand_in, {"policies_given": policies})


def _snapshot(directory):
    """Every path under `directory` with its size and modification time (ns)."""
    return {
        str(path.relative_to(directory)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(directory.rglob("*"))
    }


@pytest.fixture(scope="module")
def compressed_copy(tiny_run, tmp_path_factory):
    from tfnlp.compression.pipeline import compress_run
    from tfnlp.config import load_pipeline

    run_dir = tmp_path_factory.mktemp("run_copy") / "run"
    shutil.copytree(tiny_run.run_dir, run_dir)
    settings = yaml.safe_load((run_dir / "config.yaml").read_text())
    settings["precision"]["policy"] = "mixed_bfloat16"
    (run_dir / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    config = load_pipeline(REPO / "pipelines" / "tweets_bilstm.yaml", TINY_OVERRIDES + CHEAP)
    before = _snapshot(run_dir)
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        out = tmp_path_factory.mktemp("compressed_copy")
        result = compress_run(config, run_dir, out, passes=(_StandIn(),))
        policy_after = keras.mixed_precision.global_policy().name
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return result, before, _snapshot(run_dir), policy_after


def test_compress_leaves_the_trained_run_untouched(compressed_copy):
    result, before, after, _ = compressed_copy
    assert {"data_report.json", "splits.json", "labels.json", "config.yaml"} <= set(before)
    assert after == before  # names, sizes and mtimes of every file and folder
    assert list(result["artifacts"]) == ["float32"] and result["recommended"] == "float32"
    assert result["test_examples"] == 60  # the run's own split of its 600 examples


def test_compress_restores_the_global_precision_policy(compressed_copy):
    result, *_, policy_after = compressed_copy
    assert policy_after == "mixed_bfloat16"
    # Inside, the passes got a float32 copy of the mixed_bfloat16 run's model.
    assert result["passes"]["stand_in"]["policies_given"] == ["float32"]
