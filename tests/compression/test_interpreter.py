import numpy as np
import pytest

from tfnlp.compression import tflite
from tfnlp.compression.interpreter import RUNTIMES, TFLiteClassifier, default_runtime


@pytest.fixture(scope="module")
def flatbuffer(tiny_ids):
    id_model, _, ids, _, length = tiny_ids
    converted, _ = tflite.convert(id_model, "float32", batch_size=1, sequence_length=length,
                                  representative_ids=None)
    return converted


def test_litert_is_the_default_where_it_is_installed():
    pytest.importorskip("ai_edge_litert")
    assert default_runtime() == "litert"


@pytest.mark.parametrize("xnnpack", [True, False])
def test_both_interpreters_give_the_same_logits(flatbuffer, tiny_ids, xnnpack):
    pytest.importorskip("ai_edge_litert")
    ids = tiny_ids[2][:1]
    logits = {runtime: TFLiteClassifier(flatbuffer, xnnpack=xnnpack, runtime=runtime)
              .logits(ids) for runtime in RUNTIMES}
    np.testing.assert_allclose(logits["litert"], logits["tensorflow"], atol=1e-6)
    assert logits["litert"].shape == (1, 3)


def test_an_unknown_runtime_is_refused(flatbuffer):
    with pytest.raises(ValueError, match=r"`runtime` must be one of .*Received: runtime='x'"):
        TFLiteClassifier(flatbuffer, runtime="x")


def test_bench_tflite_times_every_interpreter(flatbuffer, tmp_path):
    from tfnlp.bench.tflite import bench_tflite

    path = tmp_path / "model.tflite"
    path.write_bytes(flatbuffer)
    report = bench_tflite(path, tmp_path, calls=5)
    assert set(report["runs"]) == {"litert_xnnpack", "litert_builtin", "tensorflow_xnnpack",
                                   "tensorflow_builtin"}
    for run in report["runs"].values():
        assert run["latency_ms"] > 0 and run["max_abs_logit_difference"] < 1e-5
    assert (tmp_path / "bench_tflite.png").stat().st_size > 0
