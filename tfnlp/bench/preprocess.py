"""`tfnlp bench preprocess`: text → token throughput, in MB of raw UTF-8 per second.

Four contenders on the same texts (the tweets, repeated to ~16 MB):

- tfnlp: the full in-graph `TextPreprocessor` (normalisation, regex cleaning, pre-tokenization,
  WordPiece, padding) in a parallel `tf.data` map over batches;
- nltk: the classic Python recipe, `TweetTokenizer` after a `clean_text` (lower-case, `re.sub`
  digits, `str.translate` punctuation) and a stop-word filter;
- fast_wordpiece_only: the layer's FastWordpiece alone on the words the layer split the texts
  into beforehand, the ceiling the full layer is measured against (`tfnlp / fast_wordpiece_only`);
- hf_tokenizers: Hugging Face `tokenizers` WordPiece with the same vocabulary (`encode_batch`).

Then each pass of the layer is timed on its own (`passes_one_thread_seconds`), which shows
where the layer's time goes. Writes `bench_preprocess.json` and `bench_preprocess.png` in the
output directory.
"""

from __future__ import annotations

import logging
import re
import string
import time
from pathlib import Path

from tfnlp.atomic import write_json
from tfnlp.backend import keras, tf
from tfnlp.bench.measure import bar_chart, machine_summary
from tfnlp.config.schema import DataConfig, PreprocessingConfig
from tfnlp.data import load_examples
from tfnlp.preprocessing import TextPreprocessor
from tfnlp.preprocessing.pretokenization import splitting_steps
from tfnlp.preprocessing.vocabulary import UNK_TOKEN

logger = logging.getLogger("tfnlp")
TARGET_MB_PER_SECOND = 15.0
# nltk's English list, for machines without the corpus (it cannot be downloaded here).
_FALLBACK_STOPWORDS = (
    "i me my myself we our ours ourselves you your yours yourself yourselves he him his "
    "himself she her hers herself it its itself they them their theirs themselves what which "
    "who whom this that these those am is are was were be been being have has had having do "
    "does did doing a an the and but if or because as until while of at by for with about "
    "against between into through during before after above below to from up down in out on "
    "off over under again further then once here there when where why how all any both each "
    "few more most other some such no nor not only own same so than too very s t can will "
    "just don should now"
)
FALLBACK_STOPWORDS = frozenset(_FALLBACK_STOPWORDS.split())
_DIGITS = re.compile(r"\d+")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def english_stopwords() -> tuple[frozenset[str], str]:
    """nltk's English stop words, or the built-in copy when the corpus is missing.

    Returns:
        (the words, where they came from).
    """
    try:
        from nltk.corpus import stopwords

        return frozenset(stopwords.words("english")), "nltk corpus"
    except LookupError:
        return FALLBACK_STOPWORDS, "built-in copy (nltk stopwords corpus not installed)"


def bench_texts(repeat: int = 4, limit: int | None = None) -> list[str]:
    """The tweets (or a seeded subset of `limit`), `repeat` times over."""
    examples, _, _ = load_examples(DataConfig(limit=limit), seed=42)
    return list(examples.texts) * repeat


def _megabytes(texts: list[str]) -> float:
    return sum(len(text.encode("utf-8")) for text in texts) / 1e6


