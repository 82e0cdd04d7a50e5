import os

import pytest

from tfnlp.config import load_pipeline
from tfnlp.training.preflight import PreflightError, estimate_parameters, run_preflight


def test_estimate_matches_the_built_model_roughly():
    from tfnlp.models import build_model
    from tfnlp.preprocessing import TextPreprocessor
    from tfnlp.preprocessing.vocabulary import RESERVED_TOKENS

    for name in ("lstm", "bilstm", "transformer"):
        config = load_pipeline(f"pipelines/tweets_{name}.yaml")
        vocabulary = RESERVED_TOKENS + [f"w{i}" for i in range(config.preprocessing.vocab_size - 2)]
        layer = TextPreprocessor(vocabulary, sequence_length=config.preprocessing.sequence_length)
        model = build_model(config.model, layer, 3)
        actual = model.count_params()
        assert actual <= estimate_parameters(config) <= actual * 1.2, name


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only directories")
def test_unwritable_run_dir_is_named(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    config = load_pipeline("pipelines/tweets_bilstm.yaml", [f"export.dir={tmp_path}"])
    with pytest.raises(PreflightError, match=r"locked/run: cannot write here.*--run-dir"):
        run_preflight(config, locked / "run")


def test_run_dir_under_a_file_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    config = load_pipeline("pipelines/tweets_bilstm.yaml", [f"export.dir={blocker / 'x'}"])
    with pytest.raises(PreflightError, match=r"file/x: cannot write here.*`export.dir`"):
        run_preflight(config, tmp_path / "run")


def test_not_enough_disk_is_reported(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    config = load_pipeline("pipelines/tweets_bilstm.yaml", [f"export.dir={tmp_path / 'e'}"])
    with pytest.raises(PreflightError, match=r"0 MB free, but checkpoints and the export need"):
        run_preflight(config, tmp_path / "run")
