"""Text generation from a language model, entirely in TensorFlow ops (so it exports).

`GenerationModule` is both what `tfnlp generate RUN_DIR` calls in-process and what gets
exported: its `generate` signature runs the whole decoding loop (`tf.while_loop`) inside the
SavedModel, so TF-Serving serves generation without any Python.

Decoding: greedy when `temperature` is 0; otherwise sampling from softmax(logits / T), optionally
cut to the `top_k` most likely tokens and/or the smallest set whose probability reaches `top_p`.
Sampling uses stateless random ops keyed by (seed, step): the same seed gives the same text.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from tfnlp.backend import keras, tf
from tfnlp.models.language_model import LSTMLanguageModel
from tfnlp.preprocessing.lm_tokenizer import EOS_ID, PAD_ID, UNK_ID, LanguageModelTokenizer

GENERATE_SIGNATURE = "generate"
GENERATE_WITH_OPTIONS_SIGNATURE = "generate_with_options"
NEXT_TOKEN_SIGNATURE = "serving_default"
_NEG_INF = -1e9


def filter_logits(logits: tf.Tensor, top_k, top_p) -> tf.Tensor:
    """Sets logits outside the top-k / top-p (nucleus) set to a large negative value.

    Args:
        logits: float32 `[batch, vocab]`.
        top_k: int32 scalar; 0 (or >= vocab) keeps every token.
        top_p: float32 scalar in (0, 1]; 1 keeps every token. The most likely token always stays.

    Returns:
        The filtered logits, same shape.
    """
    vocab = tf.shape(logits)[-1]
    top_k = tf.cast(top_k, tf.int32)
    k = tf.where(top_k > 0, tf.minimum(top_k, vocab), vocab)
    kth_largest = tf.math.top_k(logits, k=k).values[:, -1:]
    logits = tf.where(logits < kth_largest, _NEG_INF, logits)

    top_p = tf.cast(top_p, tf.float32)
    ranked = tf.sort(logits, axis=-1, direction="DESCENDING")
    # Probability mass of the tokens ranked above each one: keep while it is below top_p.
    mass_before = tf.cumsum(tf.nn.softmax(ranked, axis=-1), axis=-1, exclusive=True)
    keep = tf.logical_or(mass_before < top_p, top_p >= 1.0)
    smallest_kept = tf.reduce_min(tf.where(keep, ranked, -_NEG_INF), axis=-1, keepdims=True)
    return tf.where(logits < smallest_kept, _NEG_INF, logits)


def choose_next_token(logits, temperature, top_k, top_p, seed, step) -> tf.Tensor:
    """The next token id per row: argmax when `temperature` <= 0, else a seeded sample.

    Args:
        logits: float32 `[batch, vocab]` next-token logits.
        temperature: float32 scalar.
        top_k, top_p: see `filter_logits`.
        seed: int64 scalar; with `step` it keys the stateless sampler.
        step: int scalar, the position in the generated text.

    Returns:
        int32 `[batch]`.
    """
    logits = tf.cast(logits, tf.float32)
    # Padding and the unknown token are never worth generating.
    reserved = tf.one_hot([PAD_ID, UNK_ID], tf.shape(logits)[-1], dtype=tf.float32)
    logits += tf.reduce_sum(reserved, axis=0) * _NEG_INF
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
    temperature = tf.cast(temperature, tf.float32)
    scaled = filter_logits(logits / tf.maximum(temperature, 1e-6), top_k, top_p)
    key = tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])
    sampled = tf.random.stateless_categorical(scaled, 1, seed=key, dtype=tf.int32)[:, 0]
    return tf.where(temperature > 0.0, sampled, greedy)


def _decode_loop(first_logits, advance, state, max_tokens, temperature, top_k, top_p, seed):
    """The shared `tf.while_loop`: pick a token, feed it back, stop at max_tokens or all [EOS].

    `advance(tokens, step, state) -> (next logits, state)` is the model-specific part.
    """
    batch = tf.shape(first_logits)[0]
    max_tokens = tf.maximum(tf.cast(max_tokens, tf.int32), 0)

    def not_done(step, logits, finished, tokens, state):
        return tf.logical_and(step < max_tokens, tf.logical_not(tf.reduce_all(finished)))

    def body(step, logits, finished, tokens, state):
        token = choose_next_token(logits, temperature, top_k, top_p, seed, step)
        token = tf.where(finished, PAD_ID, token)
        tokens = tokens.write(step, token)
        finished = tf.logical_or(finished, tf.equal(token, EOS_ID))
        logits, state = advance(token, step, state)
        return step + 1, logits, finished, tokens, state

    tokens = tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None])
    steps, _, _, tokens, _ = tf.while_loop(
        not_done, body,
        (tf.constant(0), first_logits, tf.zeros([batch], tf.bool), tokens, state),
    )
    # [steps, batch] -> [batch, steps]; an empty TensorArray cannot stack without a shape.
    stacked = tf.cond(steps > 0, tokens.stack, lambda: tf.zeros([0, batch], tf.int32))
    return tf.transpose(tf.reshape(stacked, [-1, batch]))


def _lstm_generate(model: LSTMLanguageModel, prompt, max_tokens, temperature, top_k, top_p,
                   seed):
    ids = prompt.to_tensor(default_value=PAD_ID)
    lengths = tf.cast(prompt.row_lengths(), tf.int32)
    mask = tf.sequence_mask(lengths, tf.shape(ids)[1])
    # Masked (padding) steps keep the state: each row ends in the state after its own prompt.
    logits, states = model.step(ids, model.initial_state(tf.shape(ids)[0]), mask=mask)
    first = tf.gather(logits, lengths - 1, batch_dims=1)

    def advance(token, step, states):
        x = model.embedding(token)
        new_states = []
        for i, lstm in enumerate(model.lstm_layers):
            x, (h, c) = lstm.cell(x, states[2 * i: 2 * i + 2], training=False)
            new_states += [h, c]
        return tf.cast(model.logits_layer(x), tf.float32), new_states

    return _decode_loop(first, advance, states, max_tokens, temperature, top_k, top_p, seed)


def _windowed_generate(model, prompt, max_tokens, temperature, top_k, top_p, seed):
    """Causal models with a fixed context: each step re-reads the last `context_length` tokens."""
    context = model.context_length
    ids = prompt.to_tensor(default_value=PAD_ID)
    lengths = tf.cast(prompt.row_lengths(), tf.int32)
    batch = tf.shape(ids)[0]
    max_tokens = tf.maximum(tf.cast(max_tokens, tf.int32), 0)
    # Room for the prompt, every generated token and a window reaching past the end.
    buffer = tf.concat([ids, tf.zeros([batch, max_tokens + context], tf.int32)], axis=1)

    def next_logits(buffer, positions):
        start = tf.maximum(positions - context, 0)
        window = tf.gather(buffer, start[:, None] + tf.range(context)[None], batch_dims=1)
        logits = model(window, training=False)
        # Causal attention: what follows each row's last token cannot change its logits.
        return tf.gather(logits, positions - 1 - start, batch_dims=1)

    def advance(token, step, state):
        buffer, positions = state
        buffer = tf.tensor_scatter_nd_update(
            buffer, tf.stack([tf.range(batch), positions], axis=1), token
        )
        positions += 1
        return tf.cast(next_logits(buffer, positions), tf.float32), (buffer, positions)

    first = tf.cast(next_logits(buffer, lengths), tf.float32)
    return _decode_loop(first, advance, (buffer, lengths), max_tokens, temperature, top_k, top_p,
                        seed)


class _Untracked:
    """Hides an object from TensorFlow's object tracking (see `GenerationModule`)."""

    def __init__(self, value):
        self.value = value


