"""The pass list: names, order, artifacts (name -> conversion mode) and when each pass runs."""

import dataclasses

import pytest

from tfnlp.compression import passes, tflite
from tfnlp.config.schema import CompressionConfig

# The published artifact names, in report order, with their conversion modes.
ARTIFACTS = {
    "float32": "float32",
    "float16": "float16",
    "int8_dynamic": "int8_dynamic",
    "int8_full": "int8_full",
    "int16x8": "int16x8",
    "pruned": "float32",
    "pruned_int8": "int8_dynamic",
    "pruned_int8_full": "int8_full",
    "pruned_qat_int8": "int8_dynamic",
    "qat_int8": "int8_dynamic",
    "clustered": "float32",
    "clustered_int8": "int8_dynamic",
}


def _selected(config):
    return [
        artifact.name
        for p in passes.PASSES
        if p.enabled(config)
        for artifact in p.selected_artifacts(config)
    ]


def test_passes_and_their_artifacts_in_report_order():
    names = [p.name for p in passes.PASSES]
    assert names == [
        "post_training_quantization",
        "pruning",
        "pruning_preserving_qat",
        "qat",
        "clustering",
    ]
    produced = {a.name: a.mode for p in passes.PASSES for a in p.artifacts}
    assert list(produced.items()) == list(ARTIFACTS.items())
    assert set(produced.values()) <= set(tflite.MODES)
    assert [p.saved_model for p in passes.PASSES if p.saved_model] == ["float32", "pruned"]
    # Only int16x8 (TFLite's experimental 16x8 mode) may fail without failing the run.
    assert [a.name for p in passes.PASSES for a in p.artifacts if a.experimental] == ["int16x8"]


def test_pruning_preserving_qat_starts_from_the_pruned_model():
    by_name = {p.name: p for p in passes.PASSES}
    assert by_name["pruning_preserving_qat"].requires == "pruning"
    assert all(
        p.requires is None for name, p in by_name.items() if name != "pruning_preserving_qat"
    )


@pytest.mark.parametrize(
    "changes,expected",
    [
        ({}, [n for n in ARTIFACTS if not n.startswith("clustered")]),
        (
            {"qat": False, "pruning_preserving_qat": False, "int16x8": False},
            [
                "float32",
                "float16",
                "int8_dynamic",
                "int8_full",
                "pruned",
                "pruned_int8",
                "pruned_int8_full",
            ],
        ),
        # Pruning-preserving QAT needs the pruned model: no pruning, no pruned_qat_int8.
        (
            {"pruning": False, "clustering": True},
            [
                "float32",
                "float16",
                "int8_dynamic",
                "int8_full",
                "int16x8",
                "qat_int8",
                "clustered",
                "clustered_int8",
            ],
        ),
    ],
)
def test_the_compression_section_selects_passes_and_artifacts(changes, expected):
    assert _selected(dataclasses.replace(CompressionConfig(), **changes)) == expected


def test_a_pass_whose_required_pass_did_not_run_is_refused():
    from tfnlp.compression.pipeline import _start_model

    with pytest.raises(ValueError, match="`pruning_preserving_qat` must run after `pruning`"):
        _start_model(passes.PruningPreservingQAT(), None, None, results={})
