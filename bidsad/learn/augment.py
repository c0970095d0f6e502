"""On-the-fly augmentation as seeded TensorFlow ops (usable inside ``tf.data`` on CPU or GPU).

Function names are those of Kujur & Monfared (2026), arXiv:2603.13367, which names the transforms but
gives no parameter ranges; the defaults below are ours (:data:`DEFAULTS`) and configurable. Unlike the
paper, bidsad applies them only to training participants, after the participant-level split.

Every random op is *stateless*: it takes ``seed``, an int32/int64 tensor of shape (2,), so the same seed
gives the same result on any device. Volumes are float32 tensors in RAS axis order: an MRI volume
``(x, y, z)`` and an fMRI run ``(frames, x, y, z)``. Angles are in degrees, shifts in voxels.
"""

from __future__ import annotations

import math

#: Default parameter ranges (ours; the paper gives none).
DEFAULTS = {
    "max_rotation_deg": 10.0,  # uniform in [-10, 10] degrees about each axis
    "max_shift_vox": 4.0,  # uniform in [-4, 4] voxels along each axis
    "intensity_scale": (0.9, 1.1),  # multiplicative factor, uniform
    "noise_std": 0.05,  # additive Gaussian noise, in units of the standardised intensity
    "max_temporal_shift": 2,  # frames, uniform integer in [-2, 2]
    "motion_max_shift_vox": 0.5,  # synthetic motion: per-frame translation, uniform in +-0.5 voxel
}


def _tf():
    import tensorflow as tf

    return tf


def _split(seed, n):
    """``n`` independent stateless seeds (each shape (2,)) derived from ``seed``."""
    tf = _tf()
    return tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=n))


def resize_mri_volume(volume, shape=(128, 128, 176)):
    """Resize a 3-D volume ``(x, y, z)`` (or ``(x, y, z, channels)``) to ``shape`` by trilinear interpolation.

    The paper's step (its grid: 128x128x176); implemented as two separable bilinear passes with
    ``tf.image.resize`` (equivalent to trilinear). Returns float32 of shape ``shape`` (+ channels).
    """
    tf = _tf()
    volume = tf.convert_to_tensor(volume, tf.float32)
    squeeze = volume.shape.rank == 3
    if squeeze:
        volume = volume[..., None]
    nx, ny, nz = (int(s) for s in shape)
    channels = tf.shape(volume)[-1]
    # pass 1: (x, y) per z -> treat z*channels as image channels
    x, y, z = tf.shape(volume)[0], tf.shape(volume)[1], tf.shape(volume)[2]
    step = tf.reshape(volume, (x, y, z * channels))
    step = tf.image.resize(step, (nx, ny), method="bilinear")
    # pass 2: (x, z) with y*channels as channels
    step = tf.reshape(step, (nx, ny, z, channels))
    step = tf.transpose(step, (0, 2, 1, 3))
    step = tf.reshape(step, (nx, z, ny * channels))
    step = tf.image.resize(step, (nx, nz), method="bilinear")
    step = tf.reshape(step, (nx, nz, ny, channels))
    out = tf.transpose(step, (0, 2, 1, 3))
    return out[..., 0] if squeeze else out


def _rotation_matrix(angles_rad):
    """3x3 rotation (float32) R = Rz @ Ry @ Rx from angles about x, y, z (radians)."""
    tf = _tf()
    ax, ay, az = tf.unstack(tf.cast(angles_rad, tf.float32))
    one, zero = tf.ones(()), tf.zeros(())
    rx = tf.stack([[one, zero, zero], [zero, tf.cos(ax), -tf.sin(ax)], [zero, tf.sin(ax), tf.cos(ax)]])
    ry = tf.stack([[tf.cos(ay), zero, tf.sin(ay)], [zero, one, zero], [-tf.sin(ay), zero, tf.cos(ay)]])
    rz = tf.stack([[tf.cos(az), -tf.sin(az), zero], [tf.sin(az), tf.cos(az), zero], [zero, zero, one]])
    return rz @ ry @ rx