class GenerationModule(tf.Module):
    """Tokenizer + language model + decoding, with the functions a SavedModel exports.

    Args:
        model: an `LSTMLanguageModel` or a causal model with `context_length`
            (`TransformerLanguageModel`).
        tokenizer: the `LanguageModelTokenizer` the model was trained with.

    Example:
        >>> module = GenerationModule(model, tokenizer)
        >>> module.generate_with_options(tf.constant(["hello"]), 20, 0.8, 0, 0.9, 7)["text"]
    """

    def __init__(self, model: keras.Model, tokenizer: LanguageModelTokenizer,
                 vocabulary_file: str | None = None):
        super().__init__(name="tfnlp_generation")
        # The model sits behind a plain holder so that saving tracks only its variables:
        # tracking the Keras model itself would re-trace every layer's call for Keras's own
        # SavedModel metadata (most of the export time), which serving never uses.
        self._model_holder = _Untracked(model)
        self.model_variables = list(model.variables)
        self.tokenizer = tokenizer
        # Loaders can map probability columns back to tokens: `loaded.vocabulary`.
        self.vocabulary = tf.Variable(list(tokenizer.vocabulary), dtype=tf.string,
                                      trainable=False, name="vocabulary")
        if vocabulary_file is not None:
            self.vocabulary_asset = tf.saved_model.Asset(vocabulary_file)

    @property
    def model(self) -> keras.Model:
        return self._model_holder.value

    def _generate(self, prompt, max_tokens, temperature, top_k, top_p, seed):
        prompt_ids = self.tokenizer(prompt)
        args = (prompt_ids, max_tokens, temperature, top_k, top_p, seed)
        if isinstance(self.model, LSTMLanguageModel):
            ids = _lstm_generate(self.model, *args)
        else:
            ids = _windowed_generate(self.model, *args)
        kept = tf.logical_and(ids != PAD_ID, ids != EOS_ID)
        return {
            "text": self.tokenizer.detokenize(ids),
            "token_ids": ids,
            "num_tokens": tf.reduce_sum(tf.cast(kept, tf.int32), axis=1),
        }

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="prompt"),
        tf.TensorSpec([], tf.int32, name="max_tokens"),
        tf.TensorSpec([], tf.float32, name="temperature"),
        tf.TensorSpec([], tf.int32, name="top_k"),
        tf.TensorSpec([], tf.float32, name="top_p"),
        tf.TensorSpec([], tf.int64, name="seed"),
    ])
    def generate_with_options(self, prompt, max_tokens, temperature, top_k, top_p, seed):
        """Continuations of `prompt`: greedy at temperature 0, seeded sampling otherwise."""
        return self._generate(prompt, max_tokens, temperature, top_k, top_p, seed)

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="prompt"),
        tf.TensorSpec([], tf.int32, name="max_tokens"),
        tf.TensorSpec([], tf.float32, name="temperature"),
    ])
    def generate(self, prompt, max_tokens, temperature):
        """Continuations of `prompt` (plain sampling, a fresh random seed per call)."""
        seed = tf.random.uniform([], maxval=tf.int64.max, dtype=tf.int64)
        # Calls the traced function (not `_generate`) so the decoding graph is traced once.
        return self.generate_with_options(prompt, max_tokens, temperature, 0, 1.0, seed)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def next_token_probabilities(self, text):
        """The distribution of the token that follows each text (`[batch, vocab]`)."""
        ids = self.tokenizer(text)
        if not isinstance(self.model, LSTMLanguageModel):
            # Only the last `context_length` tokens fit the Transformer's positions.
            ids = ids[:, -self.model.context_length:]
        # Right padding is harmless: both models are causal.
        logits = self.model(ids.to_tensor(default_value=PAD_ID), training=False)
        last = tf.gather(logits, tf.cast(ids.row_lengths(), tf.int32) - 1, batch_dims=1)
        return {"probabilities": tf.nn.softmax(tf.cast(last, tf.float32), axis=-1)}


