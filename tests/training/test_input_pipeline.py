"""A pipeline that tokenizes in the tf.data map trains, reloads and exports a string-in model."""

import numpy as np

from tests.conftest import REPO, TINY_OVERRIDES
from tfnlp.backend import tf
from tfnlp.config import load_pipeline
from tfnlp.serving import load_exported
from tfnlp.training.run import train_pipeline
from tfnlp.training.trained import load_trained


def test_in_dataset_tokenization_trains_reloads_and_exports(tmp_path):
    config = load_pipeline(REPO / "pipelines" / "tweets_lstm.yaml", TINY_OVERRIDES + [
        "data.limit=300", "train.epochs=1", "model.num_layers=1",
        "preprocessing.in_dataset=true", "precision.policy=mixed_bfloat16",
        f"export.dir={tmp_path / 'saved_models'}"])
    result = train_pipeline(config, tmp_path / "run")
    train = result.metrics["train"]
    assert train["preprocessing_in_dataset"] is True and train["length_bucketing"] is True
    assert train["precision_policy"] == "mixed_bfloat16"
    assert 0.0 <= train["padded_fraction"] <= 0.15

    texts = tf.constant(["what a great day", "awful", ""])
    expected = result.model(texts).numpy()
    assert result.model.input.dtype == tf.string  # the full model, not the ids model
    reloaded = load_trained(result.run_dir).model
    np.testing.assert_array_equal(reloaded(texts).numpy(), expected)

    outputs = load_exported(result.export_path).signatures["serving_default"](text=texts)
    assert outputs["probabilities"].dtype == tf.float32
    np.testing.assert_allclose(outputs["probabilities"].numpy(),
                               tf.nn.softmax(expected).numpy(), atol=1e-3)
