"""B2: group level at a preset (default small): seconds per epoch, loader throughput vs training-step throughput.

Writes a synthetic cohort as group-level inputs (``bidsad.synthetic.make_synthetic_derivatives``,
preprocessing bypassed), then for one model (default ``3dcnn-lstm``, MRI + fMRI):

- loader: one pass of the training ``tf.data`` pipeline (memory-mapped tensors, batch 2), no model:
  samples per second;
- training step: one epoch of ``model.fit`` on the same batches already in memory (loader excluded), with the
  on-the-fly augmentation inside the model (``bidsad.learn.layers.Augment``, on the model's device) unless
  ``--no-augmentation``;
- epoch: one epoch of ``model.fit`` on the real pipeline (loader + training with augmentation), as the
  group level runs it (after one warm-up epoch that traces the graphs).

Run: ``python benchmarks/group_epoch.py [--participants 40] [--preset small] [--model 3dcnn-lstm] [--threads 2]``.
Targets (issue 10): loader >= 3x the training step; one epoch over 40 participants <= 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=40)
    parser.add_argument("--preset", default="small", help="grid of the synthetic tensors (paper: about 125 MB each)")
    parser.add_argument("--model", default="3dcnn-lstm")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow intra/inter-op threads (0: default)")
    parser.add_argument("--no-augmentation", action="store_true")
    opts = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    if opts.threads:
        tf.config.threading.set_intra_op_parallelism_threads(opts.threads)
        tf.config.threading.set_inter_op_parallelism_threads(opts.threads)

    from bidsad.learn.cohort import build_cohort
    from bidsad.config import Augmentation
    from bidsad.learn.data import make_dataset, tensor_shapes, voxel_sizes
    from bidsad.learn.layers import with_augmentation
    from bidsad.config import MODALITIES
    from bidsad.learn.models import build_model
    from bidsad.synthetic import make_synthetic_derivatives

    modalities = MODALITIES[opts.model]
    augment = None if opts.no_augmentation else dataclasses.asdict(Augmentation())
    with tempfile.TemporaryDirectory() as tmp:
        bids_dir, out_dir = make_synthetic_derivatives(Path(tmp), opts.participants, preset=opts.preset, seed=0)
        rows = build_cohort(out_dir, bids_dir, opts.preset)
        n = len(rows)

        def pipeline():
            return make_dataset(out_dir, rows, modalities, batch_size=opts.batch_size, shuffle=True, seed=0)

        for _ in pipeline().take(1):  # build the pipeline's functions once
            pass
        start, cpu = time.perf_counter(), time.process_time()
        batches = list(pipeline())
        loader_s, loader_cpu = time.perf_counter() - start, time.process_time() - cpu

        keras.utils.set_random_seed(0)
        model = build_model(opts.model, tensor_shapes(out_dir, rows.iloc[0], modalities), 3)
        if augment is not None:
            model = with_augmentation(model, augment, voxel_sizes(out_dir, rows.iloc[0], modalities), seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        import numpy as np

        inputs = {m: np.concatenate([b[0][m].numpy() for b in batches]) for m in batches[0][0]}
        labels = np.concatenate([b[1].numpy() for b in batches])
        in_memory = tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(opts.batch_size)
        model.fit(in_memory, epochs=1, verbose=0)  # warm-up: traces the training step
        start, cpu = time.perf_counter(), time.process_time()
        model.fit(in_memory, epochs=1, verbose=0)
        step_s, step_cpu = time.perf_counter() - start, time.process_time() - cpu
        start, cpu = time.perf_counter(), time.process_time()
        model.fit(pipeline(), epochs=1, verbose=0)
        epoch_s, epoch_cpu = time.perf_counter() - start, time.process_time() - cpu

    loader_rate, step_rate = n / loader_s, n / step_s
    print(f"machine: {os.cpu_count()} CPUs visible; TensorFlow threads: {opts.threads or 'default'}")
    print(f"model {opts.model}, {opts.preset} preset, {n} participants, batch {opts.batch_size}, "
          f"augmentation {'off' if augment is None else 'on'}")
    print("wall time (and CPU time of all threads; on a shared machine CPU time is the steadier figure)")
    print(f"loader alone:        {loader_s:6.2f} s/epoch  {loader_rate:7.2f} samples/s  (CPU {loader_cpu:6.2f} s)")
    print(f"training step alone: {step_s:6.2f} s/epoch  {step_rate:7.2f} samples/s  (CPU {step_cpu:6.2f} s)")
    print(f"full epoch:          {epoch_s:6.2f} s/epoch  {n / epoch_s:7.2f} samples/s  (CPU {epoch_cpu:6.2f} s)")
    ratio = loader_rate / step_rate
    print(f"B2 {opts.model} {opts.preset} n={n}: epoch {epoch_s:.1f} s (target <= 60 s), loader/step throughput "
          f"{ratio:.2f}x wall, {step_cpu / loader_cpu:.2f}x CPU time (target >= 3x)")


if __name__ == "__main__":
    main()
