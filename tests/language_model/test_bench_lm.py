"""`tfnlp bench lm` at the smallest scale: both runs on real tweets, the JSON and PNG."""

import json

import pytest

from tests.conftest import REPO
from tfnlp.bench.lm import run_lm_benchmark

TINY = ["data.limit=300", "model.units=8", "model.embedding_dim=8", "model.num_layers=1",
        "model.ff_dim=16", "model.num_heads=2", "language_model.sequence_length=8",
        "language_model.stride=8", "language_model.vocab_size=120", "train.batch_size=4"]


def test_bench_lm_measures_both_pipelines_side_by_side(tmp_path, capsys):
    results = run_lm_benchmark(
        REPO / "pipelines" / "tweets_lm.yaml", tmp_path, overrides=TINY,
        steps=1, max_tokens=2, batch_sizes=(1, 2))
    written = json.loads((tmp_path / "bench_lm.json").read_text())
    assert written == json.loads(json.dumps(results))
    runs = written["runs"]
    assert set(runs) == {"default", "previous_default"}
    assert (runs["default"]["tokenizer"], runs["default"]["model"]["name"]) == (
        "wordpiece", "transformer")
    assert (runs["previous_default"]["tokenizer"], runs["previous_default"]["model"]["name"]) == (
        "character", "lstm")
    # Even 120 WordPieces merge some characters; a character token is ~1 character (plus the
    # [EOS] newline per text).
    assert runs["default"]["characters_per_token"] > 1.1
    assert runs["previous_default"]["characters_per_token"] == pytest.approx(1.0, abs=0.02)
    for run in runs.values():
        assert run["train_characters_per_second"] == pytest.approx(
            run["train_tokens_per_second"] * run["characters_per_token"])
        assert 1 <= run["generate_batch_2"]["steps_decoded"] <= 2
        assert run["generate_batch_1"]["characters_per_second"] >= 0
    assert written["ratios"]["train_tokens_per_second"] == pytest.approx(
        runs["default"]["train_tokens_per_second"]
        / runs["previous_default"]["train_tokens_per_second"])
    assert (tmp_path / "bench_lm.png").read_bytes()[:4] == b"\x89PNG"
    assert "default / previous_default, train_characters_per_second" in capsys.readouterr().out


def test_bench_lm_refuses_more_steps_than_the_stream_has(tmp_path):
    with pytest.raises(ValueError, match="fewer than the 1000 timed"):
        run_lm_benchmark(REPO / "pipelines" / "tweets_lm.yaml", tmp_path, overrides=TINY,
                         steps=1000, max_tokens=2, batch_sizes=(1,))