def _trilinear(volume, source, batch=None):
    """Trilinear samples of ``volume`` at float voxel coordinates ``source`` (..., 3); zero outside.

    ``volume``: (x, y, z, channels), or (frames, x, y, z) with ``batch`` = int32 frame index of each
    point (shape ``source.shape[:-1]``). Returns (..., channels) or (...) respectively. The eight
    neighbours are read with ``tf.gather`` on the flattened volume (faster than ``gather_nd`` on CPU).
    """
    tf = _tf()
    shape = tf.shape(volume)
    spatial = shape[:3] if batch is None else shape[1:4]
    base = tf.floor(source)
    frac = source - base
    base = tf.cast(base, tf.int32)
    if batch is None:
        flat = tf.reshape(volume, (-1, shape[3]))
        offset0 = 0
    else:
        flat = tf.reshape(volume, (-1,))
        offset0 = batch * (spatial[0] * spatial[1] * spatial[2])
    fx, fy, fz = frac[..., 0], frac[..., 1], frac[..., 2]
    out = 0.0
    for corner in range(8):
        dx, dy, dz = (corner >> 2) & 1, (corner >> 1) & 1, corner & 1
        ix, iy, iz = base[..., 0] + dx, base[..., 1] + dy, base[..., 2] + dz
        weight = (fx if dx else 1.0 - fx) * (fy if dy else 1.0 - fy) * (fz if dz else 1.0 - fz)
        valid = (ix >= 0) & (ix < spatial[0]) & (iy >= 0) & (iy < spatial[1]) & (iz >= 0) & (iz < spatial[2])
        weight = tf.where(valid, weight, 0.0)
        index = (tf.clip_by_value(ix, 0, spatial[0] - 1) * spatial[1] + tf.clip_by_value(iy, 0, spatial[1] - 1)) \
            * spatial[2] + tf.clip_by_value(iz, 0, spatial[2] - 1) + offset0
        values = tf.gather(flat, index)
        out += values * (weight[..., None] if batch is None else weight)
    return out


def affine_resample_3d(volume, matrix, shift):
    """Resample ``volume`` ``(x, y, z[, channels])`` under a rigid/affine map about the grid centre.

    Output voxel ``p`` takes the input value at ``matrix^-1 (p - c - shift) + c`` (c: grid centre),
    i.e. the content is rotated by ``matrix`` and moved by ``shift`` voxels. Trilinear interpolation,
    zero outside. float32, same shape as the input.
    """
    tf = _tf()
    volume = tf.convert_to_tensor(volume, tf.float32)
    squeeze = volume.shape.rank == 3
    if squeeze:
        volume = volume[..., None]
    shape = tf.shape(volume)
    dims = tf.cast(shape[:3], tf.float32)
    grid = tf.stack(tf.meshgrid(tf.range(dims[0]), tf.range(dims[1]), tf.range(dims[2]), indexing="ij"), -1)
    centre = (dims - 1.0) / 2.0
    points = tf.reshape(grid, (-1, 3)) - centre - tf.cast(shift, tf.float32)
    source = tf.linalg.matvec(tf.linalg.inv(tf.cast(matrix, tf.float32)), points) + centre
    out = tf.reshape(_trilinear(volume, source), shape)
    return out[..., 0] if squeeze else out


def affine_resample_frames(run, matrix, shifts):
    """Resample every frame of ``run`` ``(frames, x, y, z)`` with one ``matrix`` and its own shift.

    Frame ``t`` becomes ``affine_resample_3d(run[t], matrix, shifts[t])`` (``shifts``: (frames, 3)
    voxels), computed in one batched trilinear pass (one interpolation per frame). float32, same shape.
    """
    tf = _tf()
    run = tf.convert_to_tensor(run, tf.float32)
    shape = tf.shape(run)
    dims = tf.cast(shape[1:4], tf.float32)
    grid = tf.stack(tf.meshgrid(tf.range(dims[0]), tf.range(dims[1]), tf.range(dims[2]), indexing="ij"), -1)
    centre = (dims - 1.0) / 2.0
    inverse = tf.linalg.inv(tf.cast(matrix, tf.float32))
    source = tf.linalg.matvec(inverse, tf.reshape(grid, (-1, 3)) - centre) + centre  # (N, 3)
    moved = source[None] - tf.linalg.matvec(inverse, tf.cast(shifts, tf.float32))[:, None, :]  # (F, N, 3)
    frames = tf.broadcast_to(tf.range(shape[0])[:, None], tf.shape(moved)[:2])
    return tf.reshape(_trilinear(run, moved, frames), shape)


