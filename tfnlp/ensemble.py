"""`tfnlp ensemble`: finished classifier runs averaged into one export, with its metrics.

The members are read back with `load_trained`, each with its own preprocessing. They must
have the same labels and the same data and split settings, since they are weighed on one
validation split and evaluated on one test split. The ensemble is published through the one
export path (`publish` with an `EnsembleServingModule`), and its metrics — test accuracy,
macro-F1, per-class precision/recall/F1, each member's figures and the weights — go to
`<out_dir>/metrics.json` (by default `runs/ensembles/<name>/`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfnlp.backend import tf
from tfnlp.config.schema import PipelineConfig
from tfnlp.data import encode_labels
from tfnlp.data.streaming import split_dataset
from tfnlp.evaluation import classification_metrics, plot_confusion_matrix
from tfnlp.export import check_model_name, publish
from tfnlp.export.classification import served_probabilities
from tfnlp.export.ensemble import EnsembleServingModule, normalized_weights
from tfnlp.export.warmup import MAX_WARMUP_TEXTS
from tfnlp.training.run_directory import RunDirectory
from tfnlp.training.run_lock import locked
from tfnlp.training.trained import TrainedRun, load_trained

logger = logging.getLogger("tfnlp")

# equal: every member weighs the same; validation: in proportion to its validation accuracy.
WEIGHTINGS = ("equal", "validation")


@dataclass
class EnsembleResult:
    """The published version, the metrics written, and the directory they are in."""

    export_path: Path
    metrics: dict
    out_dir: Path


def ensemble_runs(run_dirs: Sequence[str | Path], name: str, *, weighting: str = "equal",
                  export_dir: str | Path | None = None,
                  out_dir: str | Path | None = None) -> EnsembleResult:
    """Publishes the average of finished classifier runs as `<export_dir>/<name>/<version>/`.

    Args:
        run_dirs: two or more finished classification run directories.
        name: the export's model name (one safe path component).
        weighting: "equal", or "validation" (weights proportional to each member's
            validation accuracy on the shared split).
        export_dir: the export root (default: the first member's `export.dir`).
        out_dir: where `metrics.json` and the confusion plot go (default
            `runs/ensembles/<name>`).

    Returns:
        The export path, the metrics and the output directory.

    Raises:
        ValueError: a bad name or weighting, fewer than two runs, a run that is not a
            classifier, or members whose labels or data split settings differ.
        FileNotFoundError: a directory that is not a finished run.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"`--weights` must be one of {', '.join(WEIGHTINGS)}. "
                         f"Received: --weights={weighting!r}.")
    check_model_name(name)
    if len(run_dirs) < 2:
        raise ValueError(f"An ensemble needs at least two run directories. Received: "
                         f"{[str(d) for d in run_dirs]}.")
    out = Path(out_dir or Path("runs") / "ensembles" / name)
    with locked(out, command="ensemble", reading=tuple(run_dirs)):
        check_members(run_dirs)  # before any model is built: the cheap refusals first
        members = [load_trained(run_dir) for run_dir in run_dirs]
        return _ensemble(members, name, weighting, export_dir, out)


def check_members(run_dirs: Sequence[str | Path]) -> None:
    """Refuses members that cannot be averaged or compared on one test split.

    Raises:
        ValueError: naming the run and the key: a task other than classification, other
            labels (`labels.json`), or other data or split settings (`data.*`, `seed`).
    """
    first = RunDirectory(Path(run_dirs[0]))
    settings, labels = split_settings(first.read_config()), first.read_labels()
    for run_dir in run_dirs:
        run = RunDirectory(Path(run_dir))
        config = run.read_config()
        if config.task != "classification":
            raise ValueError(f"{run_dir}: `task` is {config.task!r}; an ensemble averages "
                             "classifiers (`task: classification`).")
        if run.read_labels() != labels:
            raise ValueError(
                f"{run_dir}: its labels {run.read_labels()} (labels.json) differ from "
                f"{run_dirs[0]}'s {labels}; ensemble members must share the labels, in order.")
        for key, value in split_settings(config).items():
            if value != settings[key]:
                raise ValueError(
                    f"{run_dir}: `{key}` is {value!r}, but {run_dirs[0]}'s is "
                    f"{settings[key]!r}; ensemble members must read the same data and split "
                    "(they are evaluated on one test split).")


def split_settings(config: PipelineConfig) -> dict:
    """Everything that decides which examples land in which split: `data.*` and `seed`."""
    data = {f"data.{key}": value for key, value in dataclasses.asdict(config.data).items()}
    return {**data, "seed": config.seed}


