"""B4: GPU check at the paper's sizes: seconds per epoch over 319 samples and peak GPU memory.

One command on an accelerator machine (``python benchmarks/gpu_check.py``): builds a model of the
registry (default ``3dcnn-lstm``, MRI 128x128x176 + fMRI 216 x 64x64x32, the paper's sizes) with the
group level's settings (Adam, sparse categorical cross-entropy, batch 2; ``mixed_bfloat16`` on a GPU
as the group level sets it, softmax in float32) and trains it for 2 epochs over 319 synthetic samples
(the paper's augmented sample count) for every combination of XLA (``jit_compile``) on/off and cuDNN
recurrent kernels on/off. By default samples cycle through a small pool of random tensors held in host memory
and are fed through ``tf.data`` with prefetch, so the figure is the model's, not the disk's. With
``--from-disk N`` they are N synthetic participants written to disk as the participant level writes them
(``bidsad.synthetic.make_synthetic_derivatives``; about 125 MB each at the paper's sizes, in ``--work-dir``),
cycled to the sample count and streamed by the group level's own loader (``bidsad.learn.data.make_dataset``:
shuffled indices, memory-mapped reads, frame masks): with ``--augmentation`` the seconds per epoch are then
what a user's group run sees.

Prints, per configuration, the seconds of each epoch (the first includes graph tracing and XLA
compilation) and the peak GPU memory (``tf.config.experimental.get_memory_info``; on a CPU the
process's peak RSS instead). ``--small`` runs the same code at the small preset with 8 samples, so
that it is tested on a CPU. ``--augmentation`` trains with the on-the-fly augmentation inside the model
(``bidsad.learn.layers.Augment``, on the device; default ranges, the grids' voxel sizes). Target (issue 10):
<= 5 s per epoch on one H200.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import tempfile
import time
from pathlib import Path


def run_config(model_name, shapes, samples, epochs, batch_size, xla, cudnn, pool, voxels=None, streamed=None):
    """Train one configuration; return (seconds per epoch list, peak memory in MB, memory kind). ``streamed``: a
    function returning the group level's ``tf.data`` pipeline, used instead of ``pool``."""
    import keras
    import numpy as np
    import tensorflow as tf

    from bidsad.learn.models import build_model

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        tf.config.experimental.reset_memory_stats("GPU:0")
    model = build_model(model_name, shapes, 3)
    def walk(layers):
        for layer in layers:
            yield layer
            yield from walk(getattr(layer, "layers", []))

    for layer in walk(model.layers):
        if isinstance(layer, (keras.layers.LSTM, keras.layers.GRU)):
            layer.use_cudnn = "auto" if cudnn else False  # read when the layer is called (traced) in fit
    if voxels is not None:  # augmentation of the training batches on the device
        import dataclasses

        from bidsad.config import Augmentation
        from bidsad.learn.layers import with_augmentation

        model = with_augmentation(model, dataclasses.asdict(Augmentation()), voxels, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=xla)

    def generate():
        for index in range(samples):
            sample = pool[index % len(pool)]
            yield dict(sample), np.int32(index % 3)

    signature = ({m: tf.TensorSpec(shape, tf.float32) for m, shape in shapes.items()}, tf.TensorSpec((), tf.int32))
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(samples)).batch(batch_size).prefetch(4)
    if streamed is not None:
        dataset = streamed()

    class Timer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    timer = Timer()
    model.fit(dataset, epochs=epochs, verbose=0, callbacks=[timer])
    if gpus:
        return timer.seconds, tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20, "GPU peak"
    return timer.seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "RSS peak (CPU)"


