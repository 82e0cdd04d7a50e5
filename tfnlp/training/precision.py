"""Mixed-precision policies: resolve `auto`, apply a policy only while a model is built."""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

from tfnlp.backend import keras, tf

logger = logging.getLogger("tfnlp")
POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def cpu_flags() -> set[str]:
    """The host CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        return set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return set()


def cpu_supports_bfloat16() -> bool:
    """True when the host CPU has native bf16 instructions (AVX512-BF16 or AMX)."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def resolve_policy(name: str) -> tuple[str, str]:
    """Turns a policy name (or "auto") into a concrete policy and the reason for it.

    Returns:
        (policy name, one-sentence reason for the run log).
    """
    if name in POLICIES:
        if name == "mixed_float16" and not tf.config.list_physical_devices("GPU"):
            warnings.warn(
                "precision.policy=mixed_float16 on a CPU is emulated and slow; use "
                "mixed_bfloat16 (on bf16-capable CPUs) or float32.",
                stacklevel=2,
            )
        return name, "set in the pipeline"
    if name != "auto":
        raise ValueError(
            f"`precision.policy` must be one of {POLICIES + ('auto',)}. "
            f"Received: precision.policy={name!r}."
        )
    if tf.config.list_logical_devices("TPU"):
        return "mixed_bfloat16", "auto: TPU found"
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        capability = details.get("compute_capability", (0, 0))
        if tuple(capability) >= (7, 0):
            return "mixed_float16", f"auto: GPU with compute capability {capability}"
        return "float32", f"auto: GPU compute capability {capability} < 7.0 has no fast fp16"
    if cpu_supports_bfloat16():
        return "mixed_bfloat16", "auto: CPU has bf16 instructions (avx512_bf16/amx)"
    return "float32", "auto: no accelerator or bf16-capable CPU found"


@contextlib.contextmanager
def precision_scope(policy: str):
    """Sets Keras's global dtype policy inside the block and restores the old one after.

    Layers capture the policy when constructed, so build the model inside this block; models
    built later in the same process are unaffected.
    """
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def with_loss_scaling(optimizer: keras.optimizers.Optimizer, policy: str):
    """Wraps `optimizer` in a dynamic `LossScaleOptimizer` when `policy` is `mixed_float16`.

    float16 gradients underflow without loss scaling; bfloat16 has float32's exponent range
    and float32 needs none, so those policies get the optimizer back unchanged.

    Args:
        optimizer: a Keras optimizer.
        policy: a concrete policy name (see `resolve_policy`).

    Returns:
        The optimizer, wrapped when `policy == "mixed_float16"`.
    """
    if policy == "mixed_float16" and not isinstance(
        optimizer, keras.mixed_precision.LossScaleOptimizer
    ):
        return keras.mixed_precision.LossScaleOptimizer(optimizer, dynamic=True)
    return optimizer
