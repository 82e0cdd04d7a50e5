"""Run a classification pipeline: data → preprocessing → model.fit → evaluation → export."""

from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tfnlp.backend import keras, tf
from tfnlp.config.schema import PipelineConfig
from tfnlp.data import build_dataset, encode_labels, load_examples, split_examples
from tfnlp.data.bucketing import DEFAULT_BUCKET_WIDTH, measure_padding, token_lengths
from tfnlp.data.splits import Splits
from tfnlp.evaluation import (
    classification_metrics,
    majority_class_accuracy,
    plot_confusion_matrix,
    plot_training_curves,
    tfidf_logreg_baseline,
)
from tfnlp.export import export_saved_model
from tfnlp.models import build_model
from tfnlp.preprocessing import TextPreprocessor, load_stopwords
from tfnlp.training.callbacks import standard_callbacks
from tfnlp.training.distributed import (
    distributed_settings,
    finish_worker,
    fit_inputs,
    worker_callbacks,
)
from tfnlp.training.input_pipeline import ids_model, tokenize_in_dataset, use_length_bucketing
from tfnlp.training.precision import precision_scope, resolve_policy, with_loss_scaling
from tfnlp.training.preflight import run_preflight
from tfnlp.training.run_directory import RunDirectory, fingerprint
from tfnlp.training.strategy import create_strategy, fix_metric_reduction

logger = logging.getLogger("tfnlp")


@dataclass
class TrainingResult:
    model: keras.Model
    metrics: dict
    run_dir: Path
    export_path: Path | None


def preprocessor_options(config: PipelineConfig) -> dict:
    """`TextPreprocessor` keyword arguments from the `preprocessing:` section."""
    p = config.preprocessing
    stopwords = load_stopwords(p.stopwords_file) if p.remove_stopwords else None
    return {
        "tokenizer": p.tokenizer,
        "sequence_length": p.sequence_length,
        "lowercase": p.lowercase,
        "replace_urls": p.replace_urls,
        "replace_mentions": p.replace_mentions,
        "replace_numbers": p.replace_numbers,
        "stopwords": stopwords,
    }


def load_splits(config: PipelineConfig, run: RunDirectory) -> tuple[Splits, list[str]]:
    """Reads and splits the data, writing the load report and split sizes to the run."""
    examples, labels, report = load_examples(config.data, seed=config.seed)
    logger.info("data: %s", report.summary())
    splits = split_examples(
        examples,
        validation_fraction=config.data.validation_fraction,
        test_fraction=config.data.test_fraction,
        stratify=config.data.stratify,
        seed=config.seed,
    )
    sizes = splits.sizes()
    logger.info("splits: %s", ", ".join(f"{k} {v}" for k, v in sizes.items()))
    run.write_json("data_report.json", report.to_dict())
    run.write_json("splits.json", {"seed": config.seed, **sizes})
    run.write_json("labels.json", labels)
    return splits, labels


def build_preprocessor(config: PipelineConfig, run: RunDirectory, train_texts) -> TextPreprocessor:
    """The preprocessing layer, its vocabulary learned from the training split (or reused)."""
    options = preprocessor_options(config)
    key = fingerprint(asdict(config.preprocessing), train_texts)
    vocabulary = run.read_vocabulary(key)
    if vocabulary is None:
        if run.has_backup:
            # The backup's embeddings index another vocabulary: resuming would be garbage.
            logger.warning("data or preprocessing changed: discarding the backup in %s",
                           run.backup_dir)
            shutil.rmtree(run.backup_dir)
        start = time.perf_counter()
        layer = TextPreprocessor.from_texts(
            train_texts, vocab_size=config.preprocessing.vocab_size, **options
        )
        run.write_vocabulary(layer.vocabulary, key)
        logger.info(
            "vocabulary: learned %d %s tokens in %.1f s", layer.vocabulary_size,
            config.preprocessing.tokenizer, time.perf_counter() - start,
        )
        return layer
    logger.info("vocabulary: reusing %s (%d tokens)", run.vocabulary_file, len(vocabulary))
    return TextPreprocessor(vocabulary, **options)


