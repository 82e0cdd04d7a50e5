from tests.conftest import run_python


def test_public_api_resolves_and_import_is_light():
    code = (
        "import sys, tfnlp\n"
        "assert 'tensorflow' not in sys.modules, 'import tfnlp must not import TensorFlow'\n"
        "missing = [n for n in tfnlp.__all__ if getattr(tfnlp, n, None) is None]\n"
        "assert not missing, missing\n"
        "print(len(tfnlp.__all__))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.strip()) >= 15


def test_tf_keras_is_the_only_keras():
    """tfnlp builds tf-keras (Keras 2) objects, never Keras 3 ones (tfmot refuses those)."""
    import tf_keras

    from tfnlp.backend import keras

    assert keras is tf_keras
    assert keras.__version__.startswith("2.")
