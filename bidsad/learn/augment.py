"""On-the-fly augmentation as seeded TensorFlow ops, per sample (the paper's functions) or per batch
(:func:`augment_batch`, which :class:`bidsad.learn.layers.Augment` runs inside the model, on its device).

Function names are those of Kujur & Monfared (2026), arXiv:2603.13367, which names the transforms but
gives no parameter ranges; the ranges are ours, in the ``[augmentation]`` section of the configuration
(:class:`bidsad.config.Augmentation`, :data:`DEFAULTS` here) and recorded in ``metrics.json``. Unlike the
paper, bidsad applies them only to training participants, after the participant-level split.

Geometry is physical: the model grids are anisotropic (paper MRI grid 1.54 x 1.82 x 1.07 mm, fMRI grid
2.8 x 3.4 x 5.6 mm), so rotations are rigid in millimetres about the grid centre, through the grid's voxel
size ``voxel_mm`` (the diagonal of its axis-aligned affine, sidecar ``voxel_size_mm``): the voxel-index map
is ``S^-1 R S`` with ``S = diag(voxel_mm)``; shifts are in mm. A rotation on voxel indices would stretch
the content by up to +-10 % on these grids at 10 degrees.

Every random op is *stateless*: it takes ``seed``, an int32/int64 tensor of shape (2,), so the same seed
gives the same result on any device. Volumes are float32 tensors in RAS axis order: an MRI volume
``(x, y, z)`` and an fMRI run ``(frames, x, y, z)``. Angles are in degrees, shifts in mm.
"""

from __future__ import annotations

import dataclasses
import math

from bidsad.config import Augmentation
from bidsad.derivatives import FRAME_MASK_KEY

#: Default parameter ranges (ours; the paper gives none): :class:`bidsad.config.Augmentation`.
DEFAULTS = dataclasses.asdict(Augmentation())


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
    """Rotations R = Rz @ Ry @ Rx (float32, (..., 3, 3)) from angles about x, y, z (radians, (..., 3))."""
    tf = _tf()
    a = tf.cast(angles_rad, tf.float32)
    c, s = tf.unstack(tf.cos(a), axis=-1), tf.unstack(tf.sin(a), axis=-1)
    one, zero = tf.ones_like(c[0]), tf.zeros_like(c[0])

    def matrix(rows):
        return tf.stack([tf.stack(row, -1) for row in rows], -2)

    rx = matrix([[one, zero, zero], [zero, c[0], -s[0]], [zero, s[0], c[0]]])
    ry = matrix([[c[1], zero, s[1]], [zero, one, zero], [-s[1], zero, c[1]]])
    rz = matrix([[c[2], -s[2], zero], [s[2], c[2], zero], [zero, zero, one]])
    return rz @ ry @ rx


def voxel_map(rotation, voxel_mm):
    """The voxel-index matrix ``S^-1 R S`` (``S = diag(voxel_mm)``) of a physical rotation ``R`` ((..., 3, 3)).

    On a grid of ``voxel_mm`` (3,) mm voxels it moves content rigidly in mm; float32, shape of ``rotation``.
    """
    tf = _tf()
    size = tf.cast(voxel_mm, tf.float32)
    return tf.cast(rotation, tf.float32) * size[None, :] / size[:, None]


def _grid(dims):
    """Voxel indices (N, 3) of a grid of ``dims`` (float32 (3,)) relative to its centre ``(dims - 1) / 2``."""
    tf = _tf()
    grid = tf.stack(tf.meshgrid(tf.range(dims[0]), tf.range(dims[1]), tf.range(dims[2]), indexing="ij"), -1)
    return tf.reshape(grid, (-1, 3)) - (dims - 1.0) / 2.0


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
    """Resample ``volume`` ``(x, y, z[, channels])`` under an affine map of voxel indices about the grid centre.

    Output voxel ``p`` takes the input value at ``matrix^-1 (p - c - shift) + c`` (c: grid centre),
    i.e. the content is mapped by ``matrix`` ((3, 3), voxel indices) and moved by ``shift`` ((3,) voxels).
    Trilinear interpolation, zero outside. float32, same shape as the input. :func:`rigid_resample_3d` is the
    same in mm.
    """
    tf = _tf()
    volume = tf.convert_to_tensor(volume, tf.float32)
    squeeze = volume.shape.rank == 3
    if squeeze:
        volume = volume[..., None]
    shape = tf.shape(volume)
    dims = tf.cast(shape[:3], tf.float32)
    points = _grid(dims) - tf.cast(shift, tf.float32)
    source = tf.linalg.matvec(tf.linalg.inv(tf.cast(matrix, tf.float32)), points) + (dims - 1.0) / 2.0
    out = tf.reshape(_trilinear(volume, source), shape)
    return out[..., 0] if squeeze else out


