"""A tiny `task: language_model` run end to end: loss falls, metrics.json, classic checkpoints,
and the exported `generate` signature in a fresh process and through `tfnlp generate`."""

import json
import math

import pytest

from tests.conftest import REPO, run_cli, run_python

TINY_LM_OVERRIDES = [
    "data.limit=300",
    "language_model.sequence_length=32",
    "language_model.stride=16",
    "language_model.keep_best=1",
    "model.embedding_dim=16",
    "model.units=32",
    "model.num_layers=1",
    "train.epochs=2",
    "train.batch_size=32",
    "train.learning_rate=0.01",
]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from tfnlp.config import load_pipeline
    from tfnlp.training.run import train_pipeline

    root = tmp_path_factory.mktemp("tiny_lm")
    config = load_pipeline(REPO / "pipelines" / "tweets_lm_char.yaml",
                           TINY_LM_OVERRIDES + [f"export.dir={root / 'saved_models'}"])
    return train_pipeline(config, root / "run")


def test_loss_decreases_and_metrics_are_written(tiny_lm):
    losses = tiny_lm.model.history.history["loss"]
    assert len(losses) == 2 and losses[1] < losses[0]
    metrics = json.loads((tiny_lm.run_dir / "metrics.json").read_text())
    test = metrics["test"]
    assert metrics["task"] == "language_model" and metrics["tokenizer"] == "character"
    assert test["perplexity"] == pytest.approx(math.exp(test["cross_entropy"]))
    # Better than guessing uniformly over the vocabulary, worse than perfect.
    assert 1.0 < test["perplexity"] < metrics["vocabulary_size"]
    # Characters: one token per character, so bits per token and per character agree.
    assert test["bits_per_character"] == pytest.approx(test["bits_per_token"], rel=1e-3)
    assert metrics["train"]["tokens_per_second"] > 0
    assert (tiny_lm.run_dir / "training_curves.png").stat().st_size > 0


def test_classic_checkpoint_files_keep_only_the_best(tiny_lm):
    files = sorted((tiny_lm.run_dir / "checkpoints").glob("weights-improvement-*.h5"))
    losses = tiny_lm.model.history.history["loss"]
    assert [f.name for f in files] == [f"weights-improvement-02-{losses[1]:.4f}.h5"]


EXPORT_CHECK = """
import json, sys
import tensorflow as tf, tensorflow_text  # noqa: F401  (no tfnlp import: a bare TF process)
loaded = tf.saved_model.load(sys.argv[1])
options = loaded.signatures["generate_with_options"]
# Every option is per prompt ([batch]), so each row may ask for its own.
args = dict(prompt=tf.constant(["i love", ""]), max_tokens=tf.constant([20, 3]),
            temperature=tf.constant([0.9, 0.0]), top_k=tf.constant([20, 0]),
            top_p=tf.constant([0.95, 1.0]))
a = options(seed=tf.constant([5, 5], tf.int64), **args)
b = options(seed=tf.constant([5, 5], tf.int64), **args)
alone = options(seed=tf.constant([5], tf.int64), **{k: v[:1] for k, v in args.items()})
plain = loaded.signatures["generate"](prompt=tf.constant(["i love"]), max_tokens=tf.constant([7]),
                                      temperature=tf.constant([1.0]))
probabilities = loaded.signatures["serving_default"](text=tf.constant(["i lov"]))["probabilities"]
print(json.dumps({
    "text": [t.decode() for t in a["text"].numpy()],
    "same": a["token_ids"].numpy().tolist() == b["token_ids"].numpy().tolist(),
    "steps": int(a["token_ids"].shape[1]),
    "num_tokens": a["num_tokens"].numpy().tolist(),
    "alone": alone["text"].numpy()[0].decode(),
    "plain_tokens": plain["num_tokens"].numpy().tolist(),
    "probability_sum": float(tf.reduce_sum(probabilities)),
    "vocabulary": int(probabilities.shape[1]),
    "vocabulary_variable": len(loaded.vocabulary.numpy()),
}))
"""


def test_exported_generate_signature_in_a_fresh_process(tiny_lm):
    result = run_python(EXPORT_CHECK, str(tiny_lm.export_path))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["same"] and report["steps"] <= 20
    assert report["num_tokens"][1] <= 3  # the second prompt's own max_tokens
    assert report["alone"] == report["text"][0]  # a row does not depend on its batch-mates
    assert all(isinstance(t, str) for t in report["text"]) and any(report["text"])
    assert 0 <= report["plain_tokens"][0] <= 7
    assert report["probability_sum"] == pytest.approx(1.0, rel=1e-4)
    assert report["vocabulary"] == report["vocabulary_variable"] == tiny_lm.metrics[
        "vocabulary_size"]


def test_the_runs_samples_are_scored_and_the_export_writes_them_alike(tiny_lm):
    from tfnlp.generation import load_generator

    samples = json.loads((tiny_lm.run_dir / "metrics.json").read_text())["samples"]
    assert samples["count"] == 200 and len(samples["texts"]) == 5
    assert 0.0 <= samples["real_word_rate"] <= 1.0
    written = load_generator(tiny_lm.export_path.parent)(
        samples["prompts"], max_tokens=samples["max_tokens"],
        temperature=samples["temperature"], top_k=0, top_p=1.0, seed=samples["seed"])
    assert [p + t for p, t in zip(samples["prompts"], written)] == samples["texts"]


