"""Pipeline parallelism (GPipe): the model's layers cut into stages, one device each.

The model is read as an ordered list of units: a functional chain's layers after its input,
or what a subclassed model's `pipeline_units()` returns (the language models). Consecutive
units form `distribute.pipeline.stages` stages, balanced by parameter count or by measured
forward time, and each stage's variables are created on its own device. The training step
then splits every batch into `micro_batches` micro-batches and runs stage s of micro-batch k
under stage s's device, forward and backward, all inside one traced step: TensorFlow's dataflow
executor starts stage s on micro-batch k+1 while stage s+1 still works on k (the GPipe
schedule), with no scheduler of ours. Gradients are summed over the micro-batches and applied
in one update, so a step equals the ordinary full-batch step up to float rounding.

Only the training step changes (it replaces the model's `train_step` on the instance): the
object graph, the variable names and so the checkpoints are an ordinary model's, and the run
evaluates and exports an ordinary copy loaded from the best checkpoint.

The loss must be a mean over the batch (Keras's default reduction): each micro-batch's mean is
weighted by its share of the batch's rows.
"""

from __future__ import annotations

import logging
import math
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from tfnlp.backend import keras, tf
from tfnlp.config.schema import PipelineConfig
from tfnlp.disk import variable_bytes
from tfnlp.training.parallelism import Parallelism

logger = logging.getLogger("tfnlp")

TIMED_PASSES = 3  # per unit, after one untimed pass that builds kernels and caches


class Unit(NamedTuple):
    """A piece of the forward pass that no stage boundary cuts.

    Attributes:
        name: what the split log and the report call it (the layer's name).
        layers: the layers that own its weights (placed on its stage's device).
        run: `run(x, training)` -> the unit's output from the previous unit's.
    """

    name: str
    layers: list
    run: Callable


@dataclass(frozen=True)
class Stage:
    """Consecutive units on one device."""

    device: str
    units: tuple[Unit, ...]

    @property
    def names(self) -> list[str]:
        return [unit.name for unit in self.units]

    @property
    def weights(self) -> list[tf.Variable]:
        return _unique(w for unit in self.units for layer in unit.layers for w in layer.weights)

    @property
    def parameters(self) -> int:
        return sum(int(np.prod(w.shape, dtype=np.int64)) for w in self.weights)

    def run(self, x, training):
        for unit in self.units:
            x = unit.run(x, training)
        return x


def _unique(variables) -> list[tf.Variable]:
    seen, unique = set(), []
    for variable in variables:
        if variable.ref() not in seen:
            seen.add(variable.ref())
            unique.append(variable)
    return unique


# The stages and their devices ---------------------------------------------------------------
def stage_devices(stages: int) -> list[str]:
    """`stages` devices: this host's GPUs when it has that many, else its logical CPUs (split
    before TensorFlow starts, by `tfnlp.training.strategy.create_strategy`).

    Raises:
        ValueError: fewer devices than stages.
    """
    gpus = tf.config.list_logical_devices("GPU")
    kind = "GPU" if len(gpus) >= stages else "CPU"
    available = len(tf.config.list_logical_devices(kind))
    if available < stages:
        raise ValueError(
            f"`distribute.pipeline.stages` must be at most this host's devices, "
            f"{max(available, len(gpus))} ({len(gpus)} GPU(s), {available} logical {kind}(s)). "
            f"Received: distribute.pipeline.stages={stages}. Use fewer stages, or split the "
            "CPU into that many logical devices before TensorFlow starts (`tfnlp train` does "
            "it from `distribute.pipeline`).")
    return [f"/device:{kind}:{index}" for index in range(stages)]


