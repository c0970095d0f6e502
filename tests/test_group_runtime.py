"""The group level's process-wide settings are set in one place and restored (bidsad.group.runtime), and
seeds come from named streams of the master seed (bidsad.seeds) with the values bidsad always used."""

from __future__ import annotations

import os
import random
import zlib

import numpy as np
import pytest

from bidsad.seeds import seed_for


def test_named_seed_streams_keep_their_historical_values():
    for master in (0, 7, 2**31 - 5):
        for model in ("3dcnn", "3dcnn-lstm-gap"):
            for fold in (1, 5):
                for repeat in (1, 3):
                    legacy = (master * 1_000_003 + zlib.crc32(model.encode()) + fold + 1000 * (repeat - 1)) % 2**31
                    assert seed_for("fold", master, model, fold, repeat) == legacy
                    assert seed_for("validation", master, fold, repeat) == master + fold + 1000 * (repeat - 1)
                    assert seed_for("split", master, repeat) == master + repeat - 1
        assert seed_for("ants", master) == master + 1
    assert seed_for("fold", 0, "3dcnn", 1, 1) == 251800081
    with pytest.raises(KeyError):
        seed_for("nonexistent", 0)


def test_config_does_not_import_the_libraries():
    import subprocess
    import sys

    code = "import sys, bidsad.config; print(sorted(m for m in sys.modules if m.startswith(('bidsad.learn', 'keras'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _same_numpy_state(a, b) -> bool:
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2:] == b[2:]


def test_group_runtime_twice_in_one_process_restores_policy_seeds_logging_and_environment(monkeypatch):
    pytest.importorskip("tensorflow")
    import keras
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    from bidsad.config import Config
    from bidsad.group.runtime import group_runtime

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setenv("PYTHONHASHSEED", "random")
    config = Config()
    config.seeds.random_seed, config.learning.deterministic = 5, True
    previous_policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_float16")
    tf_config.disable_op_determinism()
    try:
        random.seed(123)
        np.random.seed(123)
        python_state, numpy_state, level = random.getstate(), np.random.get_state(), tf.get_logger().level
        draws = []
        for _ in range(2):
            with group_runtime(config) as (_strategy, device):
                assert keras.mixed_precision.global_policy().name == ("float32" if device.startswith("CPU") else "mixed_bfloat16")
                assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2" and os.environ["PYTHONHASHSEED"] == "5"
                assert tf_config.is_op_determinism_enabled()
                draws.append((random.random(), float(np.random.rand())))
            assert keras.mixed_precision.global_policy().name == "mixed_float16"
            assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ and os.environ["PYTHONHASHSEED"] == "random"
            assert random.getstate() == python_state and _same_numpy_state(np.random.get_state(), numpy_state)
            assert tf.get_logger().level == level and not tf_config.is_op_determinism_enabled()
        assert draws[0] == draws[1]  # each run is seeded the same way from the master seed
        with pytest.raises(RuntimeError, match="a failed run"):
            with group_runtime(config):
                raise RuntimeError("a failed run")
        assert keras.mixed_precision.global_policy().name == "mixed_float16" and not tf_config.is_op_determinism_enabled()
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