def time_tfnlp(texts: list[str], layer: TextPreprocessor, batch_size: int = 1024) -> dict:
    """The in-graph layer over a `tf.data` map of batches, consumed to the end."""
    dataset = (
        tf.data.Dataset.from_tensor_slices(tf.constant(texts, dtype=tf.string))
        .batch(batch_size)
        .map(layer, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    for _ in dataset.take(2):  # traces the map function
        pass
    start = time.perf_counter()
    tokens = sum(int(tf.math.count_nonzero(ids)) for ids in dataset)
    return {"seconds": time.perf_counter() - start, "tokens": tokens}


def time_fast_wordpiece_only(texts: list[str], layer: TextPreprocessor,
                             batch_size: int = 1024) -> dict:
    """The layer's FastWordpiece alone, on the words the layer split the texts into (the
    splitting is not timed): the tokenizer's own limit, the layer's ceiling."""
    batches = [layer.split_words(tf.constant(texts[i : i + batch_size]))
               for i in range(0, len(texts), batch_size)]
    # Sliced into the same batches as they are, not re-batched row by row (which costs more
    # than the tokenizer).
    by_batch = tf.RaggedTensor.from_row_lengths(
        tf.concat(batches, axis=0), [int(batch.nrows()) for batch in batches])
    dataset = (
        tf.data.Dataset.from_tensor_slices(by_batch)
        .map(layer.wordpiece_ids, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    for _ in dataset.take(2):  # traces the map function
        pass
    start = time.perf_counter()
    tokens = sum(int(tf.size(ids.flat_values)) for ids in dataset)
    return {"seconds": time.perf_counter() - start, "tokens": tokens}


def time_passes(texts: list[str], layer: TextPreprocessor, batch_size: int = 16384) -> dict:
    """Seconds each of the layer's passes takes over all the texts, one after another on one
    thread (each pass's input is the pass before's output): where the layer's time goes.
    Large batches, so that the cost of calling a function does not hide the work."""
    steps = (layer.normalization_steps(collapse_whitespace=False) + splitting_steps()
             + [("wordpiece", layer.wordpiece_ids)])
    values = [tf.constant(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
    seconds = {}
    for name, step in steps:
        step = tf.function(step)
        step(values[0])  # traces it
        start = time.perf_counter()
        values = [step(value) for value in values]
        seconds[name] = time.perf_counter() - start
    return seconds


def time_nltk(texts: list[str]) -> dict:
    """`TweetTokenizer` after the classic Python `clean_text`, stop words filtered."""
    from nltk.tokenize import TweetTokenizer

    tokenizer = TweetTokenizer(preserve_case=False)
    stopwords, source = english_stopwords()

    def clean_text(text: str) -> str:
        return _DIGITS.sub(" ", text.lower()).translate(_PUNCTUATION)

    start = time.perf_counter()
    tokens = sum(
        sum(1 for token in tokenizer.tokenize(clean_text(text)) if token not in stopwords)
        for text in texts
    )
    return {"seconds": time.perf_counter() - start, "tokens": tokens, "stopwords": source}


def time_hf_tokenizers(texts: list[str], vocabulary: list[str], batch_size: int = 1024) -> dict:
    """Hugging Face WordPiece (BERT normaliser + pre-tokenizer) with the same vocabulary."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    tokenizer = Tokenizer(models.WordPiece(
        {token: i for i, token in enumerate(vocabulary)}, unk_token=UNK_TOKEN))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    start = time.perf_counter()
    tokens = sum(
        len(encoding.ids)
        for i in range(0, len(texts), batch_size)
        for encoding in tokenizer.encode_batch(texts[i : i + batch_size])
    )
    return {"seconds": time.perf_counter() - start, "tokens": tokens}


def bench_preprocess(out_dir: str | Path, *, repeat: int = 4, limit: int | None = None) -> dict:
    """Times the three contenders and writes `bench_preprocess.json` + `bench_preprocess.png`.

    Args:
        out_dir: where the JSON and PNG go.
        repeat: how many times the texts are repeated (4 × the tweets ≈ 16 MB).
        limit: use a seeded subset of this many tweets (quick runs).

    Returns:
        The JSON written.
    """
    texts = bench_texts(repeat, limit)
    megabytes = _megabytes(texts)
    options = PreprocessingConfig()
    # The vocabulary is learned once from the distinct texts; learning is not timed.
    layer = TextPreprocessor.from_texts(
        texts[: len(texts) // repeat], vocab_size=options.vocab_size,
        sequence_length=options.sequence_length,
    )
    contenders = {
        "tfnlp": lambda: time_tfnlp(texts, layer),
        "fast_wordpiece_only": lambda: time_fast_wordpiece_only(texts, layer),
        "nltk": lambda: time_nltk(texts),
        "hf_tokenizers": lambda: time_hf_tokenizers(texts, layer.vocabulary),
    }
    runs = {}
    progress = keras.utils.Progbar(len(contenders), stateful_metrics=["run"], unit_name="run")
    for index, (name, run) in enumerate(contenders.items()):
        figures = run()
        figures["mb_per_second"] = megabytes / figures["seconds"]
        figures["tokens_per_second"] = figures["tokens"] / figures["seconds"]
        runs[name] = figures
        progress.update(index + 1)
    passes = time_passes(texts, layer)
    tfnlp_speed = runs["tfnlp"]["mb_per_second"]
    report = {
        "texts": len(texts),
        "megabytes": megabytes,
        "repeat": repeat,
        "limit": limit,
        "machine": machine_summary(),
        "runs": runs,
        "ratios": {f"tfnlp / {name}": tfnlp_speed / r["mb_per_second"]
                   for name, r in runs.items() if name != "tfnlp"},
        "target_tfnlp_mb_per_second": TARGET_MB_PER_SECOND,
        "passes_one_thread_seconds": passes,
    }
    out = Path(out_dir)
    write_json(out / "bench_preprocess.json", report)
    bar_chart(out / "bench_preprocess.png", f"tfnlp bench preprocess: {megabytes:.1f} MB", [
        ("MB of raw text / s", {n: r["mb_per_second"] for n, r in runs.items()}),
        ("seconds per pass of the layer (one thread)", passes),
    ], highlight="fast_wordpiece_only")
    return report


def summary_lines(report: dict) -> list[str]:
    """A table for the terminal: MB/s per contender, then tfnlp's ratio to each."""
    lines = [f"{report['megabytes']:.1f} MB of text, {report['texts']} texts"]
    lines += [f"{name:<20}{r['mb_per_second']:>8.2f} MB/s  {r['tokens_per_second']:>12.0f} tokens/s"
              for name, r in report["runs"].items()]
    lines += [f"{key}: {value:.2f}x" for key, value in report["ratios"].items()]
    passes = report["passes_one_thread_seconds"]
    total = sum(passes.values())
    lines.append("the layer's passes on one thread: " + ", ".join(
        f"{name} {100 * seconds / total:.0f}%" for name, seconds in passes.items()))
    lines.append(f"target: tfnlp >= {report['target_tfnlp_mb_per_second']} MB/s")
    return lines
