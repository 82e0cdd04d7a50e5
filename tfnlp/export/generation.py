"""The language models' serving module: prompts in, generated text out, all in-graph.

`GenerationModule` is both what `tfnlp generate RUN_DIR` calls in-process and what gets
exported: its `generate` signatures run the whole decoding loop (`tf.while_loop`) inside the
SavedModel, so TF-Serving serves generation without any Python.

Decoding is the model's own `start` / `step` (`tfnlp.models.language_model`) driven by
`tfnlp.models.decoding.generate_ids`; the options pick a sampler (`tfnlp.models.samplers`):
greedy when `temperature` is 0; otherwise sampling from softmax(logits / T), optionally cut to
the `top_k` most likely tokens and/or the smallest set whose probability reaches `top_p`.
Sampling uses stateless random ops keyed by (seed, step): the same seed gives the same text.
"""

from __future__ import annotations

from tfnlp.backend import keras, tf
from tfnlp.export.module import ServingModule, Untracked
from tfnlp.export.reference import CHECK_TEXTS
from tfnlp.export.warmup import predict_log, warmup_sample
from tfnlp.models.decoding import generate_ids
from tfnlp.models.samplers import sampler_from_options
from tfnlp.preprocessing.lm_tokenizer import EOS_ID, PAD_ID, LanguageModelTokenizer

GENERATE_SIGNATURE = "generate"
GENERATE_WITH_OPTIONS_SIGNATURE = "generate_with_options"
NEXT_TOKEN_SIGNATURE = "serving_default"
# What both generate signatures return.
GENERATED = {"text", "token_ids", "num_tokens"}
# The check prompts: the classifiers' check texts without the 100 kB one (a prompt that long
# only measures the recurrent loop).
CHECK_PROMPTS = [text for text in CHECK_TEXTS if len(text) < 1000]
# Seeded options the reference generations use; serve-check replays them.
CHECK_OPTIONS = {"max_tokens": 20, "temperature": 0.8, "top_k": 0, "top_p": 0.9, "seed": 123}


OPTION_DTYPES = {"max_tokens": tf.int32, "temperature": tf.float32, "top_k": tf.int32,
                 "top_p": tf.float32, "seed": tf.int64}


def per_prompt(count: int, **options) -> dict[str, tf.Tensor]:
    """Each decoding option repeated for `count` prompts, as the signatures take them.

    Example:
        >>> per_prompt(2, max_tokens=5, seed=7)["seed"].numpy()
        array([7, 7])
    """
    return {key: tf.fill([count], tf.constant(value, OPTION_DTYPES[key]))
            for key, value in options.items()}