def pipeline_units(model: keras.Model) -> list[Unit]:
    """`model`'s forward pass as consecutive units (see the module docstring).

    Raises:
        ValueError: a model that is neither a single-input functional chain nor has
            `pipeline_units()`.
    """
    if hasattr(model, "pipeline_units"):
        return [Unit(*unit) for unit in model.pipeline_units()]
    if getattr(model, "_is_graph_network", False):
        return _functional_units(model)
    raise ValueError(
        "`distribute.pipeline` must be given a functional model or one with "
        f"`pipeline_units()`. Received: {type(model).__name__} {model.name!r}. Add a "
        "`pipeline_units()` method (see `TransformerLanguageModel`), or drop "
        "`distribute.pipeline`.")


def _functional_units(model: keras.Model) -> list[Unit]:
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if not layers:
        return []
    previous = model.inputs[0] if len(model.inputs) == 1 else None
    for layer in layers:
        node = _node_in(model, layer)
        inputs = node.keras_inputs if node is not None else []
        if previous is None or len(inputs) != 1 or inputs[0] is not previous:
            raise ValueError(
                "`distribute.pipeline` must be given a model whose layers form a chain (one "
                f"input, each layer taking the previous one's output). Received: model "
                f"{model.name!r}, whose layer {layer.name!r} does not. Drop "
                "`distribute.pipeline` for this model.")
        previous = node.outputs
    reference = model.inputs[0]

    def first(x, training=None, layer=layers[0]):
        # What the functional model does to its input (dtype cast, a trailing 1 squeezed).
        return layer(model._conform_to_reference_input(x, reference), training=training)

    def run_layer(layer):
        # Keras passes each layer's mask along on its output (`_keras_mask`), across devices.
        return lambda x, training=None: layer(x, training=training)

    return [Unit(layer.name, [layer], first if index == 0 else run_layer(layer))
            for index, layer in enumerate(layers)]


def _node_in(model: keras.Model, layer):
    """`layer`'s call in `model` (its layers may also be called in other models)."""
    nodes = [node for index, node in enumerate(layer.inbound_nodes)
             if f"{layer.name}_ib-{index}" in model._network_nodes]
    return nodes[0] if len(nodes) == 1 else None


def balanced_cut(costs: list[float], stages: int) -> list[int]:
    """How many consecutive items each of `stages` groups takes, so that the largest group's
    cost is as small as it can be (every group takes at least one item).

    Example:
        >>> balanced_cut([4, 1, 1, 4], 2)
        [2, 2]
        >>> balanced_cut([1, 1, 1, 9], 2)
        [3, 1]
    """
    n = len(costs)
    prefix = np.concatenate([[0.0], np.cumsum(costs, dtype=np.float64)])
    # largest[s][i]: the best largest cost of items [0, i) in s + 1 groups; cut[s][i] its start
    largest = np.full((stages, n + 1), np.inf)
    cut = np.zeros((stages, n + 1), np.int64)
    largest[0, 1:] = prefix[1:]
    for s in range(1, stages):
        for i in range(s + 1, n + 1):
            for j in range(s, i):
                candidate = max(largest[s - 1, j], prefix[i] - prefix[j])
                if candidate < largest[s, i]:
                    largest[s, i], cut[s, i] = candidate, j
    sizes, end = [], n
    for s in range(stages - 1, 0, -1):
        sizes.append(end - int(cut[s, end]))
        end = int(cut[s, end])
    return [end, *reversed(sizes)]


def unit_parameters(unit: Unit) -> int:
    """The scalars in a unit's weights."""
    return Stage("", (unit,)).parameters


def unit_times(units: list[Unit], inputs) -> list[float]:
    """Each unit's median forward time (seconds) on `inputs`, run eagerly in order."""
    times = [[] for _ in units]
    for timed_pass in range(TIMED_PASSES + 1):
        x = inputs
        for index, unit in enumerate(units):
            start = time.perf_counter()
            x = unit.run(x, False)
            tf.test.experimental.sync_devices()  # GPUs return before the kernel has run
            if timed_pass:
                times[index].append(time.perf_counter() - start)
    return [float(np.median(unit_time)) for unit_time in times]


