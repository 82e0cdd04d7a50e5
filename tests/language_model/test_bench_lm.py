"""`tfnlp bench lm` at the smallest scale: it writes the JSON and PNG it promises."""

import json

from tests.conftest import REPO
from tfnlp.bench.lm import run_lm_benchmark


def test_bench_lm_writes_json_and_png(tmp_path, capsys):
    results = run_lm_benchmark(
        REPO / "pipelines" / "tweets_lm.yaml", tmp_path,
        overrides=["model.units=8", "model.embedding_dim=8", "model.num_layers=1",
                   "language_model.sequence_length=8", "language_model.vocab_size=20",
                   "train.batch_size=4"],
        steps=1, max_tokens=2, batch_sizes=(1, 2), policies=("float32",),
    )
    written = json.loads((tmp_path / "bench_lm.json").read_text())
    assert written == json.loads(json.dumps(results))
    entry = written["policies"]["float32"]
    assert set(entry) == {"train", "generate_batch_1", "generate_batch_2"}
    assert all(value["tokens_per_second"] > 0 for value in entry.values())
    assert 1 <= entry["generate_batch_2"]["steps_decoded"] <= 2
    assert (tmp_path / "bench_lm.png").read_bytes()[:4] == b"\x89PNG"
    assert "generate_batch_2" in capsys.readouterr().out
