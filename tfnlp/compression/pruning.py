"""Magnitude pruning with tfmot: schedule from the fine-tuning length, strip, measure sparsity."""

from __future__ import annotations

import numpy as np

from tfnlp.backend import keras


def pruning_schedule(
    total_steps: int,
    target_sparsity: float,
    kind: str = "polynomial_decay",
    frequency: int | None = None,
):
    """A tfmot pruning schedule that reaches `target_sparsity` within `total_steps`.

    tfmot only updates the masks every `frequency` steps (default 100), so a short fine-tune
    with the default prunes nothing. Here the sparsity ramps over the first ~2/3 of the steps
    (the rest lets the remaining weights recover) with about 10 mask updates on the way.

    Args:
        total_steps: optimizer steps of the pruning fine-tune.
        target_sparsity: the final fraction of zeros in each pruned weight (0 < s < 1).
        kind: "polynomial_decay" (gradual, usually more accurate) or "constant" (from step 0).
        frequency: steps between mask updates; None derives it from `total_steps`.

    Returns:
        `(schedule, details)`: the tfmot `PruningSchedule` and a JSON-ready description.

    Raises:
        ValueError: a sparsity outside (0, 1), fewer than 2 steps, or an unknown `kind`.
    """
    if not 0.0 < target_sparsity < 1.0:
        raise ValueError(
            "`compression.target_sparsity` must be between 0 and 1 (exclusive). "
            f"Received: target_sparsity={target_sparsity!r}."
        )
    if total_steps < 2:
        raise ValueError(
            "The pruning fine-tune must run at least 2 steps. "
            f"Received: total_steps={total_steps}; raise `compression.epochs` or use more data."
        )
    end_step = max(1, (2 * total_steps) // 3)
    if frequency is None:
        frequency = max(1, end_step // 10)
    schedule = _tfmot_schedule(kind, target_sparsity, end_step, frequency)
    details = {
        "kind": kind,
        "target_sparsity": target_sparsity,
        "begin_step": 0,
        "end_step": end_step,
        "frequency": frequency,
        "total_steps": total_steps,
    }
    return schedule, details


def _tfmot_schedule(kind: str, target_sparsity: float, end_step: int, frequency: int):
    """tfmot's `PruningSchedule` of one `kind`, pruning from step 0 to `end_step`."""
    import tensorflow_model_optimization as tfmot

    if kind == "polynomial_decay":
        return tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=0.0,
            final_sparsity=target_sparsity,
            begin_step=0,
            end_step=end_step,
            frequency=frequency,
        )
    if kind == "constant":
        return tfmot.sparsity.keras.ConstantSparsity(
            target_sparsity, begin_step=0, end_step=end_step, frequency=frequency
        )
    raise ValueError(
        "`compression.pruning_schedule` must be 'polynomial_decay' or 'constant'. "
        f"Received: pruning_schedule={kind!r}."
    )


def _prunable(layer) -> bool:
    import tensorflow_model_optimization as tfmot

    supported = (
        keras.layers.Embedding,
        keras.layers.Dense,
        keras.layers.LSTM,
        keras.layers.GRU,
        keras.layers.SimpleRNN,
    )
    return isinstance(layer, (*supported, tfmot.sparsity.keras.PrunableLayer))


def prune_id_model(id_model: keras.Model, schedule, m_by_n: tuple[int, int] | None = None):
    """Wraps every prunable layer of an id-level model in tfmot's `PruneLowMagnitude`.

    The Embedding, the (Bi)LSTM cells (through `CompressibleBidirectional`), the Transformer
    projections (through `CompressibleTransformerEncoderBlock`) and the Dense head are pruned.
    With `m_by_n` (e.g. (2, 4)) every pruned layer but the Embedding gets structured
    sparsity instead (m zeros in each block of n along the input axis, what sparse matmul
    hardware can skip); the Embedding, a lookup table, keeps the schedule's sparsity.

    Returns:
        `(model, pruned_layer_names)`: the wrapped model (trained weights kept) and the names.
    """
    import tensorflow_model_optimization as tfmot

    pruned = []

    def wrap(layer):
        if not _prunable(layer):
            return layer
        pruned.append(layer.name)
        options = {"pruning_schedule": schedule}
        if m_by_n is not None and not isinstance(layer, keras.layers.Embedding):
            options["sparsity_m_by_n"] = tuple(m_by_n)
        return tfmot.sparsity.keras.prune_low_magnitude(layer, **options)

    model = keras.models.clone_model(id_model, clone_function=wrap)
    return model, pruned


def pruning_callbacks(log_dir: str | None = None) -> list[keras.callbacks.Callback]:
    """`UpdatePruningStep` (required: it advances the schedule) and, with a log dir,
    `PruningSummaries` (per-layer sparsity in TensorBoard)."""
    import tensorflow_model_optimization as tfmot

    callbacks = [tfmot.sparsity.keras.UpdatePruningStep()]
    if log_dir:
        callbacks.append(tfmot.sparsity.keras.PruningSummaries(log_dir=log_dir))
    return callbacks


def strip_pruning(model: keras.Model) -> keras.Model:
    """The model without tfmot wrappers: masked weights are now plain zeros."""
    import tensorflow_model_optimization as tfmot

    return tfmot.sparsity.keras.strip_pruning(model)


def _weight_kind(name: str) -> str | None:
    base = name.split("/")[-1].split(":")[0]
    for kind in ("recurrent_kernel", "kernel", "embeddings"):
        if base == kind:
            return kind
    return None


def weight_sparsity(model: keras.Model) -> dict:
    """Fraction of exact zeros in every kernel/embedding matrix of a (stripped) model.

    Measured from the weights themselves, not from the schedule: what gzip and a sparse
    kernel will actually see.

    Returns:
        {"layers": {layer: {weight: {"sparsity", "size"}}}, "overall": zeros / size over all
        listed matrices}.
    """
    layers = {}
    zeros = total = 0
    for layer in model.layers:
        for weight in layer.weights:
            kind = _weight_kind(weight.name)
            if kind is None:
                continue
            values = np.asarray(weight.numpy())
            count = int(np.count_nonzero(values == 0))
            layers.setdefault(layer.name, {})[weight.name.split(":")[0]] = {
                "sparsity": count / values.size,
                "size": int(values.size),
            }
            zeros += count
            total += values.size
    return {"layers": layers, "overall": zeros / total if total else 0.0}
