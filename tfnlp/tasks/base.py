"""The `Task` interface and the task registry (after Model Garden's `base_task` + task factory).

A task supplies what differs between, say, classification and language modelling: reading
its examples, its preprocessing layer, its model, loss and metrics, its training inputs, its
evaluation and its serving module. Everything else — the run directory, the strategy,
precision, callbacks, checkpoints, resuming, plots and the one export path — is the shared
`tfnlp.training.run` lifecycle, which calls a task only through this interface.

A new task is one module with a `Task` subclass decorated with `@register_task("name")`, plus
its import in `tfnlp/tasks/__init__.py`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tfnlp.backend import keras, tf
from tfnlp.config.schema import PipelineConfig

TASKS: dict[str, type[Task]] = {}


def register_task(name: str):
    """Class decorator: makes a `Task` subclass the one that runs `task: <name>` pipelines."""

    def register(cls: type[Task]) -> type[Task]:
        if name in TASKS:
            raise ValueError(f"`task` {name!r} is registered twice: {TASKS[name]} and {cls}.")
        cls.name = name
        TASKS[name] = cls
        return cls

    return register


def get_task(config: PipelineConfig) -> Task:
    """The registered task for `config.task`, constructed with the config.

    Raises:
        ValueError: no task is registered under that name.

    Example:
        >>> import tfnlp.tasks  # registers the built-in tasks
        >>> from tfnlp.config import load_pipeline
        >>> type(get_task(load_pipeline("pipelines/tweets_lm.yaml"))).__name__
        'LanguageModelTask'
    """
    if config.task not in TASKS:
        raise ValueError(
            f"`task` must be one of {sorted(TASKS)}. Received: task={config.task!r}."
        )
    return TASKS[config.task](config)


@dataclass
class TrainingInputs:
    """What `model.fit` reads, and facts about it for the run's metrics.

    Attributes:
        fit_kwargs: `model.fit` keyword arguments for the data (`x`, `validation_data`, and
            step counts where the strategy needs them).
        examples_per_epoch: training examples (or windows) in one epoch, for throughput.
        report: extra entries for `metrics.json`'s `train` section (e.g. padding).
    """

    fit_kwargs: dict[str, Any]
    examples_per_epoch: int
    report: dict[str, Any] = field(default_factory=dict)


class Task(abc.ABC):
    """One kind of NLP problem: its data, preprocessing, model, evaluation and serving.

    Tasks may keep what they learn from the data (e.g. the label names) as attributes:
    `read_data` and `restore` set them, and the model builders read them.

    Args:
        config: the validated pipeline.
    """

    name: ClassVar[str]
    # `distribute.strategy` names the task cannot train under -> why and what to use instead;
    # refused before any work starts. Both built-in tasks train under every strategy.
    unsupported_strategies: ClassVar[dict[str, str]] = {}
    # (label, key path in metrics.json) of the figures `headline` prints.
    headline_figures: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(self, config: PipelineConfig):
        self.config = config

    # Data -----------------------------------------------------------------------------
    @abc.abstractmethod
    def read_data(self):
        """Reads and splits the task's examples, writing nothing; returns a task-specific
        object that the other methods take back."""

    @abc.abstractmethod
    def record_data(self, data, run) -> None:
        """Logs the data and writes its reports (sizes, labels, bad rows) to the run directory."""

    def restore(self, run) -> None:  # noqa: B027  (optional hook: most tasks learn nothing)
        """Reads back from a finished run what `read_data` would have learned (e.g. labels)."""

    @abc.abstractmethod
    def sample_texts(self, data, count: int) -> list[str]:
        """A few held-out texts (warm-up requests for the export)."""

    # Preprocessing --------------------------------------------------------------------
    @abc.abstractmethod
    def vocabulary_key(self, data) -> str:
        """A fingerprint of everything the vocabulary depends on (settings and texts)."""

    @abc.abstractmethod
    def learn_preprocessor(self, data) -> keras.layers.Layer:
        """The preprocessing layer, its vocabulary learned from the training split."""

    @abc.abstractmethod
    def preprocessor_from(self, vocabulary: list[str]) -> keras.layers.Layer:
        """The preprocessing layer with a stored vocabulary."""

    # Model ----------------------------------------------------------------------------
    @abc.abstractmethod
    def build_model(self, preprocessor) -> keras.Model:
        """The model the task serves, weights created (under the caller's scopes)."""

    def trainable_model(self, model: keras.Model) -> keras.Model:
        """What `model.fit` trains and the checkpoints hold; the model itself by default."""
        return model

    @abc.abstractmethod
    def loss(self) -> keras.losses.Loss:
        """The training loss."""

    @abc.abstractmethod
    def metrics(self) -> list:
        """Keras metrics logged each epoch (one of them is named `accuracy`)."""

    # Training -------------------------------------------------------------------------
    @abc.abstractmethod
    def training_inputs(self, data, preprocessor, strategy: tf.distribute.Strategy,
                        role) -> TrainingInputs:
        """The training and validation data for `model.fit` under `strategy`."""

    @abc.abstractmethod
    def monitor(self, data) -> str:
        """The logged metric that picks the best checkpoint and drives early stopping."""

    def callbacks(self, run, *, fresh_start: bool) -> list[keras.callbacks.Callback]:
        """Task-specific callbacks beside the standard ones (none by default)."""
        return []

    def train_metrics(self, summary, inputs: TrainingInputs) -> dict:
        """The throughput entries of `metrics.json`'s `train` section."""
        return {"examples_per_second": summary.examples_per_second}

    # Evaluation -----------------------------------------------------------------------
    @abc.abstractmethod
    def evaluate(self, model: keras.Model, preprocessor, data, run, side=None) -> dict:
        """Held-out metrics (and plots in the run directory) of the trained model.

        `side` (a `tfnlp.evaluation.side_process.SideProcess`) may take the work that needs
        no TensorFlow; its futures may then stand in the metrics until `side.resolved`.
        Without it the metrics come back complete."""

    @abc.abstractmethod
    def summary(self, metrics: dict) -> dict:
        """The part of `metrics` that `tfnlp evaluate` prints (nested like `metrics`)."""

    def headline(self, metrics: dict) -> str:
        """One line of the figures that matter most, e.g. "test accuracy 0.7516  macro-F1 …".

        Missing figures (no test split) print as nan.
        """
        parts = []
        for label, path in self.headline_figures:
            value = metrics
            for key in path.split("."):
                value = value.get(key, {}) if isinstance(value, dict) else {}
            parts.append(f"{label} {value if isinstance(value, float) else float('nan'):.4f}")
        return "  ".join(parts)

    # Serving --------------------------------------------------------------------------
    @abc.abstractmethod
    def serving_module(self, model: keras.Model, preprocessor):
        """The `tfnlp.export.module.ServingModule` that exports the trained model."""