def rigid_resample_3d(volume, rotation, shift_mm, voxel_mm):
    """Rotate ``volume`` ``(x, y, z[, channels])`` by ``rotation`` ((3, 3), physical) about the grid centre and
    move it by ``shift_mm`` ((3,) mm), on a grid of ``voxel_mm`` ((3,) mm) voxels: rigid in mm whatever the
    voxel anisotropy. Trilinear, zero outside; float32, same shape."""
    tf = _tf()
    size = tf.cast(voxel_mm, tf.float32)
    return affine_resample_3d(volume, voxel_map(rotation, size), tf.cast(shift_mm, tf.float32) / size)


def rigid_resample_frames(run, rotations, shifts_mm, voxel_mm):
    """Move every frame of ``run`` ``(frames, x, y, z)`` rigidly by its own rotation (``rotations``:
    (frames, 3, 3), physical, about the grid centre) and shift (``shifts_mm``: (frames, 3) mm), on a grid of
    ``voxel_mm`` ((3,) mm) voxels, in one batched trilinear pass (one interpolation per frame; zero outside).
    float32, same shape."""
    tf = _tf()
    run = tf.convert_to_tensor(run, tf.float32)
    shape = tf.shape(run)
    dims = tf.cast(shape[1:4], tf.float32)
    size = tf.cast(voxel_mm, tf.float32)
    inverse = tf.linalg.inv(voxel_map(rotations, size))  # (F, 3, 3)
    offset = (dims - 1.0) / 2.0 - tf.linalg.matvec(inverse, tf.cast(shifts_mm, tf.float32) / size)  # (F, 3)
    source = tf.einsum("fij,nj->fni", inverse, _grid(dims)) + offset[:, None, :]  # (F, N, 3)
    frames = tf.broadcast_to(tf.range(shape[0])[:, None], tf.shape(source)[:2])
    return tf.reshape(_trilinear(run, source, frames), shape)


def _random_rotation(seed, max_degrees, batch=None):
    """Rotations ((3, 3), or (batch, 3, 3)) with angles uniform in ``[-max, max]`` degrees about each axis."""
    tf = _tf()
    limit = math.radians(float(max_degrees))
    return _rotation_matrix(tf.random.stateless_uniform((3,) if batch is None else (batch, 3), seed, -limit, limit))


def _random_shift(seed, max_shift, batch=None):
    """Shifts ((3,), or (batch, 3)), uniform in ``[-max, max]`` per axis (units of ``max_shift``)."""
    tf = _tf()
    return tf.random.stateless_uniform((3,) if batch is None else (batch, 3), seed, -float(max_shift), float(max_shift))


def _voxel_mm(voxel_mm):
    tf = _tf()
    return tf.ones(3) if voxel_mm is None else tf.cast(voxel_mm, tf.float32)


def random_rotate_3d(volume, seed, max_degrees=DEFAULTS["rotation_deg"], voxel_mm=None):
    """Rotate ``(x, y, z[, channels])`` rigidly in mm about the grid centre by angles uniform in ``[-max, max]``
    degrees about each axis (one draw for all channels). ``voxel_mm``: (3,) voxel size in mm (``None``: 1 mm).
    float32, same shape."""
    tf = _tf()
    return rigid_resample_3d(volume, _random_rotation(seed, max_degrees), tf.zeros(3), _voxel_mm(voxel_mm))


def random_shift_3d(volume, seed, max_shift_mm=DEFAULTS["shift_mm"], voxel_mm=None):
    """Translate ``(x, y, z[, channels])`` by a shift uniform in ``[-max, max]`` mm per axis on a grid of
    ``voxel_mm`` (3,) mm voxels (``None``: 1 mm); trilinear, zero fill. float32, same shape."""
    tf = _tf()
    return rigid_resample_3d(volume, tf.eye(3), _random_shift(seed, max_shift_mm), _voxel_mm(voxel_mm))


def random_intensity_scale(volume, seed, scale_range=DEFAULTS["intensity_scale"]):
    """Multiply every voxel by one factor uniform in ``scale_range`` (low, high). float32, same shape."""
    tf = _tf()
    factor = tf.random.stateless_uniform((), seed, float(scale_range[0]), float(scale_range[1]))
    return tf.convert_to_tensor(volume, tf.float32) * factor


def add_gaussian_noise(volume, seed, std=DEFAULTS["noise_std"]):
    """Add independent Gaussian noise of standard deviation ``std`` (intensity units) to every voxel."""
    tf = _tf()
    volume = tf.convert_to_tensor(volume, tf.float32)
    return volume + tf.random.stateless_normal(tf.shape(volume), seed, stddev=float(std))


