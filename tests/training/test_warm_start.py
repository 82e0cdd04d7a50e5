"""`model.init_from` (warm starts) and `preprocessing.vocabulary_from`: layers load bit-exactly
from a finished run, the rest is reported, vocabularies are mapped or refused with the fix,
and a resumed run keeps its backup's weights."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, TINY_OVERRIDES
from tfnlp.backend import keras
from tfnlp.config import load_pipeline
from tfnlp.config.loading import ConfigError
from tfnlp.models.classifiers import build_transformer_classifier
from tfnlp.models.language_model import LSTMLanguageModel, TransformerLanguageModel
from tfnlp.preprocessing import TextPreprocessor
from tfnlp.tasks import get_task
from tfnlp.training.run import Run, prepare_preprocessor, train_pipeline
from tfnlp.training.trained import load_trained
from tfnlp.training.vocabulary_from import SourceVocabulary, borrowed_vocabulary
from tfnlp.training.warm_start import (
    WARM_START_FILE,
    WarmStartError,
    WarmStartSource,
    layer_weights,
    read_source,
    warm_start,
)


def tiny_config(*overrides, pipeline="tweets_bilstm.yaml"):
    return load_pipeline(REPO / "pipelines" / pipeline, TINY_OVERRIDES + list(overrides))


def built(config, run_dir):
    """Run's start, data, vocabulary and build (with the warm start): what `fit` would train."""
    with Run.start(config, run_dir) as run:
        data = run.task.read_data()
        run.task.record_data(data, run.directory)
        model, fitted = run.build(prepare_preprocessor(run.task, data, run.directory))
    return run, fitted


def equal_weights(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(),
                                                    strict=True))


def test_named_layers_load_bit_exactly_and_the_others_are_reported_skipped(
        tiny_run, tmp_path, caplog):
    source = str(tiny_run.run_dir)
    config = tiny_config(f"preprocessing.vocabulary_from={source}", f"model.init_from={source}",
                         "model.init_layers=[embedding, bilstm_0]")
    with caplog.at_level("INFO", logger="tfnlp"):
        run, fitted = built(config, tmp_path / "run")
    trained = load_trained(source).model
    for name in ("embedding", "bilstm_0"):
        assert equal_weights(fitted.get_layer(name), trained.get_layer(name)), name
    assert not equal_weights(fitted.get_layer("logits"), trained.get_layer("logits"))
    report = run.warm_start
    assert report["loaded"] == {"embedding": "embedding", "bilstm_0": "bilstm_0"}
    assert report["skipped"] == {"logits": "not in model.init_layers"}
    assert report["mismatched"] == {}
    assert report["vocabulary"]["equal"] is True
    assert json.loads((tmp_path / "run" / WARM_START_FILE).read_text()) == report
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("warm start")]
    assert any("bilstm_0" in line and "loaded" in line for line in lines)
    assert any("logits" in line and "skipped" in line and "init_layers" in line for line in lines)
    assert "2 layers loaded, 0 mismatched, 1 skipped" in lines[-1]


@pytest.fixture(scope="module")
def tiny_source(tiny_run):
    """The tiny run's layers and vocabulary, read as `model.init_from` reads them."""
    return read_source(str(tiny_run.run_dir), template=None)


def fresh_classifier(tiny_run, tokens, *overrides):
    """A new tiny BiLSTM over `tokens` (labels as the tiny run's), and its pipeline."""
    config = tiny_config(*overrides)
    task = get_task(config)
    task.labels = json.loads((tiny_run.run_dir / "labels.json").read_text())
    return task.build_model(task.preprocessor_from(tokens)), config


