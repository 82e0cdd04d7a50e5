"""The compression report: ratios, the recommendation, the notes, JSON, a Markdown table, a PNG.

The notes explain the measured figures (why int8 is or is not faster here, why QAT is about
float32's size, what the TFLite models take); each is a function of the measured entries.
"""

from __future__ import annotations

import json
from pathlib import Path

from tfnlp import atomic

# Columns of the Markdown table: key in an artifact's entry -> header.
_COLUMNS = {
    "accuracy": "accuracy",
    "macro_f1": "macro-F1",
    "bytes": "bytes",
    "gzip_bytes": "gzip bytes",
    "size_ratio_gzip": "× smaller (gzip)",
    "latency_ms_batch1": "batch-1 ms",
    "speedup_batch1": "× faster (b1)",
    "interpreter": "kernels (b1)",
    "throughput_batch64": "batch-64 ex/s",
}


def recommend(artifacts: dict, reference: str = "float32", accuracy_budget: float = 0.01):
    """The smallest (gzip) TFLite artifact within the accuracy budget and not slower.

    Candidates must have `accuracy >= reference accuracy - accuracy_budget` and a batch-1
    latency no higher than the reference's; the reference itself always qualifies, so a
    slower artifact is never recommended.

    Returns:
        `(name, reason)`.
    """
    base = artifacts[reference]
    candidates = [
        name
        for name, entry in artifacts.items()
        if entry.get("format") == "tflite"
        and entry["accuracy"] >= base["accuracy"] - accuracy_budget
        and entry["latency_ms_batch1"] <= base["latency_ms_batch1"]
    ]
    best = min(candidates, key=lambda name: (artifacts[name]["gzip_bytes"], name))
    entry = artifacts[best]
    reason = (
        f"smallest TFLite artifact ({entry['gzip_bytes']} gzip bytes) with accuracy "
        f"{entry['accuracy']:.4f} >= {base['accuracy']:.4f} - {accuracy_budget} and batch-1 "
        f"latency {entry['latency_ms_batch1']:.3f} ms <= {reference}'s "
        f"{base['latency_ms_batch1']:.3f} ms"
    )
    return best, reason


def add_ratios(artifacts: dict, reference: str = "float32") -> None:
    """Adds gzip size and batch-1 speed ratios against the reference to every artifact."""
    base = artifacts[reference]
    for entry in artifacts.values():
        entry["size_ratio_gzip"] = base["gzip_bytes"] / entry["gzip_bytes"]
        entry["speedup_batch1"] = base["latency_ms_batch1"] / entry["latency_ms_batch1"]
        entry["accuracy_drop_points"] = 100.0 * (base["accuracy"] - entry["accuracy"])


TFLITE_INPUT_NOTE = (
    "TFLite models take int32 token ids [batch, sequence_length] (0 = padding); the "
    "vocabulary and preprocessing spec sit beside each .tflite (tensorflow-text ops are "
    "not TFLite builtins, and SELECT_TF_OPS would bring the Flex delegate and keep the "
    "string ops out of XNNPACK). SavedModel rows include preprocessing (strings in)."
)
LATENCY_NOTE = (
    "Latency: median of batch-1 interpreter calls, 1 thread, each artifact on the faster "
    "of XNNPACK and TFLite's builtin kernels (column `kernels`); throughput: batch-64 "
    "calls on the same kernels. "
    "Figures from a busy machine are not comparable; see `machine`."
)
# QAT artifacts -> the pass that trained them (the report's `passes` key).
_QAT_ARTIFACTS = {"qat_int8": "qat", "pruned_qat_int8": "pruning_preserving_qat"}


def report_notes(entries: dict, passes: dict, machine: dict) -> list[str]:
    """The notes that explain the measured figures, in the report's order.

    Args:
        entries: the report's `artifacts` (measured, ratios added).
        passes: the report's `passes` (what each fine-tuning pass did).
        machine: the report's `machine` (CPU flags among it).

    Returns:
        The int8 latency explanation and the QAT size note where they apply, then the
        TFLite input note and the latency note.
    """
    optional = [explain_int8_latency(entries, machine), qat_size_note(entries, passes)]
    return [note for note in optional if note] + [TFLITE_INPUT_NOTE, LATENCY_NOTE]


def conversion_failure_note(name: str, experimental: str, error: BaseException) -> str:
    """The note for an experimental artifact that did not convert (e.g. int16x8)."""
    return f"{name} ({experimental}) did not convert: {first_line(error)[:300]}"


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its repr when the message is empty)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else repr(error)