# The training step --------------------------------------------------------------------------
def micro_batch_bounds(rows, micro_batches: int) -> list[tuple[tf.Tensor, tf.Tensor]]:
    """(start, size) per micro-batch: sizes differ by at most one (empty when rows < K)."""
    base, extra = rows // micro_batches, rows % micro_batches
    return [(k * base + tf.minimum(k, extra), base + tf.cast(k < extra, rows.dtype))
            for k in range(micro_batches)]


def _rows(structure, start, size):
    return tf.nest.map_structure(
        lambda t: None if t is None else t[start:start + size], structure)


def _floating(tensor) -> bool:
    return tensor.dtype.is_floating


def _scaled(optimizer, loss):
    if isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer):
        return optimizer.get_scaled_loss(loss)
    return loss


def _forward(model, stages: list[Stage], x, y, sample_weight, share):
    """One micro-batch through every stage, each on its device under its own tape.

    Returns:
        `(tape, stage input, what to differentiate)` per stage (the last stage's is its
        share of the batch's loss, loss-scaled under mixed_float16), and the predictions.
    """
    records = []
    for stage in stages:
        with tf.device(stage.device), tf.GradientTape() as tape:
            if _floating(x):
                tape.watch(x)
            outputs = stage.run(x, training=True)
            target = outputs
            if stage is stages[-1]:
                # Updates the "loss" metric with this micro-batch's mean, weighted by its
                # rows: over the micro-batches that is the full batch's mean.
                loss = model.compiled_loss(y, outputs, sample_weight,
                                           regularization_losses=model.losses)
                target = _scaled(model.optimizer, loss * share)
        records.append((tape, x, target))
        x = outputs
    return records, outputs


def _backward(stages: list[Stage], records, trainable: set, gradients: dict) -> None:
    """Back through the stages, each on its device; appends each variable's gradients."""
    upstream = None
    for stage, (tape, inputs, target) in reversed(list(zip(stages, records))):
        with tf.device(stage.device):
            variables = [v for v in tape.watched_variables() if v.ref() in trainable]
            sources = variables + ([inputs] if _floating(inputs) else [])
            grads = tape.gradient(target, sources, output_gradients=upstream)
        for variable, grad in zip(variables, grads):
            if grad is not None:
                gradients.setdefault(variable.ref(), []).append(grad)
        upstream = grads[-1] if _floating(inputs) else None
        if upstream is None:  # nothing earlier is differentiable through this input
            return


def _summed(variable, grads):
    """One variable's gradients summed on its device (sparse rows stay sparse)."""
    with tf.device(variable.device):
        if len(grads) == 1:
            return grads[0]
        if all(isinstance(g, tf.IndexedSlices) for g in grads):
            # Repeated rows are summed by the optimizer's scatter, as for one batch's gather.
            return tf.IndexedSlices(tf.concat([g.values for g in grads], 0),
                                    tf.concat([g.indices for g in grads], 0),
                                    grads[0].dense_shape)
        return tf.add_n([tf.convert_to_tensor(g) for g in grads])


def pipelined_train_step(model: keras.Model, data, stages: list[Stage], micro_batches: int):
    """Keras's `train_step` (same loss, one update, same logs), run as a pipeline.

    Args:
        model: the compiled model whose units `stages` hold.
        data: the batch: `(x, y)` or `(x, y, sample_weight)`.
        stages: the stages, in order.
        micro_batches: how many pieces each batch is split into.

    Returns:
        The metrics' results (`{name: value}`), as `Model.train_step` returns them.
    """
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    rows = tf.shape(x)[0]
    trainable = {v.ref() for v in model.trainable_variables}
    gradients, predictions = {}, []
    for start, size in micro_batch_bounds(rows, micro_batches):
        share = tf.cast(size, tf.float32) / tf.cast(rows, tf.float32)
        records, outputs = _forward(model, stages, _rows(x, start, size), _rows(y, start, size),
                                    _rows(sample_weight, start, size), share)
        _backward(stages, records, trainable, gradients)
        predictions.append(outputs)
    model._validate_target_and_loss(y, records[-1][2])  # Keras's check for a missing loss
    variables = [v for v in model.trainable_variables if v.ref() in gradients]
    grads = [_summed(v, gradients[v.ref()]) for v in variables]
    if isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer):
        grads = model.optimizer.get_unscaled_gradients(grads)
    model.optimizer.apply_gradients(zip(grads, variables))
    with tf.device(stages[-1].device):
        y_pred = tf.concat(predictions, axis=0)
    return model.compute_metrics(x, y, y_pred, sample_weight)


