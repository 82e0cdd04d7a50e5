"""Measuring helpers shared by the benchmarks: machine summary, bar charts.

Peak memory comes from `tfnlp.training.timings` (runs record it too).
"""

from __future__ import annotations

import os
from pathlib import Path


def bar_chart(
    path: Path, title: str, panels: list[tuple[str, dict[str, float]]], highlight: str = ""
) -> Path:
    """One bar chart per (y label, {bar name: value}) panel, side by side, as a PNG.

    The bar named `highlight` (the reference run) is drawn grey, the others blue.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), squeeze=False)
    for axis, (label, values) in zip(axes[0], panels):
        names = list(values)
        bars = axis.bar(range(len(names)), [values[n] or 0.0 for n in names],
                        color=["#999999" if n == highlight else "#1f77b4" for n in names])
        axis.bar_label(bars, fmt="%.3g", fontsize=8)
        axis.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
        axis.set_ylabel(label)
        axis.grid(axis="y", alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


# CPU features the speed of float32, bf16 and int8 kernels depends on.
_VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16",
                 "amx_bf16", "amx_int8")


def machine_summary() -> dict:
    """CPU count, bf16 support and vector extensions: what the figures depend on."""
    from tfnlp.training.precision import cpu_flags, cpu_supports_bfloat16

    flags = cpu_flags()
    return {"cpu_count": os.cpu_count(), "cpu_bfloat16": cpu_supports_bfloat16(),
            "cpu_vector_flags": [flag for flag in _VECTOR_FLAGS if flag in flags]}