def compile_model(model: keras.Model, config: PipelineConfig) -> None:
    """AdamW + label-smoothed cross-entropy on logits, accuracy metric."""
    optimizer = keras.optimizers.AdamW(
        learning_rate=config.train.learning_rate, weight_decay=config.train.weight_decay
    )
    # Called inside `precision_scope`: the global policy is the run's policy.
    policy = keras.mixed_precision.global_policy().name
    model.compile(
        optimizer=with_loss_scaling(optimizer, policy),
        loss=keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=config.train.label_smoothing
        ),
        metrics=["accuracy"],
    )


def _one_hot(num_classes: int):
    def convert(text, label, *weight):
        return (text, tf.one_hot(label, num_classes), *weight)

    return convert


def train_pipeline(
    config: PipelineConfig,
    run_dir: str | Path,
    *,
    export: bool = True,
    extra_callbacks: list[keras.callbacks.Callback] | None = None,
) -> TrainingResult:
    """Trains, evaluates and (optionally) exports one pipeline; resumes an interrupted run.

    Args:
        config: the validated pipeline.
        run_dir: where the config, vocabulary, checkpoints, logs, metrics and plots go.
        export: export the best model to `export.dir` when training ends.
        extra_callbacks: more Keras callbacks for `model.fit`.

    Returns:
        The trained model (best weights), the metrics written to `metrics.json`, the run
        directory and the export path.
    """
    # First: multi-worker strategies must exist before TensorFlow runs any op.
    strategy, why = create_strategy(config.distribute)
    logger.info("strategy: %s (%s)", type(strategy).__name__, why)
    config, role = distributed_settings(config, strategy)
    # Non-chief workers write to a temporary directory (removed at the end); callbacks get
    # the shared one, where Keras itself separates the workers' checkpoints and backups.
    shared_run_dir = Path(run_dir)
    run_dir = role.write_dir(shared_run_dir)
    run_preflight(config, Path(run_dir))
    run = RunDirectory(Path(run_dir)).create()
    run.write_config(config)
    keras.utils.set_random_seed(config.seed)
    splits, labels = load_splits(config, run)

    policy, why = resolve_policy(config.precision.policy)
    logger.info("precision: %s (%s)", policy, why)

    preprocessor = build_preprocessor(config, run, splits.train.texts)
    with strategy.scope(), precision_scope(policy):
        model = build_model(config.model, preprocessor, len(labels))
        # What `fit` trains: the model itself, or its layers from token ids on (same weights).
        fitted = ids_model(model) if config.preprocessing.in_dataset else model
        compile_model(fitted, config)
        fix_metric_reduction(fitted, strategy)

    # Token lengths drive length bucketing and the measured padding (one tokenizing pass).
    lengths = {id(split): token_lengths(preprocessor.tokenize, split.texts)
               for split in (splits.train, splits.validation)}
    bucket_width = DEFAULT_BUCKET_WIDTH if use_length_bucketing(config) else None

    def dataset(split, shuffle=False, keep_lengths=False):
        batches = build_dataset(
            split, labels, batch_size=config.train.batch_size, shuffle=shuffle, seed=config.seed,
            shuffle_buffer=config.train.shuffle_buffer, token_lengths=lengths[id(split)],
            bucket_width=bucket_width, keep_lengths=keep_lengths,
        )
        if config.preprocessing.in_dataset:
            batches = tokenize_in_dataset(batches, preprocessor)
        return batches.map(_one_hot(len(labels)), num_parallel_calls=tf.data.AUTOTUNE)

    # Same seed, same shuffle: the very batches of the first epoch, counted.
    padding = measure_padding(dataset(splits.train, shuffle=True, keep_lengths=True))
    logger.info("padding: %.1f%% of an epoch's token positions (length bucketing %s)",
                100 * padding.padded_fraction, "on" if bucket_width else "off")

    callbacks, summary = standard_callbacks(
        shared_run_dir, monitor=config.train.monitor, patience=config.train.early_stopping_patience,
        examples_per_epoch=len(splits.train), strategy_name=type(strategy).__name__,
    )
    callbacks = worker_callbacks(callbacks, role, run.path)
    if RunDirectory(shared_run_dir).has_backup:
        logger.info("resuming from the backup in %s", RunDirectory(shared_run_dir).backup_dir)
    else:
        # A fresh start: the epoch log must not continue an earlier run's.
        (run.path / "history.csv").unlink(missing_ok=True)
    fitted.fit(
        **fit_inputs(strategy, role, config, splits.train, splits.validation, labels,
                     _one_hot(len(labels)), dataset),
        epochs=config.train.epochs,
        callbacks=callbacks + list(extra_callbacks or []),
        verbose=1 if sys.stdout.isatty() else 2,
    )
    if fitted.stop_training and np.isnan(fitted.history.history.get("loss", [0])[-1]):
        raise FloatingPointError(
            "Training produced a NaN loss and was stopped; the last good checkpoint is in "
            f"{run.best_checkpoint.parent}. Try a lower `train.learning_rate` or "
            "`precision.policy: float32`."
        )
    if not role.is_chief:
        finish_worker(role, run.path, RunDirectory(shared_run_dir).backup_dir)
        return TrainingResult(model, {}, run.path, None)
    # BackupAndRestore empties its directory when training ends; drop the husk too.
    shutil.rmtree(run.backup_dir, ignore_errors=True)
    if role.trains_on_a_cluster:
        # Evaluate on a local copy: the cluster model's predict would need every worker.
        model = load_trained_model(run.path)[0]
    else:
        fitted.load_weights(str(run.best_checkpoint)).expect_partial()

    metrics = evaluate_model(model, config, splits, labels, run)
    metrics["train"] = {
        "examples_per_second": summary.examples_per_second,
        "epochs_run": len(summary.train_seconds),
        "train_seconds": sum(summary.train_seconds),
        "replicas": strategy.num_replicas_in_sync,
        "strategy": role.kind,
        "precision_policy": policy,
        "length_bucketing": bool(bucket_width),
        "preprocessing_in_dataset": config.preprocessing.in_dataset,
        "padding": padding.to_dict(),
        "padded_fraction": padding.padded_fraction,
    }
    export_path = None
    if export:
        export_path = export_saved_model(
            model, labels, config.export.dir, config.export.name or config.name,
            version=config.export.version, vocabulary=preprocessor.vocabulary,
            keep=config.export.keep, portable=config.export.portable,
            warmup_texts=list(splits.validation.texts[:8]),
        )
        metrics["export"] = {"path": str(export_path)}
        logger.info("exported: %s", export_path)
    run.write_json("metrics.json", metrics)
    if (run.path / "history.csv").is_file():
        plot_training_curves(run.path / "history.csv", run.path / "training_curves.png")
    logger.info(
        "test accuracy %.4f, macro-F1 %.4f (TF-IDF+LR baseline %.4f / %.4f)",
        metrics["test"]["accuracy"], metrics["test"]["macro_f1"],
        metrics["baseline"]["tfidf_logreg"]["accuracy"],
        metrics["baseline"]["tfidf_logreg"]["macro_f1"],
    )
    return TrainingResult(model, metrics, run.path, export_path)


