"""`task: classification`: labelled texts → `TextPreprocessor` → classifier → accuracy/F1."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass

import numpy as np

from tfnlp.backend import keras, tf
from tfnlp.data import (
    LoadReport,
    Splits,
    build_dataset,
    encode_labels,
    load_examples,
    split_examples,
)
from tfnlp.data.bucketing import count_padding, length_batches, token_lengths
from tfnlp.data.pipeline import first_epoch_order
from tfnlp.data.records import DataError
from tfnlp.data.streaming import StreamedData, scan, split_dataset, streams
from tfnlp.evaluation import (
    classification_metrics,
    majority_class_accuracy,
    plot_confusion_matrix,
    tfidf_logreg_baseline,
)
from tfnlp.evaluation.side_process import SideProcess
from tfnlp.export.classification import ClassifierServingModule
from tfnlp.models import build_model
from tfnlp.models.pretrained import (
    CONTINUATION_PREFIX,
    PretrainedEmbeddings,
    coverage_report,
    describe_coverage,
)
from tfnlp.preprocessing import TextPreprocessor, load_stopwords
from tfnlp.tasks.base import Task, TrainingInputs, register_task
from tfnlp.training.class_weights import (
    class_weights,
    describe,
    example_weights,
    log_class_weights,
)
from tfnlp.training.input_pipeline import ids_model, tokenize_in_dataset, use_length_bucketing
from tfnlp.training.run_directory import fingerprint
from tfnlp.training.strategy import dataset_function, prepare_input, steps_per_epoch, tf_config
from tfnlp.training.timings import phase

logger = logging.getLogger("tfnlp")


@dataclass
class ClassificationData:
    """The seeded splits (or, for streamed files, the scan), the label names in id order,
    and the load report."""

    splits: Splits | None
    labels: list[str]
    report: LoadReport
    stream: StreamedData | None = None

    def sizes(self) -> dict[str, int]:
        return dict(self.stream.sizes) if self.stream else self.splits.sizes()

    def vocabulary_texts(self) -> list[str]:
        """The texts the vocabulary is learned from: the training split, or its sample."""
        return self.stream.train_sample.texts if self.stream else self.splits.train.texts


def predict_label_ids(model: keras.Model, texts, batch_size: int = 256) -> np.ndarray:
    """Argmax label ids of `model` over `texts`."""
    dataset = tf.data.Dataset.from_tensor_slices(list(texts)).batch(batch_size)
    return np.argmax(model.predict(dataset, verbose=0), axis=-1)


def _one_hot(num_classes: int, weights: np.ndarray | None = None):
    """(text, label id[, weight]) -> (text, one-hot label[, weight]); with class `weights`,
    the weight is the label's class weight times the example's own (training batches only)."""

    def convert(text, label, *weight):
        if weights is not None:
            weight = (example_weights(weights, label, *weight),)
        return (text, tf.one_hot(label, num_classes), *weight)

    return convert


@register_task("classification")
class ClassificationTask(Task):
    """Texts with one label each; the model maps raw strings to `[batch, classes]` logits.

    Attributes:
        labels: the label names in id order (set by `read_data` or `restore`).
        training_texts: the training texts (or streamed data's sample), set by `read_data`:
            a model built after it starts from `model.pretrained_embeddings`.
        pretrained_report: the vectors' coverage of the vocabulary and of the training
            texts' tokens (`tfnlp.models.pretrained.coverage_report`), once they are read.
    """

    labels: list[str] | None = None
    training_texts: list[str] | None = None
    pretrained_report: dict | None = None
    _pretrained: PretrainedEmbeddings | None = None
    headline_figures = (("test accuracy", "test.accuracy"), ("macro-F1", "test.macro_f1"),
                        ("TF-IDF+LR accuracy", "baseline.tfidf_logreg.accuracy"),
                        ("macro-F1", "baseline.tfidf_logreg.macro_f1"))

    def read_data(self) -> ClassificationData:
        data = self.config.data
        if streams(data):
            stream = scan(data, seed=self.config.seed,
                          sample_size=self.config.preprocessing.vocab_sample)
            logger.info("data: %s", stream.summary())
            self.labels = stream.labels
            self.training_texts = stream.train_sample.texts
            return ClassificationData(None, stream.labels, stream.report, stream)
        examples, labels, report = load_examples(data, seed=self.config.seed)
        splits = split_examples(
            examples, validation_fraction=data.validation_fraction,
            test_fraction=data.test_fraction, stratify=data.stratify, seed=self.config.seed,
        )
        self.labels = labels
        self.training_texts = splits.train.texts
        return ClassificationData(splits, labels, report)

    def record_data(self, data: ClassificationData, run) -> None:
        sizes = data.sizes()
        logger.info("data: %s", data.report.summary())
        logger.info("splits: %s", ", ".join(f"{k} {v}" for k, v in sizes.items()))
        run.write_json("data_report.json", data.report.to_dict())
        run.write_json("splits.json", {"seed": self.config.seed, **sizes})
        run.write_json("labels.json", data.labels)

    def restore(self, run) -> None:
        if not run.labels_file.is_file():
            raise FileNotFoundError(f"{run.labels_file}: missing; train the pipeline again.")
        self.labels = run.read_labels()

    def sample_texts(self, data: ClassificationData, count: int) -> list[str]:
        if data.stream:
            return data.stream.validation_texts[:count]
        return list(data.splits.validation.texts[:count])

    # Preprocessing --------------------------------------------------------------------
    def preprocessor_options(self) -> dict:
        p = self.config.preprocessing
        return {
            "tokenizer": p.tokenizer,
            "sequence_length": p.sequence_length,
            "lowercase": p.lowercase,
            "replace_urls": p.replace_urls,
            "replace_mentions": p.replace_mentions,
            "replace_numbers": p.replace_numbers,
            "stopwords": load_stopwords(p.stopwords_file) if p.remove_stopwords else None,
            # Unrolled LSTMs and XLA need one static length.
            "fixed_length": self.config.model.unroll or self.config.train.jit_compile,
        }

    def vocabulary_key(self, data: ClassificationData) -> str:
        settings = asdict(self.config.preprocessing)
        if settings["vocabulary_learner"] == "tensorflow_text":
            # The default learner keeps the fingerprints of runs made before the option.
            del settings["vocabulary_learner"]
        if not data.stream:
            del settings["vocab_sample"]  # unused in memory: keeps the fingerprints of old runs
        if settings["vocabulary_from"] is None:
            del settings["vocabulary_from"]  # keeps the fingerprints of runs before the option
        return fingerprint(settings, data.vocabulary_texts())

    def learn_preprocessor(self, data: ClassificationData) -> TextPreprocessor:
        p = self.config.preprocessing
        if data.stream:
            logger.info("vocabulary: learned from a seeded sample of %d of %d training texts "
                        "(preprocessing.vocab_sample)", len(data.vocabulary_texts()),
                        data.stream.sizes["train"])
        return TextPreprocessor.from_texts(
            data.vocabulary_texts(), vocab_size=p.vocab_size,
            vocabulary_learner=p.vocabulary_learner, **self.preprocessor_options(),
        )

    def preprocessor_from(self, vocabulary: list[str]) -> TextPreprocessor:
        return TextPreprocessor(vocabulary, **self.preprocessor_options())

    # Model ----------------------------------------------------------------------------
    def build_model(self, preprocessor: TextPreprocessor) -> keras.Model:
        return build_model(self.config.model, preprocessor, len(self.labels),
                           self.embeddings_initializer(preprocessor))

    def embeddings_initializer(self, preprocessor: TextPreprocessor):
        """`model.pretrained_embeddings` for a model about to be trained (after `read_data`),
        its coverage logged and kept for metrics.json; else Keras' default: a model rebuilt to
        load a checkpoint (`restore`) needs no vectors."""
        source = self.config.model.pretrained_embeddings
        if source is None or self.training_texts is None:
            return "uniform"
        vocabulary = list(preprocessor.vocabulary)
        if self._pretrained is None or self._pretrained.vocabulary != vocabulary:
            # Built once per vocabulary: DTensor and pipeline parallelism build the model twice.
            wordpiece = self.config.preprocessing.tokenizer == "wordpiece"
            self._pretrained = PretrainedEmbeddings(
                source, vocabulary, seed=self.config.seed,
                continuation_prefix=CONTINUATION_PREFIX if wordpiece else None)
            self.pretrained_report = coverage_report(
                self._pretrained.table, preprocessor.tokenize, self.training_texts)
            logger.info("pretrained embeddings: %s", describe_coverage(self.pretrained_report))
        return self._pretrained

    def trainable_model(self, model: keras.Model) -> keras.Model:
        # Tokenizing in the dataset: `fit` trains the layers from token ids on (same weights).
        return ids_model(model) if self.config.preprocessing.in_dataset else model

    def loss(self) -> keras.losses.Loss:
        return keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=self.config.train.label_smoothing
        )

    def metrics(self) -> list:
        return ["accuracy"]

    def monitor(self, data) -> str:
        return self.config.train.monitor

    # Training inputs ------------------------------------------------------------------
    def training_inputs(self, data: ClassificationData, preprocessor, strategy,
                        role) -> TrainingInputs:
        if data.stream:
            return self.streamed_inputs(data, preprocessor, strategy, role)
        config, splits = self.config, data.splits
        weights = self.class_weights(data)
        # Token lengths drive length bucketing and the measured padding (one tokenizing pass).
        lengths = {id(split): token_lengths(preprocessor.tokenize, split.texts)
                   for split in (splits.train, splits.validation)}
        bucket_width = config.train.bucket_width if use_length_bucketing(config) else None

        def dataset(split, shuffle=False, weighted=False):
            batches = build_dataset(
                split, data.labels, batch_size=config.train.batch_size, shuffle=shuffle,
                seed=config.seed, shuffle_buffer=config.train.shuffle_buffer,
                token_lengths=lengths[id(split)], bucket_width=bucket_width,
            )
            if config.preprocessing.in_dataset:
                batches = tokenize_in_dataset(batches, preprocessor)
            transform = _one_hot(len(data.labels), weights if weighted else None)
            return batches.map(transform, num_parallel_calls=tf.data.AUTOTUNE)

        # Same seed, same shuffle: the very batches of the first epoch, counted.
        train_lengths = lengths[id(splits.train)][first_epoch_order(
            len(splits.train), seed=config.seed, shuffle_buffer=config.train.shuffle_buffer)]
        padding = count_padding(length_batches(train_lengths, batch_size=config.train.batch_size,
                                               bucket_width=bucket_width),
                                preprocessor.static_length)
        logger.info("padding: %.1f%% of an epoch's token positions (length bucketing %s)",
                    100 * padding.padded_fraction, "on" if bucket_width else "off")
        if role.kind == "parameter_server":
            fit_kwargs = self.parameter_server_inputs(data, weights)
        else:
            batch = config.train.batch_size
            train = dataset(splits.train, shuffle=True, weighted=True)
            if bucket_width:
                # Bucketing hides the batch count from tf.data, yet it is the same every epoch
                # (each bucket's size does not depend on the order): telling Keras the steps
                # per epoch lets a preempted run resume mid-epoch.
                train = train.apply(tf.data.experimental.assert_cardinality(padding.batches))
            fit_kwargs = {"x": prepare_input(train, strategy, batch),
                          "validation_data": prepare_input(dataset(splits.validation), strategy,
                                                           batch)}
        return TrainingInputs(fit_kwargs, len(splits.train), {
            "length_bucketing": bool(bucket_width),
            "preprocessing_in_dataset": config.preprocessing.in_dataset,
            "padding": padding.to_dict(),
            "padded_fraction": padding.padded_fraction,
            "class_weight": describe(weights, data.labels),
        })

    def class_weights(self, data: ClassificationData) -> np.ndarray | None:
        """`train.class_weight` per label id, counted on the training split (and logged)."""
        setting = self.config.train.class_weight
        if setting is None:
            return None
        if data.stream:
            counts = [data.stream.label_counts["train"][label] for label in data.labels]
        else:
            counts = np.bincount(encode_labels(data.splits.train, data.labels),
                                 minlength=len(data.labels))
        weights = class_weights(setting, data.labels, counts)
        log_class_weights(weights, data.labels, setting)
        return weights

    def streamed_inputs(self, data: ClassificationData, preprocessor, strategy,
                        role) -> TrainingInputs:
        """Training and validation batches streamed from the files (no length bucketing: the
        token lengths are not known before reading)."""
        config = self.config
        if role.kind == "parameter_server":
            raise DataError("streamed data (`data.source` a pattern of files) is not supported "
                            "under parameter-server training yet; set `data.stream: false` to "
                            "read the files into memory, or use multi_worker_mirrored.")
        workers = len(tf_config().get("cluster", {}).get("worker", [])) or 1
        weights = self.class_weights(data)

        def dataset(split, shuffle):
            batches = split_dataset(data.stream, split, batch_size=config.train.batch_size,
                                    shuffle=shuffle, seed=config.seed,
                                    shuffle_buffer=config.train.shuffle_buffer, workers=workers)
            if config.preprocessing.in_dataset:
                batches = tokenize_in_dataset(batches, preprocessor)
            # Shuffled is training: only its batches carry the class weights.
            transform = _one_hot(len(data.labels), weights if shuffle else None)
            return prepare_input(batches.map(transform, num_parallel_calls=tf.data.AUTOTUNE),
                                 strategy, config.train.batch_size)

        fit_kwargs = {"x": dataset("train", True), "validation_data": dataset("validation", False)}
        return TrainingInputs(fit_kwargs, data.stream.sizes["train"], {
            "length_bucketing": False, "streamed": True,
            "preprocessing_in_dataset": config.preprocessing.in_dataset,
            "class_weight": describe(weights, data.labels),
        })

    def parameter_server_inputs(self, data: ClassificationData,
                                weights: np.ndarray | None = None) -> dict:
        """`DatasetCreator`s (each worker builds its own pipeline) and explicit step counts;
        the training batches carry the class `weights`."""
        batch, seed = self.config.train.batch_size, self.config.seed

        def creator(split, shuffle: bool):
            tensors = (np.array(split.texts, dtype=object), encode_labels(split, data.labels))
            if split.weights is not None:
                tensors += (np.array(split.weights, dtype=np.float32),)
            transform = _one_hot(len(data.labels), weights if shuffle else None)
            return keras.utils.experimental.DatasetCreator(dataset_function(
                tensors, batch, shuffle=shuffle, seed=seed, transform=transform,
                trace=os.environ.get("TFNLP_TRACE_INPUT") == "1"))

        train, validation = data.splits.train, data.splits.validation
        return {
            "x": creator(train, shuffle=True),
            "steps_per_epoch": steps_per_epoch(len(train), batch),
            "validation_data": creator(validation, shuffle=False),
            "validation_steps": steps_per_epoch(len(validation), batch),
        }

    # Evaluation -----------------------------------------------------------------------
    def evaluate(self, model, preprocessor, data: ClassificationData, run,
                 side: SideProcess | None = None) -> dict:
        """Validation/test metrics, the TF-IDF baseline on the same split, the confusion plot.

        The baseline and the plot go to `side` (started first, they run beside the
        predictions); its futures stand in the metrics until `side.resolved`. Without a
        `side` they run here, and the metrics come back complete."""
        if side is None:
            with SideProcess(enabled=False) as here:
                return here.resolved(self.evaluate(model, preprocessor, data, run, here))
        if data.stream:
            return self.evaluate_streamed(model, data, run, side)
        splits, labels, config = data.splits, data.labels, self.config
        y_train = encode_labels(splits.train, labels)
        y_test = encode_labels(splits.test, labels)
        with phase("baseline"):
            baseline = side.submit(tfidf_logreg_baseline, splits.train.texts, y_train,
                                   splits.test.texts, y_test, labels, seed=config.seed)
        test = classification_metrics(y_test, predict_label_ids(model, splits.test.texts), labels)
        validation = classification_metrics(
            encode_labels(splits.validation, labels),
            predict_label_ids(model, splits.validation.texts), labels,
        )
        self._plot_confusion(side, test, labels, run)
        return {
            "pipeline": config.name,
            "model": config.model.name,
            "test": test,
            "validation": {"accuracy": validation["accuracy"],
                           "macro_f1": validation["macro_f1"]},
            "baseline": {
                "tfidf_logreg": baseline,
                "majority_class": {"accuracy": majority_class_accuracy(y_train, y_test)},
            },
            "data": splits.sizes(),
            **self.pretrained_metrics(),
        }

    def evaluate_streamed(self, model, data: ClassificationData, run, side: SideProcess) -> dict:
        """As `evaluate`, streaming the validation and test files; the TF-IDF baseline trains
        on the training sample and is tested on the test sample (both bounded)."""
        stream, labels, config = data.stream, data.labels, self.config
        train, test = stream.train_sample, stream.test_sample
        y_train, y_test = encode_labels(train, labels), encode_labels(test, labels)
        with phase("baseline"):
            baseline = side.submit(tfidf_logreg_baseline, train.texts, y_train, test.texts,
                                   y_test, labels, seed=config.seed)
        results = {}
        for split in ("validation", "test"):
            truth, predicted = [], []
            for texts, ids, *_ in split_dataset(stream, split, batch_size=256, shuffle=False,
                                                seed=config.seed, shuffle_buffer=1):
                truth.append(ids.numpy())
                predicted.append(np.argmax(model.predict_on_batch(texts), axis=-1))
            results[split] = classification_metrics(np.concatenate(truth),
                                                    np.concatenate(predicted), labels)
        self._plot_confusion(side, results["test"], labels, run)
        return {
            "pipeline": config.name, "model": config.model.name, "test": results["test"],
            "validation": {k: results["validation"][k] for k in ("accuracy", "macro_f1")},
            "baseline": {"tfidf_logreg": baseline,
                         "tfidf_logreg_sample": {"train": len(train), "test": len(test)},
                         "majority_class": {"accuracy": majority_class_accuracy(y_train, y_test)}},
            "data": data.sizes(),
            **self.pretrained_metrics(),
        }

    def _plot_confusion(self, side: SideProcess, test: dict, labels, run) -> None:
        with phase("plots"):
            side.submit(plot_confusion_matrix, test["confusion_matrix"], labels,
                        run.path / "confusion_matrix.png",
                        f"{self.config.name}: test accuracy {test['accuracy']:.3f}")

    def pretrained_metrics(self) -> dict:
        """metrics.json's `pretrained_embeddings` entry (none without the vectors)."""
        return {"pretrained_embeddings": self.pretrained_report} if self.pretrained_report else {}

    def summary(self, metrics: dict) -> dict:
        baseline = metrics["baseline"]["tfidf_logreg"]
        return {"test": {k: metrics["test"][k] for k in ("accuracy", "macro_f1")},
                "baseline": {"tfidf_logreg": {k: baseline[k] for k in ("accuracy", "macro_f1")}}}

    # Serving --------------------------------------------------------------------------
    def serving_module(self, model, preprocessor) -> ClassifierServingModule:
        return ClassifierServingModule(model, self.labels, preprocessor.vocabulary,
                                       portable=self.config.export.portable)