def _placed_updates(optimizer_class):
    """`optimizer_class` updating (and decaying) each variable on the variable's device, so
    the update does not run on the default device and copy each stage's weights there."""

    class PlacedUpdates(optimizer_class):
        def _update_step(self, gradient, variable):
            with tf.device(variable.device):
                return super()._update_step(gradient, variable)

        def _update_step_xla(self, gradient, variable, key):
            with tf.device(variable.device):
                return super()._update_step_xla(gradient, variable, key)

        def _apply_weight_decay(self, variables):
            for device in dict.fromkeys(v.device for v in variables):
                with tf.device(device):
                    super()._apply_weight_decay([v for v in variables if v.device == device])

    PlacedUpdates.__name__ = optimizer_class.__name__
    return PlacedUpdates


def _placing(devices_by_name: dict[str, str]):
    """A variable creator putting each variable named in `devices_by_name` on its device."""

    def creator(next_creator, **kwargs):
        name = "/".join(part for part in (tf.get_current_name_scope(), kwargs.get("name"))
                        if part)
        device = devices_by_name.get(name)
        if device is None:
            return next_creator(**kwargs)
        with tf.device(device):
            return next_creator(**kwargs)

    return creator


def _same_device(variable, device: str) -> bool:
    placed, wanted = tf.DeviceSpec.from_string(variable.device), tf.DeviceSpec.from_string(device)
    return (placed.device_type, placed.device_index) == (wanted.device_type, wanted.device_index)


