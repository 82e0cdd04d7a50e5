import os
import subprocess
import sys

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


def test_importing_the_backend_leaves_keras_3_unloaded_and_tf_keras_as_tf_keras():
    """Keras 3 (and scikit-learn through its wrappers) would add ~2.5 s to every start-up."""
    code = (
        "import sys\n"
        "from tfnlp.backend import keras, tf\n"
        "print('keras.src' in sys.modules, 'sklearn' in sys.modules,"
        " tf.keras.layers.Dense is keras.layers.Dense)\n"
    )
    # This process set the variable when it imported the backend: the child must not inherit it.
    environment = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=240, env=environment)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "False", "True"]
