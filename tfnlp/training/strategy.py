"""One function that turns the `distribute:` section into a `tf.distribute.Strategy`."""

from __future__ import annotations

import logging

from tfnlp.backend import tf
from tfnlp.config.schema import DistributeConfig

logger = logging.getLogger("tfnlp")


def split_cpu(replicas: int) -> None:
    """Splits the host CPU into `replicas` logical devices (before TensorFlow initialises)."""
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * replicas
        )
    except RuntimeError:
        current = len(tf.config.list_logical_devices("CPU"))
        if current != replicas:
            raise RuntimeError(
                f"`distribute.cpu_replicas`={replicas} must be applied before TensorFlow "
                f"initialises its devices, but it already has {current} CPU device(s). Set it "
                "in the pipeline file rather than after building models in the same process."
            ) from None


def create_strategy(config: DistributeConfig) -> tuple[tf.distribute.Strategy, str]:
    """Creates the configured strategy.

    Returns:
        (strategy, one-sentence reason for the run log).

    Raises:
        ValueError: a strategy this build does not support yet, or inconsistent settings.
    """
    if config.cpu_replicas:
        split_cpu(config.cpu_replicas)
    name = config.strategy
    if name == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy(), f"auto: {len(gpus)} GPUs -> mirrored"
        # The default strategy places ops like one_device does, and unlike OneDeviceStrategy
        # it works with Keras's BackupAndRestore (fault-tolerant resume).
        device = gpus[0].name if gpus else "CPU"
        return tf.distribute.get_strategy(), f"auto: one device ({device}), default strategy"
    if name == "default":
        return tf.distribute.get_strategy(), "default (no distribution)"
    if name == "one_device":
        device = (config.devices or ["/cpu:0"])[0]
        return tf.distribute.OneDeviceStrategy(device), f"one_device on {device}"
    if name == "mirrored":
        devices = config.devices
        if devices is None and config.cpu_replicas:
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
        return strategy, f"mirrored over {strategy.num_replicas_in_sync} replica(s)"
    raise ValueError(
        f"`distribute.strategy: {name}` is not available in this version of tfnlp; use auto, "
        "default, one_device or mirrored."
    )