# The engine ----------------------------------------------------------------------------------
class PipelineParallelism(Parallelism):
    """The model's layers cut into stages on separate devices, trained in micro-batches.

    Args:
        config: the pipeline; `distribute.pipeline` holds `stages`, `micro_batches` and
            `balance`.

    Raises:
        ValueError: the host has fewer devices than `distribute.pipeline.stages`.

    Example (one stage, so that it runs on any host; `tfnlp train` uses it for `stages > 1`):
        >>> from tfnlp.config.schema import DistributeConfig, PipelineParallelConfig
        >>> engine = PipelineParallelism(PipelineConfig(name="demo", distribute=DistributeConfig(
        ...     pipeline=PipelineParallelConfig(stages=1, micro_batches=4))))
        >>> len(engine.devices), engine.pipeline.micro_batches
        (1, 4)
    """

    name = "pipeline"
    serves_a_copy = True

    def __init__(self, config: PipelineConfig):
        super().__init__(config, 1)
        self.pipeline = config.distribute.pipeline
        self.devices = stage_devices(self.pipeline.stages)
        self.stages: list[Stage] = []

    def build(self, make_models):
        """Builds once plainly to cut the units into stages, then for real with each stage's
        variables on its device; installs the pipelined step on the trained model.

        Returns:
            (served model, trained model) from the second build.

        Raises:
            ValueError: more stages than the model has units, or a model that cannot be cut.
        """
        _, plain = make_models()
        units = pipeline_units(plain)
        sizes = balanced_cut(self._costs(units), self.pipeline.stages)
        devices_by_name = {w.name.split(":")[0]: stage.device
                           for stage in self._stages(units, sizes) for w in stage.weights}
        del plain, units  # only the names and the cut are kept
        with tf.variable_creator_scope(_placing(devices_by_name)):
            served, fitted = make_models()
        self.stages = self._stages(pipeline_units(fitted), sizes)
        self._check_placement()
        stages, micro_batches = self.stages, self.pipeline.micro_batches

        def train_step(model, data):
            return pipelined_train_step(model, data, stages, micro_batches)

        # On the instance: the object graph (and so every checkpoint) stays the ordinary one.
        fitted.train_step = types.MethodType(train_step, fitted)
        logger.info("pipeline: %d stages x %d micro-batches, balanced by %s: %s",
                    len(stages), micro_batches, self.pipeline.balance, "; ".join(
                        f"stage {i} -> {s.device} [{', '.join(s.names)}] {s.parameters:,} "
                        "parameters" for i, s in enumerate(stages)))
        return served, fitted

    def _stages(self, units: list[Unit], sizes: list[int]) -> list[Stage]:
        bounds = np.cumsum([0, *sizes])
        return [Stage(device, tuple(units[start:end]))
                for device, start, end in zip(self.devices, bounds, bounds[1:])]

    def _costs(self, units: list[Unit]) -> list[float]:
        stages = self.pipeline.stages
        if stages > len(units):
            raise ValueError(
                f"`distribute.pipeline.stages` must be at most {len(units)}, the model's "
                f"layers ({', '.join(unit.name for unit in units)}). Received: "
                f"distribute.pipeline.stages={stages}. Use at most {len(units)} stages.")
        if self.pipeline.balance == "time":
            return unit_times(units, self._sample_ids(units))
        return [float(unit_parameters(unit)) for unit in units]

    def _sample_ids(self, units: list[Unit]) -> tf.Tensor:
        """One micro-batch of random token ids, as the stages will see it."""
        embedding = units[0].layers[0] if units[0].layers else None
        if not isinstance(embedding, keras.layers.Embedding):
            raise ValueError(
                "`distribute.pipeline.balance` must be 'parameters' for a model that does not "
                "start from token ids. Received: distribute.pipeline.balance='time' and a "
                f"first layer {units[0].name!r}. Use `balance: parameters`, or "
                "`preprocessing.in_dataset: true` so that the trained model takes ids.")
        config = self.config
        length = (config.language_model.sequence_length if config.task == "language_model"
                  else config.preprocessing.sequence_length)
        batch = math.ceil(config.train.batch_size / self.pipeline.micro_batches)
        return tf.random.stateless_uniform([batch, length], seed=[0, 0], minval=1,
                                           maxval=embedding.input_dim, dtype=tf.int32)

    def _check_placement(self) -> None:
        for stage in self.stages:
            for weight in stage.weights:
                if not _same_device(weight, stage.device):
                    raise RuntimeError(
                        f"The pipeline placed {weight.name} on {weight.device!r}, not on its "
                        f"stage's {stage.device!r}: the second build named its variables "
                        "differently from the first. Give every layer with weights an "
                        "explicit, unique name.")

    def optimizer(self, optimizer_class, **kwargs) -> keras.optimizers.Optimizer:
        """The optimizer, each variable's update placed on that variable's stage device."""
        return super().optimizer(_placed_updates(optimizer_class), **kwargs)

    def report(self, fitted: keras.Model) -> dict:
        """The stages and what each device holds; a pipeline all-reduces nothing (its stages
        send activations and their gradients instead)."""
        by_device = [variable_bytes([w for w in fitted.weights if _same_device(w, device)])
                     for device in self.devices]
        return {
            "kind": self.name,
            "devices": len(self.devices),
            "parameter_bytes_per_device": max(by_device),
            "parameter_bytes_by_device": by_device,
            "allreduce_bytes_per_step": 0,
            "allreduce_dtype": self.all_reduce_dtype,
            "stages": [{"device": s.device, "layers": s.names, "parameters": s.parameters}
                       for s in self.stages],
            "micro_batches": self.pipeline.micro_batches,
            "balance": self.pipeline.balance,
        }
