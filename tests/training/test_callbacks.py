from tfnlp.training.callbacks import EpochSummary


def test_throughput_is_none_until_an_epoch_ran_then_excludes_validation():
    summary = EpochSummary(examples_per_epoch=100)
    # A resumed run that was already finished trains no epoch: no figure, not a zero.
    assert summary.examples_per_second is None
    summary.train_seconds = [2.0, 1.0]
    assert summary.examples_per_second == 200 / 3.0
    assert summary.steady_epoch_seconds == 1.0
