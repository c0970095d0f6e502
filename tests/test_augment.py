"""Augmentations: geometry on known inputs, seeding, fMRI temporal shift and synthetic motion."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from bidsad.learn import augment  # noqa: E402

SEED = tf.constant([1, 2], tf.int64)


def _point_volume(shape=(15, 15, 15), offset=(0, 0, 0)):
    vol = np.zeros(shape, np.float32)
    centre = np.array(shape) // 2
    vol[tuple(centre + np.array(offset))] = 1.0
    return vol, centre


def test_resize_mri_volume_is_trilinear():
    ramp = np.broadcast_to(np.arange(8, dtype=np.float32)[:, None, None], (8, 6, 4)).copy()
    out = augment.resize_mri_volume(ramp, (16, 12, 8)).numpy()
    assert out.shape == (16, 12, 8)
    # a linear ramp stays linear (half-pixel-centre sampling): interior differences constant 0.5
    diffs = np.diff(out[2:-2, 5, 3])
    assert np.allclose(diffs, 0.5, atol=1e-5)
    assert np.allclose(augment.resize_mri_volume(np.full((5, 7, 9), 3.0, np.float32), (10, 4, 6)), 3.0)


def test_rotation_by_90_degrees_about_z_moves_a_point_as_expected():
    vol, centre = _point_volume(offset=(3, 0, 0))
    rot = augment._rotation_matrix(tf.constant([0.0, 0.0, np.pi / 2]))
    out = augment.affine_resample_3d(vol, rot, tf.zeros(3)).numpy()
    assert np.unravel_index(out.argmax(), out.shape) == tuple(centre + [0, 3, 0])
    assert out.max() == pytest.approx(1.0, abs=1e-5)


def test_integer_shift_moves_content_and_zero_transform_is_identity():
    vol, centre = _point_volume()
    out = augment.affine_resample_3d(vol, tf.eye(3), tf.constant([2.0, -1.0, 0.0])).numpy()
    assert np.unravel_index(out.argmax(), out.shape) == tuple(centre + [2, -1, 0])
    rng = np.random.default_rng(0).normal(size=(6, 7, 8)).astype(np.float32)
    assert np.allclose(augment.affine_resample_3d(rng, tf.eye(3), tf.zeros(3)).numpy(), rng, atol=1e-6)


def test_random_ops_are_seeded_and_bounded():
    vol = np.random.default_rng(1).normal(size=(12, 12, 12)).astype(np.float32)
    for op in (augment.random_rotate_3d, augment.random_shift_3d, augment.random_intensity_scale,
               augment.add_gaussian_noise):
        a, b = op(vol, SEED).numpy(), op(vol, SEED).numpy()
        c = op(vol, tf.constant([3, 4], tf.int64)).numpy()
        assert np.array_equal(a, b) and not np.allclose(a, c), op.__name__
    factor = augment.random_intensity_scale(np.ones((2, 2, 2), np.float32), SEED, (0.9, 1.1)).numpy()
    assert np.allclose(factor, factor.flat[0]) and 0.9 <= factor.flat[0] <= 1.1
    noise = augment.add_gaussian_noise(np.zeros((40, 40, 40), np.float32), SEED, std=0.2).numpy()
    assert noise.std() == pytest.approx(0.2, rel=0.03) and abs(noise.mean()) < 0.01


def test_augment_fmri_temporal_shift_only_rolls_frames():
    run = np.random.default_rng(2).normal(size=(6, 5, 5, 4)).astype(np.float32)
    params = {"max_rotation_deg": 0, "max_shift_vox": 0, "intensity_scale": (1, 1), "noise_std": 0,
              "max_temporal_shift": 2, "motion_max_shift_vox": 0}
    shifted = [augment.augment_fmri(run, tf.constant([s, 0], tf.int64), params).numpy() for s in range(8)]
    rolls = [next(k for k in range(-2, 3) if np.allclose(out, np.roll(run, k, axis=0), atol=1e-6)) for out in shifted]
    assert len(set(rolls)) > 1  # several different shifts drawn over seeds, each an exact roll


def test_augment_fmri_synthetic_motion_moves_frames_independently():
    frame = np.zeros((9, 9, 9), np.float32)
    frame[3:6, 3:6, 3:6] = 1.0
    run = np.stack([frame] * 5)
    params = {"max_rotation_deg": 0, "max_shift_vox": 0, "intensity_scale": (1, 1), "noise_std": 0,
              "max_temporal_shift": 0, "motion_max_shift_vox": 1.0}
    out = augment.augment_fmri(run, SEED, params).numpy()
    assert out.shape == run.shape
    grid = np.indices(frame.shape).reshape(3, -1)
    centres = np.array([grid @ f.ravel() / f.sum() for f in out])  # intensity centre of mass per frame
    assert len({tuple(c) for c in np.round(centres, 3)}) == 5  # every frame moved differently
    assert np.abs(centres - 4.0).max() <= 1.0 + 1e-4  # by at most the configured 1 voxel per axis
    masses = out.reshape(5, -1).sum(axis=1)
    assert np.allclose(masses, 27.0, atol=1e-3)  # sub-voxel translation of an interior cube keeps its mass
    assert np.array_equal(out, augment.augment_fmri(run, SEED, params).numpy())