def predict_label_ids(model: keras.Model, texts, batch_size: int = 256) -> np.ndarray:
    """Argmax label ids of `model` over `texts`."""
    dataset = tf.data.Dataset.from_tensor_slices(list(texts)).batch(batch_size)
    return np.argmax(model.predict(dataset, verbose=0), axis=-1)


def evaluate_model(model, config: PipelineConfig, splits: Splits, labels, run: RunDirectory):
    """Validation/test metrics, the TF-IDF baseline on the same split, and the plots."""
    y_train = encode_labels(splits.train, labels)
    y_test = encode_labels(splits.test, labels)
    test = classification_metrics(y_test, predict_label_ids(model, splits.test.texts), labels)
    validation = classification_metrics(
        encode_labels(splits.validation, labels),
        predict_label_ids(model, splits.validation.texts), labels,
    )
    baseline = tfidf_logreg_baseline(
        splits.train.texts, y_train, splits.test.texts, y_test, labels, seed=config.seed
    )
    plot_confusion_matrix(
        test["confusion_matrix"], labels, run.path / "confusion_matrix.png",
        f"{config.name}: test accuracy {test['accuracy']:.3f}",
    )
    return {
        "pipeline": config.name,
        "model": config.model.name,
        "test": test,
        "validation": {"accuracy": validation["accuracy"], "macro_f1": validation["macro_f1"]},
        "baseline": {
            "tfidf_logreg": baseline,
            "majority_class": {"accuracy": majority_class_accuracy(y_train, y_test)},
        },
        "data": splits.sizes(),
    }


