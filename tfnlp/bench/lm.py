"""`tfnlp bench lm`: the default language model beside the previous default, in one run.

Two pipelines, by default `pipelines/tweets_lm.yaml` as shipped (`default`: a small WordPiece
Transformer) and `pipelines/tweets_lm_char.yaml` (`previous_default`: the character LSTM
2x256, batch 64, that was the default), each learn their tokenizer from their training split
and are measured one after the other in the same process:

* training: `train_on_batch` steps on real windows of the training stream, after two warm-up
  steps that trace the graph; tokens/s = steps x batch x length / seconds. Characters/s =
  tokens/s x the stream's characters per token: the figure comparable across tokenizers;
* generation: the exported in-graph decoding loop (`generate_with_options`) at each
  generation batch size, from a real prompt; tokens/s counts the steps actually decoded (best
  of the repeats: an untrained model may emit `[EOS]` early), characters/s the text written.

`--policies float32 mixed_bfloat16` measures each pipeline again under the other policies
(runs `default_mixed_bfloat16`, ...). Writes `bench_lm.json` and `bench_lm.png` in the output
directory and prints a table.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

from tfnlp.atomic import write_json
from tfnlp.backend import keras, tf
from tfnlp.bench.measure import bar_chart, machine_summary
from tfnlp.export.generation import per_prompt

POLICIES = ("float32",)
PROMPT = "i love "

def measure_training(model: keras.Model, batches: list[tuple[tf.Tensor, tf.Tensor]]) -> float:
    """Training tokens/s over `batches[2:]` (`train_on_batch`; the first two warm up)."""
    for inputs, targets in batches[:2]:
        model.train_on_batch(inputs, targets)
    timed = batches[2:]
    progress = keras.utils.Progbar(len(timed), unit_name="step")
    tokens = 0
    start = time.perf_counter()
    for step, (inputs, targets) in enumerate(timed):
        model.train_on_batch(inputs, targets)
        tokens += int(tf.size(targets))
        progress.update(step + 1)
    return tokens / (time.perf_counter() - start)


def measure_generation(module, batch_size: int, max_tokens: int, repeats: int = 3) -> dict:
    """Decoding tokens/s and characters/s of `module.generate_with_options` at one batch size
    (the best of `repeats` seeded calls, after one that traces the graph)."""
    prompts = tf.constant([PROMPT] * batch_size)

    def run(tokens, seed):
        start = time.perf_counter()
        out = module.generate_with_options(prompts, **per_prompt(
            batch_size, max_tokens=tokens, temperature=1.0, top_k=0, top_p=1.0, seed=seed))
        seconds = time.perf_counter() - start
        characters = int(tf.reduce_sum(tf.strings.length(out["text"], unit="UTF8_CHAR")))
        return int(out["token_ids"].shape[1]), characters, seconds

    run(2, 0)
    best = {"tokens_per_second": 0.0}
    for repeat in range(repeats):
        steps, characters, seconds = run(max_tokens, repeat + 1)
        if steps * batch_size / seconds > best["tokens_per_second"]:
            best = {"tokens_per_second": steps * batch_size / seconds,
                    "characters_per_second": characters / seconds, "steps_decoded": steps}
    return best


def measure_pipeline(config, policy: str, *, steps: int, max_tokens: int,
                     batch_sizes) -> dict:
    """One run: learn the tokenizer, then the training and generation figures under `policy`."""
    from tfnlp.data.windows import build_windows
    from tfnlp.export.generation import GenerationModule
    from tfnlp.tasks.language_model import LanguageModelTask, characters_per_token
    from tfnlp.training.precision import precision_scope
    from tfnlp.training.run import compile_for_training

    lm, train = config.language_model, config.train
    task = LanguageModelTask(config)
    data = task.read_data()
    tokenizer = task.learn_preprocessor(data)
    stream = data.tokenize(tokenizer)["train"]
    per_token = characters_per_token(data.splits["train"], tokenizer, stream)
    windows = build_windows(stream, sequence_length=lm.sequence_length, stride=lm.stride,
                            batch_size=train.batch_size, shuffle=True, seed=config.seed)
    batches = list(windows.take(steps + 2))
    if len(batches) < steps + 2:
        raise ValueError(f"{config.name}: the training stream has {len(batches)} batches, "
                         f"fewer than the {steps} timed + 2 warm-up steps; lower --steps.")
    keras.utils.set_random_seed(config.seed)
    with precision_scope(policy):
        model = task.build_model(tokenizer)
        compile_for_training(model, task, config)
    print(f"[{config.name} {policy}] training {steps} steps of {train.batch_size} x "
          f"{lm.sequence_length} {lm.tokenizer} tokens", flush=True)
    tokens_per_second = measure_training(model, batches)
    entry = {
        "pipeline": config.name, "policy": policy, "tokenizer": lm.tokenizer,
        "vocabulary_size": tokenizer.vocabulary_size, "sequence_length": lm.sequence_length,
        "batch_size": train.batch_size, "characters_per_token": per_token,
        "model": {"name": config.model.name, "embedding_dim": config.model.embedding_dim,
                  "units": config.model.units, "num_layers": config.model.num_layers,
                  "num_heads": config.model.num_heads, "ff_dim": config.model.ff_dim,
                  "parameters": int(model.count_params())},
        "train_tokens_per_second": tokens_per_second,
        "train_characters_per_second": tokens_per_second * per_token,
    }
    module = GenerationModule(model, tokenizer)
    for batch_size in batch_sizes:
        print(f"[{config.name} {policy}] generating {max_tokens} tokens at batch {batch_size}",
              flush=True)
        entry[f"generate_batch_{batch_size}"] = measure_generation(module, batch_size,
                                                                   max_tokens)
    return entry


def plot_results(results: dict, output: Path) -> Path:
    """Training tokens/s and characters/s, and generation characters/s, one bar per run."""
    runs = results["runs"]
    panels = [("train: tokens/s", {n: r["train_tokens_per_second"] for n, r in runs.items()}),
              ("train: characters/s",
               {n: r["train_characters_per_second"] for n, r in runs.items()})]
    panels += [(f"generate batch {b}: characters/s",
                {n: r[f"generate_batch_{b}"]["characters_per_second"] for n, r in runs.items()})
               for b in results["generation_batch_sizes"]]
    return bar_chart(output, "language models: the default beside the previous default",
                     panels, highlight="previous_default")


def _ratios(runs: dict) -> dict:
    """default / previous_default for each throughput (float32 runs)."""
    new, old = runs["default"], runs["previous_default"]
    ratios = {key: new[key] / old[key]
              for key in ("train_tokens_per_second", "train_characters_per_second")}
    for key in (k for k in new if k.startswith("generate_batch_")):
        ratios[f"{key}_characters_per_second"] = (new[key]["characters_per_second"]
                                                  / old[key]["characters_per_second"])
    return ratios


def run_lm_benchmark(
    pipeline: str | Path, output_dir: str | Path, *,
    previous: str | Path = "pipelines/tweets_lm_char.yaml", overrides=(), steps: int = 20,
    max_tokens: int = 64, batch_sizes=(1, 32), policies=POLICIES,
) -> dict:
    """Runs the benchmark and writes `bench_lm.json` + `bench_lm.png` under `output_dir`.

    Args:
        pipeline: the `task: language_model` pipeline measured as `default`.
        output_dir: where the JSON and PNG go.
        previous: the pipeline measured as `previous_default`.
        overrides: `--set` overrides, applied to both pipelines (e.g. `data.limit`).
        steps: timed training steps per run.
        max_tokens: tokens generated per timed generation call.
        batch_sizes: generation batch sizes.
        policies: precision policies; the first names the `default` and `previous_default`
            runs, the others add `<run>_<policy>` runs.

    Returns:
        The results written to `bench_lm.json`: `runs.<name>` and `ratios` (default over
        previous_default, first policy).

    Raises:
        ValueError: non-positive steps / max_tokens / batch sizes, or no policy.
    """
    from tfnlp.config import load_pipeline

    for key, value in (("steps", steps), ("max_tokens", max_tokens),
                       ("batch_sizes", min(batch_sizes, default=0))):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{key}` must be positive. Received: {key}={value!r}.")
    if not policies:
        raise ValueError("`policies` must name at least one precision policy.")
    configs = {"previous_default": load_pipeline(previous, list(overrides)),
               "default": load_pipeline(pipeline, list(overrides))}
    results = {
        "pipelines": {"default": str(pipeline), "previous_default": str(previous)},
        "overrides": list(overrides), "train_steps": steps, "max_tokens": max_tokens,
        "generation_batch_sizes": list(batch_sizes),
        "machine": {**machine_summary(), "platform": platform.platform(),
                    "tensorflow": tf.__version__,
                    "gpus": len(tf.config.list_physical_devices("GPU"))},
        "runs": {},
    }
    for index, policy in enumerate(policies):
        for name, config in configs.items():
            key = name if index == 0 else f"{name}_{policy}"
            results["runs"][key] = measure_pipeline(config, policy, steps=steps,
                                                    max_tokens=max_tokens,
                                                    batch_sizes=batch_sizes)
    results["ratios"] = _ratios(results["runs"])
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(output_dir / "bench_lm.json", results)
    plot_results(results, output_dir / "bench_lm.png")
    _print_table(results)
    print(f"wrote {output_dir / 'bench_lm.json'} and {output_dir / 'bench_lm.png'}")
    return results


def _print_table(results: dict) -> None:
    print(f"\n{'run':<34}{'measure':<20}{'tokens/s':>12}{'characters/s':>14}")
    for name, run in results["runs"].items():
        print(f"{name:<34}{'train':<20}{run['train_tokens_per_second']:>12.0f}"
              f"{run['train_characters_per_second']:>14.0f}")
        for key in (k for k in run if k.startswith("generate_batch_")):
            print(f"{name:<34}{key:<20}{run[key]['tokens_per_second']:>12.0f}"
                  f"{run[key]['characters_per_second']:>14.0f}")
    for key, ratio in results["ratios"].items():
        print(f"default / previous_default, {key}: {ratio:.2f}x")
