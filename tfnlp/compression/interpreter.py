"""Running `.tflite` artifacts: LiteRT's interpreter where it is installed, TF's otherwise.

TensorFlow 2.21 deprecates `tf.lite.Interpreter` in favour of LiteRT (`ai-edge-litert`, `pip
install 'tfnlp[litert]'`), the same runtime that apps ship. tfnlp uses LiteRT when it imports
and falls back to `tf.lite.Interpreter`, saying why once in the log. The artifacts are the
same either way; `tfnlp bench tflite` times both interpreters side by side.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from tfnlp.backend import tf

logger = logging.getLogger("tfnlp")


def _litert():
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    return Interpreter, OpResolverType


def _tensorflow():
    return tf.lite.Interpreter, tf.lite.experimental.OpResolverType


# runtime name -> () -> (Interpreter class, OpResolverType enum)
RUNTIMES = {"litert": _litert, "tensorflow": _tensorflow}


@functools.cache
def default_runtime() -> str:
    """"litert" when `ai-edge-litert` imports, else "tensorflow" (the reason logged once)."""
    try:
        _litert()
    except ImportError as error:
        logger.info("TFLite runtime: tf.lite.Interpreter (LiteRT unavailable: %s; "
                    "pip install 'tfnlp[litert]')", error)
        return "tensorflow"
    return "litert"


def tensor_dtypes(flatbuffer: bytes) -> dict[str, int]:
    """How many tensors of each dtype the model holds (e.g. {"int8": 40, "float32": 2})."""
    interpreter_class, _ = RUNTIMES[default_runtime()]()
    interpreter = interpreter_class(model_content=flatbuffer)
    counts: dict[str, int] = {}
    for tensor in interpreter.get_tensor_details():
        name = np.dtype(tensor["dtype"]).name
        counts[name] = counts.get(name, 0) + 1
    return counts


class TFLiteClassifier:
    """Runs a converted id-level model with the TFLite interpreter.

    Args:
        flatbuffer: the `.tflite` bytes.
        num_threads: interpreter threads.
        xnnpack: use the default delegates (XNNPACK on CPU); False runs TFLite's builtin
            kernels only, which is how to tell a delegate effect from a kernel effect.
        runtime: "litert", "tensorflow" or "auto" (see `default_runtime`).
    """

    def __init__(self, flatbuffer: bytes, num_threads: int = 1, xnnpack: bool = True,
                 runtime: str = "auto"):
        if runtime not in (*RUNTIMES, "auto"):
            raise ValueError(f"`runtime` must be one of {(*RUNTIMES, 'auto')}. "
                             f"Received: runtime={runtime!r}.")
        self.runtime = default_runtime() if runtime == "auto" else runtime
        self.xnnpack = xnnpack
        try:
            self.interpreter = self._interpreter(flatbuffer, num_threads, xnnpack)
        except RuntimeError:
            # XNNPACK refuses some graphs (e.g. an unrolled full-int8 LSTM: "failed to create
            # XNNPACK runtime"); TFLite's builtin kernels still run them.
            if not xnnpack:
                raise
            self.xnnpack = False
            self.interpreter = self._interpreter(flatbuffer, num_threads, False)
        (self._input,) = self.interpreter.get_input_details()
        (self._output,) = self.interpreter.get_output_details()
        self.batch_size, self.sequence_length = (int(d) for d in self._input["shape"])

    def _interpreter(self, flatbuffer: bytes, num_threads: int, xnnpack: bool):
        interpreter_class, resolvers = RUNTIMES[self.runtime]()
        resolver = resolvers.AUTO if xnnpack else resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        interpreter = interpreter_class(
            model_content=flatbuffer,
            num_threads=num_threads,
            experimental_op_resolver_type=resolver,
        )
        interpreter.allocate_tensors()
        return interpreter

    def logits(self, ids: np.ndarray) -> np.ndarray:
        """Logits for exactly one `[batch_size, sequence_length]` batch of ids."""
        self.interpreter.set_tensor(self._input["index"], ids.astype(self._input["dtype"]))
        self.interpreter.invoke()
        output = self.interpreter.get_tensor(self._output["index"])
        scale, zero_point = self._output["quantization"]
        if scale:  # an integer output: back to real-valued logits
            output = (output.astype(np.float32) - zero_point) * scale
        return output

    def predict_ids(self, ids: np.ndarray) -> np.ndarray:
        """Argmax label ids for any number of rows (the last batch padded with zeros)."""
        predictions = []
        for start in range(0, len(ids), self.batch_size):
            chunk = ids[start : start + self.batch_size]
            padded = np.zeros((self.batch_size, self.sequence_length), np.int32)
            padded[: len(chunk)] = chunk
            predictions.append(np.argmax(self.logits(padded)[: len(chunk)], axis=-1))
        return np.concatenate(predictions) if predictions else np.zeros([0], np.int64)
