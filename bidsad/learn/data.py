"""Streaming of model tensors from disk with tf.data (memory does not grow with the cohort)."""

from __future__ import annotations

from pathlib import Path

from bidsad.derivatives import FRAME_MASK_KEY


def tensor_shapes(out_dir: Path, row, modalities) -> dict:
    """Model input shapes (with the channel axis) of one cohort row: ``{"mri": (x, y, z, 1), "bold": (T, x, y, z, 1)}``."""
    import numpy as np

    return {m: (*np.load(Path(out_dir) / row[m], mmap_mode="r").shape, 1) for m in modalities}


def _sidecar(out_dir: Path, relative) -> dict:
    import json

    sidecar = (Path(out_dir) / relative).with_suffix(".json")
    return json.loads(sidecar.read_text()) if sidecar.is_file() else {}


def voxel_sizes(out_dir: Path, row, modalities) -> dict:
    """Voxel size (mm, (3,) floats) of each modality's grid, from the tensor sidecar's ``voxel_size_mm`` of one
    cohort row; ``None`` for a tensor without a sidecar (then augmentation assumes 1 mm voxels)."""
    return {m: _sidecar(out_dir, row[m]).get("voxel_size_mm") for m in modalities}


def frame_masks(out_dir: Path, paths, frames: int):
    """Frame masks of fMRI tensors (``paths`` relative to ``out_dir``): float32 (n, frames), 1 on real frames and
    0 on padding, from each sidecar's :data:`~bidsad.derivatives.FRAME_MASK_KEY` (no sidecar or key: all real).

    Raises ``ValueError`` when a sidecar's mask is not ``frames`` long."""
    import numpy as np

    masks = np.ones((len(paths), frames), np.float32)
    for i, path in enumerate(paths):
        mask = _sidecar(out_dir, path).get(FRAME_MASK_KEY)
        if mask is not None:
            if len(mask) != frames:
                raise ValueError(f"{path}: frame_mask has {len(mask)} frames, the tensor {frames}")
            masks[i] = np.asarray(mask, bool)
    return masks


def make_dataset(out_dir: Path, rows, modalities, *, batch_size: int, shuffle: bool, seed: int,
                 with_labels: bool = True, copy_ranges: dict | None = None):
    """A ``tf.data.Dataset`` of ``({input: float32 tensor}, label)`` batches.

    ``rows`` is a cohort DataFrame (columns ``mri``, ``bold`` relative to ``out_dir``, ``label``).
    Tensors are memory-mapped and read by participant index in tf.data's parallel map, after the
    indices are shuffled (seeded), so host memory holds a few samples in flight and two prefetched batches
    whatever the cohort's size; the channel axis is added on the fly. With ``bold``, the input
    ``frame_mask`` (batch, frames) holds each run's frame mask (:func:`frame_masks`; 1 real, 0 padding).
    On-the-fly augmentation is not here but inside the model, on its device (:class:`bidsad.learn.layers.Augment`).

    Rows with a ``copy`` column > 0 (the paper's augment-then-split protocol,
    :func:`bidsad.learn.splits.make_paper_splits`) are fixed augmented copies: copy ``c`` of a
    participant is :func:`~bidsad.learn.augment.augment_batch` of that participant alone with the stateless seed
    ``(crc32(participant_id), c)`` and the ranges ``copy_ranges`` (:class:`bidsad.config.Augmentation` as a dict;
    ``None``: the defaults), the same in every epoch, fold and split; they are made once and kept in memory
    (this comparison-only mode does not stream).

    Rows with a ``slice`` column (the slice protocol, :func:`bidsad.learn.splits.make_slice_splits`) are single
    axial slices: the MRI volume has every axial slice replaced by its slice ``slice`` (voxel index), so that the
    ``2dcnn``'s slices are all that one slice and its prediction is that slice's.
    """
    import zlib

    import numpy as np
    import tensorflow as tf

    from bidsad.learn.augment import augment_batch

    out_dir = Path(out_dir)
    paths = {m: [str(out_dir / p) for p in rows[m]] for m in modalities}
    labels = [int(v) for v in rows["label"]] if with_labels else [0] * len(rows)
    shapes = tensor_shapes(out_dir, rows.iloc[0], modalities)
    voxels = voxel_sizes(out_dir, rows.iloc[0], modalities)
    masks = tf.constant(frame_masks(out_dir, rows["bold"], shapes["bold"][0])) if "bold" in modalities else None
    copies = [int(c) for c in rows["copy"]] if "copy" in rows else [0] * len(rows)
    keys = [zlib.crc32(str(p).encode()) for p in rows["participant_id"]] if any(copies) else [0] * len(rows)
    slices = [int(z) for z in rows["slice"]] if "slice" in rows else [None] * len(rows)

    def read(index):
        # one participant's tensors, memory-mapped and copied out as float32 (runs in tf.data's threads)
        i = int(index)
        arrays = {m: np.load(paths[m][i], mmap_mode="r") for m in modalities}
        if slices[i] is not None:  # slice protocol: one axial slice in every z position
            arrays["mri"] = np.repeat(arrays["mri"][:, :, slices[i]:slices[i] + 1], arrays["mri"].shape[2], axis=2)
        return tuple(arrays[m][..., None].astype(np.float32) for m in modalities)

    def load(index, label):
        arrays = tf.numpy_function(read, [index], [tf.float32] * len(modalities), stateful=False)
        inputs = {m: tf.ensure_shape(a, shapes[m]) for m, a in zip(modalities, arrays)}
        if masks is not None:
            inputs[FRAME_MASK_KEY] = tf.gather(masks, index)
        return inputs, label

    # Shuffle the participants' indices, never decoded tensors: host memory does not depend on the cohort
    # (a buffer of len(labels) decoded samples grew by 87 MB per participant at the paper preset; issue 15).
    # A shuffle of n indices with buffer n and this seed gives the same order a shuffle of the samples did.
    indices = tf.data.Dataset.from_tensor_slices((tf.range(len(labels), dtype=tf.int64), tf.constant(labels, tf.int32)))
    if shuffle and not any(copies):
        indices = indices.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    dataset = indices.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if any(copies):
        fixed = tf.data.Dataset.from_tensor_slices(tf.constant([[k, c] for k, c in zip(keys, copies)], tf.int64))

        def copied(sample, key):
            inputs, label = sample
            batch = {k: v[None] for k, v in inputs.items()}
            copy = lambda: {k: v[0] for k, v in augment_batch(batch, key, copy_ranges, voxels).items()}  # noqa: E731
            return tf.cond(key[1] > 0, copy, lambda: inputs), label

        dataset = tf.data.Dataset.zip((dataset, fixed)).map(copied, num_parallel_calls=tf.data.AUTOTUNE,
                                                             deterministic=True).cache()  # fixed copies: made once
        if shuffle:
            dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    if not with_labels:
        dataset = dataset.map(lambda x, y: x)
    return dataset.batch(batch_size).prefetch(2)
