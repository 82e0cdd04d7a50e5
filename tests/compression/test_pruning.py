import numpy as np
import pytest

from tfnlp.backend import keras
from tfnlp.compression import pruning
from tfnlp.compression.id_model import build_id_model


def test_schedule_prunes_within_a_short_fine_tune():
    schedule, details = pruning.pruning_schedule(30, 0.8)
    assert details["end_step"] == 20
    assert details["frequency"] == 2  # ~10 mask updates, not tfmot's default 100
    # The schedule reaches the target by its end step and starts pruning at step 0.
    should_prune, sparsity = schedule(np.int64(20))
    assert bool(should_prune) and float(sparsity) == pytest.approx(0.8)


@pytest.mark.parametrize(
    "sparsity,steps,kind", [(1.0, 10, "constant"), (0.5, 1, "constant"), (0.5, 10, "cubic")]
)
def test_schedule_rejects_bad_values(sparsity, steps, kind):
    with pytest.raises(ValueError, match="Received"):
        pruning.pruning_schedule(steps, sparsity, kind)


@pytest.fixture(scope="module")
def pruned(tiny_ids, tiny_run):
    _, model, ids, _, length = tiny_ids
    rng = np.random.default_rng(0)
    x = rng.integers(2, 200, size=(256, length)).astype(np.int32)
    x[:, 12:] = 0
    y = keras.utils.to_categorical(rng.integers(0, 3, 256), 3)
    steps = 2 * (256 // 32)
    schedule, _ = pruning.pruning_schedule(steps, 0.8)
    wrapped, names = pruning.prune_id_model(build_id_model(model), schedule)
    wrapped.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    wrapped.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=pruning.pruning_callbacks())
    return pruning.strip_pruning(wrapped), names, ids


def test_pruning_reaches_the_target_in_the_stripped_weights(pruned):
    stripped, names, ids = pruned
    # The Bidirectional layer is pruned (both directions), not refused.
    assert names == ["embedding", "bilstm_0", "logits"]
    measured = pruning.weight_sparsity(stripped)
    weights = {w: v["sparsity"] for layer in measured["layers"].values() for w, v in layer.items()}
    for name in ("embedding/embeddings", "logits/kernel"):
        assert weights[name] == pytest.approx(0.8, abs=0.02), name
    lstm = [w for w in weights if "bilstm_0" in w]
    assert len(lstm) == 4  # forward and backward kernel + recurrent kernel
    assert all(weights[w] == pytest.approx(0.8, abs=0.02) for w in lstm)
    assert measured["overall"] == pytest.approx(0.8, abs=0.02)
    # Stripped: no tfmot wrapper left, and it still classifies.
    assert not any(type(layer).__name__ == "PruneLowMagnitude" for layer in stripped.layers)
    assert stripped(ids).shape == (len(ids), 3)


def test_m_by_n_goes_to_every_pruned_layer_but_the_embedding(tiny_ids):
    _, model, ids, _, _ = tiny_ids
    schedule, _ = pruning.pruning_schedule(10, 0.5)
    wrapped, _ = pruning.prune_id_model(build_id_model(model), schedule, m_by_n=(2, 4))
    structured = {
        layer.layer.name: layer.sparsity_m_by_n
        for layer in wrapped.layers
        if type(layer).__name__ == "PruneLowMagnitude"
    }
    assert structured == {"embedding": None, "bilstm_0": (2, 4), "logits": (2, 4)}
    assert wrapped(ids).shape == (len(ids), 3)
