"""Model parallelism with DTensor: Transformer weights sharded over a `model` mesh axis.

tf-keras 2.21 trains DTensor models with plain `model.fit`: variables created inside a
`LayoutMap.scope()` become DVariables with the map's layouts, batches come from a
`DTensorDataset`, and the mesh-aware optimizers in `keras.dtensor.experimental.optimizers`
update each shard where it lives. DTensor then inserts the collectives a sharded matmul needs.
(Keras 3 dropped DTensor and Google no longer develops it: this is where it still works, and
it is frozen.)

The layouts are Megatron-LM's tensor parallelism: attention heads and the first feed-forward
layer split by columns, the attention output and the second feed-forward layer by rows (one
all-reduce per block and direction), the embedding split along its width.

What tfnlp refuses, because it measured TF 2.21 training it wrongly against one device (see
`DistributeConfig.validate` and tests/training/parallel_equivalence.py): a mesh with a batch
axis (hybrid parallelism), a language model's output layer split by rows, and LSTMs (whose
gate kernels cannot be split at all: "Spliting over sharded dimension is not supported").

Layouts are declared by variable name, as users see them (`encoder_0/ff_hidden/kernel`).
tf-keras's LayoutMap keys on object paths instead (`encoder_0.ff_hidden.kernel`), so the model
is first built plainly to find each variable's name, shape and path, which also checks every
rule against the real shapes before anything is sharded.

What must differ under DTensor, and only here (numerics are unchanged):
  * Keras draws dropout masks from `tf.random.Generator` (DTensor cannot shard the legacy RNG);
  * gradients are densified (`ResourceScatterAdd` has no layout propagation) and laid out
    like their variables (a replicated bias's was silently not applied otherwise);
  * LayerNormalization takes its unfused path (`FusedBatchNormV3` has none either);
  * batches are padded to one static length (a DTensorDataset has one static shape).
"""

from __future__ import annotations

import logging
import re
from unittest import mock

import numpy as np

from tfnlp.backend import keras, tf
from tfnlp.config.schema import PipelineConfig
from tfnlp.training.parallelism import Parallelism, steps_for

logger = logging.getLogger("tfnlp")

dtensor = tf.experimental.dtensor
U = "unsharded"

# Variable-name regex (searched) -> one entry per dimension. First match wins.
TRANSFORMER_LAYOUTS = {
    r"(^|/)embedding/embeddings": [U, "model"],
    r"attention/(query|key|value)/kernel": [U, "model", U],
    r"attention/(query|key|value)/bias": ["model", U],
    r"attention/attention_output/kernel": ["model", U, U],
    r"ff_hidden/kernel": [U, "model"],
    r"ff_hidden/bias": ["model"],
    r"ff_output/kernel": ["model", U],
}
# The output layers stay replicated: a language model's split by rows (its input width)
# trained wrongly in TF 2.21 (measured), and a classifier's is tiny.


_initialized_device_type: list[str] = []


def initialize(device_type: str) -> None:
    """Starts DTensor on this host's `device_type` devices, once per process; it must run
    before TensorFlow initialises (`create_strategy` calls it first)."""
    if not _initialized_device_type:
        try:
            dtensor.initialize_accelerator_system(device_type)
        except ValueError as error:
            raise ValueError(
                f"`distribute.strategy: dtensor` must start before TensorFlow initialises "
                f"({error}). Run it in a fresh process (`tfnlp train`), not after other "
                "TensorFlow work in the same one.") from None
        _initialized_device_type.append(device_type)