def test_generate_cli_prints_only_the_text_same_as_the_run(tiny_lm):
    from tfnlp.generation import load_generator

    options = dict(max_tokens=25, temperature=0.8, top_k=0, top_p=0.9, seed=123)
    (expected,) = load_generator(tiny_lm.run_dir)(["i love"], **options)
    result = run_cli("generate", str(tiny_lm.export_path.parent), "--prompt", "i love",
                     "--max-tokens", "25", "--temperature", "0.8", "--top-p", "0.9",
                     "--seed", "123")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == expected + "\n"
    assert expected


def test_generate_cli_rejects_bad_options_and_non_models(tiny_lm, tmp_path, capsys):
    from tfnlp.cli import main

    assert main(["generate", str(tiny_lm.export_path), "--prompt", "x", "--top-p", "0"]) == 1
    assert "`top_p` must be in (0, 1]" in capsys.readouterr().err
    assert main(["generate", str(tmp_path), "--prompt", "x"]) == 1
    assert "no SavedModel here" in capsys.readouterr().err


def test_evaluate_cli_rescores_the_best_checkpoint(tiny_lm, capsys):
    from tfnlp.cli import main

    assert main(["evaluate", str(tiny_lm.run_dir)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["test"]["perplexity"] == pytest.approx(
        tiny_lm.metrics["test"]["perplexity"], rel=1e-4)
    assert (tiny_lm.run_dir / "evaluation.json").is_file()


def test_serve_check_passes_on_the_language_model_export(tiny_lm):
    """The one export path gives the LM what the classifiers have: models.config, warm-up
    requests for every signature, reference outputs, and a fresh-process check that the same
    seed gives the text `tfnlp generate` gives in-process."""
    from tfnlp.export.warmup import read_warmup_requests
    from tfnlp.generation import load_generator

    result = run_cli("serve-check", str(tiny_lm.export_path.parent), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    rows = {line.split("  ")[0].strip(): line for line in result.stdout.splitlines()}
    for check in ("layout", "models.config", "signatures", "ops", "fresh process",
                  "same seed, same text", "generate", "warm-up requests",
                  "saved_model_cli show", "saved_model_cli run"):
        assert "PASS" in rows[check], result.stdout
    assert result.stdout.strip().endswith("10/10 checks passed")
    signatures = [log.predict_log.request.model_spec.signature_name
                  for log in read_warmup_requests(tiny_lm.export_path)]
    assert signatures == ["serving_default", "generate", "generate_with_options"]
    reference = json.loads((tiny_lm.export_path / "assets.extra" / "tfnlp_reference.json")
                           .read_text())
    options = {k: v for k, v in reference["options"].items()}
    assert load_generator(tiny_lm.run_dir)(reference["texts"], **options) == \
        reference["generated"]
    config = (tiny_lm.export_path.parent.parent / "models.config").read_text()
    assert f'base_path: "{tiny_lm.export_path.parent.resolve()}"' in config


def test_every_signature_input_is_batched(tiny_lm, tiny_run):
    """TF-Serving's --enable_batching refuses rank-0 inputs: none in either kind of export."""
    from tfnlp.serving import load_exported

    for export in (tiny_lm.export_path, tiny_run.export_path):
        loaded = load_exported(export)
        for name, signature in loaded.signatures.items():
            for key, spec in signature.structured_input_signature[1].items():
                assert spec.shape.rank is not None and spec.shape.rank >= 1, (export, name, key)


def test_predict_refuses_a_language_model_and_says_what_to_use(tiny_lm, capsys):
    from tfnlp.cli import main

    assert main(["predict", str(tiny_lm.export_path), "hello"]) == 1
    assert "`tfnlp generate` continues them" in capsys.readouterr().err
    assert main(["predict", str(tiny_lm.run_dir), "hello"]) == 1
    assert "use `tfnlp generate` for a language model" in capsys.readouterr().err


def test_the_default_wordpiece_transformer_reports_bits_per_character(tmp_path):
    """The shipped default (WordPiece Transformer), tiny: bits/char divides bits/token by the
    characters a token spans, and the [UNK] share is recorded beside it."""
    from tfnlp.config import load_pipeline
    from tfnlp.training.run import train_pipeline

    config = load_pipeline(REPO / "pipelines" / "tweets_lm.yaml", [
        "data.limit=300", "language_model.vocab_size=300", "language_model.sequence_length=16",
        "language_model.stride=16", "language_model.keep_best=1", "model.embedding_dim=16",
        "model.num_heads=2", "model.ff_dim=32", "model.num_layers=1", "train.epochs=1",
        "train.batch_size=32"])
    run = train_pipeline(config, tmp_path / "run", export=False)
    test = json.loads((tmp_path / "run" / "metrics.json").read_text())["test"]
    assert run.metrics["tokenizer"] == "wordpiece"
    characters_per_token = test["bits_per_token"] / test["bits_per_character"]
    assert 1.2 < characters_per_token < 6.0
    assert test["bits_per_token"] == pytest.approx(test["cross_entropy"] / math.log(2.0))
    assert 0.0 <= test["unknown_token_rate"] < 0.05
