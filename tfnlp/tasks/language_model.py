"""`task: language_model`: texts → tokens → next-token windows → perplexity → a generator.

Runs the classic stacked-LSTM text generator (or a small causal Transformer) on the shared
run lifecycle, so it gets the same strategies, precision, checkpoints, resuming and export as
the classifiers; the one extra is the classic per-improvement checkpoint file.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

import numpy as np

from tfnlp.backend import keras, tf
from tfnlp.data.corpus import read_corpus, split_corpus
from tfnlp.data.windows import build_windows, count_windows, token_stream
from tfnlp.evaluation.language_model import evaluate_language_model, real_word_rate, words
from tfnlp.export.generation import GenerationModule, per_prompt
from tfnlp.models.language_model import build_language_model
from tfnlp.preprocessing.lm_tokenizer import UNK_ID, LanguageModelTokenizer
from tfnlp.tasks.base import Task, TrainingInputs, register_task
from tfnlp.training.best_k_checkpoint import BestKCheckpoint
from tfnlp.training.run_directory import fingerprint
from tfnlp.training.strategy import prepare_input, steps_per_epoch

logger = logging.getLogger("tfnlp")

# The samples every run writes: continuations of validation-text openings at temperature 0.8,
# seeded by the pipeline's seed, scored by their share of real words.
SAMPLES, SAMPLE_TOKENS, SAMPLE_TEMPERATURE, SAMPLES_SHOWN = 200, 80, 0.8, 5


@dataclass
class LanguageModelData:
    """Whole texts split into train/validation/test, and their token streams once tokenized."""

    splits: dict[str, list[str]]
    streams: dict[str, np.ndarray] = field(default_factory=dict)

    def tokenize(self, tokenizer: LanguageModelTokenizer) -> dict[str, np.ndarray]:
        """The splits as "[EOS] text [EOS] …" id streams (computed once per data object)."""
        if not self.streams:
            self.streams = {name: token_stream(texts, tokenizer)
                            for name, texts in self.splits.items() if texts}
            logger.info("tokens: %s", ", ".join(f"{k} {len(v)}" for k, v in self.streams.items()))
        return self.streams


def characters_per_token(texts: list[str], tokenizer: LanguageModelTokenizer,
                         stream: np.ndarray) -> float:
    """Normalised characters (plus one newline per text for `[EOS]`) per token of `stream`."""
    lengths = tf.strings.length(tokenizer.normalize(tf.constant(texts)), unit="UTF8_CHAR")
    characters = int(tf.reduce_sum(lengths)) + len(texts)
    return characters / max(len(stream) - 1, 1)


@register_task("language_model")
class LanguageModelTask(Task):
    """Next-token prediction over a corpus; the export generates text from a prompt."""

    headline_figures = (("test perplexity", "test.perplexity"),
                        ("bits/char", "test.bits_per_character"))

    def read_data(self) -> LanguageModelData:
        data = self.config.data
        texts = read_corpus(data, seed=self.config.seed)
        return LanguageModelData(split_corpus(texts, data.validation_fraction,
                                              data.test_fraction, seed=self.config.seed))

    def record_data(self, data: LanguageModelData, run) -> None:
        sizes = {name: len(texts) for name, texts in data.splits.items()}
        logger.info("texts: %s", ", ".join(f"{k} {v}" for k, v in sizes.items()))
        run.write_json("splits.json", {"seed": self.config.seed, **sizes})

    def sample_texts(self, data: LanguageModelData, count: int) -> list[str]:
        return list(data.splits["validation"][:count])

    # Preprocessing --------------------------------------------------------------------
    def preprocessor_options(self) -> dict:
        p = self.config.preprocessing
        return {
            "tokenizer": self.config.language_model.tokenizer,
            "lowercase": p.lowercase,
            "replace_urls": p.replace_urls,
            "replace_mentions": p.replace_mentions,
            "replace_numbers": p.replace_numbers,
        }

    def vocabulary_key(self, data: LanguageModelData) -> str:
        parts = [self.preprocessor_options(), self.config.language_model.vocab_size]
        if self.config.language_model.tokenizer == "wordpiece":
            parts.append(self.config.preprocessing.vocabulary_learner)
        return fingerprint(*parts, data.splits["train"])

    def learn_preprocessor(self, data: LanguageModelData) -> LanguageModelTokenizer:
        return LanguageModelTokenizer.from_texts(
            data.splits["train"], vocab_size=self.config.language_model.vocab_size,
            vocabulary_learner=self.config.preprocessing.vocabulary_learner,
            **self.preprocessor_options(),
        )

    def preprocessor_from(self, vocabulary: list[str]) -> LanguageModelTokenizer:
        return LanguageModelTokenizer(vocabulary, **self.preprocessor_options())

    # Model ----------------------------------------------------------------------------
    def build_model(self, preprocessor: LanguageModelTokenizer) -> keras.Model:
        lm = self.config.language_model
        return build_language_model(self.config.model, preprocessor.vocabulary_size,
                                    lm.sequence_length, tie_embeddings=lm.tie_embeddings)

    def loss(self) -> keras.losses.Loss:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def metrics(self) -> list:
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def monitor(self, data: LanguageModelData) -> str:
        return "val_loss" if data.splits.get("validation") else "loss"

    def callbacks(self, run, *, fresh_start: bool) -> list[keras.callbacks.Callback]:
        lm = self.config.language_model
        best_k = BestKCheckpoint(run.path / "checkpoints" / lm.checkpoint_filepath,
                                 monitor=lm.checkpoint_monitor, keep_best=lm.keep_best)
        if fresh_start:
            best_k.forget()  # the ranked files must not continue an earlier run's
        return [best_k]

    # Training inputs ------------------------------------------------------------------
    def _windows(self, stream, *, shuffle: bool, batch_size: int | None = None):
        lm = self.config.language_model
        return build_windows(
            stream, sequence_length=lm.sequence_length,
            stride=lm.stride if shuffle else lm.sequence_length,
            batch_size=batch_size or self.config.train.batch_size, shuffle=shuffle,
            seed=self.config.seed,
        )

    def training_inputs(self, data: LanguageModelData, preprocessor, strategy,
                        role) -> TrainingInputs:
        lm, batch = self.config.language_model, self.config.train.batch_size
        streams = data.tokenize(preprocessor)
        windows = count_windows(len(streams["train"]), lm.sequence_length, lm.stride)
        has_validation = "validation" in streams
        if role.kind == "parameter_server":
            fit_kwargs = self._parameter_server_inputs(streams, windows)
        else:
            fit_kwargs = {"x": prepare_input(self._windows(streams["train"], shuffle=True),
                                             strategy, batch)}
            if has_validation:
                fit_kwargs["validation_data"] = prepare_input(
                    self._windows(streams["validation"], shuffle=False), strategy, batch)
        return TrainingInputs(fit_kwargs, windows,
                              {"tokens_per_epoch": windows * lm.sequence_length})

    def _parameter_server_inputs(self, streams, windows: int) -> dict:
        """`DatasetCreator`s: each worker reads every n-th batch of windows, repeated."""
        lm, batch = self.config.language_model, self.config.train.batch_size

        def creator(stream, shuffle: bool):
            def dataset_fn(context: tf.distribute.InputContext):
                per_replica = context.get_per_replica_batch_size(batch)
                return self._windows(stream, shuffle=shuffle, batch_size=per_replica).shard(
                    context.num_input_pipelines, context.input_pipeline_id).repeat()

            return keras.utils.experimental.DatasetCreator(dataset_fn)

        fit_kwargs = {"x": creator(streams["train"], True),
                      "steps_per_epoch": steps_per_epoch(windows, batch)}
        if "validation" in streams:
            count = count_windows(len(streams["validation"]), lm.sequence_length,
                                  lm.sequence_length)
            fit_kwargs["validation_data"] = creator(streams["validation"], False)
            fit_kwargs["validation_steps"] = steps_per_epoch(count, batch)
        return fit_kwargs

    def train_metrics(self, summary, inputs: TrainingInputs) -> dict:
        per_second = summary.examples_per_second
        length = self.config.language_model.sequence_length
        return {"tokens_per_second": per_second * length if per_second is not None else None}

    # Evaluation -----------------------------------------------------------------------
    def evaluate(self, model, preprocessor, data: LanguageModelData, run, side=None) -> dict:
        """Metrics on non-overlapping windows of the validation and test streams (when long
        enough): cross-entropy, perplexity, bits per token and per character; then the
        fixed-seed samples and their real-word rate (`samples`). Each split also records its
        share of `[UNK]` tokens (`unknown_token_rate`)."""
        length = self.config.language_model.sequence_length
        streams = data.tokenize(preprocessor)
        metrics = {"pipeline": self.config.name, "task": self.config.task,
                   "model": self.config.model.name,
                   "tokenizer": self.config.language_model.tokenizer,
                   "vocabulary_size": preprocessor.vocabulary_size,
                   "data": {name: len(texts) for name, texts in data.splits.items()}}
        for name in ("validation", "test"):
            if name in streams and count_windows(len(streams[name]), length, length):
                metrics[name] = evaluate_language_model(
                    model, self._windows(streams[name], shuffle=False),
                    characters_per_token(data.splits[name], preprocessor, streams[name]),
                )
                # `[UNK]` is cheap to predict and says nothing: its share qualifies the bits.
                metrics[name]["unknown_token_rate"] = float(np.mean(streams[name] == UNK_ID))
        if data.splits.get("validation"):
            metrics["samples"] = self.samples(model, preprocessor, data)
        return metrics

    def samples(self, model, preprocessor, data: LanguageModelData) -> dict:
        """`SAMPLES` continuations of validation-text openings (their first two words) and
        the share of their words that occur in the training split, as the export would
        write them (the same module and seeds)."""
        module = self.serving_module(model, preprocessor)
        rng = random.Random(self.config.seed)
        openings = rng.choices(data.splits["validation"], k=SAMPLES)
        prompts = [" ".join(text.split()[:2]) + " " for text in openings]
        options = per_prompt(len(prompts), max_tokens=SAMPLE_TOKENS,
                             temperature=SAMPLE_TEMPERATURE, top_k=0, top_p=1.0,
                             seed=self.config.seed)
        written = module.generate_with_options(tf.constant(prompts), **options)["text"]
        texts = [text.decode("utf-8", errors="replace") for text in written.numpy()]
        training = preprocessor.normalize(tf.constant(data.splits["train"])).numpy()
        known = {word for text in training for word in words(text.decode("utf-8"))}
        rate = real_word_rate(texts, known)
        logger.info("samples: %.1f%% of the words in %d continuations (temperature %.1f) are "
                    "real words", 100 * rate, len(texts), SAMPLE_TEMPERATURE)
        return {"real_word_rate": rate, "count": len(texts), "temperature": SAMPLE_TEMPERATURE,
                "max_tokens": SAMPLE_TOKENS, "seed": self.config.seed,
                "prompts": prompts[:SAMPLES_SHOWN],
                "texts": [p + t for p, t in zip(prompts, texts)][:SAMPLES_SHOWN]}

    def summary(self, metrics: dict) -> dict:
        return {k: metrics[k] for k in ("validation", "test") if k in metrics}

    # Serving --------------------------------------------------------------------------
    def serving_module(self, model, preprocessor) -> GenerationModule:
        return GenerationModule(model, preprocessor)