def _random_rotation(seed, max_degrees):
    """3x3 rotation with angles uniform in ``[-max, max]`` degrees about each axis (stateless ``seed``)."""
    tf = _tf()
    limit = math.radians(float(max_degrees))
    return _rotation_matrix(tf.random.stateless_uniform((3,), seed, -limit, limit))


def _random_shift(seed, max_shift):
    """Shift (3,) in voxels, uniform in ``[-max, max]`` per axis (stateless ``seed``)."""
    tf = _tf()
    return tf.random.stateless_uniform((3,), seed, -float(max_shift), float(max_shift))


def random_rotate_3d(volume, seed, max_degrees=DEFAULTS["max_rotation_deg"]):
    """Rotate ``(x, y, z[, channels])`` about the grid centre by angles uniform in ``[-max, max]`` degrees
    about each axis (one draw for all channels). float32, same shape."""
    tf = _tf()
    return affine_resample_3d(volume, _random_rotation(seed, max_degrees), tf.zeros(3))


def random_shift_3d(volume, seed, max_shift=DEFAULTS["max_shift_vox"]):
    """Translate ``(x, y, z[, channels])`` by a shift uniform in ``[-max, max]`` voxels per axis
    (trilinear, zero fill). float32, same shape."""
    tf = _tf()
    return affine_resample_3d(volume, tf.eye(3), _random_shift(seed, max_shift))


def random_intensity_scale(volume, seed, scale_range=DEFAULTS["intensity_scale"]):
    """Multiply every voxel by one factor uniform in ``scale_range``."""
    tf = _tf()
    factor = tf.random.stateless_uniform((), seed, float(scale_range[0]), float(scale_range[1]))
    return tf.convert_to_tensor(volume, tf.float32) * factor


def add_gaussian_noise(volume, seed, std=DEFAULTS["noise_std"]):
    """Add independent Gaussian noise of standard deviation ``std`` (intensity units) to every voxel."""
    tf = _tf()
    volume = tf.convert_to_tensor(volume, tf.float32)
    return volume + tf.random.stateless_normal(tf.shape(volume), seed, stddev=float(std))


def augment_mri(volume, seed, params=None):
    """The paper's MRI augmentations in sequence: rotation, shift, intensity scale, Gaussian noise."""
    p = {**DEFAULTS, **(params or {})}
    s = _split(seed, 4)
    # rotation then shift, composed into one resampling (one interpolation; same draws as
    # random_rotate_3d(s[0]) followed by random_shift_3d(s[1]))
    volume = affine_resample_3d(volume, _random_rotation(s[0], p["max_rotation_deg"]),
                                _random_shift(s[1], p["max_shift_vox"]))
    volume = random_intensity_scale(volume, s[2], p["intensity_scale"])
    return add_gaussian_noise(volume, s[3], p["noise_std"])


def augment_fmri(run, seed, params=None):
    """The paper's fMRI augmentation for a run ``(frames, x, y, z)``, float32, same shape out.

    1. One rotation and one shift for the whole run.
    2. Temporal shift: ``tf.roll`` along frames by an integer uniform in ``[-k, k]``
       (``max_temporal_shift``), i.e. misalignment in time.
    3. Synthetic motion: every frame moved by its own translation, uniform in
       ``+-motion_max_shift_vox`` voxels per axis.
    4. Intensity scale and Gaussian noise.

    Steps 1-3 are composed into one batched resampling per frame (:func:`affine_resample_frames`:
    one interpolation, several times faster than resampling twice); the roll is applied first, which
    commutes with the spatial transforms shared by all frames.
    """
    tf = _tf()
    p = {**DEFAULTS, **(params or {})}
    s = _split(seed, 6)
    run = tf.convert_to_tensor(run, tf.float32)
    k = int(p["max_temporal_shift"])
    if k:
        run = tf.roll(run, tf.random.stateless_uniform((), s[2], -k, k + 1, dtype=tf.int32), axis=0)
    limit = float(p["motion_max_shift_vox"])
    shifts = tf.broadcast_to(_random_shift(s[1], p["max_shift_vox"]), (tf.shape(run)[0], 3))
    if limit:
        shifts = shifts + tf.random.stateless_uniform((tf.shape(run)[0], 3), s[3], -limit, limit)
    run = affine_resample_frames(run, _random_rotation(s[0], p["max_rotation_deg"]), shifts)
    run = random_intensity_scale(run, s[4], p["intensity_scale"])
    return add_gaussian_noise(run, s[5], p["noise_std"])