def _from_disk(opts, preset: str, samples: int, voxels):
    """Write ``opts.from_disk`` synthetic participants and return ``(pipeline function, voxel sizes)``: the group
    level's loader over them, cycled to ``samples`` rows, shuffled; voxel sizes from their sidecars when
    augmenting."""
    import numpy as np

    from bidsad.config import MODALITIES
    from bidsad.learn.cohort import build_cohort
    from bidsad.learn.data import make_dataset, voxel_sizes
    from bidsad.synthetic import make_synthetic_derivatives

    modalities = MODALITIES[opts.model]
    root = opts.work_dir
    if root is None:
        import atexit
        import shutil

        root = Path(tempfile.mkdtemp(prefix="bidsad-gpu-check-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
    bids_dir, out_dir = make_synthetic_derivatives(root, opts.from_disk, preset=preset, seed=0,
                                                   with_bold="bold" in modalities)
    rows = build_cohort(out_dir, bids_dir, preset)
    rows = rows.iloc[np.resize(np.arange(len(rows)), samples)].reset_index(drop=True)
    if voxels is not None:
        voxels = voxel_sizes(out_dir, rows.iloc[0], modalities)
    return (lambda: make_dataset(out_dir, rows, modalities, batch_size=opts.batch_size, shuffle=True, seed=0)), voxels


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="small preset, 8 samples: a CPU test of this script")
    parser.add_argument("--model", default="3dcnn-lstm")
    parser.add_argument("--samples", type=int, help="samples per epoch (default 319; 8 with --small)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--augmentation", action="store_true", help="augment the training batches on the device")
    parser.add_argument("--from-disk", type=int, metavar="N", default=0,
                        help="stream N synthetic participants from disk with the group level's loader")
    parser.add_argument("--work-dir", type=Path, help="where --from-disk writes them (default: a temporary folder)")
    parser.add_argument("--xla", choices=["on", "off", "both"], default="both")
    parser.add_argument("--cudnn", choices=["on", "off", "both"], default="both")
    parser.add_argument("--precision", choices=["auto", "bf16", "float32"], default="auto",
                        help="auto: mixed_bfloat16 on a GPU (as the group level), float32 on a CPU")
    opts = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    from bidsad.config import MODALITIES
    from bidsad.derivatives import PRESETS, bold_model_grid, resize_mri_volume_grid

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)  # so that the peak is what the model needs
    precision = opts.precision if opts.precision != "auto" else ("bf16" if gpus else "float32")
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bf16" else "float32")
    preset = PRESETS["small" if opts.small else "paper"]
    samples = opts.samples or (8 if opts.small else 319)
    shapes = {"mri": (*preset["mri_shape"], 1), "bold": (preset["frames"], *preset["bold_shape"], 1)}
    shapes = {m: shapes[m] for m in MODALITIES[opts.model]}
    voxels = None
    if opts.augmentation:
        voxels = {"mri": np.diag(resize_mri_volume_grid(preset["mri_shape"]))[:3].tolist(),
                  "bold": np.diag(bold_model_grid(preset["bold_shape"]))[:3].tolist()}
    if "bold" in shapes:  # the recurrent layers' frame mask: every frame real
        shapes["frame_mask"] = (preset["frames"],)
    rng = np.random.default_rng(0)
    pool = [{m: rng.standard_normal(shape, dtype=np.float32) if m != "frame_mask" else np.ones(shape, np.float32)
             for m, shape in shapes.items()} for _ in range(4)]
    streamed, source = None, "random tensors in memory"
    if opts.from_disk:
        streamed, voxels = _from_disk(opts, "small" if opts.small else "paper", samples, voxels)
        source = f"{opts.from_disk} participants streamed from disk (make_dataset)"
    device = ", ".join(tf.config.experimental.get_device_details(g).get("device_name", "GPU") for g in gpus) or "CPU only"
    print(f"device: {device}; TensorFlow {tf.__version__}, Keras {keras.__version__}; precision {precision}")
    print(f"model {opts.model}, input shapes {shapes}, {samples} samples per epoch, batch {opts.batch_size}, "
          f"{opts.epochs} epochs, augmentation {'on the device' if voxels else 'off'}; samples: {source}")
    choices = {"on": [True], "off": [False], "both": [True, False]}
    best = None
    for xla, cudnn in itertools.product(choices[opts.xla], choices[opts.cudnn]):
        label = f"XLA {'on' if xla else 'off'}, cuDNN RNN {'on' if cudnn else 'off'}"
        try:
            seconds, memory, kind = run_config(opts.model, shapes, samples, opts.epochs, opts.batch_size, xla, cudnn, pool,
                                               voxels, streamed)
        except Exception as err:  # one configuration failing (e.g. XLA unsupported) must not hide the others
            print(f"{label}: FAILED ({type(err).__name__}: {str(err).splitlines()[0][:200]})")
            continue
        steady = seconds[-1]
        print(f"{label}: seconds per epoch {', '.join(f'{s:.2f}' for s in seconds)} (first includes compilation); "
              f"{kind} {memory:.0f} MB")
        if best is None or steady < best[1]:
            best = (label, steady, memory, kind)
    if best is None:
        print("B4 gpu_check: every configuration failed")
        return
    print(f"B4 {opts.model} {'small' if opts.small else 'paper'} sizes, {samples} samples, {precision} on {device}: "
          f"best {best[1]:.2f} s/epoch ({best[0]}), {best[3]} {best[2]:.0f} MB (target on an H200: <= 5 s/epoch)")


if __name__ == "__main__":
    main()
