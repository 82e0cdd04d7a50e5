"""`TFLiteSpec`: the one format of the `preprocessing.json` + `vocab.txt` beside a .tflite."""

import json

import pytest

from tfnlp.compression.spec import SPEC_FILE, TFLiteSpec

OPTIONS = {
    "tokenizer": "word",
    "sequence_length": 32,
    "lowercase": True,
    "replace_urls": True,
    "replace_mentions": True,
    "replace_numbers": False,
    "stopwords": None,
}
# What `tfnlp compress` wrote before `TFLiteSpec` existed: such artifacts must still load.
EARLIER_SPEC = {
    "format": "tfnlp-tflite-1",
    "input": {"name": "token_ids", "dtype": "int32", "padding_id": 0, "shape": ["batch", 32]},
    "output": "logits",
    "vocabulary_file": "vocab.txt",
    "preprocessor": OPTIONS,
    "labels": ["negative", "neutral", "positive"],
}


class _Preprocessor:
    """The two things `TFLiteSpec.of` reads from a `TextPreprocessor`."""

    vocabulary = ["", "[UNK]", "good", "day"]

    def get_config(self):
        return {**OPTIONS, "name": "text_preprocessor", "vocabulary": None, "trainable": False}


def test_written_spec_has_the_published_fields_and_reads_back(tmp_path):
    spec = TFLiteSpec.of(_Preprocessor(), EARLIER_SPEC["labels"])
    assert spec.write(tmp_path) == tmp_path / SPEC_FILE
    assert json.loads((tmp_path / SPEC_FILE).read_text()) == EARLIER_SPEC
    assert (tmp_path / "vocab.txt").read_text() == "\n[UNK]\ngood\nday\n"
    assert TFLiteSpec.read(tmp_path) == spec
    assert spec.sequence_length == 32


def test_an_earlier_artifact_still_reads(tmp_path):
    (tmp_path / SPEC_FILE).write_text(json.dumps(EARLIER_SPEC, indent=2) + "\n")
    (tmp_path / "vocab.txt").write_text("\n[UNK]\ngood\n")
    spec = TFLiteSpec.read(tmp_path)
    assert spec.vocabulary == ["", "[UNK]", "good"]
    assert spec.preprocessor == OPTIONS and spec.labels == EARLIER_SPEC["labels"]


def test_other_formats_and_missing_files_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match=SPEC_FILE):
        TFLiteSpec.read(tmp_path)
    (tmp_path / SPEC_FILE).write_text(json.dumps(EARLIER_SPEC))
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        TFLiteSpec.read(tmp_path)
    (tmp_path / SPEC_FILE).write_text(json.dumps({**EARLIER_SPEC, "format": "other-2"}))
    with pytest.raises(ValueError, match=r"Received: format='other-2'"):
        TFLiteSpec.read(tmp_path)
