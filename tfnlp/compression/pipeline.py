"""`tfnlp compress`: every compression pass over a trained run, each artifact measured.

From a run's best checkpoint, `compress_run` loads the model and the run's splits (without
writing into the run), builds the splits as ids once, and runs the passes of
`passes.PASSES` in order: post-training quantization of the trained weights (float32, the
reference, float16, dynamic-range int8, full-integer int8 and int16x8), then pruning,
pruning-preserving QAT, QAT and clustering, each fine-tuning its own copy on the training
split. Every artifact is converted to TFLite and evaluated on the test split with the TFLite
interpreter; float32 and the pruned model are also exported as string-in SavedModels for
TF-Serving and measured the same way. `report` writes the result.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from tfnlp.backend import keras, tf
from tfnlp.bench.measure import machine_summary
from tfnlp.compression import report
from tfnlp.compression import tflite as tflite_lib
from tfnlp.compression.artifacts import Artifacts
from tfnlp.compression.data import CompressionData
from tfnlp.compression.id_model import build_id_model
from tfnlp.compression.passes import PASSES, CompressionPass, PassContext, PassResult
from tfnlp.compression.spec import TFLiteSpec
from tfnlp.config.schema import PipelineConfig
from tfnlp.disk import disk_guard, variable_bytes
from tfnlp.tasks.classification import ClassificationTask
from tfnlp.training.precision import precision_scope
from tfnlp.training.run_lock import locked
from tfnlp.training.strategy import create_strategy
from tfnlp.training.trained import load_trained

logger = logging.getLogger("tfnlp")


def _read_trained_run(run_dir: str | Path, strategy):
    """Everything compression needs from a trained run, read without writing into it.

    The model is rebuilt (in `strategy`'s scope, in float32 whatever the run's precision
    policy) with the best checkpoint's weights; the task reads and splits the data again with
    the run's own `data:` section and seed, which gives the run's split (and records nothing).

    Returns:
        `(model, preprocessor, run_config, splits, labels)`.

    Raises:
        FileNotFoundError: `run_dir` is not a finished run.
        ValueError: the run is not a classification run.
    """
    with strategy.scope():
        trained = load_trained(run_dir)
    if not isinstance(trained.task, ClassificationTask):
        raise ValueError(
            f"{trained.directory.config_file}: `task` must be 'classification' to compress. "
            f"Received: task={trained.config.task!r}."
        )
    model = trained.model
    if model.dtype_policy.name != "float32":
        # TFLite converts float32 graphs (a bfloat16 LSTM's tensor lists do not convert).
        # Variables are float32 under every policy, so the weights load into a float32 twin.
        with strategy.scope(), precision_scope("float32"):
            model = trained.task.build_model(trained.preprocessor)
        model.set_weights(trained.model.get_weights())
    data = trained.task.read_data()
    if data.stream:
        raise ValueError(
            f"{trained.directory.config_file}: this run streamed its data, and `compress` "
            "measures every artifact on splits held in memory. Train with `--set "
            "data.stream=false` (the files are then read into memory) to compress the run."
        )
    return model, trained.preprocessor, trained.config, data.splits, data.labels


def _check_compatible(config: PipelineConfig, run_config: PipelineConfig, source: str) -> None:
    for section in ("data", "preprocessing", "model"):
        if getattr(config, section) != getattr(run_config, section):
            raise ValueError(
                f"{source}: the `{section}:` section differs from the run's config.yaml; compress "
                "with the pipeline (and --set overrides) the run was trained with."
            )


def _run_passes(
    passes: Sequence[CompressionPass],
    trained: keras.Model,
    context: PassContext,
    artifacts: Artifacts,
) -> tuple[dict, dict]:
    """Runs each enabled pass and converts its artifacts.

    Returns:
        `(details, saved)`: the report's `passes` section, and the id models to export as
        SavedModels, by variant name.
    """
    c = context.config.compression
    results: dict[str, PassResult] = {}
    details, saved = {}, {}
    for compression_pass in passes:
        if not compression_pass.enabled(c):
            continue
        result = compression_pass.apply(
            _start_model(compression_pass, trained, context, results), context
        )
        results[compression_pass.name] = result
        if result.details is not None:
            details[compression_pass.name] = result.details
        for artifact in compression_pass.selected_artifacts(c):
            artifacts.add_tflite(artifact, result.model, result.extra)
        if compression_pass.saved_model is not None:
            saved[compression_pass.saved_model] = result.model
    return details, saved


def _start_model(
    compression_pass: CompressionPass,
    trained: keras.Model,
    context: PassContext,
    results: dict[str, PassResult],
) -> keras.Model:
    """A fresh id-level copy of the trained model, or the model of the pass it requires."""
    if compression_pass.requires is None:
        with context.strategy.scope():
            return build_id_model(trained)
    if compression_pass.requires not in results:
        raise ValueError(
            f"`{compression_pass.name}` must run after `{compression_pass.requires}`. "
            f"Received: passes that ran={list(results)!r}."
        )
    return results[compression_pass.requires].model


def _report(
    config: PipelineConfig,
    run_config: PipelineConfig,
    run_dir,
    data,
    entries: dict,
    details: dict,
    notes: list[str],
) -> dict:
    """The report (`compression_report.json`), its keys in their published order."""
    c = config.compression
    report.add_ratios(entries)
    recommended, reason = report.recommend(entries, accuracy_budget=c.accuracy_budget)
    machine = {**machine_summary(), "tensorflow": tf.__version__}
    return {
        "pipeline": config.name,
        "model": run_config.model.name,
        "run_dir": str(run_dir),
        "test_examples": int(len(data.y_test)),
        "reference": "float32",
        "accuracy_budget": c.accuracy_budget,
        "recommended": recommended,
        "recommended_reason": reason,
        "artifacts": entries,
        "passes": details,
        "compression_config": asdict(c),
        "machine": machine,
        "notes": notes + report.report_notes(entries, details, machine),
    }


def compress_run(
    config: PipelineConfig,
    run_dir: str | Path,
    out_dir: str | Path,
    source: str = "<pipeline>",
    *,
    passes: Sequence[CompressionPass] = PASSES,
) -> dict:
    """Runs every enabled compression pass over a trained run and writes the report.

    The run directory is only read (and locked while it is). Keras' global dtype policy is
    float32 while this runs and restored afterwards.

    Args:
        config: the pipeline (its `compression:` section drives the passes; its data,
            preprocessing and model sections must match the run's).
        run_dir: a finished `tfnlp train` run directory.
        out_dir: where `tflite/<artifact>/`, `saved_models/`, `compression_report.json`,
            `compression_report.md` and `size_vs_accuracy.png` go.
        source: the pipeline file name, for error messages.
        passes: the passes to run, in order (`passes.PASSES` by default); the first must
            produce the `float32` reference artifact.

    Returns:
        The report (also written as JSON).

    Raises:
        ValueError: the pipeline does not match the run (the `compression:` values are
            validated with the config).
        FileNotFoundError: `run_dir` is not a finished run.
        RunDirectoryInUse: another tfnlp command holds `run_dir` or `out_dir`.
        DiskFullError: the disk under `out_dir` filled (what was there before is intact).
    """
    out = Path(out_dir)
    with locked(out, command="compress", reading=(run_dir,)):
        return _compress_locked(config, run_dir, out, source, passes)


def _compress_locked(config: PipelineConfig, run_dir, out: Path, source: str,
                     passes: Sequence[CompressionPass]) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    strategy, why = create_strategy(config.distribute)
    logger.info("strategy: %s (%s)", type(strategy).__name__, why)
    # Every layer built in here (id models, tfmot wrappers) is float32: TFLite converts float32.
    with precision_scope("float32"):
        model, preprocessor, run_config, splits, labels = _read_trained_run(run_dir, strategy)
        _check_compatible(config, run_config, source)
        keras.utils.set_random_seed(config.seed)
        data = CompressionData(run_config, splits, labels, preprocessor)
        context = PassContext(config, data, strategy, out / "logs")
        artifacts = Artifacts(out, config, data, TFLiteSpec.of(preprocessor, labels))
        # Each pass writes about a float32 model's size, or less, in files of its own.
        needed = variable_bytes(model.variables) * (len(passes) + 1)
        kept = "compressed files written before are intact (each is replaced by a rename)"
        try:
            with disk_guard(out, "the compressed models", needed, kept):
                details, saved = _run_passes(passes, model, context, artifacts)
                for name, id_model in saved.items():
                    artifacts.add_saved_model(name, id_model, preprocessor)
        finally:
            tflite_lib.clear_traces()  # the traces hold every compressed model
    result = _report(config, run_config, run_dir, data, artifacts.entries, details, artifacts.notes)
    with disk_guard(out, "the compression report", 2**20, kept):
        paths = report.write_report(result, out)
    logger.info("report: %s (recommended: %s)", paths["json"], result["recommended"])
    return result
