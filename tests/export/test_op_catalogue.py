"""The op catalogue that sorts an export's ops: listed in this process when TensorFlow's own
ops were noted before any op library loaded, and the same as a fresh process lists."""

from tests.conftest import run_python
from tfnlp.backend import CORE_OPS
from tfnlp.export import ops


def test_this_process_lists_the_same_catalogue_as_a_fresh_one():
    here = ops._list_ops_in_this_process()
    assert here is not None  # the test process imported tfnlp before tensorflow-text
    fresh = ops._list_ops_in_a_fresh_process()
    assert here == fresh
    assert {"WordpieceTokenizeWithOffsets", "FastWordpieceTokenizeWithOffsets"} <= set(
        here["text"])
    assert "MatMul" in here["core"] and "MatMul" not in here["text"]
    assert CORE_OPS.isdisjoint(here["text"])


def test_an_op_library_loaded_before_tfnlp_leaves_the_listing_to_a_fresh_process():
    code = ("import tensorflow_text\n"
            "from tfnlp.backend import CORE_OPS\n"
            "from tfnlp.export.ops import _list_ops_in_this_process\n"
            "print(CORE_OPS is None, _list_ops_in_this_process() is None)\n")
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["True", "True"]
