"""Hypothesis profiles for the fuzz tests: `fuzz` (the default suite), `deep` (CI) and
`explore` (deep, with new random inputs each run).

`pytest tests/fuzz` runs every fuzz target with the `fuzz` profile (a few dozen examples, so
the default suite stays within its time budget); `pytest --hypothesis-profile=deep tests/fuzz`
runs each one with 200 examples (`explore`: 1,000 new ones). The profiles are registered
when this file is imported, which for `pytest ... tests/fuzz` happens before hypothesis's
plugin reads `--hypothesis-profile` (pytest loads the conftest files of its path arguments first).
Tests take their settings from `tests.fuzz.strategies.FUZZ`, never from hard-coded counts.
"""

from hypothesis import HealthCheck, Phase, settings

# Without the explain phase, which traces every line the failing examples run: on a
# RecursionError hundreds of frames deep that alone took minutes per failing test.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]

# The default suite: about what the fuzz tests always cost (~60 examples each). One bug per
# test is enough to fail it, and shrinking a second one would cost the suite's time budget.
# Derandomized, like `deep`: the suite passes or fails on the code alone.
settings.register_profile(
    "fuzz", max_examples=60, deadline=None, phases=PHASES, report_multiple_bugs=False,
    derandomize=True, suppress_health_check=[HealthCheck.too_slow],
)
# CI's deep run (200 per target, down from 1,000, so that .ci/run stays within 45 minutes as
# the cluster, streaming and preemption tests grew). Derandomized: the same inputs every run,
# so whether a change lands never depends on luck (a fresh CI machine has no example
# database either).
settings.register_profile(
    "deep", max_examples=200, deadline=None, phases=PHASES, print_blob=True,
    derandomize=True, suppress_health_check=[HealthCheck.too_slow],
)
# Bug hunting: the deep run with new random inputs each time (`--hypothesis-profile=explore`);
# print_blob prints the `@reproduce_failure` line that replays a failure exactly.
settings.register_profile(
    "explore", max_examples=1000, deadline=None, phases=PHASES, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
