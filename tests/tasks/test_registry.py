"""The task registry: `task:` picks the class, a new task is one registered subclass, and a
strategy a task cannot use is refused before any work starts."""

import dataclasses

import pytest

from tests.conftest import REPO
from tfnlp.config import load_pipeline
from tfnlp.tasks import TASKS, get_task, register_task
from tfnlp.tasks.classification import ClassificationTask
from tfnlp.tasks.language_model import LanguageModelTask
from tfnlp.training.preflight import PreflightError
from tfnlp.training.run import train_pipeline


@pytest.fixture
def config():
    return load_pipeline(REPO / "pipelines" / "tweets_lstm.yaml", ["data.limit=100"])


@pytest.fixture
def echo_task():
    """A third task, registered for the test only."""

    @register_task("echo")
    class EchoTask(ClassificationTask):
        unsupported_strategies = {"mirrored": "echo runs on one device; use `default`."}

    yield EchoTask
    del TASKS["echo"]


def test_task_key_picks_the_registered_class(config):
    assert {"classification": ClassificationTask, "language_model": LanguageModelTask} == TASKS
    assert isinstance(get_task(config), ClassificationTask)
    lm = load_pipeline(REPO / "pipelines" / "tweets_lm.yaml")
    assert isinstance(get_task(lm), LanguageModelTask) and get_task(lm).config is lm


def test_unknown_task_names_the_key_and_the_choices(config):
    with pytest.raises(ValueError, match=r"`task` must be one of \['classification', "
                                         r"'language_model'\]. Received: task='nope'"):
        get_task(dataclasses.replace(config, task="nope"))


def test_a_new_task_is_one_registered_subclass(config, echo_task):
    task = get_task(dataclasses.replace(config, task="echo"))
    assert type(task) is echo_task and echo_task.name == "echo"
    with pytest.raises(ValueError, match="registered twice"):
        register_task("echo")(echo_task)


def test_a_strategy_the_task_cannot_use_is_refused_before_any_work(config, echo_task, tmp_path):
    config = dataclasses.replace(
        config, task="echo",
        distribute=dataclasses.replace(config.distribute, strategy="mirrored"))
    with pytest.raises(PreflightError, match="`distribute.strategy: mirrored` cannot train "
                                             "`task: echo`: echo runs on one device"):
        train_pipeline(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing was written


def test_headline_prints_the_task_figures(config):
    metrics = {"test": {"accuracy": 0.75, "macro_f1": 0.5},
               "baseline": {"tfidf_logreg": {"accuracy": 0.7, "macro_f1": 0.6}}}
    assert get_task(config).headline(metrics) == (
        "test accuracy 0.7500  macro-F1 0.5000  TF-IDF+LR accuracy 0.7000  macro-F1 0.6000")
    lm = load_pipeline(REPO / "pipelines" / "tweets_lm.yaml")
    assert get_task(lm).headline({}) == "test perplexity nan  bits/char nan"
