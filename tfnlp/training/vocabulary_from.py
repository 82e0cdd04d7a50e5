"""`preprocessing.vocabulary_from`: this run's vocabulary taken from another run, not learned.

A warm start (`tfnlp.training.warm_start`) loads embedding rows as they are only when both
runs number their tokens alike; reusing the source run's vocab.txt gives exactly that (and
skips learning a vocabulary). The tokenizer kinds must agree: a character vocabulary read by
a WordPiece tokenizer would run, and mean nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tfnlp.config.schema import PipelineConfig
from tfnlp.training.run_directory import RunDirectory

VOCABULARY_FILE = "vocab.txt"


def tokenizer_kind(config: PipelineConfig) -> str:
    """The tokenizer a pipeline's vocabulary is for: "word", "wordpiece" or "character".

    Example:
        >>> tokenizer_kind(PipelineConfig(name="demo"))
        'wordpiece'
    """
    if config.task == "language_model":
        return config.language_model.tokenizer
    return config.preprocessing.tokenizer


@dataclass(frozen=True)
class SourceVocabulary:
    """A vocabulary read from another run (or a bare vocab.txt).

    Attributes:
        file: the vocab.txt it came from.
        tokens: the tokens in id order.
        tokenizer: the kind of tokenizer it was learned for; None when the file is not in a
            run directory (nothing says).
    """

    file: Path
    tokens: list[str]
    tokenizer: str | None


def read_source_vocabulary(path: str | Path) -> SourceVocabulary | None:
    """The vocabulary of a run directory, or of a vocab.txt file; None when there is none.

    Example:
        >>> read_source_vocabulary("/no/such/run") is None
        True
    """
    path = Path(path)
    file = path / VOCABULARY_FILE if path.is_dir() else path
    if not file.is_file():
        return None
    run = RunDirectory(file.parent)
    tokenizer = tokenizer_kind(run.read_config()) if run.config_file.is_file() else None
    return SourceVocabulary(file, file.read_text(encoding="utf-8").split("\n")[:-1], tokenizer)


def borrowed_vocabulary(config: PipelineConfig) -> SourceVocabulary | None:
    """`preprocessing.vocabulary_from`'s vocabulary, checked for this pipeline's tokenizer;
    None when the option is unset.

    Raises:
        FileNotFoundError: no vocab.txt where the option points.
        ValueError: the vocabulary was learned for another kind of tokenizer.
    """
    source = config.preprocessing.vocabulary_from
    if source is None:
        return None
    vocabulary = read_source_vocabulary(source)
    if vocabulary is None:
        raise FileNotFoundError(
            f"`preprocessing.vocabulary_from`: {source}: no {VOCABULARY_FILE} there. Give a "
            "finished run directory or a vocab.txt file.")
    kind = tokenizer_kind(config)
    if vocabulary.tokenizer not in (None, kind):
        key = ("language_model.tokenizer" if config.task == "language_model"
               else "preprocessing.tokenizer")
        raise ValueError(
            f"`preprocessing.vocabulary_from`: {vocabulary.file} is a {vocabulary.tokenizer} "
            f"vocabulary and this pipeline tokenizes with {kind}. Set `{key}: "
            f"{vocabulary.tokenizer}`, or learn this run's own vocabulary (unset the option).")
    return vocabulary


def preprocessor_with(task, vocabulary: SourceVocabulary):
    """The task's preprocessing layer over a borrowed vocabulary.

    Raises:
        ValueError: the vocabulary lacks the task's reserved tokens (e.g. a language model's
            `[EOS]`), naming the file.
    """
    try:
        return task.preprocessor_from(vocabulary.tokens)
    except ValueError as error:
        raise ValueError(f"`preprocessing.vocabulary_from`: {vocabulary.file} does not fit "
                         f"`task: {task.config.task}`: {error}") from None
