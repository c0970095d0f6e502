"""Augmentation throughput: seconds per sample of the host path (one sample at a time, as ``tf.data``'s map ran
it) and of the device path (a batch at once, as the model's ``Augment`` layer runs it on the device).

Random tensors of the preset's grids (MRI and fMRI, with the grids' voxel sizes); each path is traced once
(``tf.function``), then timed over ``--repeats`` calls. Prints wall and CPU time per sample, the device and the
machine's load (``/proc/loadavg``) before and after.

Run: ``python benchmarks/augment_throughput.py [--preset paper] [--batch-size 2] [--repeats 3] [--path both]``.
"""

from __future__ import annotations

import argparse
import os
import time


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--path", choices=["host", "device", "both"], default="both")
    parser.add_argument("--modality", choices=["mri", "bold", "both"], default="both")
    opts = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    from bidsad.derivatives import PRESETS, bold_model_grid, resize_mri_volume_grid
    from bidsad.learn.augment import augment_batch, augment_fmri, augment_mri

    preset = PRESETS[opts.preset]
    voxels = {"mri": np.diag(resize_mri_volume_grid(preset["mri_shape"]))[:3].tolist(),
              "bold": np.diag(bold_model_grid(preset["bold_shape"]))[:3].tolist()}
    modalities = ("mri", "bold") if opts.modality == "both" else (opts.modality,)
    rng = np.random.default_rng(0)
    b = opts.batch_size
    batch = {}
    if "mri" in modalities:
        batch["mri"] = tf.constant(rng.standard_normal((b, *preset["mri_shape"], 1), dtype=np.float32))
    if "bold" in modalities:
        batch["bold"] = tf.constant(rng.standard_normal((b, preset["frames"], *preset["bold_shape"], 1), dtype=np.float32))
        batch["frame_mask"] = tf.ones((b, preset["frames"]))

    @tf.function
    def host(sample, seed):  # one sample, as the tf.data map ran it
        out = {}
        if "mri" in sample:
            out["mri"] = augment_mri(sample["mri"][..., 0], seed, None, voxels["mri"])
        if "bold" in sample:
            out["bold"] = augment_fmri(sample["bold"][..., 0], seed + 1, None, voxels["bold"], sample["frame_mask"] > 0.5)[0]
        return out

    @tf.function
    def device(inputs, seed):  # the whole batch, as the Augment layer inside the model
        return augment_batch(inputs, seed, None, voxels)

    devices = ", ".join(d.name for d in tf.config.list_logical_devices()) or "CPU"
    print(f"preset {opts.preset}: {modalities}, batch {b}; TensorFlow {tf.__version__} on {devices}; "
          f"{os.cpu_count()} CPUs visible; load before: {_load()}")
    for name in (("host", "device") if opts.path == "both" else (opts.path,)):
        def step(i):
            seed = tf.constant([i, 7], tf.int64)
            if name == "device":
                return [device(batch, seed)]
            return [host({k: v[j] for k, v in batch.items()}, seed + j) for j in range(b)]

        for out in step(0):  # trace
            [v.numpy() for v in out.values()]
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(opts.repeats):
            for out in step(i + 1):
                [v.numpy() for v in out.values()]
        n = opts.repeats * b
        wall, cpu = (time.perf_counter() - start) / n, (time.process_time() - cpu) / n
        print(f"{name:6s} path: {wall:7.3f} s/sample wall, {cpu:7.3f} s/sample CPU (all threads), {n} samples; "
              f"load after: {_load()}")


if __name__ == "__main__":
    main()