def _scale_and_noise(batch, seeds, p):
    """``batch`` (B, ...) times a factor per sample uniform in ``intensity_scale``, plus Gaussian noise."""
    tf = _tf()
    low, high = (float(v) for v in p["intensity_scale"])
    factor = tf.random.stateless_uniform(tf.shape(batch)[:1], seeds[0], low, high)
    factor = tf.reshape(factor, tf.concat([tf.shape(batch)[:1], tf.ones(tf.rank(batch) - 1, tf.int32)], 0))
    return batch * factor + tf.random.stateless_normal(tf.shape(batch), seeds[1], stddev=float(p["noise_std"]))


def augment_mri_batch(volumes, seed, params=None, voxel_mm=None):
    """:func:`augment_mri` of a batch ``(B, x, y, z)`` float32 in one resampling (one set of draws per sample from
    the stateless ``seed`` (2,)); every op batched, so it runs where the batch is (on a GPU inside the model)."""
    tf = _tf()
    p = {**DEFAULTS, **(params or {})}
    s = _split(seed, 4)
    volumes = tf.convert_to_tensor(volumes, tf.float32)
    batch = tf.shape(volumes)[0]
    rotation, shift = _random_rotation(s[0], p["rotation_deg"], batch), _random_shift(s[1], p["shift_mm"], batch)
    return _scale_and_noise(rigid_resample_frames(volumes, rotation, shift, _voxel_mm(voxel_mm)), s[2:], p)


def augment_mri(volume, seed, params=None, voxel_mm=None):
    """The paper's MRI augmentations in sequence: rotation, shift, intensity scale, Gaussian noise.

    ``volume`` (x, y, z) float32 on a grid of ``voxel_mm`` ((3,) mm; ``None``: 1 mm); ``params``: overrides
    of :data:`DEFAULTS`. The rotation and shift (rigid in mm) are one resampling. float32, same shape.
    """
    return augment_mri_batch(volume[None], seed, params, voxel_mm)[0]


def synthetic_motion(seed, frames, step_deg=DEFAULTS["motion_step_deg"], step_mm=DEFAULTS["motion_step_mm"],
                     batch=None):
    """Smooth rigid head motion over ``frames`` volumes, a random walk as real head motion is.

    Frame 0 is the reference; each later frame adds to the previous one's 3 angles and 3 translations a
    Gaussian step of standard deviation ``step_deg`` degrees and ``step_mm`` mm (stateless ``seed``). Returns
    ``(angles_deg, shifts_mm)``, float32, each of shape (frames, 3), or (batch, frames, 3) with ``batch``.
    """
    tf = _tf()
    n = 1 if batch is None else batch
    walks = []
    for part, std in zip(_split(seed, 2), (step_deg, step_mm)):
        steps = tf.random.stateless_normal((n, frames - 1, 3), part, stddev=float(std))
        walks.append(tf.cumsum(tf.concat([tf.zeros((n, 1, 3)), steps], 1), axis=1))
    return tuple(w[0] for w in walks) if batch is None else tuple(walks)


def temporal_shift(run, frame_mask, frames):
    """Move a run ``(T, x, y, z)`` (or a batch ``(B, T, x, y, z)``) by ``frames`` (int, or (B,)) in time without
    wrap-around.

    Frames moved out are dropped and empty (zero) frames fill the gap, marked false in the returned mask
    (``frame_mask``: bool (T,) or (B, T), true on real frames, which come first). Later (``frames`` > 0) or
    earlier (< 0), the real frames are kept at the start (the mask stays right-padded, as cuDNN's LSTM/GRU
    require; a masked recurrent layer skips empty frames wherever they are); at least one real frame is kept.
    Returns ``(run, frame_mask)``: float32 of the run's shape and bool of the mask's.
    """
    tf = _tf()
    run, mask = tf.convert_to_tensor(run, tf.float32), tf.cast(frame_mask, tf.bool)
    single = mask.shape.rank == 1
    if single:
        run, mask, frames = run[None], mask[None], tf.reshape(frames, (1,))
    frames = tf.cast(frames, tf.int32)
    total, real = tf.shape(mask)[1], tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    drop = tf.minimum(tf.abs(frames), tf.maximum(real - 1, 0))  # real frames lost at one end
    start = tf.where(frames > 0, drop, 0)  # a later start drops the first frames, an earlier one the last
    order = tf.range(total)[None] + start[:, None]  # (B, T)
    keep = (tf.range(total)[None] < (real - drop)[:, None]) & (order < total)
    out = tf.gather(run, tf.minimum(order, total - 1), batch_dims=1) * tf.cast(keep, tf.float32)[..., None, None, None]
    return (out[0], keep[0]) if single else (out, keep)