def preprocessor_of(model: keras.Model) -> TextPreprocessor:
    """The model's `TextPreprocessor` layer."""
    return next(layer for layer in model.layers if isinstance(layer, TextPreprocessor))


def load_trained_model(run_dir: str | Path) -> tuple[keras.Model, PipelineConfig, list[str]]:
    """Rebuilds a run's model from its config and vocabulary and loads the best checkpoint.

    Raises:
        FileNotFoundError: `run_dir` is not a finished run directory.
    """
    run = RunDirectory(Path(run_dir))
    config = run.read_config()
    vocabulary = run.read_vocabulary()
    if vocabulary is None or not run.labels_file.is_file():
        raise FileNotFoundError(
            f"{run.path}: the vocabulary or labels are missing; train the pipeline again."
        )
    if not run.best_checkpoint.with_suffix(".index").is_file():
        raise FileNotFoundError(
            f"{run.best_checkpoint}: no best checkpoint yet; let `tfnlp train` finish an epoch."
        )
    labels = run.read_labels()
    policy, _ = resolve_policy(config.precision.policy)
    preprocessor = TextPreprocessor(vocabulary, **preprocessor_options(config))
    with precision_scope(policy):
        model = build_model(config.model, preprocessor, len(labels))
        # Checkpoints hold what was fitted: the ids model when tokenizing in the dataset.
        fitted = ids_model(model) if config.preprocessing.in_dataset else model
    fitted.load_weights(str(run.best_checkpoint)).expect_partial()
    return model, config, labels


def evaluate_run(run_dir: str | Path) -> dict:
    """Re-evaluates a run's best checkpoint on its (re-created, identical) splits.

    Writes `evaluation.json` in the run directory and returns it.
    """
    model, config, _ = load_trained_model(run_dir)
    run = RunDirectory(Path(run_dir))
    splits, labels = load_splits(config, run)
    metrics = evaluate_model(model, config, splits, labels, run)
    run.write_json("evaluation.json", metrics)
    return metrics


def export_run(
    run_dir: str | Path, export_dir: str | None = None, name: str | None = None,
    version: int | str | None = None,
) -> Path:
    """Exports a run's best checkpoint as the next (or given) version for TF-Serving."""
    model, config, labels = load_trained_model(run_dir)
    return export_saved_model(
        model, labels, export_dir or config.export.dir, name or config.export.name or config.name,
        version=version if version is not None else config.export.version,
        vocabulary=preprocessor_of(model).vocabulary,
        keep=config.export.keep, portable=config.export.portable,
        warmup_texts=validation_sample(config),
    )


def validation_sample(config: PipelineConfig, count: int = 8) -> list[str] | None:
    """The first `count` validation texts of the run's (re-created) split, for warm-up requests.

    None, with a warning, when the data can no longer be read: the export then has no warm-up.
    """
    try:
        examples, _, _ = load_examples(config.data, seed=config.seed)
    except (OSError, ValueError) as error:
        logger.warning("no warm-up requests: cannot read the data again (%s)", error)
        return None
    splits = split_examples(
        examples, validation_fraction=config.data.validation_fraction,
        test_fraction=config.data.test_fraction, stratify=config.data.stratify, seed=config.seed,
    )
    return list(splits.validation.texts[:count])