def create_mesh(batch: int, model: int) -> dtensor.Mesh:
    """A `batch` × `model` mesh over the devices DTensor was initialised on.

    Raises:
        ValueError: the host has fewer devices than the mesh needs.
    """
    needed = batch * model
    device_type = (_initialized_device_type or ["CPU"])[0]
    available = len(tf.config.list_logical_devices(device_type))
    if available < needed:
        raise ValueError(
            f"`distribute.mesh` {{batch: {batch}, model: {model}}} needs {needed} devices. "
            f"Received: {available} {device_type} device(s). Use a mesh of at most "
            f"{available} devices, or run where there are more.")
    devices = [f"/device:{device_type}:{index}" for index in range(needed)]
    # Only the axes longer than 1: with a size-1 axis TF 2.21 trained wrongly (on a 2 x 1
    # mesh the loss and the updates differed from one device's; on 1 x 2 every batch came
    # twice). A layout naming a missing axis is unsharded along it (`resolve_layouts`).
    axes = [(name, size) for name, size in (("batch", batch), ("model", model)) if size > 1]
    return dtensor.create_mesh(axes or [("batch", 1)], devices=devices, device_type=device_type)


def named_variables(model: keras.Model) -> list[tuple[str, str, tf.Variable]]:
    """(LayoutMap object path, variable name, variable) for every weight of `model`.

    The paths are the ones tf-keras's LayoutMap looks up when it creates a model's variables:
    per layer, prefixed by the layer's name, for functional models; from the model for
    subclassed ones. A variable reachable by several paths is listed under each.
    """
    from tf_keras.src.dtensor.layout_map import _KERAS_ATTRIBUTES_TO_SKIP  # no public list

    def paths(root, prefix):
        for path, variable in root._flatten(
                predicate=lambda o: isinstance(o, tf.Variable), with_path=True):
            if not any(skipped in path for skipped in _KERAS_ATTRIBUTES_TO_SKIP):
                yield prefix + ".".join(str(item) for item in path), variable

    if model._is_graph_network:  # functional: LayoutMap walks layer by layer
        found = [pair for layer in model.layers for pair in paths(layer, layer.name + ".")]
    else:
        found = list(paths(model, ""))
    return [(path, variable.name.split(":")[0], variable) for path, variable in found]


def resolve_layouts(model: keras.Model, defaults: dict, overrides: dict | None,
                    mesh_shape: dict[str, int]) -> dict[str, list[str]]:
    """Each of `model`'s variable names -> its sharding (only the sharded ones).

    `overrides` (`distribute.layouts`) win over `defaults`; a variable neither matches stays
    replicated.

    Raises:
        ValueError: an override regex matching no variable, a spec with the wrong number of
            dimensions, or a sharded dimension the mesh does not divide; each names the key.
    """
    variables = {name: variable for _, name, variable in named_variables(model)}
    overrides = overrides or {}
    for pattern in overrides:
        if not any(re.search(pattern, name) for name in variables):
            raise ValueError(
                f"`distribute.layouts[{pattern!r}]` must match a variable of the model. "
                f"Received: no match among {len(variables)} variables, e.g. "
                f"{sorted(variables)[:6]}. Use a regex searched in those names.")
    resolved = {}
    for name, variable in variables.items():
        rules = [("distribute.layouts", overrides), ("the default layouts", defaults)]
        for source, table in rules:
            pattern = next((p for p in table if re.search(p, name)), None)
            if pattern is not None:
                spec = table[pattern]
                _check_spec(f"{source}[{pattern!r}]", name, variable.shape, spec, mesh_shape)
                spec = [dim if dim != U and mesh_shape[dim] > 1 else U for dim in spec]
                if any(dim != U for dim in spec):
                    resolved[name] = spec
                break
    return resolved


def _check_spec(key: str, name: str, shape, spec: list[str], mesh_shape) -> None:
    if len(spec) != len(shape):
        raise ValueError(
            f"`{key}` must give one entry per dimension of {name} {list(shape)}. "
            f"Received: {spec}.")
    for size, dim in zip(shape, spec):
        if dim != U and size % mesh_shape[dim]:
            raise ValueError(
                f"`{key}` shards {name} {list(shape)} over mesh '{dim}' of "
                f"{mesh_shape[dim]}, which must divide {size}. Use a `distribute.mesh.{dim}` "
                f"that divides {size}, or 'unsharded' for that dimension.")


def adapt_for_dtensor(model: keras.Model) -> None:
    """Switches `model`'s layers to the code paths DTensor can lay out (same numerics)."""
    for layer in model._flatten(predicate=lambda o: isinstance(o, keras.layers.Layer)):
        if isinstance(layer, keras.layers.LayerNormalization):
            layer._fused = False  # read at call time; the fused kernel has no DTensor layout


