"""PNG plots written next to the JSON: training curves and the confusion matrix."""

from __future__ import annotations

import csv
from pathlib import Path


def load_pyplot():
    """matplotlib's pyplot, drawing to files (imported on first use: ~1 s)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def plot_training_curves(history_csv: Path, output: Path) -> Path:
    r"""Loss and accuracy per epoch (train vs validation) from Keras's CSVLogger file.

    Args:
        history_csv: the CSVLogger file (`epoch` column, `loss`, `val_loss`, ...).
        output: the PNG to write.

    Returns:
        `output`.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     history = Path(directory) / "history.csv"
        ...     rows = ["epoch,loss,accuracy,val_loss,val_accuracy", "0,1.0,0.5,1.1,0.4",
        ...             "1,0.8,0.6,0.9,0.5"]
        ...     _ = history.write_text("\n".join(rows))
        ...     png = plot_training_curves(history, Path(directory) / "curves.png")
        ...     png.name, png.read_bytes()[:4]
        ('curves.png', b'\x89PNG')
    """
    plt = load_pyplot()
    with open(history_csv, newline="") as file:
        rows = [row for row in csv.DictReader(file) if row.get("epoch", "").isdigit()]
    epochs = [int(row["epoch"]) + 1 for row in rows]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-o"), ("val_", "--s")):
            key = prefix + metric
            if rows and key in rows[0]:
                axis.plot(epochs, [float(row[key]) for row in rows], style,
                          label="validation" if prefix else "train")
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)
    return output


def plot_confusion_matrix(matrix, labels: list[str], output: Path, title: str) -> Path:
    r"""A confusion matrix heat map (rows: true label, columns: predicted), counts annotated.

    Args:
        matrix: counts, `matrix[true][predicted]`.
        labels: label names in id order.
        output: the PNG to write.
        title: the figure title.

    Returns:
        `output`.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as directory:
        ...     output = Path(directory) / "confusion.png"
        ...     png = plot_confusion_matrix([[5, 1], [2, 7]], ["neg", "pos"], output, "test")
        ...     png.name, png.read_bytes()[:4]
        ('confusion.png', b'\x89PNG')
    """
    plt = load_pyplot()
    figure, axis = plt.subplots(figsize=(1.6 * len(labels) + 2, 1.4 * len(labels) + 1.5))
    image = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axis)
    axis.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            axis.text(j, i, str(count), ha="center", va="center",
                      color="white" if count > peak / 2 else "black")
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)
    return output
