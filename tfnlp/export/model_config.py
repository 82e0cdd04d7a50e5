"""`<export_root>/models.config`: TF-Serving's `model_config_list` for every exported model.

`tensorflow_model_server --model_config_file=saved_models/models.config` then serves every
model under the export root: each from its newest version, or, where the model has version
labels (`<export_root>/<name>/version_labels.json`, from `export.labels`), exactly the
labelled versions, with `version_labels` so clients can ask for `/labels/stable`.
"""

from __future__ import annotations

import json
from pathlib import Path

from tfnlp.atomic import write_json, write_text

MODELS_CONFIG = "models.config"
# Beside the integer versions; TF-Serving ignores every entry whose name is not an integer.
LABELS_FILE = "version_labels.json"


def list_models(export_root: str | Path) -> list[str]:
    """Names of the model directories under `export_root` with at least one integer version."""
    root = Path(export_root)
    if not root.is_dir():
        return []
    return sorted(
        model.name for model in root.iterdir()
        if model.is_dir() and not model.name.startswith(".")
        and any(v.is_dir() and v.name.isdigit() for v in model.iterdir())
    )


def read_version_labels(model_dir: str | Path) -> dict[str, int]:
    """The model's version labels (empty when it has none)."""
    path = Path(model_dir) / LABELS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def write_version_labels(model_dir: str | Path, labels: dict[str, int]) -> None:
    """Sets the model's version labels ({} removes them).

    Raises:
        ValueError: a label names a version that is not exported (TF-Serving would refuse to
            start), naming the label and the versions there are.
    """
    model_dir = Path(model_dir)
    versions = sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit())
    for label, version in labels.items():
        if version not in versions:
            raise ValueError(
                f"`export.labels.{label}` must name an exported version of {model_dir.name}. "
                f"Received: export.labels.{label}={version}; the versions are {versions}."
            )
    if labels:
        write_json(model_dir / LABELS_FILE, dict(sorted(labels.items())))
    else:
        (model_dir / LABELS_FILE).unlink(missing_ok=True)


def _model_entry(root: Path, name: str) -> str:
    versions = {int(p.name) for p in (root / name).iterdir() if p.name.isdigit()}
    return model_entry(name, str(root / name), versions, read_version_labels(root / name))


def model_entry(name: str, base_path: str, versions: set[int], labels: dict[str, int]) -> str:
    """One model's `config { ... }` entry of the `model_config_list`."""
    # A label whose version was pruned since (`export.keep`) is dropped: TF-Serving refuses
    # to start on a label it cannot load.
    labels = {k: v for k, v in labels.items() if v in versions}
    policy = "".join(f"        versions: {v}\n" for v in sorted(set(labels.values())))
    return (
        "  config {\n"
        f'    name: "{name}"\n'
        f'    base_path: "{_quoted(base_path)}"\n'
        '    model_platform: "tensorflow"\n'
        + (f"    model_version_policy {{\n      specific {{\n{policy}      }}\n    }}\n"
           if labels else "")
        + "".join(f'    version_labels {{\n      key: "{label}"\n      value: {version}\n'
                  "    }\n" for label, version in sorted(labels.items()))
        + "  }\n"
    )


def models_config_text(export_root: str | Path) -> str:
    """The `model_config_list` text proto for the models under `export_root` (absolute paths).

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "m" / "1").mkdir(parents=True)
        >>> write_version_labels(root / "m", {"stable": 1})
        >>> print(models_config_text(root).replace(str(root.resolve()), "ROOT"))
        model_config_list {
          config {
            name: "m"
            base_path: "ROOT/m"
            model_platform: "tensorflow"
            model_version_policy {
              specific {
                versions: 1
              }
            }
            version_labels {
              key: "stable"
              value: 1
            }
          }
        }
        <BLANKLINE>
    """
    root = Path(export_root).resolve()
    entries = "".join(_model_entry(root, name) for name in list_models(root))
    return "model_config_list {\n" + entries + "}\n"


def _quoted(path: str | Path) -> str:
    """Escapes a path for a text-proto string literal."""
    return str(path).replace("\\", "\\\\").replace('"', '\\"')


def write_models_config(export_root: str | Path) -> Path:
    """(Re)writes `<export_root>/models.config` atomically; returns its path."""
    return write_text(Path(export_root) / MODELS_CONFIG, models_config_text(export_root))


def parse_models_config(path: str | Path) -> dict[str, str]:
    """Model name → base path, parsed with TF-Serving's own `ModelServerConfig` proto.

    Raises:
        google.protobuf.text_format.ParseError: the file is not a valid model config.
    """
    config = parse_models_config_proto(path)
    return {entry.name: entry.base_path for entry in config.model_config_list.config}


def parse_models_config_proto(path: str | Path):
    """The whole `ModelServerConfig` proto of a models.config (versions, labels and all).

    Raises:
        google.protobuf.text_format.ParseError: the file is not a valid model config.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    return text_format.Parse(Path(path).read_text(encoding="utf-8"),
                             model_server_config_pb2.ModelServerConfig())