def _subclassed_models_built_on_ids():
    """Works around tf-keras 2.21, whose `Model.__call__` builds a subclassed model under a
    LayoutMap on `Input(batch.shape)`: the batch dimension taken for a feature, float32 for
    the dtype, and nothing at all for a symbolic batch. This builds it on an input of the
    batch's own shape and dtype, then lets tf-keras swap in the laid-out DVariables."""
    from tf_keras.src.dtensor import layout_map as layout_map_lib

    original = keras.Model.__call__

    def call(self, *args, **kwargs):
        if self._layout_map is not None and not self.built and not self._is_graph_network:
            batch = args[0]
            with layout_map_lib.layout_map_scope(self._layout_map):
                keras.layers.Layer.__call__(
                    self, keras.Input(shape=batch.shape[1:], dtype=batch.dtype))
            layout_map_lib._map_subclass_model_variable(self, self._layout_map)
        return original(self, *args, **kwargs)

    return mock.patch.object(keras.Model, "__call__", call)


def _laid_out_gradients(optimizer_class):
    """`optimizer_class`, each gradient densified and laid out like its variable first.

    Densified: an Embedding's IndexedSlices gradient would need `ResourceScatterAdd`, which
    has no layout propagation. Laid out: without the explicit relayout, the gradient of a
    replicated bias on a mesh with batch > 1 was never applied (measured in TF 2.21: the bias
    stayed at its initial value while the kernels trained).
    """

    class LaidOutGradients(optimizer_class):
        def apply_gradients(self, grads_and_vars, *args, **kwargs):
            laid_out = []
            for gradient, variable in grads_and_vars:
                if gradient is not None:
                    gradient = dtensor.relayout(tf.convert_to_tensor(gradient), variable.layout)
                laid_out.append((gradient, variable))
            return super().apply_gradients(laid_out, *args, **kwargs)

    LaidOutGradients.__name__ = optimizer_class.__name__
    return LaidOutGradients


