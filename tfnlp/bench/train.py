"""`tfnlp bench train`: tfnlp's training throughput against hand-written classic Keras.

Runs in one process, on the same split, vocabulary size, model size and epochs:

- keras_baseline: the classic tutorial recipe: `TextVectorization` (padded to
  `sequence_length`), Embedding + (Bi)LSTM + Dense, float32, plain `model.fit` on arrays;
- tfnlp_default: `train_pipeline` on the pipeline as given;
- one run per lever (`lever_overrides`), each the pipeline with only that lever changed: an
  ablation against tfnlp_default. Each run records its `--set` overrides.

Throughput is the fastest epoch after the first (which traces the graph), validation
excluded. Writes `bench_train.json` and `bench_train.png` in the output directory.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np

from tfnlp.atomic import write_json
from tfnlp.backend import keras, tf
from tfnlp.bench.measure import bar_chart, machine_summary
from tfnlp.config.loading import apply_override, from_dict, to_dict
from tfnlp.config.schema import PipelineConfig
from tfnlp.data import build_dataset, encode_labels
from tfnlp.data.bucketing import token_lengths
from tfnlp.preprocessing import TextPreprocessor
from tfnlp.tasks.classification import ClassificationTask
from tfnlp.training.callbacks import EpochTimer
from tfnlp.training.input_pipeline import tokenize_in_dataset, use_length_bucketing
from tfnlp.training.run import train_pipeline
from tfnlp.training.timings import peak_rss_mb, reset_peak_rss

logger = logging.getLogger("tfnlp")
BASELINE = "keras_baseline"
DEFAULT = "tfnlp_default"
TARGETS = {
    "tfnlp_default / keras_baseline examples/s": 1.5,
    "tfnlp_float32 / keras_baseline examples/s": 0.95,
    "tfnlp_bf16_bucketed / keras_baseline examples/s": 2.5,
    "tfnlp_bf16_bucketed / tfnlp_float32_bucketed examples/s": 1.6,
    "padded_fraction with bucketing (at most)": 0.15,
    "input pipeline / training examples/s": 5.0,
}


def lever_overrides(config: PipelineConfig) -> dict[str, list[str]]:
    """Each tfnlp run: the `--set` overrides that make it from the pipeline as given."""
    batch, rate = config.train.batch_size, config.train.learning_rate
    return {
        DEFAULT: [],
        "tfnlp_float32": ["train.length_bucketing=false", "precision.policy=float32"],
        "tfnlp_float32_bucketed": ["train.length_bucketing=true", "precision.policy=float32"],
        "tfnlp_bf16_bucketed": ["train.length_bucketing=true", "precision.policy=mixed_bfloat16"],
        # The tf.data lever: tokenize in a parallel map, overlapping the training step.
        "tfnlp_in_dataset": ["preprocessing.in_dataset=true"],
        "tfnlp_jit_compile": ["preprocessing.in_dataset=true", "train.jit_compile=true"],
        "tfnlp_unrolled": ["model.unroll=true"],
        # More work per step; Adam's learning rate grows with the square root of the batch.
        "tfnlp_batch_4x": [f"train.batch_size={4 * batch}", f"train.learning_rate={2 * rate!r}"],
    }


def with_overrides(config: PipelineConfig, overrides: list[str]) -> PipelineConfig:
    """`config` with `--set`-style overrides applied, validated again."""
    raw = to_dict(config)
    for override in overrides:
        apply_override(raw, override, source="bench train")
    return from_dict(raw, source=f"{config.name} with {' '.join(overrides) or 'no overrides'}")


def run_keras_baseline(config: PipelineConfig, splits, labels) -> dict:
    """The classic hand-written Keras recipe on the same data and model size."""
    keras.utils.set_random_seed(config.seed)
    p, m = config.preprocessing, config.model
    vectorize = keras.layers.TextVectorization(
        max_tokens=p.vocab_size, output_sequence_length=p.sequence_length
    )
    vectorize.adapt(tf.data.Dataset.from_tensor_slices(splits.train.texts).batch(1024))

    def arrays(split):
        ids = vectorize(tf.constant(split.texts)).numpy()
        return ids, keras.utils.to_categorical(encode_labels(split, labels), len(labels))

    (x_train, y_train), validation, (x_test, y_test) = (
        arrays(splits.train), arrays(splits.validation), arrays(splits.test))
    layers = [keras.layers.Embedding(p.vocab_size, m.embedding_dim, mask_zero=True)]
    for index in range(m.num_layers):
        lstm = keras.layers.LSTM(m.units, return_sequences=index < m.num_layers - 1)
        layers.append(keras.layers.Bidirectional(lstm) if m.name == "bilstm" else lstm)
    layers += [keras.layers.Dropout(m.dropout), keras.layers.Dense(len(labels))]
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.Adam(config.train.learning_rate),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    timer = EpochTimer()
    model.fit(x_train, y_train, batch_size=config.train.batch_size, epochs=config.train.epochs,
              validation_data=validation, callbacks=[timer], verbose=2)
    real = int(np.count_nonzero(x_train))
    return {
        **_throughput(len(x_train), real, timer),
        "padded_fraction": 1.0 - real / x_train.size,
        "test_accuracy": float(model.evaluate(x_test, y_test, verbose=0)[1]),
        "tokens": "TextVectorization words, padded to sequence_length",
    }


def run_tfnlp(config: PipelineConfig, run_dir: Path) -> dict:
    """One `train_pipeline` run (no export), with its measured padding and throughput."""
    timer = EpochTimer()
    result = train_pipeline(config, run_dir, export=False, extra_callbacks=[timer])
    train = result.metrics["train"]
    return {
        **_throughput(result.metrics["data"]["train"], train["padding"]["real_tokens"], timer),
        "padded_fraction": train["padded_fraction"],
        "test_accuracy": result.metrics["test"]["accuracy"],
        "precision_policy": train["precision_policy"],
        "length_bucketing": train["length_bucketing"],
        "preprocessing_in_dataset": train["preprocessing_in_dataset"],
        "epochs_run": train["epochs_run"],
        "tokens": f"{config.preprocessing.tokenizer} ids from the in-graph TextPreprocessor",
    }


def input_pipeline_examples_per_second(
    config: PipelineConfig, train_split, labels, preprocessor: TextPreprocessor, bucketing: bool
) -> float:
    """One epoch of the training dataset alone, tokenization included, in examples/s."""
    dataset = tokenize_in_dataset(
        build_dataset(
            train_split, labels, batch_size=config.train.batch_size, shuffle=True,
            seed=config.seed, shuffle_buffer=config.train.shuffle_buffer,
            token_lengths=token_lengths(preprocessor.tokenize, train_split.texts),
            bucket_width=config.train.bucket_width if bucketing else None,
        ),
        preprocessor,
    )
    for _ in dataset.take(2):  # traces the map functions
        pass
    start = time.perf_counter()
    count = sum(int(tf.shape(batch[0])[0]) for batch in dataset)
    return count / (time.perf_counter() - start)


def _throughput(examples: int, real_tokens: int, timer: EpochTimer) -> dict:
    seconds = timer.steady_epoch_seconds
    return {
        "examples_per_second": examples / seconds,
        "real_tokens_per_second": real_tokens / seconds,
        "epoch_seconds": seconds,
        "epoch_seconds_all": timer.train_seconds,
        "train_examples": examples,
    }


def _measured(name: str, run) -> dict:
    reset = reset_peak_rss()
    start = time.perf_counter()
    logger.info("bench train: %s", name)
    figures = run()
    figures["wall_seconds"] = time.perf_counter() - start
    # Without a reset the peak is the process's so far (an upper bound for this run).
    figures["peak_rss_mb"] = peak_rss_mb()
    figures["peak_rss_is_per_run"] = reset
    return figures


def bench_train(config: PipelineConfig, out_dir: str | Path,
                names: list[str] | None = None) -> dict:
    """Runs the baseline and the tfnlp runs, and writes `bench_train.json` + `.png`.

    Args:
        config: a validated lstm or bilstm pipeline (its data, sizes, batch and epochs are
            shared by all runs; `data.limit` makes a quick subset).
        out_dir: where the JSON, the PNG and the tfnlp run directories go.
        names: the tfnlp runs to make (`lever_overrides`' names); None: all of them. The
            baseline always runs: every ratio is taken against it.

    Returns:
        The JSON written.

    Raises:
        ValueError: the pipeline's model is not recurrent (the baseline is the LSTM recipe),
            or a name is not a run.
    """
    if config.model.name not in ("lstm", "bilstm"):
        raise ValueError(
            "`model.name` must be lstm or bilstm for `tfnlp bench train` (the baseline is the "
            f"classic Keras LSTM recipe). Received: model.name={config.model.name!r}."
        )
    levers = lever_overrides(config)
    unknown = sorted(set(names or ()) - set(levers))
    if unknown:
        raise ValueError(f"`--runs` must name runs among {', '.join(levers)}. "
                         f"Received: {', '.join(unknown)}.")
    out = Path(out_dir)
    # The same number of epochs everywhere: early stopping would make runs incomparable.
    config = dataclasses.replace(config, train=dataclasses.replace(
        config.train, early_stopping_patience=config.train.epochs))
    task = ClassificationTask(config)
    data = task.read_data()
    splits, labels = data.splits, data.labels
    # The vocabulary every tfnlp run learns (deterministic), for timing the input alone.
    preprocessor = task.learn_preprocessor(data)
    runs = {BASELINE: _measured(BASELINE, lambda: run_keras_baseline(config, splits, labels))}
    for name, overrides in levers.items():
        if names is not None and name not in names:
            continue
        variant = with_overrides(config, overrides)
        runs[name] = _measured(name, lambda v=variant, n=name: run_tfnlp(v, out / "runs" / n))
        runs[name]["overrides"] = overrides
        runs[name]["input_pipeline_examples_per_second"] = input_pipeline_examples_per_second(
            variant, splits.train, labels, preprocessor, use_length_bucketing(variant))
        runs[name]["input_pipeline_headroom"] = (
            runs[name]["input_pipeline_examples_per_second"] / runs[name]["examples_per_second"])
    _add_ratios(runs)
    ratios = _headline_ratios(runs)
    report = {
        "pipeline": config.name,
        "data": {**splits.sizes(), "limit": config.data.limit},
        "model": dataclasses.asdict(config.model),
        "batch_size": config.train.batch_size,
        "epochs": config.train.epochs,
        "machine": machine_summary(),
        "runs": runs,
        "ratios": ratios,
        "targets": TARGETS,
        "note": "examples/s from the fastest epoch after the first, validation excluded",
    }
    write_json(out / "bench_train.json", report)
    bar_chart(out / "bench_train.png", f"tfnlp bench train: {config.name}", [
        ("training examples / s", {n: r["examples_per_second"] for n, r in runs.items()}),
        ("padded fraction", {n: r["padded_fraction"] for n, r in runs.items()}),
        ("test accuracy", {n: r["test_accuracy"] for n, r in runs.items()}),
    ], highlight=BASELINE)
    return report


def _add_ratios(runs: dict) -> None:
    """Each run's examples/s against the baseline and against tfnlp_default (when made), and
    its test accuracy against the baseline's."""
    base, default = runs[BASELINE], runs.get(DEFAULT)
    for figures in runs.values():
        figures["ratio_to_keras_baseline"] = (
            figures["examples_per_second"] / base["examples_per_second"])
        figures["test_accuracy_minus_keras_baseline"] = (
            figures["test_accuracy"] - base["test_accuracy"])
        if default is not None:
            figures["ratio_to_default"] = (
                figures["examples_per_second"] / default["examples_per_second"])


def _headline_ratios(runs: dict) -> dict:
    """The ratios the targets name, for the runs that were made."""
    def speed(a, b):
        if a in runs and b in runs:
            return runs[a]["examples_per_second"] / runs[b]["examples_per_second"]
        return None

    bucketed = [runs[n]["padded_fraction"] for n in
                ("tfnlp_float32_bucketed", "tfnlp_bf16_bucketed") if n in runs]
    ratios = {
        "tfnlp_default / keras_baseline examples/s": speed(DEFAULT, BASELINE),
        "tfnlp_default - keras_baseline test accuracy": (
            runs[DEFAULT]["test_accuracy_minus_keras_baseline"] if DEFAULT in runs else None),
        "tfnlp_float32 / keras_baseline examples/s": speed("tfnlp_float32", BASELINE),
        "tfnlp_bf16_bucketed / keras_baseline examples/s": speed("tfnlp_bf16_bucketed",
                                                                  BASELINE),
        "tfnlp_bf16_bucketed / tfnlp_float32_bucketed examples/s": speed(
            "tfnlp_bf16_bucketed", "tfnlp_float32_bucketed"),
        "padded_fraction with bucketing (at most)": max(bucketed) if bucketed else None,
        "input pipeline / training examples/s": min(
            r["input_pipeline_headroom"] for n, r in runs.items() if n != BASELINE)
        if len(runs) > 1 else None,
    }
    if "tfnlp_bf16_bucketed" in runs and "tfnlp_float32_bucketed" in runs:
        ratios["bf16 - float32 test accuracy (bucketed)"] = (
            runs["tfnlp_bf16_bucketed"]["test_accuracy"]
            - runs["tfnlp_float32_bucketed"]["test_accuracy"])
    return {key: value for key, value in ratios.items() if value is not None}


def summary_lines(report: dict) -> list[str]:
    """A table for the terminal: one line per run, then the ratios against their targets."""
    lines = [f"{'run':<24}{'ex/s':>10}{'tok/s':>11}{'pad %':>8}{'acc':>8}{'x base':>8}"
             f"{'x dflt':>8}{'RSS MB':>9}"]
    for name, r in report["runs"].items():
        rss = r["peak_rss_mb"] or float("nan")
        lines.append(f"{name:<24}{r['examples_per_second']:>10.1f}"
                     f"{r['real_tokens_per_second']:>11.0f}{100 * r['padded_fraction']:>8.1f}"
                     f"{r['test_accuracy']:>8.4f}{r['ratio_to_keras_baseline']:>8.2f}"
                     f"{r.get('ratio_to_default', float('nan')):>8.2f}{rss:>9.0f}")
    for key, value in report["ratios"].items():
        target = report["targets"].get(key)
        lines.append(f"{key}: {value:.3f}" + (f" (target {target})" if target else ""))
    return lines
