"""LM models (shapes, causality, tied embeddings, precision, start/step) and in-graph decoding.

The samplers and the decoding loop on their own: tests/models/test_samplers.py and
tests/models/test_decoding.py."""

import math

import numpy as np
import pytest

from tfnlp.backend import keras, tf
from tfnlp.config.schema import ModelConfig
from tfnlp.evaluation.language_model import evaluate_language_model, language_model_metrics
from tfnlp.export.generation import GenerationModule, per_prompt
from tfnlp.models.language_model import (
    LSTMLanguageModel,
    TransformerLanguageModel,
    build_language_model,
)
from tfnlp.preprocessing.lm_tokenizer import EOS_ID, PAD_ID, LanguageModelTokenizer
from tfnlp.training.precision import precision_scope

TEXTS = ["the cat sat on the mat", "a dog ate the hat", "mat and hat and cat"] * 5
SMALL = {
    "embedding_dim": 16,
    "units": 16,
    "num_heads": 2,
    "ff_dim": 32,
    "num_layers": 2,
    "dropout": 0.0,
}


@pytest.fixture(scope="module")
def tokenizer():
    return LanguageModelTokenizer.from_texts(TEXTS, vocab_size=40)


@pytest.fixture(scope="module", params=["lstm", "transformer"])
def module(request, tokenizer):
    keras.utils.set_random_seed(0)
    model = build_language_model(
        ModelConfig(name=request.param, **SMALL), tokenizer.vocabulary_size, context_length=6
    )
    return GenerationModule(model, tokenizer)


def _generate(module, prompts, max_tokens=10, temperature=0.0, top_k=0, top_p=1.0, seed=0):
    options = per_prompt(len(prompts), max_tokens=max_tokens, temperature=temperature,
                         top_k=top_k, top_p=top_p, seed=seed)
    return module.generate_with_options(tf.constant(prompts), **options)


def test_each_prompt_keeps_its_own_options_whatever_its_batch(module):
    """What a batching server needs: per-row options, and a row's text independent of the
    other rows it was batched with."""
    prompts = tf.constant(["ab", "ba", "ab"])
    options = {"max_tokens": tf.constant([6, 2, 6]), "temperature": tf.constant([0.9, 0.0, 1.5]),
               "top_k": tf.constant([0, 0, 3]), "top_p": tf.constant([0.9, 1.0, 1.0]),
               "seed": tf.constant([11, 0, 12], tf.int64)}
    batch = module.generate_with_options(prompts, **options)
    assert int(tf.reduce_sum(tf.cast(batch["token_ids"][1] != 0, tf.int32))) <= 2
    for row in range(3):
        alone = module.generate_with_options(prompts[row:row + 1],
                                             **{k: v[row:row + 1] for k, v in options.items()})
        width = alone["token_ids"].shape[1]
        assert batch["token_ids"][row, :width].numpy().tolist() == \
            alone["token_ids"][0].numpy().tolist()
        assert not batch["token_ids"][row, width:].numpy().any()  # then padding


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_models_are_causal_with_float32_logits(name):
    model = build_language_model(ModelConfig(name=name, **SMALL), 30, context_length=8)
    ids = np.random.default_rng(0).integers(3, 30, size=(2, 8)).astype(np.int32)
    changed = ids.copy()
    changed[:, 5:] = 3
    logits, logits_changed = model(ids).numpy(), model(changed).numpy()
    assert logits.shape == (2, 8, 30) and model(ids).dtype == tf.float32
    np.testing.assert_allclose(logits[:, :5], logits_changed[:, :5], atol=1e-5)
    assert not np.allclose(logits[:, 5:], logits_changed[:, 5:])


def test_tied_embeddings_share_the_matrix():
    tied = TransformerLanguageModel(
        30, 8, embedding_dim=16, num_heads=2, ff_dim=32, tie_embeddings=True
    )
    untied = TransformerLanguageModel(30, 8, embedding_dim=16, num_heads=2, ff_dim=32)
    tied(tf.zeros([1, 4], tf.int32))
    untied(tf.zeros([1, 4], tf.int32))
    assert untied.count_params() - tied.count_params() == 16 * 30 + 30
    assert not hasattr(tied, "logits_layer")


@pytest.mark.parametrize(
    "cls, kwargs",
    [(LSTMLanguageModel, {"units": 8}), (TransformerLanguageModel, {"context_length": 8})],
)
def test_model_config_round_trip(cls, kwargs):
    model = cls(30, embedding_dim=8, num_layers=1, **kwargs)
    clone = cls.from_config(model.get_config())
    assert clone.get_config() == model.get_config()