def test_by_default_matching_layers_load_and_other_shapes_are_reported_mismatched(
        tiny_run, tiny_source):
    # Another vocabulary (some of the source's tokens, in another order) and wider LSTMs.
    theirs = tiny_source.vocabulary.tokens
    ours = theirs[:2] + theirs[:1:-2] + ["#zz", "#yy"]
    model, _ = fresh_classifier(tiny_run, ours, "model.units=12")
    report = warm_start(model, tiny_source, None, ours, "wordpiece", Path("run/vocab.txt"))
    assert list(report["loaded"]) == ["embedding"]
    assert set(report["mismatched"]) == {"bilstm_0", "logits"}
    # The forward LSTM's kernel: 4 gates x 8 units there, x 12 here.
    assert report["mismatched"]["bilstm_0"].startswith("[(16, 32), (8, 32), (32,)")
    assert "there, [(16, 48), (12, 48), (48,)" in report["mismatched"]["bilstm_0"]
    assert report["vocabulary"] == {
        "source": str(tiny_run.run_dir / "vocab.txt"), "this": "run/vocab.txt",
        "equal": False, "mapped_tokens": len(ours) - 2, "tokens": len(ours)}
    rows = model.get_layer("embedding").get_weights()[0]
    source_rows = tiny_source.layers["embedding"][0]
    token = ours[5]
    assert np.array_equal(rows[5], source_rows[theirs.index(token)])


def test_layers_named_but_absent_are_refused(tiny_run, tiny_source):
    tokens = tiny_source.vocabulary.tokens
    model, _ = fresh_classifier(tiny_run, tokens)
    before = model.get_weights()
    for init_layers, error in ((["lstm_0"], "'lstm_0', which is not a layer"),
                               (["embedding", "bilstm_0=encoder_0"], "no layer 'encoder_0'")):
        with pytest.raises(WarmStartError, match=error):
            warm_start(model, tiny_source, init_layers, tokens, "wordpiece", Path("vocab.txt"))
    # Refused before anything is assigned: the embedding named first was not loaded either.
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before, strict=True))


def test_named_embedding_with_another_tokenizers_vocabulary_is_refused_with_the_fix(
        tiny_run, tmp_path):
    config = tiny_config("preprocessing.tokenizer=word", f"model.init_from={tiny_run.run_dir}",
                         "model.init_layers=[embedding]")
    with pytest.raises(WarmStartError) as error:
        built(config, tmp_path / "run")
    message = str(error.value)
    assert "'embedding'" in message and "wordpiece vocabulary" in message
    assert str(tiny_run.run_dir / "vocab.txt") in message
    assert str(tmp_path / "run" / "vocab.txt") in message
    assert "tokenize with wordpiece as the source does" in message
    assert f"preprocessing.vocabulary_from: {tiny_run.run_dir}" in message


