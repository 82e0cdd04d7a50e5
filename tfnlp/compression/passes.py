"""The compression passes of `tfnlp compress`: one object per pass, run in `PASSES` order.

A pass takes an id-level model (a fresh copy of the trained one, or the model of the pass it
`requires`), fine-tunes or transforms it, and says what it did for the report's `passes`
section. Its `artifacts` name the TFLite files converted from the result (artifact name ->
conversion mode, see `tflite.MODES`); `saved_model` names a string-in SavedModel variant
for TF-Serving. Adding a pass is one class here and one entry in `PASSES`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from tfnlp.backend import keras
from tfnlp.compression import clustering, pruning, quantization
from tfnlp.compression.data import CompressionData
from tfnlp.config.schema import CompressionConfig, PipelineConfig


@dataclass(frozen=True)
class Artifact:
    """One TFLite artifact converted from a pass's model.

    Attributes:
        name: its directory under `tflite/` and its key in the report's `artifacts`.
        mode: the conversion mode (one of `tflite.MODES`).
        experimental: what is experimental about `mode`; when set, a failed conversion is
            reported as a note instead of failing the whole run.
    """

    name: str
    mode: str
    experimental: str | None = None


@dataclass(frozen=True)
class PassResult:
    """What a pass hands back.

    Attributes:
        model: the id-level model its artifacts are converted from.
        details: the report's `passes.<name>` entry; None when there is nothing to report.
        extra: fields added to each of its artifacts' report entries (e.g. `sparsity`).
    """

    model: keras.Model
    details: dict | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PassContext:
    """What every pass may use: the pipeline, the run's data as ids, the strategy, logs."""

    config: PipelineConfig
    data: CompressionData
    strategy: object
    log_dir: Path

    def fine_tune(self, model: keras.Model, callbacks=()) -> dict:
        """Fine-tunes `model` on the training split for `compression.epochs`.

        Returns:
            Keras' history as plain floats (JSON-ready).
        """
        c = self.config.compression
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=c.learning_rate),
            loss=keras.losses.CategoricalCrossentropy(
                from_logits=True, label_smoothing=self.config.train.label_smoothing
            ),
            metrics=["accuracy"],
        )
        history = model.fit(
            self.data.train(),
            validation_data=self.data.validation(),
            epochs=c.epochs,
            callbacks=list(callbacks),
            verbose=1 if sys.stdout.isatty() else 2,
        )
        return {key: [float(v) for v in values] for key, values in history.history.items()}


@dataclass(frozen=True)
class CompressionPass:
    """The shape of a pass; subclasses set the fields and implement `enabled` and `apply`.

    Attributes:
        name: the pass's key in the report's `passes` section.
        artifacts: the TFLite artifacts converted from its model, in report order.
        requires: the pass whose model this one starts from (None: a fresh id model).
        saved_model: the SavedModel variant exported from its model (None: none).
    """

    name: str = ""
    artifacts: tuple[Artifact, ...] = ()
    requires: str | None = None
    saved_model: str | None = None

    def enabled(self, config: CompressionConfig) -> bool:
        """Whether the `compression:` section asks for this pass."""
        raise NotImplementedError

    def selected_artifacts(self, config: CompressionConfig) -> tuple[Artifact, ...]:
        """The artifacts the `compression:` section asks for (all of them by default)."""
        return self.artifacts

    def apply(self, model: keras.Model, context: PassContext) -> PassResult:
        """Compresses `model` (the pass's own copy) and describes what was done."""
        raise NotImplementedError


@dataclass(frozen=True)
class PostTrainingQuantization(CompressionPass):
    """The trained weights as they are, converted in every TFLite mode (float32 = reference)."""

    name: str = "post_training_quantization"
    artifacts: tuple[Artifact, ...] = (
        Artifact("float32", "float32"),
        Artifact("float16", "float16"),
        Artifact("int8_dynamic", "int8_dynamic"),
        Artifact("int8_full", "int8_full"),
        # TFLite's 16x8 mode is experimental: a failure is reported, not fatal.
        Artifact("int16x8", "int16x8", experimental="16-bit activations"),
    )
    saved_model: str | None = "float32"

    def enabled(self, config: CompressionConfig) -> bool:
        return True

    def selected_artifacts(self, config: CompressionConfig) -> tuple[Artifact, ...]:
        return tuple(a for a in self.artifacts if a.mode != "int16x8" or config.int16x8)

    def apply(self, model: keras.Model, context: PassContext) -> PassResult:
        return PassResult(model)