def augment_fmri_batch(runs, seed, params=None, voxel_mm=None, frame_masks=None):
    """:func:`augment_fmri` of a batch of runs ``(B, T, x, y, z)`` (masks bool (B, T), ``None``: all real) in one
    batched resampling of every frame; one set of draws per sample from the stateless ``seed`` (2,). Returns
    ``(runs, frame_masks)``: float32 (B, T, x, y, z) and bool (B, T)."""
    tf = _tf()
    p = {**DEFAULTS, **(params or {})}
    s = _split(seed, 6)
    runs = tf.convert_to_tensor(runs, tf.float32)
    shape = tf.shape(runs)
    batch, total = shape[0], shape[1]
    masks = tf.ones((batch, total), tf.bool) if frame_masks is None else tf.cast(frame_masks, tf.bool)
    k = int(p["temporal_shift_frames"])
    if k:
        runs, masks = temporal_shift(runs, masks, tf.random.stateless_uniform((batch,), s[2], -k, k + 1, dtype=tf.int32))
    angles, walks = synthetic_motion(s[3], total, p["motion_step_deg"], p["motion_step_mm"], batch)  # (B, T, 3)
    motion = _rotation_matrix(angles * (math.pi / 180.0))  # (B, T, 3, 3)
    rotation, shift = _random_rotation(s[0], p["rotation_deg"], batch), _random_shift(s[1], p["shift_mm"], batch)
    # frame t: x -> M_t (R x + t0) + m_t, i.e. rotation M_t R and shift M_t t0 + m_t
    rotations = tf.reshape(motion @ rotation[:, None], (-1, 3, 3))
    shifts = tf.reshape(tf.linalg.matvec(motion, shift[:, None, :]) + walks, (-1, 3))
    frames = tf.reshape(runs, tf.concat([[-1], shape[2:]], 0))
    runs = tf.reshape(rigid_resample_frames(frames, rotations, shifts, _voxel_mm(voxel_mm)), shape)
    return _scale_and_noise(runs, s[4:], p) * tf.cast(masks, tf.float32)[..., None, None, None], masks


def augment_fmri(run, seed, params=None, voxel_mm=None, frame_mask=None):
    """The paper's fMRI augmentation of a run ``(frames, x, y, z)`` on a grid of ``voxel_mm`` ((3,) mm).

    1. One rotation and one shift (mm) for the whole run, rigid in mm about the grid centre.
    2. Temporal shift (:func:`temporal_shift`): an integer uniform in +-``temporal_shift_frames``, no
       wrap-around; the padded frames are false in the returned mask.
    3. Synthetic motion (:func:`synthetic_motion`): a smooth rigid random walk per frame, composed after 1.
    4. Intensity scale and Gaussian noise on the real frames (empty frames stay zero).

    Steps 1 and 3 are one batched resampling of every frame (:func:`rigid_resample_frames`). ``frame_mask``:
    bool (frames,), ``None``: every frame real. Returns ``(run, frame_mask)``: float32 of the input's shape
    and bool (frames,).
    """
    masks = None if frame_mask is None else _tf().cast(frame_mask, "bool")[None]
    runs, masks = augment_fmri_batch(_tf().convert_to_tensor(run, "float32")[None], seed, params, voxel_mm, masks)
    return runs[0], masks[0]


def augment_batch(inputs: dict, seed, params=None, voxel_mm=None) -> dict:
    """A batch of model inputs augmented: ``{"mri": (B, x, y, z, 1), "bold": (B, T, x, y, z, 1), "frame_mask":
    (B, T) float 1/0}`` (any subset; other keys passed through) with :func:`augment_mri_batch` and
    :func:`augment_fmri_batch` (stateless ``seed`` (2,); ``voxel_mm``: ``{"mri": (3,), "bold": (3,)}`` mm, a
    missing one 1 mm); the frame mask follows the temporal shift. Returns a dict of the same keys, float32."""
    tf = _tf()
    voxel_mm, s = voxel_mm or {}, _split(seed, 2)
    out = dict(inputs)
    if "mri" in inputs:
        out["mri"] = augment_mri_batch(inputs["mri"][..., 0], s[0], params, voxel_mm.get("mri"))[..., None]
    if "bold" in inputs:
        masks = inputs[FRAME_MASK_KEY] > 0.5 if FRAME_MASK_KEY in inputs else None
        runs, masks = augment_fmri_batch(inputs["bold"][..., 0], s[1], params, voxel_mm.get("bold"), masks)
        out["bold"] = runs[..., None]
        if FRAME_MASK_KEY in inputs:
            out[FRAME_MASK_KEY] = tf.cast(masks, tf.float32)
    return out