def qat_size_note(entries: dict, passes: dict) -> str:
    """Why a QAT artifact is about float32's size (the first one that is); "" if none is."""
    for name, qat_pass in _QAT_ARTIFACTS.items():
        if name in entries and entries[name]["bytes"] > 0.9 * entries["float32"]["bytes"]:
            quantized = ", ".join(passes[qat_pass]["quantized"])
            return (
                f"{name} is about float32's size: tfmot 0.8 can annotate only the layers its "
                f"8-bit scheme supports ({quantized}), and once a graph holds fake-quant ops "
                "the TFLite converter quantizes only those, leaving the Embedding and "
                "recurrent/attention weights in float32. Annotating the Embedding is not "
                "possible either: tfmot puts a QuantizeLayer on its int32 token ids. "
                "Post-training quantization is the size win here."
            )
    return ""


def explain_int8_latency(entries: dict, machine: dict) -> str:
    """Why full-integer int8 is (or is not) faster here, from the measured artifacts.

    The explanation the report carries for recurrent models: the masked Keras LSTM converts
    to TFLite WHILE loops whose bodies run one small step at a time; XNNPACK does not take
    control flow, so the steps run on TFLite's builtin kernels whatever the precision, and
    full-integer quantization adds requantization work to every tiny per-step op without a
    large matmul to win back. The figures quoted are this report's own.

    Args:
        entries: the report's `artifacts`; "" comes back without float32 and int8_full.
        machine: the report's `machine` (its `cpu_vector_flags` are quoted).

    Returns:
        One paragraph, or "".
    """
    float32, full = entries.get("float32"), entries.get("int8_full")
    if not float32 or not full:
        return ""
    figures = _batch1_figures(entries)
    loops = full["ops"]["ops"].get("WHILE", 0)
    if loops:
        return _while_loop_explanation(figures, loops, full["ops"]["subgraphs"])
    if full["conversion"].get("unrolled") and full["ops"]["ops"].get("TANH"):
        slower = full["latency_ms_batch1"] > float32["latency_ms_batch1"]
        return _unrolled_lstm_explanation(figures, slower)
    return _feedforward_explanation(figures, entries, machine)


def _batch1_figures(entries: dict) -> str:
    """e.g. "float32 0.100 ms with XNNPACK / 0.120 ms builtin kernels; int8_full ..."."""

    def timings(name: str) -> str:
        entry = entries[name]
        return f"{name} " + " / ".join(
            f"{entry[key]:.3f} ms {kernels}" if entry[key] is not None else f"{kernels} failed"
            for key, kernels in (
                ("latency_ms_batch1_xnnpack", "with XNNPACK"),
                ("latency_ms_batch1_builtin", "builtin kernels"),
            )
        )

    names = ("float32", "int8_dynamic", "int8_full", "int16x8")
    return "; ".join(timings(name) for name in names if name in entries)


def _unrolled_lstm_explanation(figures: str, slower: bool) -> str:
    return (
        f"Batch-1 latency ({figures}). The (Bi)LSTM was unrolled at the fixed length "
        "(`compression.unroll_recurrent`): a masked Keras LSTM otherwise converts to TFLite "
        "WHILE loops, which XNNPACK (TFLite's default CPU delegate) does not take and whose "
        "full-integer calibration crashed TFLite's calibrator on this machine. Unrolled, "
        "each time step is a chain of tiny [batch, units] FULLY_CONNECTED and element-wise "
        "LOGISTIC/TANH/MUL/ADD ops (see `ops`). "
        + (
            "With int8 activations every one of them requantizes its output and there is no "
            "large matmul for the int8 kernels to win back, so full-integer int8 is slower "
            "than float here: for LSTMs int8 is a size win; dynamic-range int8 (float "
            "activations) keeps float speed at a quarter of the size."
            if slower
            else "Here full-integer int8 is not slower than float32."
        )
    )


def _feedforward_explanation(figures: str, entries: dict, machine: dict) -> str:
    int8 = [name for name in entries if "int8" in name and entries[name]["format"] == "tflite"]
    fastest = min(int8, key=lambda name: entries[name]["latency_ms_batch1"])
    speedup = entries["float32"]["latency_ms_batch1"] / entries[fastest]["latency_ms_batch1"]
    flags = ", ".join(machine.get("cpu_vector_flags", [])) or "none listed"
    return (
        f"Batch-1 latency ({figures}). No recurrent loops here: the work is "
        "FULLY_CONNECTED/BATCH_MATMUL in one graph, which XNNPACK runs in float32 and "
        f"TFLite's int8 kernels in int8. The fastest int8 artifact, {fastest}, runs at "
        f"{speedup:.2f}x float32's speed here, so int8 is "
        + (
            "a speed win as well as a size win"
            if speedup > 1.0
            else "a size win but not a speed win on this machine"
        )
        + f" (CPU vector extensions: {flags}; int8 dot-product instructions are "
        "avx512_vnni / avx_vnni)."
    )