class DTensorParallelism(Parallelism):
    """Weights sharded over a DTensor mesh (see the module docstring).

    Args:
        config: the pipeline (`distribute.mesh`, `distribute.layouts`, the model family and
            the static sequence length).
    """

    name = "dtensor"
    serves_a_copy = True

    def __init__(self, config: PipelineConfig):
        super().__init__(config, config.distribute.mesh.batch)
        mesh = config.distribute.mesh
        self.mesh_shape = {"batch": mesh.batch, "model": mesh.model}
        self.mesh = create_mesh(mesh.batch, mesh.model)
        self.layouts: dict[str, list[str]] = {}

    @property
    def kind(self) -> str:
        """"model" (1 × M), "hybrid" (B × M) or "data" (B × 1) parallelism."""
        batch, model = self.mesh_shape["batch"], self.mesh_shape["model"]
        return "hybrid" if batch > 1 and model > 1 else "model" if model > 1 else "data"

    def build(self, make_models):
        # DTensor cannot shard the legacy stateless RNG that Keras's dropout uses by default.
        keras.backend.experimental.enable_tf_random_generator()
        plain, _ = make_models()  # to read each variable's name, shape and path
        self.layouts = resolve_layouts(plain, TRANSFORMER_LAYOUTS,
                                       self.distribute.layouts, self.mesh_shape)
        layout_map = keras.dtensor.experimental.LayoutMap(mesh=self.mesh)
        for path, name, _ in named_variables(plain):
            if name in self.layouts:
                layout_map[path] = dtensor.Layout(self.layouts[name], self.mesh)
        del plain
        with layout_map.scope(), _subclassed_models_built_on_ids():
            served, fitted = make_models()
        adapt_for_dtensor(fitted)
        logger.info("dtensor: mesh batch=%d x model=%d (%s parallelism) on %s; %d of %d "
                    "variables sharded: %s", self.mesh_shape["batch"], self.mesh_shape["model"],
                    self.kind, self.mesh.device_type(), len(self.layouts), len(fitted.weights),
                    ", ".join(f"{name} {spec}" for name, spec in self.layouts.items()))
        return served, fitted

    def optimizer(self, optimizer_class, **kwargs):
        mesh_class = getattr(keras.dtensor.experimental.optimizers, optimizer_class.__name__)
        return _laid_out_gradients(mesh_class)(mesh=self.mesh, **kwargs)

    def fit_kwargs(self, fit_kwargs: dict, examples_per_epoch: int, global_batch: int) -> dict:
        """The datasets as `DTensorDataset`s of whole global batches, each split along the
        mesh's "batch" axis; the step counts that a repeated dataset needs."""
        kwargs = dict(fit_kwargs)
        kwargs["x"] = self._distributed(fit_kwargs["x"], global_batch)
        kwargs["steps_per_epoch"] = steps_for(examples_per_epoch, global_batch)
        if fit_kwargs.get("validation_data") is not None:
            validation = fit_kwargs["validation_data"]
            examples = sum(int(tf.shape(batch[0])[0]) for batch in validation)
            kwargs["validation_data"] = self._distributed(validation, global_batch)
            kwargs["validation_steps"] = steps_for(examples, global_batch)
        dropped = examples_per_epoch % global_batch
        if dropped:
            logger.info("dtensor: each epoch reads %d whole batches of %d; %d examples wait "
                        "for a later pass of the shuffled, repeated stream",
                        kwargs["steps_per_epoch"], global_batch, dropped)
        return kwargs

    def _distributed(self, batches: tf.data.Dataset, global_batch: int):
        length = self._sequence_length()

        def fixed(spec):  # [batch, time?, ...] -> per-example shape with a static time
            return [length if size is None else size for size in spec.shape[1:]]

        specs = tf.nest.flatten(batches.element_spec)
        split = self.mesh_shape["batch"] > 1
        shards = batches.unbatch().repeat().padded_batch(
            global_batch // self.mesh_shape["batch"], padded_shapes=tf.nest.pack_sequence_as(
                batches.element_spec, [fixed(spec) for spec in specs]), drop_remainder=True)
        # With one mesh row the batch is replicated, not split: a "batch" axis of size 1 made
        # DTensorDataset (TF 2.21) hand out every batch twice on a 1 x 2 mesh.
        layouts = tf.nest.pack_sequence_as(batches.element_spec, [
            dtensor.Layout.batch_sharded(self.mesh, "batch", rank=len(spec.shape)) if split
            else dtensor.Layout.replicated(self.mesh, rank=len(spec.shape)) for spec in specs])
        return dtensor.DTensorDataset(shards, mesh=self.mesh, layouts=layouts,
                                      global_batch_size=global_batch,
                                      batch_dim="batch" if split else None,
                                      dataset_already_batched=True)

    def _sequence_length(self) -> int:
        if self.config.task == "language_model":
            return self.config.language_model.sequence_length
        return self.config.preprocessing.sequence_length

    def report(self, fitted: keras.Model) -> dict:
        """Per-device bytes from the variables' real shards (`dtensor.unpack`)."""
        devices = self.mesh.num_local_devices()
        held = np.zeros(devices, np.int64)
        reduced = np.zeros(devices, np.int64)
        for variable in fitted.weights:
            shards = dtensor.unpack(variable.read_value())
            sizes = [int(np.prod(shard.shape, dtype=np.int64)) * shard.dtype.size
                     for shard in shards]
            held += sizes
            if variable.trainable and self.mesh_shape["batch"] > 1:
                reduced += sizes  # each shard's gradient is summed over the batch axis
        return {
            "kind": self.kind,
            "devices": devices,
            "mesh": dict(self.mesh_shape),
            "parameter_bytes_per_device": int(held.max()),
            "parameter_bytes_by_device": held.tolist(),
            "allreduce_bytes_per_step": int(reduced.max()),
            "allreduce_dtype": "float32",
            "sharded_variables": {name: spec for name, spec in self.layouts.items()},
        }
