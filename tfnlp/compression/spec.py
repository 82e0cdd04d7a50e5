"""The preprocessing spec beside each `.tflite`: what turns raw text into the ids it takes.

A `.tflite` takes int32 token ids (tensorflow-text ops are not TFLite builtins, see `tflite`),
so `tfnlp compress` writes `vocab.txt` and `preprocessing.json` next to every model file, and
`TFLitePredictor` rebuilds the very `TextPreprocessor` the model was trained with from them.
`TFLiteSpec` is the one definition of that format, for the writer and the reader.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tfnlp import atomic

SPEC_FILE = "preprocessing.json"
VOCABULARY_FILE = "vocab.txt"
FORMAT = "tfnlp-tflite-1"
# The `TextPreprocessor` arguments that decide the ids (its vocabulary is a file of its own).
PREPROCESSOR_OPTIONS = (
    "tokenizer",
    "sequence_length",
    "lowercase",
    "replace_urls",
    "replace_mentions",
    "replace_numbers",
    "stopwords",
)


@dataclass(frozen=True)
class TFLiteSpec:
    """How to feed one `.tflite` classifier: its vocabulary, preprocessing and label names.

    Attributes:
        vocabulary: the tokens, in id order (written to `vocab.txt`).
        preprocessor: the `TextPreprocessor` options in `PREPROCESSOR_OPTIONS`.
        labels: the label names, in the order of the model's logits.

    Example:

    >>> import tempfile
    >>> spec = TFLiteSpec(["", "[UNK]", "good"], {"sequence_length": 8}, ["neg", "pos"])
    >>> directory = tempfile.mkdtemp()
    >>> _ = spec.write(directory)
    >>> TFLiteSpec.read(directory) == spec
    True
    """

    vocabulary: list[str]
    preprocessor: dict
    labels: list[str]

    @classmethod
    def of(cls, preprocessor, labels: list[str]) -> TFLiteSpec:
        """The spec of a trained `TextPreprocessor` and the run's labels."""
        config = preprocessor.get_config()
        options = {key: value for key, value in config.items() if key in PREPROCESSOR_OPTIONS}
        return cls(list(preprocessor.vocabulary), options, list(labels))

    @property
    def sequence_length(self) -> int:
        return self.preprocessor["sequence_length"]

    def to_json(self) -> dict:
        """The `preprocessing.json` content (format `tfnlp-tflite-1`)."""
        return {
            "format": FORMAT,
            "input": {
                "name": "token_ids",
                "dtype": "int32",
                "padding_id": 0,
                "shape": ["batch", self.sequence_length],
            },
            "output": "logits",
            "vocabulary_file": VOCABULARY_FILE,
            "preprocessor": dict(self.preprocessor),
            "labels": list(self.labels),
        }

    def write(self, directory: str | Path) -> Path:
        """Writes `vocab.txt` and `preprocessing.json` into `directory`.

        Returns:
            The path of `preprocessing.json`.
        """
        directory = Path(directory)
        atomic.write_text(directory / VOCABULARY_FILE, "\n".join(self.vocabulary) + "\n")
        return atomic.write_text(directory / SPEC_FILE, json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def read(cls, directory: str | Path) -> TFLiteSpec:
        """Reads the spec that `write` (or any earlier `tfnlp compress`) left in `directory`.

        Raises:
            FileNotFoundError: `preprocessing.json` or its vocabulary file is missing.
            ValueError: the file is not in the `tfnlp-tflite-1` format.
        """
        spec_file = Path(directory) / SPEC_FILE
        _require(spec_file)
        spec = json.loads(spec_file.read_text(encoding="utf-8"))
        if spec.get("format") != FORMAT:
            raise ValueError(
                f"{spec_file}: `format` must be {FORMAT!r}. Received: format="
                f"{spec.get('format')!r}. Convert the model again with `tfnlp compress`."
            )
        vocabulary_file = spec_file.parent / spec["vocabulary_file"]
        _require(vocabulary_file)
        # The inverse of `write`: one token per line (split("\n"), as tokens may hold "\r").
        vocabulary = vocabulary_file.read_text(encoding="utf-8").split("\n")[:-1]
        return cls(vocabulary, dict(spec["preprocessor"]), list(spec["labels"]))

    def text_preprocessor(self):
        """The `TextPreprocessor` that maps raw strings to this model's token ids."""
        from tfnlp.preprocessing.layer import TextPreprocessor

        return TextPreprocessor(self.vocabulary, **self.preprocessor)


def _require(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing; a .tflite needs the {SPEC_FILE} and {VOCABULARY_FILE} that "
            "`tfnlp compress` writes beside it."
        )
