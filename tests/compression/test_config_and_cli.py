import pytest

from tests.conftest import REPO
from tfnlp.cli import build_parser
from tfnlp.config import load_pipeline
from tfnlp.config.loading import ConfigError


def test_compression_section_defaults_and_overrides():
    config = load_pipeline(
        REPO / "pipelines" / "tweets_bilstm.yaml",
        ["compression.target_sparsity=0.5", "compression.m_by_n=[2, 4]"],
    )
    assert config.compression.target_sparsity == 0.5
    assert config.compression.m_by_n == [2, 4]
    assert config.compression.pruning and config.compression.qat
    assert not config.compression.clustering


@pytest.mark.parametrize(
    "override,key",
    [
        ("compression.target_sparsity=1.5", "compression.target_sparsity"),
        ("compression.pruning_schedule=cubic", "compression.pruning_schedule"),
        ("compression.number_of_clusters=1", "compression.number_of_clusters"),
        ("compression.sparsity=0.8", "compression.sparsity"),
        # Validated with the config (no longer by `compress_run`): m < n, two integers.
        ("compression.m_by_n=[4, 2]", "compression.m_by_n"),
        ("compression.m_by_n=[2, 4, 8]", "compression.m_by_n"),
    ],
)
def test_bad_compression_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_pipeline(REPO / "pipelines" / "tweets_bilstm.yaml", [override])


def test_compress_command_line():
    args = build_parser().parse_args(
        ["compress", "p.yaml", "--from", "runs/x", "--out", "out", "--set", "compression.epochs=1"]
    )
    assert (args.pipeline, args.run_dir, args.out, args.set) == (
        "p.yaml",
        "runs/x",
        "out",
        ["compression.epochs=1"],
    )
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["compress", "p.yaml", "--out", "out"])  # no --from
    assert exit_info.value.code == 2