def export_language_model(
    model: keras.Model, tokenizer: LanguageModelTokenizer, export_root: str | Path, name: str,
    *, version: int | str = "auto",
) -> Path:
    """Exports `<export_root>/<name>/<version>/` with `generate`, `generate_with_options` and
    `serving_default` (next-token probabilities) signatures, written atomically.

    Raises:
        ValueError: a bad name or version, or an explicit version that already exists.
    """
    from tfnlp.export.saved_model import _publish, model_directory

    model_dir = model_directory(export_root, name)
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-export-", dir=model_dir))
    try:
        vocabulary_file = staging / "vocab.txt"
        vocabulary_file.write_text("\n".join(tokenizer.vocabulary) + "\n", encoding="utf-8")
        module = GenerationModule(model, tokenizer, os.fspath(vocabulary_file))
        saved = staging / "saved_model"
        tf.saved_model.save(module, str(saved), signatures={
            NEXT_TOKEN_SIGNATURE: module.next_token_probabilities,
            GENERATE_SIGNATURE: module.generate,
            GENERATE_WITH_OPTIONS_SIGNATURE: module.generate_with_options,
        })
        return _publish(saved, model_dir, version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_generator(run_or_export: str | Path):
    """A callable `(prompts, max_tokens, temperature, top_k, top_p, seed) -> list[str]`.

    Args:
        run_or_export: a `task: language_model` run directory (the best checkpoint is loaded
            and decoded in this process) or an export (`saved_models/<name>` or a version
            directory; its `generate_with_options` signature runs).

    Raises:
        FileNotFoundError: neither a run directory nor an export.
    """
    path = Path(run_or_export)
    if (path / "config.yaml").is_file():
        from tfnlp.training.language_model import load_trained_language_model

        model, tokenizer, _ = load_trained_language_model(path)
        module = GenerationModule(model, tokenizer)

        def function(*args):
            # A closure over `module`: its tf.functions hold only a weak reference to it.
            return module.generate_with_options(*args)
    else:
        from tfnlp.serving import load_exported

        loaded = load_exported(path)
        if GENERATE_WITH_OPTIONS_SIGNATURE not in loaded.signatures:
            raise ValueError(
                f"{path} has no `{GENERATE_WITH_OPTIONS_SIGNATURE}` signature; it is not a "
                "language-model export (train one with `task: language_model`)."
            )
        signature = loaded.signatures[GENERATE_WITH_OPTIONS_SIGNATURE]

        def function(prompt, max_tokens, temperature, top_k, top_p, seed):
            return signature(prompt=prompt, max_tokens=max_tokens, temperature=temperature,
                             top_k=top_k, top_p=top_p, seed=seed)

    def generate(prompts, max_tokens=100, temperature=1.0, top_k=0, top_p=1.0, seed=0):
        check_decoding_options(max_tokens, temperature, top_k, top_p)
        outputs = function(
            tf.constant(list(prompts), tf.string), tf.constant(max_tokens, tf.int32),
            tf.constant(temperature, tf.float32), tf.constant(top_k, tf.int32),
            tf.constant(top_p, tf.float32), tf.constant(seed, tf.int64),
        )
        return [text.decode("utf-8", errors="replace") for text in outputs["text"].numpy()]

    return generate


def check_decoding_options(max_tokens, temperature, top_k, top_p) -> None:
    """Raises `ValueError` for options outside their ranges (named as on the command line)."""
    for key, value, ok, expectation in (
        ("max_tokens", max_tokens, isinstance(max_tokens, int) and max_tokens >= 0,
         "a non-negative integer"),
        ("temperature", temperature, temperature >= 0, "0 (greedy) or positive"),
        ("top_k", top_k, isinstance(top_k, int) and top_k >= 0, "0 (off) or a positive integer"),
        ("top_p", top_p, 0 < top_p <= 1, "in (0, 1] (1 is off)"),
    ):
        if not ok:
            raise ValueError(f"`{key}` must be {expectation}. Received: {key}={value!r}.")
