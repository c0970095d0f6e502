"""Process-wide settings of a group-level run, set in one place and restored (:func:`group_runtime`)."""

from __future__ import annotations

import contextlib
import random


def compute_device(config):
    """Where and how the group level trains: ``(strategy, description)``.

    With GPUs, Keras' global policy becomes ``mixed_bfloat16`` (bf16 compute, float32 weights; the
    softmax layer stays float32) and several GPUs are used through ``tf.distribute.MirroredStrategy``
    (the global batch is split between them). Without a GPU: float32 on the CPU (default strategy).
    ``config.learning.deterministic`` turns on ``tf.config.experimental.enable_op_determinism``
    (bit-identical reruns with the same seed, slower on GPU). Call it inside :func:`group_runtime`, which
    restores the policy and determinism afterwards.
    """
    import keras
    import tensorflow as tf

    if config.learning.deterministic:
        tf.config.experimental.enable_op_determinism()
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        keras.mixed_precision.set_global_policy("float32")
        return tf.distribute.get_strategy(), "CPU, float32"
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy(), f"{len(gpus)} GPUs (MirroredStrategy), mixed_bfloat16"
    return tf.distribute.get_strategy(), "1 GPU, mixed_bfloat16"


def _determinism():
    """``(was_enabled, set_enabled)`` of TensorFlow's op determinism. TensorFlow exports only the switch-on
    (``tf.config.experimental.enable_op_determinism``); the state and the switch-off are internal, and a
    TensorFlow without them leaves determinism as the run set it."""
    try:
        from tensorflow.python.framework import config as tf_config

        enabled, disable = tf_config.is_op_determinism_enabled, tf_config.disable_op_determinism
    except (ImportError, AttributeError):
        return None, lambda on: None
    return enabled(), lambda on: tf_config.enable_op_determinism() if on else disable()


@contextlib.contextmanager
def group_runtime(config):
    """The process-wide state of one group-level run; yields ``(strategy, device)`` (:func:`compute_device`).

    On entry: ``TF_CPP_MIN_LOG_LEVEL`` 2 unless set (TensorFlow imported with its native start-up output
    silenced unless ``config.execution.verbose``), Python, NumPy, TensorFlow and Keras seeded from
    ``config.seeds.random_seed`` (:func:`bidsad.seeds.seed_everything`, which sets ``PYTHONHASHSEED`` too),
    TensorFlow's logger at ERROR unless verbose, then :func:`compute_device` (Keras precision policy, op
    determinism). On exit, also after an exception: the environment (:func:`bidsad.runtime.environment`), the
    Python and NumPy random states, the TensorFlow logger level, the Keras global policy and op determinism as
    they were, so the
    group level can run again in the same process. (TensorFlow's global seed stays set: every run sets it on entry.)
    """
    import numpy as np

    from bidsad.seeds import seed_everything
    from bidsad.runtime import environment
    from bidsad.utils import native_stderr_silenced

    with environment({"TF_CPP_MIN_LOG_LEVEL": "2"}, only_unset=True):
        with native_stderr_silenced(not config.execution.verbose):
            import keras
            import tensorflow as tf

        python_state, numpy_state = random.getstate(), np.random.get_state()
        logger_level, policy = tf.get_logger().level, keras.mixed_precision.global_policy().name
        deterministic, set_determinism = _determinism()
        try:
            seed_everything(config.seeds.random_seed)  # Keras and TensorFlow too: imported above
            if not config.execution.verbose:
                tf.get_logger().setLevel("ERROR")
            yield compute_device(config)
        finally:
            set_determinism(deterministic)
            keras.mixed_precision.set_global_policy(policy)
            tf.get_logger().setLevel(logger_level)
            random.setstate(python_state)
            np.random.set_state(numpy_state)
