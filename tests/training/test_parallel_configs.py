"""Parallelism settings that cannot work are refused at `tfnlp validate` time or at start-up,
naming the key and the fix."""

import pytest

from tests.conftest import REPO, run_cli
from tfnlp.config import load_pipeline
from tfnlp.config.loading import ConfigError
from tfnlp.models.registry import build_model
from tfnlp.preprocessing.layer import TextPreprocessor
from tfnlp.training.dtensor import TRANSFORMER_LAYOUTS, resolve_layouts
from tfnlp.training.input_pipeline import ids_model

TRANSFORMER = REPO / "pipelines" / "tweets_transformer.yaml"
DTENSOR = ["distribute.strategy=dtensor", "distribute.mesh={batch: 1, model: 2}"]


@pytest.mark.parametrize("overrides, key, fix", [
    (["distribute.strategy=dtensor"], "distribute.mesh", "{batch: 2, model: 2}"),
    (["distribute.strategy=parameter_server", "distribute.mesh={batch: 1, model: 2}"],
     "distribute.strategy", "'dtensor'"),
    (DTENSOR + ["distribute.cpu_replicas=3"], "distribute.cpu_replicas", "unset or 2"),
    (["distribute.strategy=dtensor", "distribute.mesh={batch: 2, model: 2}"],
     "distribute.mesh.batch", "strategy: mirrored"),
    (DTENSOR + ["distribute.layouts={'(': [model]}"], "distribute.layouts['(']",
     "valid regular expression"),
    (DTENSOR + ["distribute.layouts={'kernel': [rows]}"], "distribute.layouts['kernel']",
     "'batch', 'model' or 'unsharded'"),
    (DTENSOR + ["distribute.all_reduce.dtype=float16"], "distribute.all_reduce.dtype",
     "inserts its own reductions"),
    (DTENSOR + ["precision.policy=mixed_float16"], "precision.policy", "float32"),
    (["distribute.strategy=mirrored", "distribute.pipeline={stages: 2}"],
     "distribute.strategy", "strategy: dtensor"),
    (["distribute.pipeline={stages: 0}"], "distribute.pipeline.stages", "between 1 and 64"),
])
def test_impossible_parallelism_is_refused_with_the_key_and_the_fix(overrides, key, fix):
    with pytest.raises(ConfigError) as raised:
        load_pipeline(TRANSFORMER, overrides)
    message = str(raised.value)
    assert f"`{key}` must be" in message and fix in message
    assert str(TRANSFORMER) in message  # the file comes first


def test_a_dtensor_language_model_must_not_checkpoint_to_hdf5():
    with pytest.raises(ConfigError, match=r"language_model.checkpoint_filepath.*'weights-imp"):
        load_pipeline(REPO / "pipelines" / "tweets_lm.yaml",
                      DTENSOR + ["model.name=transformer"])


def test_tfnlp_validate_exits_non_zero_on_a_refused_mesh():
    done = run_cli("validate", str(TRANSFORMER), "--set", "distribute.strategy=dtensor",
                   "distribute.mesh={batch: 2, model: 2}", timeout=120)
    assert done.returncode != 0
    assert "distribute.mesh.batch" in done.stderr and "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def transformer():
    """An ordinary tiny transformer classifier from ids: heads 2, width 16, feed-forward 24."""
    config = load_pipeline(TRANSFORMER, ["model.embedding_dim=16", "model.num_heads=2",
                                         "model.ff_dim=24", "model.num_layers=1"])
    preprocessor = TextPreprocessor(["[PAD]", "[UNK]"] + [f"w{i}" for i in range(30)],
                                    sequence_length=8)
    return ids_model(build_model(config.model, preprocessor, 3))


def test_default_layouts_shard_the_attention_and_feed_forward_by_megatron_rules(transformer):
    layouts = resolve_layouts(transformer, TRANSFORMER_LAYOUTS, None, {"batch": 1, "model": 2})
    assert layouts["encoder_0/attention/query/kernel"] == ["unsharded", "model", "unsharded"]
    assert layouts["encoder_0/attention/attention_output/kernel"] == [
        "model", "unsharded", "unsharded"]
    assert layouts["encoder_0/ff_hidden/kernel"] == ["unsharded", "model"]
    assert layouts["encoder_0/ff_output/kernel"] == ["model", "unsharded"]
    assert layouts["embedding/embeddings"] == ["unsharded", "model"]
    assert "logits/kernel" not in layouts and "final_norm/gamma" not in layouts  # replicated


def test_a_layout_override_wins_and_one_matching_nothing_is_named(transformer):
    mesh = {"batch": 1, "model": 2}
    layouts = resolve_layouts(transformer, TRANSFORMER_LAYOUTS,
                              {"logits/kernel": ["model", "unsharded"]}, mesh)
    assert layouts["logits/kernel"] == ["model", "unsharded"]
    with pytest.raises(ValueError, match=r"`distribute.layouts\['decoder'\]` must match a "
                                         r"variable.*embedding/embeddings"):
        resolve_layouts(transformer, TRANSFORMER_LAYOUTS, {"decoder": ["model"]}, mesh)


def test_a_dimension_the_mesh_does_not_divide_is_named_with_the_fix(transformer):
    with pytest.raises(ValueError, match=r"ff_hidden/kernel \[16, 24\] over mesh 'model' of 5"
                                         r".*must divide 24.*distribute.mesh.model"):
        resolve_layouts(transformer, {"ff_hidden/kernel": ["unsharded", "model"]}, None,
                        {"batch": 1, "model": 5})
    with pytest.raises(ValueError, match=r"one entry per dimension of logits/kernel \[16, 3\]"):
        resolve_layouts(transformer, TRANSFORMER_LAYOUTS, {"logits/kernel": ["model"]},
                        {"batch": 1, "model": 2})
