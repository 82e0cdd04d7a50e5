"""Reference outputs recorded at export: what the training-time model said for check texts.

`assets.extra/tfnlp_reference.json` holds what the Keras model (the one that was trained and
evaluated) answered for `CHECK_TEXTS` — a classifier's probabilities, a language model's
next-token probabilities and seeded generations; `tfnlp serve-check` compares a fresh
process's answers from the SavedModel against them. TF-Serving ignores files in `assets.extra` other
than its warm-up file.
"""

from __future__ import annotations

import json
from pathlib import Path

from tfnlp.atomic import write_json

REFERENCE_FILE = "tfnlp_reference.json"

# English, Chinese, emoji, empty and a 100 kB input: the cases a tokenizer gets wrong first.
CHECK_TEXTS = [
    "I love this car :)",
    "worst traffic ever, stuck for 2 hours @bob",
    "我爱北京天安门",
    "😀😀😀 🎉",
    "",
    ("so happy today 😀 我很高兴 " * 4000)[:100_000],
]


def write_reference(saved_model_dir: str | Path, reference: dict) -> Path:
    """Writes a serving module's reference (`ServingModule.reference()`) beside the export.

    Args:
        saved_model_dir: the SavedModel directory.
        reference: JSON-able facts and outputs; `kind` says which serve-check applies
            ("classifier" when absent, as in exports made before it was recorded).
    """
    return write_json(Path(saved_model_dir) / "assets.extra" / REFERENCE_FILE, reference)


def read_reference(saved_model_dir: str | Path) -> dict | None:
    """The recorded texts and probabilities, or None for an export without them."""
    path = Path(saved_model_dir) / "assets.extra" / REFERENCE_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