def held_out(data, split: str, seed: int) -> tuple[list[str], np.ndarray]:
    """The texts and label ids of a held-out split ("validation" or "test").

    Raises:
        ValueError: the split is empty (the ensemble is weighed and evaluated on them).
    """
    if data.stream:
        texts, ids = [], []
        for batch_texts, batch_ids, *_ in split_dataset(data.stream, split, batch_size=256,
                                                        shuffle=False, seed=seed,
                                                        shuffle_buffer=1):
            texts += [text.decode("utf-8") for text in batch_texts.numpy()]
            ids += batch_ids.numpy().tolist()
        ids = np.asarray(ids, dtype=np.int64)
    else:
        examples = getattr(data.splits, split)
        texts, ids = list(examples.texts), encode_labels(examples, data.labels)
    if not texts:
        raise ValueError(f"The members' {split} split is empty (`data.{split}_fraction`); an "
                         "ensemble is weighed on the validation split and evaluated on the test "
                         "split.")
    return texts, ids


def probabilities(model, texts: list[str], batch_size: int = 256) -> np.ndarray:
    """`[len(texts), classes]` probabilities of a string-in classifier, as served."""
    batches = tf.data.Dataset.from_tensor_slices(tf.constant(texts, tf.string)).batch(batch_size)
    return np.concatenate([served_probabilities(model, batch).numpy() for batch in batches])


@dataclass
class MemberOutputs:
    """Every member's probabilities and accuracy on each held-out split, in member order."""

    probabilities: dict[str, list[np.ndarray]]
    accuracy: dict[str, list[float]]

    @classmethod
    def of(cls, members: list[TrainedRun], splits: dict) -> MemberOutputs:
        outputs = {split: [probabilities(m.model, texts) for m in members]
                   for split, (texts, _) in splits.items()}
        accuracy = {split: [float(np.mean(p.argmax(axis=-1) == ids)) for p in outputs[split]]
                    for split, (_, ids) in splits.items()}
        return cls(outputs, accuracy)

    def predicted(self, split: str, weights: list[float]) -> np.ndarray:
        """The ensemble's label ids: the argmax of the weighted average."""
        return np.argmax(sum(w * p for w, p in zip(weights, self.probabilities[split])), axis=-1)


def _ensemble(members: list[TrainedRun], name: str, weighting: str, export_dir,
              out: Path) -> EnsembleResult:
    first = members[0]
    data = first.task.read_data()
    splits = {split: held_out(data, split, first.config.seed) for split in ("validation", "test")}
    outputs = MemberOutputs.of(members, splits)
    weights = normalized_weights([1.0] * len(members) if weighting == "equal"
                                 else outputs.accuracy["validation"], len(members))
    logger.info("ensemble weights (%s): %s", weighting, ", ".join(
        f"{m.directory.path} {w:.3f}" for m, w in zip(members, weights)))
    module = EnsembleServingModule([m.model for m in members], data.labels, weights)
    path = publish(module, export_dir or first.config.export.dir, name,
                   warmup_texts=first.task.sample_texts(data, MAX_WARMUP_TEXTS))
    logger.info("exported: %s", path)
    test = classification_metrics(splits["test"][1], outputs.predicted("test", weights),
                                  data.labels)
    validation = classification_metrics(
        splits["validation"][1], outputs.predicted("validation", weights), data.labels)
    metrics = {
        "ensemble": name, "weighting": weighting, "weights": weights,
        "members": [member_entry(m, weights[i], outputs.accuracy["validation"][i],
                                 outputs.accuracy["test"][i]) for i, m in enumerate(members)],
        "test": test,
        "validation": {"accuracy": validation["accuracy"], "macro_f1": validation["macro_f1"]},
        "data": data.sizes(),
        "export": {"path": str(path)},
    }
    out.mkdir(parents=True, exist_ok=True)
    plot_confusion_matrix(test["confusion_matrix"], data.labels, out / "confusion_matrix.png",
                          f"{name}: test accuracy {test['accuracy']:.3f}")
    RunDirectory(out).write_json("metrics.json", metrics)
    return EnsembleResult(path, metrics, out)


def member_entry(member: TrainedRun, weight: float, validation_accuracy: float,
                 test_accuracy: float) -> dict:
    """A member's line in the ensemble's metrics.json."""
    return {"run": str(member.directory.path), "pipeline": member.config.name,
            "model": member.config.model.name, "weight": weight,
            "validation": {"accuracy": validation_accuracy}, "test": {"accuracy": test_accuracy}}


def headline(metrics: dict) -> str:
    """One line: the ensemble's test figures beside each member's test accuracy."""
    members = " / ".join(f"{m['pipeline']} {m['test']['accuracy']:.4f}"
                         for m in metrics["members"])
    return (f"ensemble test accuracy {metrics['test']['accuracy']:.4f}  macro-F1 "
            f"{metrics['test']['macro_f1']:.4f}  (members: {members})")