@dataclass(frozen=True)
class Pruning(CompressionPass):
    """Magnitude pruning to `target_sparsity` (optionally m:n), fine-tuned, then stripped."""

    name: str = "pruning"
    artifacts: tuple[Artifact, ...] = (
        Artifact("pruned", "float32"),
        Artifact("pruned_int8", "int8_dynamic"),
        Artifact("pruned_int8_full", "int8_full"),
    )
    saved_model: str | None = "pruned"

    def enabled(self, config: CompressionConfig) -> bool:
        return config.pruning

    def apply(self, model: keras.Model, context: PassContext) -> PassResult:
        c = context.config.compression
        schedule, details = pruning.pruning_schedule(
            c.epochs * context.data.steps_per_epoch(),
            c.target_sparsity,
            c.pruning_schedule,
            c.pruning_frequency,
        )
        with context.strategy.scope():
            wrapped, pruned_layers = pruning.prune_id_model(model, schedule, c.m_by_n)
            log_dir = str(context.log_dir / "pruning")
            history = context.fine_tune(wrapped, pruning.pruning_callbacks(log_dir))
        stripped = pruning.strip_pruning(wrapped)
        sparsity = pruning.weight_sparsity(stripped)
        details = {
            **details,
            "m_by_n": c.m_by_n,
            "pruned_layers": pruned_layers,
            "measured_sparsity": sparsity,
            "history": history,
        }
        return PassResult(stripped, details, {"sparsity": sparsity["overall"]})


@dataclass(frozen=True)
class PruningPreservingQAT(CompressionPass):
    """QAT on the pruned model with tfmot's scheme that keeps its zeros."""

    name: str = "pruning_preserving_qat"
    artifacts: tuple[Artifact, ...] = (Artifact("pruned_qat_int8", "int8_dynamic"),)
    requires: str | None = "pruning"

    def enabled(self, config: CompressionConfig) -> bool:
        return config.pruning and config.pruning_preserving_qat

    def apply(self, model: keras.Model, context: PassContext) -> PassResult:
        with context.strategy.scope():
            qat, details = quantization.quantize_aware_model(model, preserve_sparsity=True)
            history = context.fine_tune(qat)
        sparsity = pruning.weight_sparsity(qat)["overall"]
        return PassResult(qat, {**details, "history": history}, {"sparsity": sparsity})


@dataclass(frozen=True)
class QuantizationAwareTraining(CompressionPass):
    """Fake-quantization on the layers tfmot's 8-bit scheme supports, fine-tuned."""

    name: str = "qat"
    artifacts: tuple[Artifact, ...] = (Artifact("qat_int8", "int8_dynamic"),)

    def enabled(self, config: CompressionConfig) -> bool:
        return config.qat

    def apply(self, model: keras.Model, context: PassContext) -> PassResult:
        with context.strategy.scope():
            qat, details = quantization.quantize_aware_model(model)
            history = context.fine_tune(qat)
        return PassResult(qat, {**details, "history": history})


@dataclass(frozen=True)
class Clustering(CompressionPass):
    """Weight clustering to `number_of_clusters` values per matrix, fine-tuned, stripped."""

    name: str = "clustering"
    artifacts: tuple[Artifact, ...] = (
        Artifact("clustered", "float32"),
        Artifact("clustered_int8", "int8_dynamic"),
    )

    def enabled(self, config: CompressionConfig) -> bool:
        return config.clustering

    def apply(self, model: keras.Model, context: PassContext) -> PassResult:
        with context.strategy.scope():
            clustered, details = clustering.cluster_id_model(
                model, context.config.compression.number_of_clusters
            )
            history = context.fine_tune(clustered)
        stripped = clustering.strip_clustering(clustered)
        distinct = clustering.distinct_values(stripped, details["clustered"])
        return PassResult(stripped, {**details, "history": history, "distinct_values": distinct})


# The order of the report's `artifacts` and `passes` (and of the fine-tunes' random draws).
PASSES: tuple[CompressionPass, ...] = (
    PostTrainingQuantization(),
    Pruning(),
    PruningPreservingQAT(),
    QuantizationAwareTraining(),
    Clustering(),
)
