"""The gradient all-reduce in a reduced precision: half the bytes on the wire.

tf-keras optimizers sum the replicas' gradients in `aggregate_gradients` (documented as the
method to override for custom aggregation). Here it casts each gradient to float16 or bfloat16,
all-reduces, and casts back, so only the communication is in the lower precision: the
variables, the optimizer's slots and its update stay float32. (The strategy's
`CommunicationOptions` set packing and time-outs; see `strategy._communication`.)
"""

from __future__ import annotations

from tfnlp.backend import keras, tf


def _cast(gradient, dtype):
    if gradient is None:
        return None
    if isinstance(gradient, tf.IndexedSlices):  # Embedding gradients: cast the rows only
        return tf.IndexedSlices(tf.cast(gradient.values, dtype), gradient.indices,
                                gradient.dense_shape)
    return tf.cast(gradient, dtype)


def reduced_precision_all_reduce(grads_and_vars, dtype: str):
    """Sums `grads_and_vars`' gradients over the replicas, sent as `dtype`.

    Returns:
        (gradient, variable) pairs, each gradient back in its variable's dtype (None stays).
    """
    pairs = list(grads_and_vars)
    present = [(g, v) for g, v in pairs if g is not None]
    if not present:
        return pairs
    sent = [_cast(g, dtype) for g, _ in present]
    summed = iter(tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM,
                                                                 sent))
    return [(None, v) if g is None else (_cast(next(summed), g.dtype), v) for g, v in pairs]


def with_all_reduce_dtype(optimizer: keras.optimizers.Optimizer, dtype: str):
    """`optimizer`, all-reducing its gradients as `dtype` ("float32" leaves it unchanged).

    Example:
        >>> optimizer = with_all_reduce_dtype(keras.optimizers.SGD(0.1), "float16")
        >>> optimizer.all_reduce_dtype
        'float16'
    """
    if dtype == "float32":
        return optimizer

    def aggregate_gradients(grads_and_vars):
        return reduced_precision_all_reduce(grads_and_vars, dtype)

    # The instance attribute wins over the class's method, which `apply_gradients` calls.
    optimizer.aggregate_gradients = aggregate_gradients
    optimizer.all_reduce_dtype = dtype
    return optimizer
