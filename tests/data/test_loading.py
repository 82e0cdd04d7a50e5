import collections

import pytest

from tfnlp.config import DataConfig
from tfnlp.data import DataError, build_dataset, load_examples, split_examples


@pytest.fixture(scope="module")
def tweets():
    return load_examples(DataConfig())


def test_builtin_tweets_are_complete_and_leniently_decoded(tweets):
    examples, labels, report = tweets
    assert labels == ["negative", "neutral", "positive"]
    assert len(examples) == 38158
    assert collections.Counter(examples.labels) == {
        "negative": 16186, "neutral": 15018, "positive": 6954}
    # The CSV holds invalid UTF-8: replaced, counted, never a crash.
    assert 20_000 < report.replaced_characters < 30_000
    assert report.rows_skipped == 0


def test_split_is_seeded_stratified_and_disjoint(tweets):
    examples, _, _ = tweets
    first = split_examples(examples, seed=7)
    again = split_examples(examples, seed=7)
    other = split_examples(examples, seed=8)
    assert first.sizes() == {"train": 30526, "validation": 3816, "test": 3816}
    assert first.test.texts == again.test.texts
    assert first.test.texts != other.test.texts
    share = collections.Counter(first.test.labels)["positive"] / len(first.test)
    assert share == pytest.approx(6954 / 38158, abs=0.002)


def test_limit_takes_a_seeded_subset_with_every_class():
    examples, _, _ = load_examples(DataConfig(limit=300), seed=1)
    again, _, _ = load_examples(DataConfig(limit=300), seed=1)
    assert len(examples) == 300
    assert examples.texts == again.texts
    assert set(examples.labels) == {"negative", "neutral", "positive"}


def test_user_labels_must_cover_the_data(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\na,pos\nb,neg\nc,meh\n")
    with pytest.raises(DataError, match=r"labels \['meh'\] are not in `data.labels`"):
        load_examples(DataConfig(source=str(path), labels=["pos", "neg"]))
    examples, labels, _ = load_examples(DataConfig(source=str(path)))
    assert labels == ["meh", "neg", "pos"]


def test_a_single_class_is_refused(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\na,pos\nb,pos\n")
    with pytest.raises(DataError, match="classification needs at least 2"):
        load_examples(DataConfig(source=str(path)))


def test_fractions_must_leave_training_data(tweets):
    with pytest.raises(DataError, match="must be below 1"):
        split_examples(tweets[0], validation_fraction=0.5, test_fraction=0.5)


def test_build_dataset_yields_strings_labels_and_weights(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label,w\na,pos,1\nb,neg,0.5\nc,pos,2\n")
    examples, labels, _ = load_examples(DataConfig(source=str(path), weight_column="w"))
    text, label, weight = next(iter(build_dataset(examples, labels, batch_size=8)))
    assert text.numpy().tolist() == [b"a", b"b", b"c"]
    assert label.numpy().tolist() == [1, 0, 1]
    assert weight.numpy().tolist() == [1.0, 0.5, 2.0]