def test_invalid_model_arguments():
    with pytest.raises(ValueError, match="`units` must be a positive integer"):
        LSTMLanguageModel(30, units=0)
    with pytest.raises(ValueError, match="divisible by `num_heads`"):
        TransformerLanguageModel(30, 8, embedding_dim=10, num_heads=4)
    with pytest.raises(ValueError, match="`model.name` must be one of"):
        build_language_model(ModelConfig(name="bilstm"), 30, 8)


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_mixed_bfloat16_computes_in_bfloat16_with_float32_weights_and_logits(name):
    with precision_scope("mixed_bfloat16"):
        model = build_language_model(ModelConfig(name=name, **SMALL), 30, context_length=8)
    assert model.compute_dtype == "bfloat16"
    assert all(v.dtype == tf.float32 for v in model.trainable_variables)
    assert model(tf.ones([2, 8], tf.int32)).dtype == tf.float32


def test_mirrored_strategy_trains_a_mixed_precision_language_model():
    strategy = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
    with strategy.scope(), precision_scope("mixed_bfloat16"):
        model = build_language_model(
            ModelConfig(name="transformer", **{**SMALL, "num_layers": 1}), 20, context_length=8
        )
        model.compile(
            optimizer=keras.optimizers.Adam(0.01),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    ids = np.tile(np.arange(3, 12, dtype=np.int32), (8, 1))
    history = model.fit(ids[:, :-1], ids[:, 1:], batch_size=8, epochs=2, verbose=0)
    assert strategy.num_replicas_in_sync == 2
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_perplexity_of_a_known_distribution():
    """A model that always predicts p = (1/2, 1/4, 1/4) over targets with exactly those
    frequencies has cross-entropy H(p) = 1.5 bits: perplexity 2**1.5."""
    probabilities = np.array([0.0, 0.0, 0.0, 0.5, 0.25, 0.25], np.float32)
    log_p = np.log(np.maximum(probabilities, 1e-30))

    class Fixed(keras.Model):
        def call(self, ids):
            shape = tf.concat([tf.shape(ids), [6]], axis=0)
            return tf.broadcast_to(tf.constant(log_p), shape)

    targets = np.array([[3, 3, 4, 5], [3, 5, 3, 4]], np.int32)  # 4 x id3, 2 x id4, 2 x id5
    dataset = tf.data.Dataset.from_tensor_slices((targets, targets)).batch(1)
    metrics = evaluate_language_model(Fixed(), dataset, characters_per_token=2.0)
    assert metrics["tokens"] == 8
    assert metrics["bits_per_token"] == pytest.approx(1.5, rel=1e-6)
    assert metrics["perplexity"] == pytest.approx(2**1.5, rel=1e-6)
    assert metrics["cross_entropy"] == pytest.approx(1.5 * math.log(2), rel=1e-6)
    assert metrics["bits_per_character"] == pytest.approx(0.75, rel=1e-6)
    with pytest.raises(ValueError, match="`tokens` must be positive"):
        language_model_metrics(1.0, 0)


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_start_and_step_give_the_full_forward_pass_logits_at_each_position(name):
    """Prompts of lengths 3 and 1, then 4 tokens fed one by one: at every position the
    decoding logits are the logits of one forward pass over the whole text."""
    model = build_language_model(ModelConfig(name=name, **SMALL), 30, context_length=8)
    ids = np.random.default_rng(1).integers(3, 30, size=(2, 8)).astype(np.int32)  # (B, T)
    full = model(ids, training=False).numpy()  # (B, T, V)
    lengths = np.array([3, 1])
    prompts = tf.ragged.constant([ids[0, :3].tolist(), ids[1, :1].tolist()], dtype=tf.int32)
    logits, state = model.start(prompts, 4)
    assert logits.dtype == tf.float32 and logits.shape == (2, 30)
    np.testing.assert_allclose(logits.numpy(), full[[0, 1], lengths - 1], atol=1e-5)
    for i in range(4):
        positions = lengths + i
        logits, state = model.step(tf.constant(ids[[0, 1], positions]), state)
        np.testing.assert_allclose(logits.numpy(), full[[0, 1], positions], atol=1e-5)


def test_the_transformer_cache_hands_over_to_the_window_past_its_context():
    """Context 4: cached steps while the text fits, then re-read windows; at every step the
    logits are the forward pass over the last (at most) 4 tokens."""
    model = build_language_model(ModelConfig(name="transformer", **SMALL), 30, context_length=4)
    ids = np.random.default_rng(3).integers(3, 30, size=(2, 9)).astype(np.int32)
    prompts = tf.ragged.constant([ids[0, :3].tolist(), ids[1, :1].tolist()], dtype=tf.int32)
    _, state = model.start(prompts, 6)
    cached_keys, _ = state[2][0]
    lengths = np.array([3, 1])
    for i in range(6):
        positions = lengths + i
        logits, state = model.step(tf.constant(ids[[0, 1], positions]), state)
        expected = [model(ids[[row], max(0, p - 3): p + 1]).numpy()[0, -1]
                    for row, p in enumerate(positions)]
        np.testing.assert_allclose(logits.numpy(), np.stack(expected), atol=1e-5)
        if i == 0:  # the first step wrote its key into the cache
            assert not np.allclose(state[2][0][0].numpy()[0, 3], 0.0)
    assert cached_keys.shape == (2, 4, 2, 8)


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_next_token_logits_are_the_last_position_of_the_forward_pass(name):
    model = build_language_model(ModelConfig(name=name, **SMALL), 30, context_length=4)
    ids = np.random.default_rng(2).integers(3, 30, size=(1, 7)).astype(np.int32)
    logits = model.next_token_logits(tf.ragged.constant([ids[0].tolist(), ids[0, :2].tolist()]))
    # The Transformer sees only the last `context_length` (4) tokens.
    window = ids[:, -4:] if name == "transformer" else ids
    expected = [model(window).numpy()[0, -1], model(ids[:, :2]).numpy()[0, -1]]
    assert logits.dtype == tf.float32
    np.testing.assert_allclose(logits.numpy(), np.stack(expected), atol=1e-5)


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_decoding_methods_trace_in_a_tf_function_with_the_eager_values(name):
    model = build_language_model(ModelConfig(name=name, **SMALL), 30, context_length=4)

    def two_steps(prompt_ids, max_tokens):
        logits, state = model.start(prompt_ids, max_tokens)
        token = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return model.step(token, state)[0]

    traced = tf.function(
        two_steps,
        input_signature=[tf.RaggedTensorSpec([None, None], tf.int32), tf.TensorSpec([], tf.int32)],
    )
    prompts = tf.ragged.constant([[3, 4, 5, 6, 7], [8]], dtype=tf.int32)
    np.testing.assert_allclose(
        traced(prompts, tf.constant(3)).numpy(), two_steps(prompts, 3).numpy(), atol=1e-5
    )


def test_greedy_generation_matches_the_full_forward_pass(module, tokenizer):
    """Stepwise decoding (LSTM state / sliding Transformer window) = argmax of the model
    re-run on prompt + everything generated so far."""
    prompt = "the cat sat"
    generated = _generate(module, [prompt], max_tokens=8)["token_ids"].numpy()[0].tolist()
    ids = tokenizer(tf.constant([prompt])).to_list()[0]
    context = getattr(module.model, "context_length", None)
    for token in generated:
        if token == PAD_ID:
            break
        window = ids[-context:] if context else ids
        logits = module.model(tf.constant([window]), training=False).numpy()[0, -1]
        logits[:2] = -np.inf
        assert token == int(np.argmax(logits))
        ids.append(token)
        if token == EOS_ID:
            break


def test_batched_prompts_of_different_lengths_match_single_prompts(module):
    prompts = ["the cat sat on the", "a", ""]
    batched = _generate(module, prompts, max_tokens=6, temperature=0.0)["text"].numpy()
    single = [
        _generate(module, [p], max_tokens=6, temperature=0.0)["text"].numpy()[0] for p in prompts
    ]
    assert batched.tolist() == single


def test_sampled_generation_is_deterministic_with_a_seed(module):
    a = _generate(module, ["the", "a dog"], max_tokens=12, temperature=1.5, seed=11)
    b = _generate(module, ["the", "a dog"], max_tokens=12, temperature=1.5, seed=11)
    c = _generate(module, ["the", "a dog"], max_tokens=12, temperature=1.5, seed=12)
    assert a["token_ids"].numpy().tolist() == b["token_ids"].numpy().tolist()
    assert a["token_ids"].numpy().tolist() != c["token_ids"].numpy().tolist()
    assert a["token_ids"].shape[1] <= 12
    assert _generate(module, ["the"], max_tokens=0)["token_ids"].shape == (1, 0)


def test_next_token_probabilities(module, tokenizer):
    probabilities = module.next_token_probabilities(tf.constant(["the", ""]))["probabilities"]
    assert probabilities.shape == (2, tokenizer.vocabulary_size)
    np.testing.assert_allclose(probabilities.numpy().sum(axis=1), 1.0, rtol=1e-5)
