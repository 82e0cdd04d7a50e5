"""Run a `task: language_model` pipeline: texts → tokens → windows → fit → perplexity → export.

Reuses the classification run's pieces: the run directory, preflight checks, strategy and
precision helpers and the standard callbacks (best/latest checkpoints, backup-and-restore,
early stopping, TensorBoard, CSV log), plus the classic per-improvement checkpoint files.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import numpy as np

from tfnlp.backend import keras, tf
from tfnlp.config.schema import PipelineConfig
from tfnlp.data.corpus import read_corpus, split_corpus
from tfnlp.data.windows import build_windows, count_windows, token_stream
from tfnlp.evaluation.language_model import evaluate_language_model
from tfnlp.evaluation.plots import plot_training_curves
from tfnlp.generation import export_language_model
from tfnlp.models.language_model import build_language_model
from tfnlp.preprocessing.lm_tokenizer import LanguageModelTokenizer
from tfnlp.training.best_k_checkpoint import BestKCheckpoint
from tfnlp.training.callbacks import standard_callbacks
from tfnlp.training.precision import precision_scope, resolve_policy
from tfnlp.training.preflight import run_preflight
from tfnlp.training.run_directory import RunDirectory, fingerprint
from tfnlp.training.strategy import create_strategy
from tfnlp.training.trainer import TrainingResult

logger = logging.getLogger("tfnlp")


def tokenizer_options(config: PipelineConfig) -> dict:
    """`LanguageModelTokenizer` keyword arguments (normalisation from `preprocessing:`)."""
    p = config.preprocessing
    return {
        "tokenizer": config.language_model.tokenizer,
        "lowercase": p.lowercase,
        "replace_urls": p.replace_urls,
        "replace_mentions": p.replace_mentions,
        "replace_numbers": p.replace_numbers,
    }


def build_tokenizer(
    config: PipelineConfig, run: RunDirectory, train_texts
) -> LanguageModelTokenizer:
    """The tokenizer, its vocabulary learned from the training texts (or reused from the run)."""
    options = tokenizer_options(config)
    key = fingerprint(options, config.language_model.vocab_size, train_texts)
    vocabulary = run.read_vocabulary(key)
    if vocabulary is None:
        if run.has_backup:
            logger.warning("data or tokenizer changed: discarding the backup in %s",
                           run.backup_dir)
            shutil.rmtree(run.backup_dir)
        tokenizer = LanguageModelTokenizer.from_texts(
            train_texts, vocab_size=config.language_model.vocab_size, **options
        )
        run.write_vocabulary(list(tokenizer.vocabulary), key)
        logger.info("vocabulary: learned %d %s tokens", tokenizer.vocabulary_size,
                    options["tokenizer"])
        return tokenizer
    logger.info("vocabulary: reusing %s (%d tokens)", run.vocabulary_file, len(vocabulary))
    return LanguageModelTokenizer(vocabulary, **options)


def characters_per_token(texts: list[str], tokenizer: LanguageModelTokenizer,
                         stream: np.ndarray) -> float:
    """Normalised characters (plus one newline per text for `[EOS]`) per token of `stream`."""
    lengths = tf.strings.length(tokenizer.normalize(tf.constant(texts)), unit="UTF8_CHAR")
    characters = int(tf.reduce_sum(lengths)) + len(texts)
    return characters / max(len(stream) - 1, 1)


def compile_language_model(model: keras.Model, config: PipelineConfig) -> None:
    """AdamW + sparse categorical cross-entropy on logits, next-token accuracy."""
    model.compile(
        optimizer=keras.optimizers.AdamW(
            learning_rate=config.train.learning_rate, weight_decay=config.train.weight_decay
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def build_model_for(config: PipelineConfig, vocabulary_size: int) -> keras.Model:
    """The configured language model (weights created) under the current scopes."""
    lm = config.language_model
    return build_language_model(config.model, vocabulary_size, lm.sequence_length,
                                tie_embeddings=lm.tie_embeddings)


def evaluate_held_out(model, tokenizer, config: PipelineConfig, splits, streams) -> dict:
    """Metrics on non-overlapping windows of the validation and test streams (when long enough).

    Returns:
        `{"validation": {...}, "test": {...}}` with `language_model_metrics` entries.
    """
    length = config.language_model.sequence_length
    metrics = {}
    for name in ("validation", "test"):
        if name in streams and count_windows(len(streams[name]), length, length):
            dataset = build_windows(streams[name], sequence_length=length, stride=length,
                                    batch_size=config.train.batch_size)
            metrics[name] = evaluate_language_model(
                model, dataset, characters_per_token(splits[name], tokenizer, streams[name])
            )
    return metrics


def train_language_model(
    config: PipelineConfig,
    run_dir: str | Path,
    *,
    export: bool = True,
    extra_callbacks: list[keras.callbacks.Callback] | None = None,
) -> TrainingResult:
    """Trains, evaluates (perplexity, bits per character) and optionally exports a language model.

    Args:
        config: a validated pipeline with `task: language_model`.
        run_dir: where the config, vocabulary, checkpoints, logs and metrics go.
        export: export the best model (with the `generate` signature) when training ends.
        extra_callbacks: more Keras callbacks for `model.fit`.

    Returns:
        The model (best weights), the metrics written to `metrics.json`, the run directory and
        the export path.

    Raises:
        FloatingPointError: the loss became NaN (the last good checkpoint is kept).
    """
    run_preflight(config, Path(run_dir))
    run = RunDirectory(Path(run_dir)).create()
    run.write_config(config)
    keras.utils.set_random_seed(config.seed)
    lm = config.language_model

    texts = read_corpus(config.data, seed=config.seed)
    splits = split_corpus(texts, config.data.validation_fraction, config.data.test_fraction,
                          seed=config.seed)
    sizes = {name: len(split) for name, split in splits.items()}
    logger.info("texts: %s", ", ".join(f"{k} {v}" for k, v in sizes.items()))
    run.write_json("splits.json", {"seed": config.seed, **sizes})

    strategy, why = create_strategy(config.distribute)
    logger.info("strategy: %s (%s)", type(strategy).__name__, why)
    policy, why = resolve_policy(config.precision.policy)
    logger.info("precision: %s (%s)", policy, why)

    tokenizer = build_tokenizer(config, run, splits["train"])
    streams = {name: token_stream(split, tokenizer) for name, split in splits.items() if split}
    logger.info("tokens: %s", ", ".join(f"{k} {len(v)}" for k, v in streams.items()))

    def windows(name, shuffle=False):
        stride = lm.stride if shuffle else lm.sequence_length
        return build_windows(streams[name], sequence_length=lm.sequence_length, stride=stride,
                             batch_size=config.train.batch_size, shuffle=shuffle,
                             seed=config.seed)

    with strategy.scope(), precision_scope(policy):
        model = build_model_for(config, tokenizer.vocabulary_size)
        compile_language_model(model, config)

    train_windows = count_windows(len(streams["train"]), lm.sequence_length, lm.stride)
    has_validation = "validation" in streams
    callbacks, summary = standard_callbacks(
        run.path, monitor="val_loss" if has_validation else "loss",
        patience=config.train.early_stopping_patience, examples_per_epoch=train_windows,
        strategy_name=type(strategy).__name__,
    )
    best_k = BestKCheckpoint(run.path / "checkpoints" / lm.checkpoint_filepath,
                             monitor=lm.checkpoint_monitor, keep_best=lm.keep_best)
    callbacks.append(best_k)
    if run.has_backup:
        logger.info("resuming from the backup in %s", run.backup_dir)
    else:
        # A fresh start: neither the epoch log nor the ranked files continue an earlier run's.
        (run.path / "history.csv").unlink(missing_ok=True)
        best_k.forget()
    model.fit(
        windows("train", shuffle=True),
        validation_data=windows("validation") if has_validation else None,
        epochs=config.train.epochs,
        callbacks=callbacks + list(extra_callbacks or []),
        verbose=1 if sys.stdout.isatty() else 2,
    )
    if model.stop_training and np.isnan(model.history.history.get("loss", [0])[-1]):
        raise FloatingPointError(
            "Training produced a NaN loss and was stopped; the last good checkpoint is in "
            f"{run.best_checkpoint.parent}. Try a lower `train.learning_rate` or "
            "`precision.policy: float32`."
        )
    shutil.rmtree(run.backup_dir, ignore_errors=True)
    model.load_weights(str(run.best_checkpoint)).expect_partial()

    metrics = {"pipeline": config.name, "task": config.task, "model": config.model.name,
               "tokenizer": lm.tokenizer, "vocabulary_size": tokenizer.vocabulary_size,
               "data": sizes, **evaluate_held_out(model, tokenizer, config, splits, streams)}
    tokens_per_epoch = train_windows * lm.sequence_length
    metrics["train"] = {
        "tokens_per_second": (summary.examples_per_second * lm.sequence_length
                              if summary.examples_per_second is not None else None),
        "tokens_per_epoch": tokens_per_epoch,
        "epochs_run": len(summary.train_seconds),
        "train_seconds": sum(summary.train_seconds),
        "replicas": strategy.num_replicas_in_sync,
        "precision_policy": policy,
    }
    export_path = None
    if export:
        export_path = export_language_model(
            model, tokenizer, config.export.dir, config.export.name or config.name,
            version=config.export.version,
        )
        metrics["export"] = {"path": str(export_path)}
        logger.info("exported: %s", export_path)
    run.write_json("metrics.json", metrics)
    if (run.path / "history.csv").is_file():
        plot_training_curves(run.path / "history.csv", run.path / "training_curves.png")
    if "test" in metrics:
        logger.info("test perplexity %.3f, %.3f bits per character",
                    metrics["test"]["perplexity"], metrics["test"]["bits_per_character"])
    return TrainingResult(model, metrics, run.path, export_path)


def load_trained_language_model(run_dir: str | Path):
    """Rebuilds a language-model run's tokenizer and model and loads the best checkpoint.

    Returns:
        (model, tokenizer, config).

    Raises:
        FileNotFoundError: not a finished language-model run directory.
    """
    run = RunDirectory(Path(run_dir))
    config = run.read_config()
    if config.task != "language_model":
        raise ValueError(
            f"{run.path} is a `task: {config.task}` run; `tfnlp generate` needs a "
            "`task: language_model` run or export."
        )
    vocabulary = run.read_vocabulary()
    if vocabulary is None:
        raise FileNotFoundError(f"{run.path}: the vocabulary is missing; train the pipeline again.")
    if not run.best_checkpoint.with_suffix(".index").is_file():
        raise FileNotFoundError(
            f"{run.best_checkpoint}: no best checkpoint yet; let `tfnlp train` finish an epoch."
        )
    tokenizer = LanguageModelTokenizer(vocabulary, **tokenizer_options(config))
    policy, _ = resolve_policy(config.precision.policy)
    with precision_scope(policy):
        model = build_model_for(config, tokenizer.vocabulary_size)
    model.load_weights(str(run.best_checkpoint)).expect_partial()
    return model, tokenizer, config


def export_language_model_run(run_dir: str | Path, export_dir: str | None = None,
                              name: str | None = None, version=None) -> Path:
    """Exports a language-model run's best checkpoint as the next (or given) version."""
    model, tokenizer, config = load_trained_language_model(run_dir)
    return export_language_model(
        model, tokenizer, export_dir or config.export.dir,
        name or config.export.name or config.name,
        version=version if version is not None else config.export.version,
    )


def evaluate_language_model_run(run_dir: str | Path) -> dict:
    """Re-scores a language-model run's best checkpoint on its (re-created) held-out splits.

    Writes `evaluation.json` in the run directory and returns it.
    """
    model, tokenizer, config = load_trained_language_model(run_dir)
    texts = read_corpus(config.data, seed=config.seed)
    splits = split_corpus(texts, config.data.validation_fraction, config.data.test_fraction,
                          seed=config.seed)
    streams = {name: token_stream(split, tokenizer)
               for name, split in splits.items() if split and name != "train"}
    metrics = {"pipeline": config.name, "task": config.task,
               **evaluate_held_out(model, tokenizer, config, splits, streams)}
    RunDirectory(Path(run_dir)).write_json("evaluation.json", metrics)
    return metrics
