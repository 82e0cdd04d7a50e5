import time

import pytest

from tfnlp.training.timings import PhaseTimings, phase, process_seconds


def test_nested_phases_are_charged_to_themselves_only():
    timings = PhaseTimings()
    with timings.phase("evaluation"):
        time.sleep(0.05)
        with phase("baseline"):
            time.sleep(0.1)
    with timings.phase("evaluation"):  # a second visit adds up
        time.sleep(0.05)
    assert timings.seconds["baseline"] == pytest.approx(0.1, abs=0.05)
    assert timings.seconds["evaluation"] == pytest.approx(0.1, abs=0.05)
    assert set(timings.to_dict()) == {"evaluation_s", "baseline_s", "total_s"}
    assert timings.summary().startswith("timings: evaluation 0.1 s, baseline 0.1 s; total ")


def test_phase_outside_a_run_does_nothing_and_process_time_is_positive():
    with phase("baseline"):
        pass
    assert 0 < process_seconds() < 24 * 3600
