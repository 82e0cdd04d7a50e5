"""ULMFiT's fine-tuning schedule (Howard & Ruder 2018): gradual unfreezing and discriminative
learning rates, over the model's layer groups.

A layer group is one layer with trainable weights; the groups run from the top (the
classifier head, `logits`) down to the embedding. `train.unfreeze: gradual` trains only the
top group in the first epoch and one group more in each later one (`GradualUnfreezing`).
`train.layer_lr_decay: D` gives the group at depth d (the top is depth 0) the learning rate
times D**d (`with_layer_rates`).

Adam and AdamW are invariant to a gradient's scale, so scaling a lower layer's gradient would
change nothing: the optimizer's update of each variable is scaled instead (and AdamW's
decoupled weight decay with it, as a per-group learning rate would).
"""

from __future__ import annotations

import logging
from types import MappingProxyType

from tfnlp.backend import keras, tf

logger = logging.getLogger("tfnlp")


def layer_groups(model: keras.Model) -> list[str]:
    """The names of the model's layers with trainable weights, top (output) group first.

    Example:
        >>> inputs = keras.Input(shape=(3,))
        >>> hidden = keras.layers.Dense(4, name="hidden")(inputs)
        >>> outputs = keras.layers.Dense(2, name="logits")(keras.layers.Dropout(0.1)(hidden))
        >>> layer_groups(keras.Model(inputs, outputs))
        ['logits', 'hidden']
    """
    return [layer.name for layer in reversed(model.layers) if layer.trainable_weights]


def layer_rate_factors(model: keras.Model, decay: float) -> dict[str, float]:
    """Each layer group's learning-rate factor: `decay` ** its depth below the top group.

    Example:
        >>> inputs = keras.Input(shape=(3,))
        >>> hidden = keras.layers.Dense(4, name="hidden")(inputs)
        >>> model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(hidden))
        >>> layer_rate_factors(model, 0.5)
        {'logits': 1.0, 'hidden': 0.5}
    """
    return {name: decay ** depth for depth, name in enumerate(layer_groups(model))}


def with_layer_rates(optimizer_class: type[keras.optimizers.Optimizer]):
    """`optimizer_class` whose update of each variable is multiplied by its layer's factor.

    The subclass takes one more argument, `factors: {layer name: factor}` (layers not named
    keep factor 1); a variable belongs to the layer that created it. The update scaled is
    everything the optimizer does to the variable in one step, weight decay included, so
    with Adam the lower layers move by exactly `factor` times what they would (up to float
    rounding).

    Example:
        >>> AdamW = with_layer_rates(keras.optimizers.AdamW)
        >>> AdamW(learning_rate=0.01, factors={"embedding": 0.25}).factors
        {'embedding': 0.25}
    """

    class LayerRates(optimizer_class):
        def __init__(self, *args, factors: dict[str, float] | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            # Read-only mappings, not dicts: a dict attribute would be tracked (and checkpointed).
            self._factors = MappingProxyType(dict(factors or {}))
            self._variable_factors = None

        @property
        def factors(self) -> dict[str, float]:
            return dict(self._factors)

        def set_model(self, model: keras.Model) -> None:
            """Resolves `factors` to `model`'s variables (before the first step)."""
            self._variable_factors = MappingProxyType({
                self._var_key(variable): self._factors[layer.name]
                for layer in model.layers if layer.name in self._factors
                for variable in layer.trainable_weights
                if self._factors[layer.name] != 1.0})

        def factor_of(self, variable) -> float:
            if self._variable_factors is None:
                raise ValueError("`with_layer_rates`: call `optimizer.set_model(model)` before "
                                 "training, so that each variable's layer is known.")
            return self._variable_factors.get(self._var_key(variable), 1.0)

        def _use_weight_decay(self, variable):
            # A scaled variable is decayed in `update_step`, inside its scaled update.
            return super()._use_weight_decay(variable) and self.factor_of(variable) == 1.0

        def update_step(self, gradient, variable):
            factor = self.factor_of(variable)
            if factor == 1.0:
                return super().update_step(gradient, variable)
            before = tf.identity(variable)
            if self.weight_decay is not None and super()._use_weight_decay(variable):
                lr = tf.cast(self.learning_rate, variable.dtype)
                variable.assign_sub(variable * tf.cast(self.weight_decay, variable.dtype) * lr)
            super().update_step(gradient, variable)
            variable.assign(before + tf.cast(factor, variable.dtype) * (variable - before))

    LayerRates.__name__ = LayerRates.__qualname__ = optimizer_class.__name__
    return LayerRates


def base_optimizer(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """The optimizer inside a `LossScaleOptimizer` (or `optimizer` itself)."""
    return getattr(optimizer, "inner_optimizer", optimizer)


class GradualUnfreezing(keras.callbacks.Callback):
    """Epoch e (from 0) trains only the top e + 1 layer groups; the rest are frozen.

    The trainable set is a function of the epoch alone, so a run resumed at epoch e freezes
    exactly what an uninterrupted one did. Changing `trainable` takes effect only in a newly
    traced train function, so it is rebuilt whenever the set changes. A layer frozen before
    training (`model.freeze_embeddings`) stays frozen. Keras restores the compiled trainable
    state when `fit` returns.

    Args:
        groups: layer names, top group first (`layer_groups`); None: the model's own.
    """

    def __init__(self, groups: list[str] | None = None):
        super().__init__()
        self.groups = groups
        self.training: list[str] | None = None

    def on_train_begin(self, logs=None):
        self.groups = self.groups or layer_groups(self.model)
        self._layers = [self.model.get_layer(name) for name in self.groups]
        self._always_frozen = {layer.name for layer in self._layers if not layer.trainable}
        # The optimizer creates its slots once, for the variables of its first step: give it
        # every variable that will ever train, before the lower groups are frozen.
        base_optimizer(self.model.optimizer).build(self.model.trainable_variables)
        self.training = None

    def on_epoch_begin(self, epoch, logs=None):
        depth = epoch + 1
        training = [layer.name for layer in self._layers[:depth]
                    if layer.name not in self._always_frozen]
        if training == self.training:
            return
        for index, layer in enumerate(self._layers):
            layer.trainable = index < depth and layer.name not in self._always_frozen
        self.model.make_train_function(force=True)
        self.training = training
        frozen = [name for name in self.groups if name not in training]
        logger.info("unfreeze: epoch %d trains %s; frozen: %s", epoch + 1,
                    ", ".join(training) or "nothing", ", ".join(frozen) or "nothing")

    def on_train_end(self, logs=None):
        self.model.train_function = None  # the next `fit` traces with the compiled state
