"""The pipeline schema: one frozen dataclass per YAML section.

Every field name is also the YAML key, the CLI `--set` path and (where it reaches a layer) the
constructor argument. Defaults carry a comment saying why they are what they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class DataConfig:
    # A built-in dataset name ("tweets") or a path to a .csv, .jsonl or .tfrecord file.
    source: str = "tweets"
    # "auto" infers the format from the file extension.
    format: Literal["auto", "csv", "jsonl", "tfrecord"] = "auto"
    # None means the source's own default: "text" for user files, "text" for tweets.
    text_column: str | None = None
    # None means "label" for user files, "sentiment" for tweets.
    label_column: str | None = None
    # Optional per-example weight column (the tweets' annotator "confidence", say).
    weight_column: str | None = None
    # Fix the label order (and so the label ids); None sorts the labels found.
    labels: list[str] | None = None
    # Use only N examples (a seeded random subset, in file order): quick runs and tests.
    limit: int | None = None
    # Fractions of the data held out; the rest trains. 80/10/10 is the usual split.
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    # Keep class proportions equal across splits (tweets are 42/39/18 %).
    stratify: bool = True
    # What to do with a row missing its text or label: None means "skip" for built-in data
    # (known quirks, counted and reported) and "error" for user files (a typo should stop you).
    on_bad_row: Literal["error", "skip"] | None = None


@dataclass(frozen=True)
class PreprocessingConfig:
    # NFKC case folding: "Good" and "GOOD" are the same word for a small model.
    lowercase: bool = True
    # Placeholders keep the signal ("has a link") without a vocabulary entry per URL/user/number.
    replace_urls: bool = True
    replace_mentions: bool = True
    replace_numbers: bool = True
    # Off by default: nltk's English list holds "not", "no", "nor", which carry sentiment.
    remove_stopwords: bool = False
    # A file with one stop word per line; None uses nltk's stopwords corpus if it is installed.
    stopwords_file: str | None = None
    # WordPiece handles misspellings and rare words of tweets better than whole words.
    tokenizer: Literal["word", "wordpiece"] = "wordpiece"
    # Learned from the training split only; tweets need few: 8k covers them well.
    vocab_size: int = 8000
    # Longest tweet is ~60 tokens after punctuation splitting; longer inputs are truncated.
    sequence_length: int = 64
    # Tokenize in a parallel tf.data map during training instead of inside the model (same
    # ids, same exported string-in model); overlaps tokenization with the training step.
    in_dataset: bool = False


@dataclass(frozen=True)
class ModelConfig:
    # A name in tfnlp.models' registry: lstm, bilstm or transformer.
    name: Literal["lstm", "bilstm", "transformer"] = "bilstm"
    embedding_dim: int = 128
    # Recurrent units per direction, or the transformer's model width is embedding_dim.
    units: int = 64
    # Stacked layers (LSTM layers or transformer blocks).
    num_layers: int = 1
    dropout: float = 0.3
    # Transformer only.
    num_heads: int = 4
    ff_dim: int = 256


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 8
    # The global batch: with N replicas each one sees batch_size / N.
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    # Softens over-confident targets; tweets' labels are noisy (confidence ~0.7).
    label_smoothing: float = 0.1
    # Stop when validation accuracy has not improved for this many epochs (best weights kept).
    early_stopping_patience: int = 2
    # Metric that picks the best checkpoint and drives early stopping.
    monitor: Literal["val_accuracy", "val_loss"] = "val_accuracy"
    shuffle_buffer: int = 50_000
    # Batch examples of similar token length (buckets 4 tokens wide) so batches pad little;
    # None: on for lstm/bilstm (one step per padded position), off for the transformer.
    length_bucketing: bool | None = None


@dataclass(frozen=True)
class DistributeConfig:
    strategy: Literal[
        "auto", "default", "one_device", "mirrored", "multi_worker_mirrored",
        "parameter_server", "tpu",
    ] = "auto"
    # Explicit device list for one_device / mirrored (e.g. ["CPU:0", "CPU:1"]).
    devices: list[str] | None = None
    # Split the host CPU into N logical devices so Mirrored can run N replicas on a CPU.
    cpu_replicas: int | None = None
    # Cross-device all-reduce for (multi-worker) mirrored: "auto" lets TensorFlow choose,
    # "ring" (gRPC collectives) works everywhere, "nccl" only between GPUs.
    communication: Literal["auto", "ring", "nccl"] = "auto"
    # TPUClusterResolver target: a TPU name, "grpc://host:port" or "local" (TPU VM); None
    # means "only if the environment names one" (TPU_NAME), so CPU/GPU hosts never probe.
    tpu: str | None = None
    # Multiply train.learning_rate by the number of replicas (the linear scaling rule for
    # large global batches); off by default because batch_size is already the global batch.
    scale_learning_rate: bool = False


@dataclass(frozen=True)
class PrecisionConfig:
    # "auto" picks mixed_bfloat16 on bf16-capable CPUs/TPUs, mixed_float16 on recent GPUs.
    policy: Literal["float32", "mixed_float16", "mixed_bfloat16", "auto"] = "float32"


@dataclass(frozen=True)
class ExportConfig:
    # TF-Serving's model base path root: <dir>/<name>/<version>/.
    dir: str = "saved_models"
    # None uses the pipeline name.
    name: str | None = None
    # "auto" takes the next free integer version.
    version: int | Literal["auto"] = "auto"
    # Keep only the newest K versions (older ones are deleted after each export); None keeps all.
    keep: int | None = None
    # Preprocessing from TensorFlow core ops only, so runtimes without tensorflow-text load it;
    # differs only where NFKC / case folding differ from lower-casing (see tfnlp.export.portable).
    portable: bool = False


@dataclass(frozen=True)
class LanguageModelConfig:
    """Read only when `task: language_model`; the model sizes come from the `model:` section."""

    # Characters need no learned merges and never meet an unknown word; WordPiece (learned
    # from the training split like the classifiers') makes sequences ~4x shorter.
    tokenizer: Literal["character", "wordpiece"] = "character"
    # The most frequent N characters, or the WordPiece vocabulary size (reserved ids included).
    vocab_size: int = 300
    # Tokens per training window; the model predicts each next token inside it.
    sequence_length: int = 128
    # Tokens between window starts: equal to sequence_length means no overlap.
    stride: int = 128
    # Transformer only: the output layer reuses the input embedding matrix (fewer weights).
    tie_embeddings: bool = False
    # The classic per-improvement checkpoint, under <run>/checkpoints/ (`{epoch}`, `{loss}`
    # and any logged metric can appear in the template).
    checkpoint_filepath: str = "weights-improvement-{epoch:02d}-{loss:.4f}.h5"
    # Keep only the best K of those files (by `checkpoint_monitor`).
    keep_best: int = 3
    checkpoint_monitor: Literal["loss", "val_loss"] = "loss"


@dataclass(frozen=True)
class CompressionConfig:
    # `tfnlp compress` passes; each fine-tunes from the trained run's best checkpoint.
    pruning: bool = True
    qat: bool = True
    # Pruned model + QAT that keeps its zeros (tfmot's prune-preserving scheme).
    pruning_preserving_qat: bool = True
    # Off by default: on these models gzip shows little gain over pruning + int8.
    clustering: bool = False
    # Fine-tuning epochs per pass: pruning needs a few to recover (tfmot's guide uses 2-10).
    epochs: int = 2
    # Lower than training: the weights are already good, fine-tuning only adapts them.
    learning_rate: float = 5e-4
    # 80% keeps accuracy on most NLP models (GNMT keeps its BLEU at 80%).
    target_sparsity: float = 0.8
    pruning_schedule: Literal["polynomial_decay", "constant"] = "polynomial_decay"
    # Steps between mask updates; None derives ~10 updates from the fine-tuning length.
    pruning_frequency: int | None = None
    # e.g. [2, 4]: structured 2:4 sparsity on Dense/LSTM kernels (fixed 50%).
    m_by_n: list[int] | None = None
    number_of_clusters: int = 16
    # Training examples that calibrate full-integer int8 (TFLite's guide: ~100-500).
    representative_examples: int = 256
    # Batch-1 latency is the median of this many interpreter calls.
    latency_calls: int = 200
    # Batch-64 calls timed for throughput.
    throughput_calls: int = 20
    # The recommended artifact may lose at most this much test accuracy (0.01 = 1 point).
    accuracy_budget: float = 0.01
    # Also convert with int16 activations / int8 weights (TFLite's 16x8 mode).
    int16x8: bool = True
    # Unroll (Bi)LSTMs at the fixed length for TFLite: a masked LSTM otherwise becomes WHILE
    # loops (no XNNPACK; full-int8 calibration crashed on them here).
    unroll_recurrent: bool = True
    # Drop tensor names from every .tflite: debug text (~160 kB in an unrolled BiLSTM) that
    # no interpreter needs; signatures keep working.
    strip_tensor_names: bool = True


@dataclass(frozen=True)
class PipelineConfig:
    name: str
    task: Literal["classification", "language_model"] = "classification"
    seed: int = 42
    data: DataConfig = field(default_factory=DataConfig)
    preprocessing: PreprocessingConfig = field(default_factory=PreprocessingConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distribute: DistributeConfig = field(default_factory=DistributeConfig)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    language_model: LanguageModelConfig = field(default_factory=LanguageModelConfig)
    compression: CompressionConfig = field(default_factory=CompressionConfig)
