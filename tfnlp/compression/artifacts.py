"""The artifacts of `tfnlp compress`: TFLite files and SavedModels, each written and measured.

Every TFLite artifact is converted twice, at batch 1 (`model.tflite`, latency) and batch 64
(`model_batch64.tflite`, throughput and evaluation), with the `TFLiteSpec` beside it; every
SavedModel takes raw strings (the run's preprocessing layer in front) for TF-Serving.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tfnlp import atomic
from tfnlp.backend import keras
from tfnlp.compression import measure, report
from tfnlp.compression import tflite as tflite_lib
from tfnlp.compression.data import CompressionData
from tfnlp.compression.id_model import text_model
from tfnlp.compression.interpreter import tensor_dtypes
from tfnlp.compression.passes import Artifact
from tfnlp.compression.spec import TFLiteSpec
from tfnlp.config.schema import PipelineConfig
from tfnlp.export import export_saved_model

logger = logging.getLogger("tfnlp")

THROUGHPUT_BATCH = 64


class Artifacts:
    """Converts, writes and measures the artifacts: `out/tflite/<name>/`, `out/saved_models/`.

    Args:
        out: the compression output directory.
        config: the pipeline (its `compression:` section sets the conversion and timing).
        data: the run's splits as ids (calibration and test data).
        spec: the `TFLiteSpec` written beside every `.tflite`.

    Attributes:
        entries: the report's `artifacts`, in the order they were added.
        notes: why experimental artifacts did not convert.
    """

    def __init__(self, out: Path, config: PipelineConfig, data: CompressionData, spec: TFLiteSpec):
        self.out, self.config, self.data, self.spec = out, config, data, spec
        self.entries: dict[str, dict] = {}
        self.notes: list[str] = []

    def add_tflite(self, artifact: Artifact, id_model: keras.Model, extra: dict) -> None:
        """Converts and measures one artifact; notes why an experimental one did not convert.

        Args:
            artifact: its name and conversion mode.
            id_model: the model to convert (ids in, logits out).
            extra: fields added to its report entry.
        """
        if artifact.experimental is None:
            self._add_tflite(artifact, id_model, extra)
            return
        try:
            self._add_tflite(artifact, id_model, extra)
        except Exception as error:
            self.notes.append(
                report.conversion_failure_note(artifact.name, artifact.experimental, error)
            )
            logger.warning("%s did not convert: %s", artifact.name, report.first_line(error))

    def _add_tflite(self, artifact: Artifact, id_model: keras.Model, extra: dict) -> None:
        c = self.config.compression
        directory = self.out / "tflite" / artifact.name
        directory.mkdir(parents=True, exist_ok=True)
        files = {
            batch: self._convert(artifact, id_model, batch, directory)
            for batch in (1, THROUGHPUT_BATCH)
        }
        self.spec.write(directory)
        flatbuffer, details = files[1]
        logger.info("measuring %s", artifact.name)
        entry = {
            "format": "tflite",
            "path": str(directory / "model.tflite"),
            **measure.file_sizes(directory / "model.tflite"),
            **measure.measure_tflite(
                flatbuffer,
                files[THROUGHPUT_BATCH][0],
                self.data.test_ids,
                self.data.y_test,
                self.data.labels,
                latency_calls=c.latency_calls,
                throughput_calls=c.throughput_calls,
            ),
            "conversion": details,
            "tensor_dtypes": tensor_dtypes(flatbuffer),
            "ops": tflite_lib.op_counts(flatbuffer),
            **extra,
        }
        self.entries[artifact.name] = entry
        logger.info(
            "%s: accuracy %.4f, %d bytes (%d gzip), %.3f ms at batch 1",
            artifact.name,
            entry["accuracy"],
            entry["bytes"],
            entry["gzip_bytes"],
            entry["latency_ms_batch1"],
        )

    def _convert(self, artifact: Artifact, id_model, batch: int, directory: Path):
        """Converts at one fixed batch size and writes the file; returns (flatbuffer, details)."""
        c = self.config.compression
        logger.info("converting %s (%s, batch %d)", artifact.name, artifact.mode, batch)
        flatbuffer, details = tflite_lib.convert(
            id_model,
            artifact.mode,
            batch_size=batch,
            sequence_length=self.config.preprocessing.sequence_length,
            representative_ids=self.data.representative(
                max(c.representative_examples, batch), batch
            ),
            unroll=c.unroll_recurrent,
            strip_names=c.strip_tensor_names,
        )
        filename = "model.tflite" if batch == 1 else f"model_batch{batch}.tflite"
        atomic.write_bytes(directory / filename, flatbuffer)
        return flatbuffer, details

    def add_saved_model(self, name: str, id_model: keras.Model, preprocessor) -> None:
        """Exports `id_model` as the string-in SavedModel `<pipeline>_<name>` and measures it.

        Args:
            name: the variant (its entry is `saved_model_<name>`).
            id_model: the compressed id-level model.
            preprocessor: the run's `TextPreprocessor`, put back in front (strings in).
        """
        c, data = self.config.compression, self.data
        model_name = f"{self.config.name}_{name}"
        served = text_model(preprocessor, id_model, model_name)
        # Re-running into the same DIR publishes the next version, then drops the old one:
        # the previous version stays complete until the new one is (a full disk keeps it).
        path = export_saved_model(
            served,
            data.labels,
            self.out / "saved_models",
            model_name,
            keep=1,
            vocabulary=preprocessor.vocabulary,
        )
        logger.info("measuring SavedModel %s", path)
        self.entries[f"saved_model_{name}"] = {
            "format": "saved_model",
            "path": str(path),
            **measure.file_sizes_of_directory(path),
            **measure.measure_saved_model(
                path,
                data.test_texts,
                data.y_test,
                data.labels,
                latency_calls=c.latency_calls,
                throughput_calls=c.throughput_calls,
            ),
        }
