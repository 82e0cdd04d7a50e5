"""`model.init_from`: a warm start, after Model Garden's `init_checkpoint`.

After the model is built (and before `fit`), the layers of a finished run (its best
checkpoint) or of a checkpoint prefix are copied into it, matched by layer name:

* `model.init_layers` unset: every layer whose name and weight shapes match loads; the others
  keep their fresh initialisation and are reported as skipped (absent in the source) or
  mismatched (shapes).
* `model.init_layers: [name, "name=source_name", ...]`: only those, and each must load;
  anything else stops the run with why.

Layers indexed by token id (an `Embedding`'s rows, a language model's logits columns) follow
the vocabularies: equal vocabularies load as they are; different ones are mapped token by
token (rows of tokens in both are copied, the others keep their fresh values). A layer cannot
be mapped when the source's vocabulary is unknown (a checkpoint outside a run directory)
and the sizes differ, when the two vocabularies are for different tokenizers, or when they
share no token: named in `init_layers`, that refuses with both vocabulary files and the fix
(`preprocessing.vocabulary_from: <source run>`).

A classifier can start from a language model this way (ULMFiT): `lstm` classifiers and LSTM
language models name their layers alike (`embedding`, `lstm_0`, ...), and a transformer
classifier's `encoder_<i>` / `position_embedding` are looked up as the language model's
`block_<i>` / `positions` when absent under their own names.

A run that resumes from its backup is not warm-started: Keras restores the backup's weights
in `fit`, and they win; metrics.json then repeats the first attempt's report (from
`init_from.json`) with `resumed: true`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfnlp.backend import keras
from tfnlp.config.schema import PipelineConfig
from tfnlp.training.resume import checkpoint_problem, first_line
from tfnlp.training.run_directory import RunDirectory
from tfnlp.training.run_lock import locked
from tfnlp.training.trained import load_trained
from tfnlp.training.vocabulary_from import SourceVocabulary, read_source_vocabulary, tokenizer_kind

logger = logging.getLogger("tfnlp")

WARM_START_FILE = "init_from.json"
# `[PAD]`, `[UNK]`, `[EOS]`: every vocabulary has them, so they say nothing about overlap.
RESERVED = re.compile(r"\A\[[A-Z]+\]\Z")
# Where a language model names a layer a classifier shares with it differently.
SOURCE_ALIASES = ((re.compile(r"\Aencoder_(\d+)\Z"), r"block_\1"),
                  (re.compile(r"\Aposition_embedding\Z"), "positions"))


class WarmStartError(ValueError):
    """`model.init_from` cannot give what `model.init_layers` asks for (or cannot be read)."""


@dataclass(frozen=True)
class WarmStartSource:
    """What a warm start copies from.

    Attributes:
        init_from: `model.init_from` as given.
        checkpoint: the checkpoint read (a run directory's `checkpoints/best`).
        layers: each source layer's weights by layer name (layers with weights only).
        vocabulary: the vocabulary its token-indexed rows follow; None when unknown.
    """

    init_from: str
    checkpoint: Path
    layers: dict[str, list[np.ndarray]]
    vocabulary: SourceVocabulary | None


def layer_weights(model: keras.Model) -> dict[str, list[np.ndarray]]:
    """`{layer name: its weights}` of the model's top-level layers that have weights."""
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


def _run_directory_of(prefix: Path) -> Path | None:
    """The run directory a checkpoint prefix lies in (`<run>/checkpoints/<name>`), if any."""
    run = prefix.parent.parent
    return run if (run / "config.yaml").is_file() else None


def _checkpoint_exists(prefix: Path) -> bool:
    # A TensorFlow checkpoint is `<prefix>.index` + data files; an HDF5 one is the file itself.
    return Path(f"{prefix}.index").is_file() or prefix.is_file()


def _run_model(run_dir: Path, prefix: Path, own_dir: Path | None) -> keras.Model:
    """The source run's model with `prefix`'s weights, read under a reader's lock (not
    while another `tfnlp train` rewrites it; this run's own directory is locked already)."""
    reading = () if own_dir and run_dir.resolve() == Path(own_dir).resolve() else (run_dir,)
    with locked(command="train", reading=reading):
        trained = load_trained(run_dir)
        model = trained.task.trainable_model(trained.model)  # what its checkpoints hold
        if prefix != trained.directory.best_checkpoint:
            _load_checked(model, prefix)
    return model


def _load_checked(model: keras.Model, prefix: Path) -> None:
    """`load_weights`, every weight of `model` from the checkpoint, damage named."""
    problem = None if prefix.suffix == ".h5" else checkpoint_problem(prefix)
    if problem:
        raise WarmStartError(f"`model.init_from`: {prefix}: damaged ({problem}).")
    status = model.load_weights(str(prefix))
    if status is not None:  # HDF5 returns nothing (and checks as it loads)
        status.assert_existing_objects_matched()
        status.expect_partial()  # the optimizer's slots are not wanted


def read_source(init_from: str, template: Callable[[], keras.Model],
                own_dir: Path | None = None) -> WarmStartSource:
    """Reads `model.init_from`'s layers (outside any strategy scope).

    Args:
        init_from: a finished run directory or a checkpoint prefix (a prefix inside a run
            directory is read into that run's model; any other into `template()`).
        template: builds this pipeline's own (trained) model, for a checkpoint that no run
            directory describes.
        own_dir: this run's directory (already locked by it).

    Raises:
        FileNotFoundError: nothing to read at `init_from`.
        WarmStartError: a bare checkpoint that does not fit this pipeline's model.
    """
    path = Path(init_from)
    if path.is_dir():
        run_dir, prefix = path, RunDirectory(path).best_checkpoint
    else:
        prefix = Path(str(path).removesuffix(".index"))
        run_dir = _run_directory_of(prefix)
        if not _checkpoint_exists(prefix):
            raise FileNotFoundError(f"`model.init_from`: {init_from}: neither a run directory "
                                    "nor a checkpoint prefix (no .index file). Give a finished "
                                    "run directory, e.g. runs/tweets_lm.")
    if run_dir is not None:
        model = _run_model(run_dir, prefix, own_dir)
        return WarmStartSource(init_from, prefix, layer_weights(model),
                               read_source_vocabulary(run_dir))
    model = template()
    try:
        _load_checked(model, prefix)
    except (AssertionError, ValueError) as error:
        raise WarmStartError(
            f"`model.init_from`: {prefix} is in no run directory, so it is read into this "
            f"pipeline's own model, which it does not fit ({first_line(error)}). Give the run "
            "directory it came from instead (its config.yaml says which model it is).") from None
    return WarmStartSource(init_from, prefix, layer_weights(model), None)


@dataclass(frozen=True)
class VocabularyMap:
    """How this run's token ids find the source's.

    Attributes:
        rows: for each of this run's ids, the source id of the same token, or -1.
        equal: the two vocabularies are the same list.
        problem: why the rows cannot be mapped at all (None when they can).
    """

    rows: np.ndarray | None
    equal: bool
    problem: str | None = None

    @property
    def mapped(self) -> int:
        return int((self.rows >= 0).sum()) if self.rows is not None else 0


def vocabulary_map(source: SourceVocabulary | None, tokens: list[str],
                   tokenizer: str) -> VocabularyMap:
    """Maps `tokens` (this run's vocabulary, for `tokenizer`) onto the source's.

    Example:
        >>> source = SourceVocabulary(Path("vocab.txt"), ["[PAD]", "[UNK]", "a", "b"], "word")
        >>> vocabulary_map(source, ["[PAD]", "[UNK]", "b", "c"], "word").rows.tolist()
        [0, 1, 3, -1]
    """
    if source is None:
        return VocabularyMap(None, False, "the source's vocabulary is unknown (no run directory)")
    if source.tokens == tokens:
        return VocabularyMap(np.arange(len(tokens)), True)
    if source.tokenizer not in (None, tokenizer):
        return VocabularyMap(None, False, f"{source.file} is a {source.tokenizer} vocabulary, "
                                          f"this run's a {tokenizer} one")
    index = {token: row for row, token in enumerate(source.tokens)}
    rows = np.array([index.get(token, -1) for token in tokens])
    if not any(index.get(token, -1) >= 0 for token in tokens if not RESERVED.match(token)):
        return VocabularyMap(None, False, f"{source.file} shares no token with this run's")
    return VocabularyMap(rows, False)


def _token_axes(layer, size: int) -> list[int] | None:
    """The axis of each weight that is indexed by token id, or None for other layers."""
    if isinstance(layer, keras.layers.Embedding) and layer.input_dim == size:
        return [0]
    if isinstance(layer, keras.layers.Dense) and layer.units == size:
        return [1, 0]  # kernel columns, bias entries: a language model's logits
    return None


def _shapes(weights) -> str:
    return "[" + ", ".join(str(tuple(np.shape(w))) for w in weights) + "]"


@dataclass(frozen=True)
class LayerResult:
    """One layer's outcome: "loaded" (with `values`) or "mismatched", and why.

    Attributes:
        tokens: the outcome turned on the vocabularies (the refusal then names them).
    """

    status: str
    detail: str = ""
    values: list[np.ndarray] | None = None
    tokens: bool = False


def _as_they_are(weights, current, note: str = "") -> LayerResult:
    if _shapes(weights) != _shapes(current):
        return LayerResult("mismatched", f"{_shapes(weights)} there, {_shapes(current)} here")
    return LayerResult("loaded", note, weights)


def _same_but_token_axis(weights, current, axes, source_size: int) -> bool:
    return len(weights) == len(current) and all(
        np.shape(w)[a] == source_size
        and np.delete(np.shape(w), a).tolist() == np.delete(np.shape(c), a).tolist()
        for w, c, a in zip(weights, current, axes))


def _mapped(weights, current, axes, rows: np.ndarray) -> list[np.ndarray]:
    """`current` with the entries of tokens the source has replaced by the source's."""
    found = rows >= 0
    values = []
    for w, c, axis in zip(weights, current, axes):
        mapped = np.array(c, copy=True)
        index = [slice(None)] * mapped.ndim
        index[axis] = found
        mapped[tuple(index)] = np.take(w, rows[found], axis=axis)
        values.append(mapped)
    return values


def match_layer(layer, weights: list[np.ndarray], vocabulary: VocabularyMap,
                source_size: int | None, size: int) -> LayerResult:
    """What `layer` (of this run, `size` tokens) gets from a source layer's `weights`
    (`source_size` tokens; None when the source's vocabulary is unknown)."""
    current = layer.get_weights()
    axes = _token_axes(layer, size)
    if axes is None or vocabulary.equal:
        return _as_they_are(weights, current)
    if source_size is None and _shapes(weights) == _shapes(current):
        # A bare checkpoint of this very pipeline (Model Garden's init_checkpoint case).
        return LayerResult("loaded", "source vocabulary unknown: rows taken as this run's ids",
                           weights)
    if vocabulary.problem:
        return LayerResult("mismatched", f"token rows cannot be mapped: {vocabulary.problem}",
                           tokens=True)
    if not _same_but_token_axis(weights, current, axes, source_size):
        return _as_they_are(weights, current)  # other widths: mismatched, whatever the tokens
    return LayerResult("loaded", f"vocabulary mapped: {vocabulary.mapped} of {size} tokens",
                       _mapped(weights, current, axes, vocabulary.rows))


def _plan(model: keras.Model, source: WarmStartSource,
          init_layers: list[str] | None) -> list[tuple[keras.layers.Layer, str | None, bool]]:
    """(this run's layer, the source layer it loads from or None, named explicitly)."""
    layers = {layer.name: layer for layer in model.layers if layer.weights}
    if init_layers is None:
        return [(layer, _source_name(name, source), False) for name, layer in layers.items()]
    wanted = dict(entry.split("=") if "=" in entry else (entry, _source_name(entry, source))
                  for entry in init_layers)
    unknown = [name for name in wanted if name not in layers]
    if unknown:
        raise WarmStartError(
            f"`model.init_layers` names {unknown[0]!r}, which is not a layer with weights of "
            f"this model (those are: {', '.join(layers)}).")
    return [(layer, wanted.get(name), name in wanted) for name, layer in layers.items()]


def _source_name(name: str, source: WarmStartSource) -> str:
    if name in source.layers:
        return name
    for pattern, replacement in SOURCE_ALIASES:
        alias = pattern.sub(replacement, name)
        if alias != name and alias in source.layers:
            return alias
    return name


def _refuse(name: str, result: LayerResult, source: WarmStartSource, tokenizer: str,
            vocabulary_file: Path) -> WarmStartError:
    fix = "drop it from `model.init_layers`, or give a source whose layer fits"
    if result.tokens:
        theirs = source.vocabulary.file if source.vocabulary else source.checkpoint
        kind = source.vocabulary.tokenizer if source.vocabulary else None
        retokenize = (f"tokenize with {kind} as the source does, and " if kind not in (
            None, tokenizer) else "")
        fix = (f"the vocabularies {theirs} and {vocabulary_file} differ; {retokenize}set "
               f"`preprocessing.vocabulary_from: {source.init_from}` to reuse the source's "
               "vocabulary (its rows then load as they are), or drop it from "
               "`model.init_layers`")
    return WarmStartError(f"`model.init_layers` names {name!r}, which cannot load from "
                          f"{source.checkpoint}: {result.detail}. Fix: {fix}.")


def warm_start(model: keras.Model, source: WarmStartSource, init_layers: list[str] | None,
               tokens: list[str], tokenizer: str, vocabulary_file: Path) -> dict:
    """Copies the source's matching layers into `model` and reports each layer.

    Args:
        model: this run's model (what `fit` trains), weights created.
        source: from `read_source`.
        init_layers: `model.init_layers` (None: every matching layer).
        tokens: this run's vocabulary; `tokenizer` its kind; `vocabulary_file` its path.

    Returns:
        `{source, checkpoint, loaded: {layer: source layer}, skipped: {layer: why},
        mismatched: {layer: why}, vocabulary: {...}}` (metrics.json's `init_from`).

    Raises:
        WarmStartError: a layer named in `init_layers` cannot load (absent, other shapes, or
            token rows that cannot be mapped); nothing is assigned then.
    """
    vocabulary = vocabulary_map(source.vocabulary, tokens, tokenizer)
    source_size = len(source.vocabulary.tokens) if source.vocabulary else None
    report = {"source": source.init_from, "checkpoint": str(source.checkpoint), "loaded": {},
              "skipped": {}, "mismatched": {}}
    assignments = []
    for layer, source_name, explicit in _plan(model, source, init_layers):
        if source_name is None:
            report["skipped"][layer.name] = "not in model.init_layers"
            continue
        if source_name not in source.layers:
            if explicit:
                absent = LayerResult("mismatched", f"it has no layer {source_name!r} (its "
                                     f"layers: {', '.join(source.layers)})")
                raise _refuse(layer.name, absent, source, tokenizer, vocabulary_file)
            report["skipped"][layer.name] = "absent in the source"
            continue
        result = match_layer(layer, source.layers[source_name], vocabulary, source_size,
                             len(tokens))
        if result.status == "mismatched":
            if explicit:
                raise _refuse(layer.name, result, source, tokenizer, vocabulary_file)
            report["mismatched"][layer.name] = result.detail
            continue
        report["loaded"][layer.name] = source_name
        assignments.append((layer, result))
    for layer, result in assignments:  # only once every named layer is known to load
        layer.set_weights(result.values)
    report["vocabulary"] = {
        "source": str(source.vocabulary.file) if source.vocabulary else None,
        "this": str(vocabulary_file), "equal": vocabulary.equal,
        "mapped_tokens": vocabulary.mapped if vocabulary.rows is not None else None,
        "tokens": len(tokens)}
    log_report(report, {layer.name: result.detail for layer, result in assignments})
    if source.vocabulary and not vocabulary.equal:
        logger.info("warm start: %s and %s differ; `preprocessing.vocabulary_from: %s` would "
                    "reuse the source's vocabulary, so that every row loads as it is",
                    source.vocabulary.file, vocabulary_file, source.init_from)
    return report


def log_report(report: dict, notes: dict[str, str]) -> None:
    """One line per layer, then the counts."""
    logger.info("warm start: %s (model.init_from: %s)", report["checkpoint"], report["source"])
    rows = [(name, f"loaded <- {source}" if source != name else "loaded", notes.get(name, ""))
            for name, source in report["loaded"].items()]
    rows += [(name, kind, why) for kind in ("mismatched", "skipped")
             for name, why in report[kind].items()]
    width = max((len(name) for name, _, _ in rows), default=0)
    for name, status, detail in rows:
        logger.info("%s", f"warm start:   {name:<{width}}  {status:<10}  {detail}".rstrip())
    logger.info("warm start: %d layers loaded, %d mismatched, %d skipped",
                len(report["loaded"]), len(report["mismatched"]), len(report["skipped"]))
    if report["mismatched"]:
        logger.warning("warm start: mismatched layers keep their fresh initialisation: %s",
                       ", ".join(report["mismatched"]))


def warm_start_run(config: PipelineConfig, model: keras.Model, run: RunDirectory, *,
                   assign_scope, template: Callable[[], keras.Model],
                   own_dir: Path | None = None) -> dict:
    """`model.init_from` for a fresh run: reads the source (outside `assign_scope`), loads it
    into `model` inside `assign_scope()` (the strategy's), writes `init_from.json`.

    Returns:
        The report (see `warm_start`).
    """
    source = read_source(config.model.init_from, template, own_dir)
    with assign_scope():
        report = warm_start(model, source, config.model.init_layers, run.read_vocabulary(),
                            tokenizer_kind(config), run.vocabulary_file)
    run.write_json(WARM_START_FILE, report)
    return report


def resumed_warm_start(run: RunDirectory, backup_dir: Path) -> dict:
    """What a resumed run reports: the first attempt's warm start, marked `resumed`; the
    backup's weights, which Keras restores in `fit`, replace it."""
    logger.info("warm start: not applied: resuming from the backup in %s, whose weights win "
                "over `model.init_from`", backup_dir)
    first = run.read_json(WARM_START_FILE) if (run.path / WARM_START_FILE).is_file() else {}
    return {**first, "resumed": True}
