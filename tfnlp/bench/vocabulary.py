"""`tfnlp bench vocabulary`: WordPiece vocabulary learning, every learner side by side:
tensorflow-text's (walked in few probes by `wordpiece_search`), the same library's own full
binary search (what tfnlp ran before), and Hugging Face's.

The pipeline's training split (the tweets by default), 1× and N× over: the words are counted
once per size in TensorFlow (the same pass every run makes), then each learner learns the
pipeline's `vocab_size` from the same counts. Repeating the texts multiplies the counts, not
the distinct words, so it shows what grows with the text and what is fixed cost.
"""

from __future__ import annotations

import time
from pathlib import Path

from tfnlp.atomic import write_json
from tfnlp.bench.measure import bar_chart, machine_summary
from tfnlp.config.schema import PipelineConfig
from tfnlp.preprocessing import RESERVED_TOKENS, TextPreprocessor, count_words, learn_vocabulary
from tfnlp.preprocessing.vocabulary import LEARNERS, MAX_UNIQUE_CHARACTERS
from tfnlp.tasks.classification import ClassificationTask


def _learner_available(learner: str) -> bool:
    if learner != "huggingface":
        return True
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        return False
    return True


# tensorflow-text's own `learn` (its full binary search), the "before" of `wordpiece_search`.
LIBRARY_SEARCH = "tensorflow_text_library_search"
BENCH_LEARNERS = (*LEARNERS, LIBRARY_SEARCH)


def _learn(learner: str, counts, vocab_size: int) -> list[str]:
    if learner != LIBRARY_SEARCH:
        return learn_vocabulary(counts, tokenizer="wordpiece", learner=learner,
                                vocab_size=vocab_size)
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as lib

    return list(lib.learn(list(counts.items()), vocab_size=vocab_size,
                          reserved_tokens=RESERVED_TOKENS, lower_thresh=2,
                          max_unique_chars=MAX_UNIQUE_CHARACTERS))


def bench_vocabulary(config: PipelineConfig, out_dir: str | Path, *,
                     repeats: tuple[int, ...] = (1, 4)) -> dict:
    """Times counting and each learner on 1× and N× the training split; JSON + PNG.

    Args:
        config: the pipeline whose data and `preprocessing:` section are used.
        out_dir: where `bench_vocabulary.json` and `bench_vocabulary.png` go.
        repeats: how many times over the training texts each size is.

    Returns:
        The report written to `bench_vocabulary.json`.
    """
    task = ClassificationTask(config)
    texts = task.read_data().splits.train.texts
    probe = TextPreprocessor(RESERVED_TOKENS, **task.preprocessor_options())
    runs = {}
    for repeat in repeats:
        start = time.perf_counter()
        counts = count_words(list(texts) * repeat, probe.split_words)
        count_seconds = time.perf_counter() - start
        learned = {}
        for learner in (name for name in BENCH_LEARNERS if _learner_available(name)):
            print(f"learning {config.preprocessing.vocab_size} pieces with {learner} on "
                  f"{repeat}x the training texts", flush=True)
            start = time.perf_counter()
            learned[learner] = _learn(learner, counts, config.preprocessing.vocab_size)
            runs[f"{learner}_{repeat}x"] = {
                "learner": learner, "repeat": repeat, "texts": len(texts) * repeat,
                "distinct_words": len(counts), "count_seconds": round(count_seconds, 3),
                "learn_seconds": round(time.perf_counter() - start, 3),
                "vocabulary_size": len(learned[learner]),
            }
        # The walk must give the library's own search's vocabulary, token for token.
        runs[f"tensorflow_text_{repeat}x"]["identical_to_library_search"] = (
            learned["tensorflow_text"] == learned[LIBRARY_SEARCH])
    report = {"pipeline": config.name, "vocab_size": config.preprocessing.vocab_size,
              "runs": runs, "machine": machine_summary()}
    out = Path(out_dir)
    write_json(out / "bench_vocabulary.json", report)
    bar_chart(out / "bench_vocabulary.png", f"{config.name}: WordPiece vocabulary learning",
              [("seconds (learning)", {k: r["learn_seconds"] for k, r in runs.items()}),
               ("seconds (counting words)", {k: r["count_seconds"] for k, r in runs.items()})])
    return report


def summary_lines(report: dict) -> list[str]:
    """One line per run: learner, size, seconds, and the ratio to the 1× run of its learner."""
    smallest = min(run["repeat"] for run in report["runs"].values())
    lines = [f"{'run':<22}{'texts':>9}{'count s':>9}{'learn s':>10}{f'x {smallest}x':>10}"]
    for name, run in report["runs"].items():
        first = report["runs"][f"{run['learner']}_{smallest}x"]
        ratio = run["learn_seconds"] / max(first["learn_seconds"], 1e-9)
        lines.append(f"{name:<22}{run['texts']:>9,d}{run['count_seconds']:>9.2f}"
                     f"{run['learn_seconds']:>10.2f}{ratio:>10.2f}")
    return lines