class GenerationModule(ServingModule):
    """Tokenizer + language model + decoding, with the functions a SavedModel exports.

    Args:
        model: a language model with the decoding interface (`start`, `step`,
            `next_token_logits`): `LSTMLanguageModel` or `TransformerLanguageModel`.
        tokenizer: the `LanguageModelTokenizer` the model was trained with.

    Example:
        >>> from tfnlp.models.language_model import LSTMLanguageModel
        >>> tokenizer = LanguageModelTokenizer.from_texts(["hello world"], vocab_size=12)
        >>> model = LSTMLanguageModel(tokenizer.vocabulary_size, embedding_dim=4, units=8)
        >>> module = GenerationModule(model, tokenizer)
        >>> options = per_prompt(2, max_tokens=5, temperature=0.8, top_k=0, top_p=0.9, seed=7)
        >>> out = module.generate_with_options(tf.constant(["he", "wo"]), **options)
        >>> out["token_ids"].shape[0], out["text"].dtype
        (2, tf.string)
        >>> sorted(module.signatures())
        ['generate', 'generate_with_options', 'serving_default']
    """

    def __init__(self, model: keras.Model, tokenizer: LanguageModelTokenizer):
        super().__init__("tfnlp_generation", list(tokenizer.vocabulary))
        # Saving tracks only the model's variables (see `Untracked`).
        self._model_holder = Untracked(model)
        self.model_variables = list(model.variables)
        self.tokenizer = tokenizer
        # Loaders can map probability columns back to tokens: `loaded.vocabulary`.
        self.vocabulary = tf.Variable(list(tokenizer.vocabulary), dtype=tf.string,
                                      trainable=False, name="vocabulary")

    @property
    def model(self) -> keras.Model:
        return self._model_holder.value

    def _generate(self, prompt, max_tokens, temperature, top_k, top_p, seed):
        sampler = sampler_from_options(temperature, top_k, top_p)
        ids = generate_ids(self.model, self.tokenizer(prompt), max_tokens, sampler, seed)
        kept = tf.logical_and(ids != PAD_ID, ids != EOS_ID)
        return {
            "text": self.tokenizer.detokenize(ids),
            "token_ids": ids,
            "num_tokens": tf.reduce_sum(tf.cast(kept, tf.int32), axis=1),
        }

    # Every input is `[batch]`: TF-Serving's batching refuses rank-0 inputs, and per-example
    # options let it merge requests that asked for different ones.
    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="prompt"),
        tf.TensorSpec([None], tf.int32, name="max_tokens"),
        tf.TensorSpec([None], tf.float32, name="temperature"),
        tf.TensorSpec([None], tf.int32, name="top_k"),
        tf.TensorSpec([None], tf.float32, name="top_p"),
        tf.TensorSpec([None], tf.int64, name="seed"),
    ])
    def generate_with_options(self, prompt, max_tokens, temperature, top_k, top_p, seed):
        """Continuations of `prompt`, each with its own options: greedy at temperature 0,
        seeded sampling otherwise (the same seed gives the same text)."""
        return self._generate(prompt, max_tokens, temperature, top_k, top_p, seed)

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.string, name="prompt"),
        tf.TensorSpec([None], tf.int32, name="max_tokens"),
        tf.TensorSpec([None], tf.float32, name="temperature"),
    ])
    def generate(self, prompt, max_tokens, temperature):
        """Continuations of `prompt` (plain sampling, a fresh random seed per prompt)."""
        batch = tf.shape(prompt)[:1]
        seed = tf.random.uniform(batch, maxval=tf.int64.max, dtype=tf.int64)
        # Calls the traced function (not `_generate`) so the decoding graph is traced once.
        return self.generate_with_options(prompt, max_tokens, temperature,
                                          tf.zeros(batch, tf.int32), tf.ones(batch), seed)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def next_token_probabilities(self, text):
        """The distribution of the token that follows each text (`[batch, vocab]`)."""
        logits = self.model.next_token_logits(self.tokenizer(text))  # (B, V)
        return {"probabilities": tf.nn.softmax(logits, axis=-1)}

    def signatures(self) -> dict:
        return {NEXT_TOKEN_SIGNATURE: self.next_token_probabilities,
                GENERATE_SIGNATURE: self.generate,
                GENERATE_WITH_OPTIONS_SIGNATURE: self.generate_with_options}

    def warmup_records(self, texts: list[str], model_name: str) -> list[bytes]:
        prompts = warmup_sample(texts)
        options = {k: v.numpy() for k, v in per_prompt(
            len(prompts), max_tokens=8, temperature=1.0, top_k=0, top_p=1.0, seed=0).items()}
        plain = {k: options[k] for k in ("max_tokens", "temperature")}
        return [
            predict_log(model_name, NEXT_TOKEN_SIGNATURE, {"text": prompts}),
            predict_log(model_name, GENERATE_SIGNATURE, {"prompt": prompts, **plain}),
            predict_log(model_name, GENERATE_WITH_OPTIONS_SIGNATURE,
                        {"prompt": prompts, **options}),
        ]

    def reference(self) -> dict:
        prompts = tf.constant(CHECK_PROMPTS)
        probabilities = self.next_token_probabilities(prompts)["probabilities"].numpy()
        generated = self.generate_with_options(
            prompts, **per_prompt(len(CHECK_PROMPTS), **CHECK_OPTIONS))
        return {"kind": "generator", "texts": list(CHECK_PROMPTS),
                "probabilities": [[float(p) for p in row] for row in probabilities],
                "options": dict(CHECK_OPTIONS),
                "generated": [t.decode("utf-8", "replace") for t in generated["text"].numpy()],
                "portable": False}
