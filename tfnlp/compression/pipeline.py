"""`tfnlp compress`: every compression pass over a trained run, each artifact measured.

From a run's best checkpoint: the id-level model (see `id_model`) is converted to TFLite as
float32 (the reference), float16, dynamic-range int8, full-integer int8 and int16x8; pruning,
QAT, pruning-preserving QAT and clustering each fine-tune a copy on the run's training split
and are converted too. Every artifact is evaluated on the run's test split with the TFLite
interpreter; float32 and the pruned model are also exported as string-in SavedModels for
TF-Serving and measured the same way.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from tfnlp import atomic
from tfnlp.backend import keras, tf
from tfnlp.bench.measure import machine_summary
from tfnlp.compression import clustering, pruning, quantization, report
from tfnlp.compression import tflite as tflite_lib
from tfnlp.compression.id_model import build_id_model, text_model
from tfnlp.compression.tflite_predictor import SPEC_FILE
from tfnlp.config.schema import PipelineConfig
from tfnlp.data import encode_labels
from tfnlp.export import export_saved_model
from tfnlp.training.precision import resolve_policy
from tfnlp.training.run_directory import RunDirectory
from tfnlp.training.strategy import create_strategy
from tfnlp.training.trainer import load_splits, load_trained_model, preprocessor_of

logger = logging.getLogger("tfnlp")

THROUGHPUT_BATCH = 64

def explain_int8_latency(entries: dict, machine: dict) -> str:
    """Why full-integer int8 is (or is not) faster here, from the measured artifacts.

    The explanation the report carries for recurrent models: the masked Keras LSTM converts
    to TFLite WHILE loops whose bodies run one small step at a time; XNNPACK does not take
    control flow, so the steps run on TFLite's builtin kernels whatever the precision, and
    full-integer quantization adds requantization work to every tiny per-step op without a
    large matmul to win back. The figures quoted are this report's own.
    """
    float32, full = entries.get("float32"), entries.get("int8_full")
    if not float32 or not full:
        return ""
    loops = full["ops"]["ops"].get("WHILE", 0)

    def timings(name: str) -> str:
        entry = entries[name]
        return f"{name} " + " / ".join(
            f"{entry[key]:.3f} ms {kernels}" if entry[key] is not None else f"{kernels} failed"
            for key, kernels in (("latency_ms_batch1_xnnpack", "with XNNPACK"),
                                 ("latency_ms_batch1_builtin", "builtin kernels"))
        )

    figures = "; ".join(timings(name) for name in
                        ("float32", "int8_dynamic", "int8_full", "int16x8") if name in entries)
    if not loops and full["conversion"].get("unrolled") and full["ops"]["ops"].get("TANH"):
        slower = full["latency_ms_batch1"] > float32["latency_ms_batch1"]
        return (
            f"Batch-1 latency ({figures}). The (Bi)LSTM was unrolled at the fixed length "
            "(`compression.unroll_recurrent`): a masked Keras LSTM otherwise converts to TFLite "
            "WHILE loops, which XNNPACK (TFLite's default CPU delegate) does not take and whose "
            "full-integer calibration crashed TFLite's calibrator on this machine. Unrolled, "
            "each time step is a chain of tiny [batch, units] FULLY_CONNECTED and element-wise "
            "LOGISTIC/TANH/MUL/ADD ops (see `ops`). "
            + ("With int8 activations every one of them requantizes its output and there is no "
               "large matmul for the int8 kernels to win back, so full-integer int8 is slower "
               "than float here: for LSTMs int8 is a size win; dynamic-range int8 (float "
               "activations) keeps float speed at a quarter of the size."
               if slower else
               "Here full-integer int8 is not slower than float32.")
        )
    if not loops:
        int8 = [name for name in entries if "int8" in name and entries[name]["format"] == "tflite"]
        fastest = min(int8, key=lambda name: entries[name]["latency_ms_batch1"])
        speedup = float32["latency_ms_batch1"] / entries[fastest]["latency_ms_batch1"]
        flags = ", ".join(machine.get("cpu_vector_flags", [])) or "none listed"
        return (
            f"Batch-1 latency ({figures}). No recurrent loops here: the work is "
            "FULLY_CONNECTED/BATCH_MATMUL in one graph, which XNNPACK runs in float32 and "
            f"TFLite's int8 kernels in int8. The fastest int8 artifact, {fastest}, runs at "
            f"{speedup:.2f}x float32's speed here, so int8 is "
            + ("a speed win as well as a size win" if speedup > 1.0 else
               "a size win but not a speed win on this machine")
            + f" (CPU vector extensions: {flags}; int8 dot-product instructions are "
            "avx512_vnni / avx_vnni)."
        )
    return (
        f"Why full-integer int8 is slow for this recurrent model ({figures}): the masked Keras "
        f"LSTM converts to {loops} TFLite WHILE loop(s) ({full['ops']['subgraphs']} subgraphs; "
        "see `ops`), not to a fused LSTM kernel, and runs one time step at a time on [batch, "
        "units] tensors. XNNPACK (TFLite's default CPU delegate) does not take control flow, "
        "so the per-step FULLY_CONNECTED/LOGISTIC/TANH/MUL/ADD ops inside the loop bodies run "
        "on TFLite's builtin kernels in every variant (compare the with/without-XNNPACK "
        "figures). With int8 activations each of these tiny ops also requantizes its output, "
        "and the recurrent state is quantized and dequantized around the loop, while there is "
        "no large matmul for the int8 kernels to speed up. The 16x8 mode (int16 activations) "
        "is kinder to accuracy but uses the same per-step path. Dynamic-range int8 keeps "
        "activations in float (only weights are int8), so it keeps float32's speed at a "
        "quarter of the size: for LSTMs int8 is a size win, not a speed win."
    )


def _ids(preprocessor, texts: list[str], sequence_length: int, batch: int = 512) -> np.ndarray:
    """Token ids of `texts`, zero-padded to exactly `sequence_length` (what TFLite takes)."""
    out = np.zeros((len(texts), sequence_length), np.int32)
    for start in range(0, len(texts), batch):
        ids = preprocessor(tf.constant(texts[start:start + batch])).numpy()
        out[start:start + len(ids), : ids.shape[1]] = ids
    return out


def _check_compatible(config: PipelineConfig, run_config: PipelineConfig, source: str) -> None:
    for section in ("data", "preprocessing", "model"):
        if getattr(config, section) != getattr(run_config, section):
            raise ValueError(
                f"{source}: the `{section}:` section differs from the run's config.yaml; compress "
                "with the pipeline (and --set overrides) the run was trained with."
            )


def _compile(model: keras.Model, config: PipelineConfig) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.compression.learning_rate),
        loss=keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=config.train.label_smoothing
        ),
        metrics=["accuracy"],
    )


class _Data:
    """The run's splits as fixed-length ids and one-hot labels (built once, shared by passes)."""

    def __init__(self, config, splits, labels, preprocessor):
        length = config.preprocessing.sequence_length
        self.labels = labels
        self.train_ids = _ids(preprocessor, splits.train.texts, length)
        self.validation_ids = _ids(preprocessor, splits.validation.texts, length)
        self.test_ids = _ids(preprocessor, splits.test.texts, length)
        self.test_texts = list(splits.test.texts)
        self.y_train = encode_labels(splits.train, labels)
        self.y_validation = encode_labels(splits.validation, labels)
        self.y_test = encode_labels(splits.test, labels)
        self.train_weights = (
            np.asarray(splits.train.weights, np.float32)
            if splits.train.weights is not None else None
        )
        self.batch_size = config.train.batch_size
        self.seed = config.seed

    def steps_per_epoch(self) -> int:
        return -(-len(self.train_ids) // self.batch_size)

    def train(self):
        tensors = (self.train_ids, tf.one_hot(self.y_train, len(self.labels)))
        if self.train_weights is not None:
            tensors += (self.train_weights,)
        return (tf.data.Dataset.from_tensor_slices(tensors)
                .shuffle(len(self.train_ids), seed=self.seed).batch(self.batch_size))

    def validation(self):
        return tf.data.Dataset.from_tensor_slices(
            (self.validation_ids, tf.one_hot(self.y_validation, len(self.labels)))
        ).batch(self.batch_size)

    def representative(self, count: int, batch_size: int):
        """Calibration batches drawn (seeded) from the training split."""
        rng = np.random.default_rng(self.seed)
        picked = self.train_ids[rng.permutation(len(self.train_ids))[:count]]

        def batches():
            for start in range(0, len(picked) - batch_size + 1, batch_size):
                yield picked[start:start + batch_size]

        return batches


def _fine_tune(model, config: PipelineConfig, data: _Data, callbacks=()) -> dict:
    _compile(model, config)
    history = model.fit(
        data.train(), validation_data=data.validation(), epochs=config.compression.epochs,
        callbacks=list(callbacks), verbose=1 if sys.stdout.isatty() else 2,
    )
    return {key: [float(v) for v in values] for key, values in history.history.items()}


class _Artifacts:
    """Converts, writes and measures TFLite artifacts into `out/tflite/<name>/`."""

    def __init__(self, out: Path, config: PipelineConfig, data: _Data, preprocessor, spec):
        self.out, self.config, self.data = out, config, data
        self.preprocessor, self.spec = preprocessor, spec
        self.entries: dict[str, dict] = {}

    def add(self, name: str, id_model, mode: str, **extra) -> dict:
        c = self.config.compression
        length = self.config.preprocessing.sequence_length
        directory = self.out / "tflite" / name
        directory.mkdir(parents=True, exist_ok=True)
        files = {}
        for batch in (1, THROUGHPUT_BATCH):
            logger.info("converting %s (%s, batch %d)", name, mode, batch)
            flatbuffer, details = tflite_lib.convert(
                id_model, mode, batch_size=batch, sequence_length=length,
                representative_ids=self.data.representative(
                    max(c.representative_examples, batch), batch),
                unroll=c.unroll_recurrent, strip_names=c.strip_tensor_names,
            )
            filename = "model.tflite" if batch == 1 else f"model_batch{batch}.tflite"
            atomic.write_bytes(directory / filename, flatbuffer)
            files[batch] = (flatbuffer, details)
        write_tflite_spec(directory, self.preprocessor, self.data.labels)
        flatbuffer, details = files[1]
        logger.info("measuring %s", name)
        entry = {
            "format": "tflite",
            "path": str(directory / "model.tflite"),
            **report.file_sizes(directory / "model.tflite"),
            **report.measure_tflite(
                flatbuffer, files[THROUGHPUT_BATCH][0], self.data.test_ids, self.data.y_test,
                self.data.labels, latency_calls=c.latency_calls,
                throughput_calls=c.throughput_calls,
            ),
            "conversion": details,
            "tensor_dtypes": tflite_lib.tensor_dtypes(flatbuffer),
            "ops": tflite_lib.op_counts(flatbuffer),
            **extra,
        }
        self.entries[name] = entry
        logger.info("%s: accuracy %.4f, %d bytes (%d gzip), %.3f ms at batch 1", name,
                    entry["accuracy"], entry["bytes"], entry["gzip_bytes"],
                    entry["latency_ms_batch1"])
        return entry


def write_tflite_spec(directory: Path, preprocessor, labels: list[str]) -> None:
    """Writes vocab.txt and preprocessing.json (the TextPreprocessor config and the labels)."""
    atomic.write_text(directory / "vocab.txt", "\n".join(preprocessor.vocabulary) + "\n")
    options = {k: v for k, v in preprocessor.get_config().items()
               if k in ("tokenizer", "sequence_length", "lowercase", "replace_urls",
                        "replace_mentions", "replace_numbers", "stopwords")}
    atomic.write_text(directory / SPEC_FILE, json.dumps({
        "format": "tfnlp-tflite-1",
        "input": {"name": "token_ids", "dtype": "int32", "padding_id": 0,
                  "shape": ["batch", options["sequence_length"]]},
        "output": "logits",
        "vocabulary_file": "vocab.txt",
        "preprocessor": options,
        "labels": list(labels),
    }, indent=2) + "\n")


def compress_run(config: PipelineConfig, run_dir: str | Path, out_dir: str | Path,
                 source: str = "<pipeline>") -> dict:
    """Runs every enabled compression pass over a trained run and writes the report.

    Args:
        config: the pipeline (its `compression:` section drives the passes; its data,
            preprocessing and model sections must match the run's).
        run_dir: a finished `tfnlp train` run directory.
        out_dir: where `tflite/<artifact>/`, `saved_models/`, `compression_report.json`,
            `compression_report.md` and `size_vs_accuracy.png` go.
        source: the pipeline file name, for error messages.

    Returns:
        The report (also written as JSON).

    Raises:
        ValueError: the pipeline does not match the run, or a bad `compression:` value.
        FileNotFoundError: `run_dir` is not a finished run.
    """
    c = config.compression
    if c.m_by_n is not None and (len(c.m_by_n) != 2 or not 0 < c.m_by_n[0] < c.m_by_n[1]):
        raise ValueError(
            f"{source}: `compression.m_by_n` must be two integers [m, n] with 0 < m < n, e.g. "
            f"[2, 4]. Received: compression.m_by_n={c.m_by_n!r}."
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    strategy, why = create_strategy(config.distribute)
    logger.info("strategy: %s (%s)", type(strategy).__name__, why)
    with strategy.scope():
        model, run_config, labels = load_trained_model(run_dir)
    _check_compatible(config, run_config, source)
    if resolve_policy(run_config.precision.policy)[0] != "float32":
        # TFLite converts float32 graphs; the run's weights are float32 variables anyway.
        keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(config.seed)
    splits, labels = load_splits(run_config, RunDirectory(Path(run_dir)))
    preprocessor = preprocessor_of(model)
    data = _Data(run_config, splits, labels, preprocessor)
    artifacts = _Artifacts(out, config, data, preprocessor, None)
    passes: dict[str, dict] = {}
    notes: list[str] = []

    with strategy.scope():
        base = build_id_model(model)
    for name, mode in (("float32", "float32"), ("float16", "float16"),
                       ("int8_dynamic", "int8_dynamic"), ("int8_full", "int8_full")):
        artifacts.add(name, base, mode)
    if c.int16x8:
        try:  # TFLite's 16x8 mode is experimental: a failure is reported, not fatal
            artifacts.add("int16x8", base, "int16x8")
        except Exception as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            notes.append(f"int16x8 (16-bit activations) did not convert: {message[:300]}")
            logger.warning("int16x8 did not convert: %s", message)
    saved = {"float32": base}

    if c.pruning:
        schedule, details = pruning.pruning_schedule(
            c.epochs * data.steps_per_epoch(), c.target_sparsity, c.pruning_schedule,
            c.pruning_frequency,
        )
        with strategy.scope():
            pruned_model, pruned_layers = pruning.prune_id_model(
                build_id_model(model), schedule, c.m_by_n)
            history = _fine_tune(pruned_model, config, data, pruning.pruning_callbacks(
                str(out / "logs" / "pruning")))
        stripped = pruning.strip_pruning(pruned_model)
        sparsity = pruning.weight_sparsity(stripped)
        passes["pruning"] = {**details, "m_by_n": c.m_by_n, "pruned_layers": pruned_layers,
                             "measured_sparsity": sparsity, "history": history}
        extra = {"sparsity": sparsity["overall"]}
        artifacts.add("pruned", stripped, "float32", **extra)
        artifacts.add("pruned_int8", stripped, "int8_dynamic", **extra)
        artifacts.add("pruned_int8_full", stripped, "int8_full", **extra)
        saved["pruned"] = stripped
        if c.pruning_preserving_qat:
            with strategy.scope():
                pqat, qdetails = quantization.quantize_aware_model(
                    stripped, preserve_sparsity=True)
                qhistory = _fine_tune(pqat, config, data)
            passes["pruning_preserving_qat"] = {**qdetails, "history": qhistory}
            artifacts.add("pruned_qat_int8", pqat, "int8_dynamic",
                          sparsity=pruning.weight_sparsity(pqat)["overall"])

    if c.qat:
        with strategy.scope():
            qat_model, qdetails = quantization.quantize_aware_model(build_id_model(model))
            qhistory = _fine_tune(qat_model, config, data)
        passes["qat"] = {**qdetails, "history": qhistory}
        artifacts.add("qat_int8", qat_model, "int8_dynamic")

    if c.clustering:
        with strategy.scope():
            clustered, cdetails = clustering.cluster_id_model(
                build_id_model(model), c.number_of_clusters)
            chistory = _fine_tune(clustered, config, data)
        stripped_clusters = clustering.strip_clustering(clustered)
        passes["clustering"] = {
            **cdetails, "history": chistory,
            "distinct_values": clustering.distinct_values(stripped_clusters, cdetails["clustered"]),
        }
        artifacts.add("clustered", stripped_clusters, "float32")
        artifacts.add("clustered_int8", stripped_clusters, "int8_dynamic")

    entries = artifacts.entries
    for name, id_model in saved.items():
        # TF-Serving variants: strings in, the same preprocessing layer in front.
        served = text_model(preprocessor, id_model, f"{config.name}_{name}")
        # Re-running into the same DIR replaces version 1 instead of failing.
        shutil.rmtree(out / "saved_models" / f"{config.name}_{name}" / "1", ignore_errors=True)
        path = export_saved_model(
            served, labels, out / "saved_models", f"{config.name}_{name}", version=1,
            vocabulary=preprocessor.vocabulary,
        )
        logger.info("measuring SavedModel %s", path)
        entries[f"saved_model_{name}"] = {
            "format": "saved_model", "path": str(path),
            **report.file_sizes_of_directory(path),
            **report.measure_saved_model(
                path, data.test_texts, data.y_test, labels, latency_calls=c.latency_calls,
                throughput_calls=c.throughput_calls),
        }

    report.add_ratios(entries)
    recommended, reason = report.recommend(entries, accuracy_budget=c.accuracy_budget)
    machine = {**machine_summary(), "tensorflow": tf.__version__}
    explanation = explain_int8_latency(entries, machine)
    if explanation:
        notes.append(explanation)
    for name, qat_pass in (("qat_int8", "qat"), ("pruned_qat_int8", "pruning_preserving_qat")):
        if name in entries and entries[name]["bytes"] > 0.9 * entries["float32"]["bytes"]:
            quantized = ", ".join(passes[qat_pass]["quantized"])
            notes.append(
                f"{name} is about float32's size: tfmot 0.8 can annotate only the layers its "
                f"8-bit scheme supports ({quantized}), and once a graph holds fake-quant ops "
                "the TFLite converter quantizes only those, leaving the Embedding and "
                "recurrent/attention weights in float32. Annotating the Embedding is not "
                "possible either: tfmot puts a QuantizeLayer on its int32 token ids. "
                "Post-training quantization is the size win here."
            )
            break
    notes.append(
        "TFLite models take int32 token ids [batch, sequence_length] (0 = padding); the "
        "vocabulary and preprocessing spec sit beside each .tflite (tensorflow-text ops are "
        "not TFLite builtins, and SELECT_TF_OPS would bring the Flex delegate and keep the "
        "string ops out of XNNPACK). SavedModel rows include preprocessing (strings in)."
    )
    notes.append(
        "Latency: median of batch-1 interpreter calls, 1 thread, each artifact on the faster "
        "of XNNPACK and TFLite's builtin kernels (column `kernels`); throughput: batch-64 "
        "calls on the same kernels. "
        "Figures from a busy machine are not comparable; see `machine`."
    )
    result = {
        "pipeline": config.name,
        "model": run_config.model.name,
        "run_dir": str(run_dir),
        "test_examples": int(len(data.y_test)),
        "reference": "float32",
        "accuracy_budget": c.accuracy_budget,
        "recommended": recommended,
        "recommended_reason": reason,
        "artifacts": entries,
        "passes": passes,
        "compression_config": asdict(c),
        "machine": machine,
        "notes": notes,
    }
    tflite_lib.clear_traces()
    paths = report.write_report(result, out)
    logger.info("report: %s (recommended: %s)", paths["json"], recommended)
    return result
