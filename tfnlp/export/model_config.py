"""`<export_root>/models.config`: TF-Serving's `model_config_list` for every exported model.

`tensorflow_model_server --model_config_file=saved_models/models.config` then serves every
model under the export root, each from its newest version.
"""

from __future__ import annotations

from pathlib import Path

from tfnlp.atomic import write_text

MODELS_CONFIG = "models.config"


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


def models_config_text(export_root: str | Path) -> str:
    """The `model_config_list` text proto for the models under `export_root` (absolute paths)."""
    root = Path(export_root).resolve()
    entries = "".join(
        "  config {\n"
        f'    name: "{name}"\n'
        f'    base_path: "{_quoted(root / name)}"\n'
        '    model_platform: "tensorflow"\n'
        "  }\n"
        for name in list_models(root)
    )
    return "model_config_list {\n" + entries + "}\n"


def _quoted(path: Path) -> str:
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
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse(Path(path).read_text(encoding="utf-8"),
                               model_server_config_pb2.ModelServerConfig())
    return {entry.name: entry.base_path for entry in config.model_config_list.config}
