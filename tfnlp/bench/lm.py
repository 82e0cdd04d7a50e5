"""`tfnlp bench lm`: language-model tokens/s for training and generation, float32 vs bfloat16.

Measures the model a pipeline describes (sizes from `model:` and `language_model:`) on
synthetic token ids, so the figures are about the model and the decoding loop, not the data:

* training: `train_on_batch` steps on `[batch_size, sequence_length]` windows (after two
  warm-up steps that trace the graph), tokens/s = steps x batch x length / seconds;
* generation: the in-graph `generate_with_options` decoding loop (the exported one) at each
  generation batch size, tokens/s = decoded steps x batch / seconds (best of the repeats; an
  untrained model may emit `[EOS]` early, so the steps actually decoded are counted).

Writes `bench_lm.json` and `bench_lm.png` in the output directory and prints a table.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np

from tfnlp.atomic import write_json
from tfnlp.backend import keras, tf
from tfnlp.bench.measure import bar_chart, machine_summary
from tfnlp.export.generation import per_prompt
from tfnlp.preprocessing.lm_tokenizer import LM_RESERVED_TOKENS, LanguageModelTokenizer

POLICIES = ("float32", "mixed_bfloat16")


def _synthetic_tokenizer(vocab_size: int) -> LanguageModelTokenizer:
    # CJK ideographs: single characters that normalisation leaves unchanged.
    characters = [chr(0x4E00 + i) for i in range(vocab_size - len(LM_RESERVED_TOKENS))]
    return LanguageModelTokenizer(LM_RESERVED_TOKENS + characters, tokenizer="character")


def measure_training(model: keras.Model, vocab_size: int, sequence_length: int,
                     batch_size: int, steps: int, seed: int = 0) -> float:
    """Training tokens/s over `steps` `train_on_batch` calls (after two warm-up steps)."""
    rng = np.random.default_rng(seed)
    windows = rng.integers(len(LM_RESERVED_TOKENS), vocab_size,
                           size=(batch_size, sequence_length + 1)).astype(np.int32)
    inputs, targets = tf.constant(windows[:, :-1]), tf.constant(windows[:, 1:])
    for _ in range(2):
        model.train_on_batch(inputs, targets)
    progress = keras.utils.Progbar(steps, unit_name="step")
    start = time.perf_counter()
    for step in range(steps):
        model.train_on_batch(inputs, targets)
        progress.update(step + 1)
    return steps * batch_size * sequence_length / (time.perf_counter() - start)


def measure_generation(module, batch_size: int, max_tokens: int, repeats: int = 3) -> dict:
    """Decoding tokens/s of `module.generate_with_options` at one batch size."""
    prompts = tf.constant([chr(0x4E00) * 8] * batch_size)

    def run(tokens, seed):
        start = time.perf_counter()
        out = module.generate_with_options(prompts, **per_prompt(
            batch_size, max_tokens=tokens, temperature=1.0, top_k=0, top_p=1.0, seed=seed))
        steps = int(out["token_ids"].shape[1])
        return steps, time.perf_counter() - start

    run(2, 0)  # traces the decoding graph
    best = 0.0
    steps_decoded = 0
    for repeat in range(repeats):
        steps, seconds = run(max_tokens, repeat + 1)
        if steps * batch_size / seconds > best:
            best, steps_decoded = steps * batch_size / seconds, steps
    return {"tokens_per_second": best, "steps_decoded": steps_decoded}


def plot_results(results: dict, output: Path) -> Path:
    """Training and generation tokens/s per precision policy, one panel per measure."""
    measures = ["train"] + [f"generate_batch_{b}" for b in results["generation_batch_sizes"]]
    return bar_chart(
        output, f"{results['pipeline']}: {results['model']['name']} language model",
        [(f"{measure.replace('_', ' ')}: tokens/s",
          {p: v[measure]["tokens_per_second"] for p, v in results["policies"].items()})
         for measure in measures],
        highlight="float32",
    )


def run_lm_benchmark(
    pipeline: str | Path, output_dir: str | Path, *, overrides=(), steps: int = 20,
    max_tokens: int = 64, batch_sizes=(1, 32), policies=POLICIES,
) -> dict:
    """Runs the benchmark and writes `bench_lm.json` + `bench_lm.png` under `output_dir`.

    Args:
        pipeline: a `task: language_model` pipeline file (its model and window sizes).
        output_dir: where the JSON and PNG go.
        overrides: `--set` overrides for the pipeline.
        steps: timed training steps per policy.
        max_tokens: tokens generated per timed generation call.
        batch_sizes: generation batch sizes.
        policies: precision policies to compare.

    Returns:
        The results written to `bench_lm.json`.

    Raises:
        ValueError: non-positive steps / max_tokens / batch sizes.
    """
    from tfnlp.config import load_pipeline
    from tfnlp.export.generation import GenerationModule
    from tfnlp.tasks.language_model import LanguageModelTask
    from tfnlp.training.precision import precision_scope
    from tfnlp.training.run import compile_for_training

    for key, value in (("steps", steps), ("max_tokens", max_tokens),
                       ("batch_sizes", min(batch_sizes, default=0))):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{key}` must be positive. Received: {key}={value!r}.")
    config = load_pipeline(pipeline, list(overrides))
    lm = config.language_model
    tokenizer = _synthetic_tokenizer(lm.vocab_size)
    results = {
        "pipeline": config.name,
        "model": {"name": config.model.name, "embedding_dim": config.model.embedding_dim,
                  "units": config.model.units, "num_layers": config.model.num_layers,
                  "num_heads": config.model.num_heads, "ff_dim": config.model.ff_dim},
        "vocab_size": lm.vocab_size,
        "sequence_length": lm.sequence_length,
        "train_batch_size": config.train.batch_size,
        "train_steps": steps,
        "generation_batch_sizes": list(batch_sizes),
        "max_tokens": max_tokens,
        "machine": {**machine_summary(), "platform": platform.platform(),
                    "tensorflow": tf.__version__,
                    "gpus": len(tf.config.list_physical_devices("GPU"))},
        "policies": {},
    }
    task = LanguageModelTask(config)
    for policy in policies:
        keras.utils.set_random_seed(config.seed)
        with precision_scope(policy):
            model = task.build_model(tokenizer)
            compile_for_training(model, task, config)
        print(f"[{policy}] training {steps} steps of {config.train.batch_size} x "
              f"{lm.sequence_length} tokens", flush=True)
        entry = {"train": {"tokens_per_second": measure_training(
            model, lm.vocab_size, lm.sequence_length, config.train.batch_size, steps)}}
        module = GenerationModule(model, tokenizer)
        for batch_size in batch_sizes:
            print(f"[{policy}] generating {max_tokens} tokens at batch {batch_size}", flush=True)
            entry[f"generate_batch_{batch_size}"] = measure_generation(
                module, batch_size, max_tokens
            )
        results["policies"][policy] = entry

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(output_dir / "bench_lm.json", results)
    plot_results(results, output_dir / "bench_lm.png")
    print(f"\n{'policy':<16}{'measure':<22}{'tokens/s':>12}")
    for policy, entry in results["policies"].items():
        for measure, values in entry.items():
            print(f"{policy:<16}{measure:<22}{values['tokens_per_second']:>12.0f}")
    print(f"wrote {output_dir / 'bench_lm.json'} and {output_dir / 'bench_lm.png'}")
    return results
