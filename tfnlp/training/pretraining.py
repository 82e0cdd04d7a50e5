"""The `pretrain:` stage: a language model pretrained on a classifier's own training texts.

ULMFiT's first two steps in one run (Howard & Ruder 2018): a WordPiece LSTM language model is
trained on the texts of the classifier's *training* split only (validation and test texts are
never seen, so they cannot leak), in `<run>/pretrain/`; the classifier then borrows its
vocabulary (`preprocessing.vocabulary_from`) and its matching layers (`model.init_from`). Its
layers share the classifier's names (`embedding`, `lstm_<i>`), so they load as they are.

The stage is keyed by a fingerprint of the language model's settings and of the texts
(`pretrain.json`): a finished stage with the same key is reused, an interrupted one resumes
from its backup, and another key starts it afresh.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from tfnlp import atomic
from tfnlp.config.loading import to_dict
from tfnlp.config.schema import (
    DataConfig,
    LanguageModelConfig,
    ModelConfig,
    PipelineConfig,
    PreprocessingConfig,
    TrainConfig,
)
from tfnlp.training.run_directory import fingerprint

logger = logging.getLogger("tfnlp")

PRETRAIN_DIR = "pretrain"  # under the classifier's run directory
TEXTS_FILE = "texts.jsonl"  # the training texts the language model reads (one JSON a line)
STAGE_FILE = "pretrain.json"  # the stage's fingerprint and whether it finished


def language_model_config(config: PipelineConfig, texts_file: str | Path) -> PipelineConfig:
    """The language-model pipeline that `config.pretrain` describes, reading `texts_file`.

    The model takes the classifier's `embedding_dim`, `units` and `num_layers` (so every
    layer can load), its text normalisation, `vocab_size` and vocabulary learner (so the
    vocabulary suits it), and its seed, strategy and precision.

    Example:
        >>> from tfnlp.config import load_pipeline
        >>> lm = language_model_config(load_pipeline("pipelines/tweets_ulmfit.yaml"), "t.jsonl")
        >>> lm.task, lm.model.name, lm.language_model.tokenizer, lm.model.units
        ('language_model', 'lstm', 'wordpiece', 128)
    """
    pretrain, model, text = config.pretrain, config.model, config.preprocessing
    if pretrain is None:
        raise ValueError(f"`pretrain` must be set to pretrain a language model. Received: "
                         f"pretrain=None (pipeline {config.name!r}).")
    lm = PipelineConfig(
        name=f"{config.name[:118]}_pretrain",
        task="language_model",
        seed=config.seed,
        data=DataConfig(source=str(texts_file), format="jsonl", text_column="text",
                        validation_fraction=pretrain.validation_fraction,
                        test_fraction=pretrain.test_fraction),
        preprocessing=PreprocessingConfig(
            lowercase=text.lowercase, replace_urls=text.replace_urls,
            replace_mentions=text.replace_mentions, replace_numbers=text.replace_numbers,
            vocab_size=text.vocab_size, vocabulary_learner=text.vocabulary_learner),
        model=ModelConfig(name="lstm", embedding_dim=model.embedding_dim, units=model.units,
                          num_layers=model.num_layers,
                          dropout=model.dropout if pretrain.dropout is None else pretrain.dropout),
        train=TrainConfig(epochs=pretrain.epochs, batch_size=pretrain.batch_size,
                          learning_rate=pretrain.learning_rate,
                          weight_decay=config.train.weight_decay,
                          early_stopping_patience=config.train.early_stopping_patience,
                          resume=config.train.resume),
        distribute=config.distribute,
        precision=config.precision,
        export=config.export,
        language_model=LanguageModelConfig(
            tokenizer="wordpiece", vocab_size=text.vocab_size,
            sequence_length=pretrain.sequence_length, stride=pretrain.stride, keep_best=1),
    )
    lm.validate()
    return lm


def stage_key(lm: PipelineConfig, texts: list[str]) -> str:
    """What a pretraining run depends on: its settings (not where its texts file lies) and
    the texts."""
    settings = to_dict(lm)
    settings["data"] = {**settings["data"], "source": None}
    return fingerprint(settings, list(texts))


def pretrain_language_model(config: PipelineConfig, texts: list[str], directory: str | Path,
                            train: Callable) -> Path:
    """Trains (or reuses) `config.pretrain`'s language model on `texts` in `directory`.

    Args:
        config: the classifier's pipeline, with `pretrain` set.
        texts: the classifier's training texts (nothing held out).
        directory: the language model's run directory (`<run>/pretrain`).
        train: `tfnlp.training.run.train_pipeline` (passed in: the run lifecycle calls this
            module, so it cannot import it back).

    Returns:
        The finished language model's run directory.
    """
    directory = Path(directory)
    lm = language_model_config(config, directory / TEXTS_FILE)
    key = stage_key(lm, texts)
    stage_file = directory / STAGE_FILE
    stage = json.loads(stage_file.read_text()) if stage_file.is_file() else None
    if stage and stage["fingerprint"] == key and stage["finished"] and (
            directory / "metrics.json").is_file():
        logger.info("pretrain: reusing the language model in %s (same settings and texts)",
                    directory)
        return directory
    if stage and stage["fingerprint"] == key:
        logger.info("pretrain: continuing the unfinished language model in %s", directory)
    else:
        if directory.exists():
            logger.info("pretrain: settings or texts changed: training %s afresh", directory)
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        atomic.write_text(directory / TEXTS_FILE, "".join(
            json.dumps({"text": text}, ensure_ascii=False) + "\n" for text in texts))
        stage = {"fingerprint": key, "finished": False, "texts": len(texts)}
        atomic.write_json(stage_file, stage)
        logger.info("pretrain: a %d x %d-unit WordPiece LSTM language model on the %d "
                    "training texts, %d epochs, in %s", lm.model.num_layers, lm.model.units,
                    len(texts), lm.train.epochs, directory)
    train(lm, directory, export=False)
    atomic.write_json(stage_file, {**stage, "finished": True})
    return directory


def with_pretrained(config: PipelineConfig, directory: str | Path) -> PipelineConfig:
    """`config` warm-starting from the pretrained language model in `directory`: its
    vocabulary (`preprocessing.vocabulary_from`) and layers (`model.init_from`).

    Example:
        >>> from tfnlp.config import load_pipeline
        >>> tuned = with_pretrained(load_pipeline("pipelines/tweets_ulmfit.yaml"), "r/pretrain")
        >>> tuned.model.init_from, tuned.preprocessing.vocabulary_from
        ('r/pretrain', 'r/pretrain')
    """
    source = str(directory)
    return dataclasses.replace(
        config, preprocessing=dataclasses.replace(config.preprocessing, vocabulary_from=source),
        model=dataclasses.replace(config.model, init_from=source))
