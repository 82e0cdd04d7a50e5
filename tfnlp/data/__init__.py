"""Reading, validating and splitting labelled text; tf.data pipelines."""

from tfnlp.data.builtin import BUILTIN_DATASETS, builtin_dataset_path
from tfnlp.data.loading import load_examples
from tfnlp.data.pipeline import build_dataset, encode_labels
from tfnlp.data.readers import decode_leniently, read_texts
from tfnlp.data.records import DataError, LabelledTexts, LoadReport
from tfnlp.data.splits import Splits, split_examples

__all__ = [
    "BUILTIN_DATASETS",
    "DataError",
    "LabelledTexts",
    "LoadReport",
    "Splits",
    "build_dataset",
    "builtin_dataset_path",
    "decode_leniently",
    "encode_labels",
    "load_examples",
    "read_texts",
    "split_examples",
]
