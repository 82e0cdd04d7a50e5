"""Docstring examples are tests: every module listed here runs its examples, and has some.

Examples run from the repository root, so paths like "pipelines/tweets_bilstm.yaml" work.
Add a module to `DOCTEST_MODULES` when it gains examples; the list cannot rot silently because a
module without examples fails.
"""

import doctest
import importlib
import io

import pytest

from tests.conftest import REPO

DOCTEST_MODULES = [
    "tfnlp.atomic",
    "tfnlp.config.loading",
    "tfnlp.config.schema",
    "tfnlp.data.bucketing",
    "tfnlp.data.builtin",
    "tfnlp.data.corpus",
    "tfnlp.data.loading",
    "tfnlp.data.pipeline",
    "tfnlp.data.readers",
    "tfnlp.data.records",
    "tfnlp.data.sharding",
    "tfnlp.data.streaming",
    "tfnlp.data.splits",
    "tfnlp.data.windows",
    "tfnlp.evaluation.baseline",
    "tfnlp.exit_codes",
    "tfnlp.evaluation.language_model",
    "tfnlp.evaluation.metrics",
    "tfnlp.evaluation.plots",
    "tfnlp.evaluation.side_process",
    "tfnlp.export.ensemble",
    "tfnlp.export.generation",
    "tfnlp.export.model_config",
    "tfnlp.export.server_config",
    "tfnlp.export.versions",
    "tfnlp.models.decoding",
    "tfnlp.models.pretrained",
    "tfnlp.models.word_vectors",
    "tfnlp.models.language_model",
    "tfnlp.models.samplers",
    "tfnlp.preprocessing.base",
    "tfnlp.preprocessing.layer",
    "tfnlp.preprocessing.lm_tokenizer",
    "tfnlp.preprocessing.normalization",
    "tfnlp.preprocessing.pretokenization",
    "tfnlp.preprocessing.stopwords",
    "tfnlp.preprocessing.vocabulary",
    "tfnlp.tasks.base",
    "tfnlp.training.resume",
    "tfnlp.training.timings",
    "tfnlp.training.class_weights",
    "tfnlp.training.pretraining",
    "tfnlp.training.unfreezing",
    "tfnlp.training.comms",
    "tfnlp.models.layers",
    "tfnlp.training.pipeline",
    "tfnlp.training.launch_files",
    "tfnlp.training.slurm",
    "tfnlp.training.vertex",
    "tfnlp.training.remote_run",
    "tfnlp.training.vocabulary_from",
    "tfnlp.training.warm_start",
]

# Long expected outputs may wrap; "..." elides what an example does not pin (tracebacks, ids).
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("module_name", DOCTEST_MODULES)
def test_docstring_examples_run(module_name, monkeypatch):
    monkeypatch.chdir(REPO)
    module = importlib.import_module(module_name)
    tests = [test for test in doctest.DocTestFinder().find(module) if test.examples]
    assert tests, f"{module_name} is in DOCTEST_MODULES but has no docstring example"
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    report = io.StringIO()
    for test in tests:
        runner.run(test, out=report.write)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, report.getvalue()