def _while_loop_explanation(figures: str, loops: int, subgraphs: int) -> str:
    return (
        f"Why full-integer int8 is slow for this recurrent model ({figures}): the masked Keras "
        f"LSTM converts to {loops} TFLite WHILE loop(s) ({subgraphs} subgraphs; "
        "see `ops`), not to a fused LSTM kernel, and runs one time step at a time on [batch, "
        "units] tensors. XNNPACK (TFLite's default CPU delegate) does not take control flow, "
        "so the per-step FULLY_CONNECTED/LOGISTIC/TANH/MUL/ADD ops inside the loop bodies run "
        "on TFLite's builtin kernels in every variant (compare the with/without-XNNPACK "
        "figures). With int8 activations each of these tiny ops also requantizes its output, "
        "and the recurrent state is quantized and dequantized around the loop, while there is "
        "no large matmul for the int8 kernels to speed up. The 16x8 mode (int16 activations) "
        "is kinder to accuracy but uses the same per-step path. Dynamic-range int8 keeps "
        "activations in float (only weights are int8), so it keeps float32's speed at a "
        "quarter of the size: for LSTMs int8 is a size win, not a speed win."
    )


def markdown_table(artifacts: dict) -> str:
    """The artifacts as a Markdown table, one row each."""
    header = "| artifact | format | " + " | ".join(_COLUMNS.values()) + " |"
    lines = [header, "|" + "---|" * (len(_COLUMNS) + 2)]
    for name, entry in artifacts.items():
        cells = []
        for key in _COLUMNS:
            value = entry.get(key)
            if value is None:
                cells.append("")
            elif key in ("accuracy", "macro_f1"):
                cells.append(f"{value:.4f}")
            elif key in ("bytes", "gzip_bytes"):
                cells.append(f"{value:,}")
            elif key == "interpreter":
                cells.append(value)
            elif key == "throughput_batch64":
                cells.append(f"{value:,.0f}")
            elif key == "latency_ms_batch1":
                cells.append(f"{value:.3f}")
            else:
                cells.append(f"{value:.2f}")
        lines.append(f"| {name} | {entry.get('format', '')} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_size_vs_accuracy(artifacts: dict, output: Path, title: str) -> Path:
    """Scatter of gzip size (log scale) against test accuracy, one labelled point per artifact."""
    from tfnlp.evaluation.plots import load_pyplot

    plt = load_pyplot()
    figure, axis = plt.subplots(figsize=(8, 5))
    for name, entry in artifacts.items():
        if "gzip_bytes" not in entry:
            continue
        marker = "o" if entry.get("format") == "tflite" else "s"
        axis.scatter(entry["gzip_bytes"], entry["accuracy"], marker=marker)
        axis.annotate(
            name,
            (entry["gzip_bytes"], entry["accuracy"]),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
    axis.set_xscale("log")
    axis.set_xlabel("size on disk, gzip-compressed (bytes, log scale)")
    axis.set_ylabel("test accuracy")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)
    return output


def write_report(report: dict, out_dir: Path) -> dict[str, Path]:
    """Writes compression_report.json, compression_report.md and size_vs_accuracy.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "compression_report.json",
        "markdown": out_dir / "compression_report.md",
        "plot": out_dir / "size_vs_accuracy.png",
    }
    atomic.write_text(paths["json"], json.dumps(report, indent=2, sort_keys=False) + "\n")
    notes = "\n".join(f"- {note}" for note in report.get("notes", []))
    atomic.write_text(
        paths["markdown"],
        f"# Compression report: {report['pipeline']} ({report['model']})\n\n"
        + markdown_table(report["artifacts"])
        + f"\nRecommended: **{report['recommended']}** — {report['recommended_reason']}.\n"
        + (f"\n{notes}\n" if notes else ""),
    )
    plot_size_vs_accuracy(
        report["artifacts"], paths["plot"], f"{report['pipeline']}: size vs accuracy"
    )
    return paths