def test_a_bare_checkpoint_loads_into_the_same_model_and_refuses_another_vocabulary_size(
        tiny_run, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for file in (tiny_run.run_dir / "checkpoints").glob("best.*"):
        shutil.copy(file, bare / file.name)
    same = tiny_config(f"preprocessing.vocabulary_from={tiny_run.run_dir}",
                       f"model.init_from={bare / 'best'}")
    run, fitted = built(same, tmp_path / "same")
    assert set(run.warm_start["loaded"]) == {"embedding", "bilstm_0", "logits"}
    assert equal_weights(fitted, load_trained(tiny_run.run_dir).model)
    # 60 tokens: the checkpoint's 292-row embedding cannot be read into this model.
    tokens = (tiny_run.run_dir / "vocab.txt").read_text().split("\n")[:60]
    with pytest.raises(WarmStartError, match="in no run directory.*Give the run directory"):
        read_source(str(bare / "best"), lambda: fresh_classifier(tiny_run, tokens)[0])


def test_token_rows_are_mapped_and_unknown_tokens_keep_their_fresh_values():
    keras.utils.set_random_seed(1)
    theirs = ["[PAD]", "[UNK]", "good", "bad", "day"]
    ours = ["[PAD]", "[UNK]", "day", "night", "good"]
    source_model = build_transformer_classifier(TextPreprocessor(theirs, tokenizer="word",
                                                                 sequence_length=4), 3,
                                                embedding_dim=8, num_heads=2, ff_dim=8)
    model = build_transformer_classifier(TextPreprocessor(ours, tokenizer="word",
                                                          sequence_length=4), 3,
                                         embedding_dim=8, num_heads=2, ff_dim=8)
    fresh = model.get_layer("embedding").get_weights()[0]
    source = WarmStartSource("src", Path("src/ckpt"), layer_weights(source_model),
                             SourceVocabulary(Path("src/vocab.txt"), theirs, "word"))
    report = warm_start(model, source, None, ours, "word", Path("run/vocab.txt"))
    rows = model.get_layer("embedding").get_weights()[0]
    source_rows = source_model.get_layer("embedding").get_weights()[0]
    assert [np.array_equal(rows[i], source_rows[j]) for i, j in ((2, 4), (4, 2))] == [True] * 2
    assert np.array_equal(rows[3], fresh[3])  # "night": not in the source
    assert report["vocabulary"]["mapped_tokens"] == 4
    assert equal_weights(model.get_layer("encoder_0"), source_model.get_layer("encoder_0"))


def test_a_language_models_logits_follow_the_tokens_too():
    theirs, ours = ["[PAD]", "[UNK]", "[EOS]", "a", "b"], ["[PAD]", "[UNK]", "[EOS]", "b", "z"]
    source_model, model = (LSTMLanguageModel(5, embedding_dim=4, units=4, num_layers=1)
                           for _ in range(2))
    for lm in (source_model, model):
        lm(keras.Input(shape=(None,), dtype="int32"))
    fresh_kernel = model.get_layer("logits").get_weights()[0]
    source = WarmStartSource("lm", Path("lm/ckpt"), layer_weights(source_model),
                             SourceVocabulary(Path("lm/vocab.txt"), theirs, "character"))
    report = warm_start(model, source, None, ours, "character", Path("run/vocab.txt"))
    assert list(report["loaded"]) == ["embedding", "lstm_0", "logits"]
    kernel, bias = model.get_layer("logits").get_weights()
    source_kernel, source_bias = source_model.get_layer("logits").get_weights()
    assert np.array_equal(kernel[:, 3], source_kernel[:, 4])  # "b": column 4 there, 3 here
    assert bias[3] == source_bias[4]
    assert np.array_equal(kernel[:, 4], fresh_kernel[:, 4])  # "z": not in the source


def test_a_transformer_classifier_takes_a_language_models_blocks_by_their_names():
    tokens = ["[PAD]", "[UNK]", "[EOS]", "a", "b", "##c"]
    lm = TransformerLanguageModel(len(tokens), 4, embedding_dim=8, num_heads=2, ff_dim=8,
                                  num_layers=1)
    lm(keras.Input(shape=(None,), dtype="int32"))
    model = build_transformer_classifier(TextPreprocessor(tokens, sequence_length=4), 3,
                                         embedding_dim=8, num_heads=2, ff_dim=8)
    source = WarmStartSource("lm", Path("lm/ckpt"), layer_weights(lm),
                             SourceVocabulary(Path("lm/vocab.txt"), tokens, "wordpiece"))
    report = warm_start(model, source, None, tokens, "wordpiece", Path("run/vocab.txt"))
    assert report["loaded"] == {"embedding": "embedding", "position_embedding": "positions",
                                "encoder_0": "block_0", "final_norm": "final_norm"}
    assert report["mismatched"] == {"logits": "[(8, 6), (6,)] there, [(8, 3), (3,)] here"}
    assert equal_weights(model.get_layer("encoder_0"), lm.get_layer("block_0"))


def test_vocabulary_from_refuses_another_tokenizers_vocabulary(tiny_run):
    config = tiny_config("preprocessing.tokenizer=word",
                         f"preprocessing.vocabulary_from={tiny_run.run_dir}")
    with pytest.raises(ValueError, match="is a wordpiece vocabulary.*preprocessing.tokenizer: "
                                         "wordpiece"):
        borrowed_vocabulary(config)
    with pytest.raises(FileNotFoundError, match="no vocab.txt there"):
        borrowed_vocabulary(tiny_config("preprocessing.vocabulary_from=/no/such/run"))


@pytest.mark.parametrize("overrides, key", [
    (["model.init_layers=[embedding]"], "model.init_layers"),
    (["model.init_from=runs/x", "model.init_layers=[a, a=b]"], "model.init_layers"),
    (["model.init_from=runs/x", "model.init_layers=[]"], "model.init_layers"),
    (["model.init_from=gs://bucket/runs/x"], "model.init_from"),
    (["preprocessing.vocabulary_from=gs://bucket/runs/x"], "preprocessing.vocabulary_from"),
    (["model.init_from=runs/x", "model.name=transformer", "distribute.strategy=dtensor",
      "distribute.mesh={batch: 1, model: 2}"], "model.init_from"),
])
def test_invalid_warm_start_settings_name_their_key(overrides, key):
    with pytest.raises(ConfigError, match=f"`{key}` must be"):
        load_pipeline(REPO / "pipelines" / "tweets_bilstm.yaml", overrides)


class StopAfterEpoch(keras.callbacks.Callback):
    """Records the weights at each epoch's end; crashes at the start of `epoch`."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.weights = epoch, None

    def on_epoch_end(self, epoch, logs=None):
        self.weights = self.model.get_weights()

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("simulated crash")


class WeightsAtStart(keras.callbacks.Callback):
    """The weights `fit` starts from (after BackupAndRestore, which comes first, restored)."""

    def on_train_begin(self, logs=None):
        self.weights = self.model.get_weights()


@pytest.mark.slow
def test_a_resumed_run_keeps_its_backups_weights_not_the_warm_start(tiny_run, tmp_path, caplog):
    source = str(tiny_run.run_dir)
    config = tiny_config(f"preprocessing.vocabulary_from={source}", f"model.init_from={source}",
                         "train.epochs=2", "data.limit=300")
    crash = StopAfterEpoch(1)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_pipeline(config, tmp_path / "run", export=False, extra_callbacks=[crash])
    start = WeightsAtStart()
    with caplog.at_level("INFO", logger="tfnlp"):
        result = train_pipeline(config, tmp_path / "run", export=False, extra_callbacks=[start])
    assert "warm start: not applied: resuming from the backup" in caplog.text
    assert all(np.array_equal(a, b) for a, b in zip(start.weights, crash.weights, strict=True))
    warm = load_trained(source).model.get_layer("embedding").get_weights()[0]
    assert not np.array_equal(start.weights[0], warm)  # one epoch trained since the warm start
    report = result.metrics["init_from"]
    assert report["resumed"] is True
    assert set(report["loaded"]) == {"embedding", "bilstm_0", "logits"}
    assert result.metrics["train"]["epochs_run"] == 1


def test_a_classifier_warm_starts_from_a_wordpiece_language_model(tmp_path):
    lm = load_pipeline(REPO / "pipelines" / "tweets_lm_char.yaml", [
        "data.limit=150", "language_model.tokenizer=wordpiece", "language_model.vocab_size=200",
        "language_model.sequence_length=16", "language_model.stride=16",
        "model.embedding_dim=16", "model.units=8", "model.num_layers=1", "train.epochs=1"])
    train_pipeline(lm, tmp_path / "lm", export=False)
    config = tiny_config(f"preprocessing.vocabulary_from={tmp_path / 'lm'}",
                         f"model.init_from={tmp_path / 'lm'}", "model.num_layers=1",
                         "model.init_layers=[embedding, lstm_0]", pipeline="tweets_lstm.yaml")
    run, fitted = built(config, tmp_path / "classifier")
    source = load_trained(tmp_path / "lm").model
    for name in ("embedding", "lstm_0"):
        assert equal_weights(fitted.get_layer(name), source.get_layer(name)), name
    assert run.warm_start["skipped"] == {"logits": "not in model.init_layers"}
