"""Augmentations: geometry on known inputs, seeding, fMRI temporal shift and synthetic motion."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from bidsad.derivatives import PRESETS, resize_mri_volume_grid  # noqa: E402
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


def _physical(shape, voxel_mm):
    """Coordinates (x, y, z, 3) in mm of every voxel relative to the grid centre."""
    index = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij"), -1)
    return (index - (np.array(shape) - 1) / 2) * np.asarray(voxel_mm, np.float32)


def _rotation_deg(angles):
    return augment._rotation_matrix(tf.constant(np.radians(angles), tf.float32)).numpy().astype(np.float64)


PAPER_MRI = PRESETS["paper"]["mri_shape"]
PAPER_VOXEL = np.diag(resize_mri_volume_grid(PAPER_MRI))[:3]  # 1.54 x 1.82 x 1.07 mm


def test_a_10_degree_rotation_is_rigid_in_mm_on_the_paper_mri_grid():
    # resample the voxels' own mm coordinates (trilinear is exact on linear ramps): the output at voxel q holds
    # the mm position it was read from, so a least-squares fit gives the physical map the resampling made
    coords = _physical(PAPER_MRI, PAPER_VOXEL)
    rotation = _rotation_deg([10.0, -10.0, 10.0])
    inside = np.linalg.norm(coords, axis=-1) < 70.0  # read from inside the grid

    def physical_map(voxel_mm):
        out = augment.rigid_resample_3d(coords, rotation, tf.zeros(3), voxel_mm).numpy()
        fit, *_ = np.linalg.lstsq(coords[inside].astype(np.float64), out[inside].astype(np.float64), rcond=None)
        return fit.T  # out = fit.T @ q: the inverse of the content's motion

    mm = physical_map(PAPER_VOXEL)
    assert np.allclose(np.linalg.svd(mm, compute_uv=False), 1.0, atol=0.005)
    assert np.allclose(mm, rotation.T, atol=2e-3)
    # the old rotation on voxel indices (1 mm voxels assumed) stretches the content on this grid
    singular = np.linalg.svd(physical_map(np.ones(3, np.float32)), compute_uv=False)
    assert singular.max() - singular.min() > 0.05


def test_rotation_of_an_off_centre_ellipsoid_matches_the_analytic_rotation():
    coords = _physical(PAPER_MRI, PAPER_VOXEL).astype(np.float64)
    centre, axes = np.array([30.0, -25.0, 15.0]), np.array([22.0, 12.0, 8.0])  # mm
    phantom = (((coords - centre) / axes) ** 2).sum(-1) <= 1.0
    rotation = _rotation_deg([10.0, -10.0, 10.0])
    out = augment.rigid_resample_3d(phantom.astype(np.float32), rotation, tf.zeros(3), PAPER_VOXEL).numpy()

    def moments(volume):
        weights = volume.reshape(-1) / volume.sum()
        points = coords.reshape(-1, 3)
        mean = weights @ points
        return mean, (points - mean).T @ ((points - mean) * weights[:, None])

    mean_in, cov_in = moments(phantom.astype(np.float64))
    mean_out, cov_out = moments(out.astype(np.float64))
    assert np.all(np.abs(mean_out - rotation @ centre) < 0.5 * PAPER_VOXEL)  # centroid within half a voxel
    assert out.sum() == pytest.approx(phantom.sum(), rel=0.005)  # volume kept
    assert np.allclose(cov_out, rotation @ cov_in @ rotation.T, atol=0.02 * cov_in.max())  # shape and orientation


def test_shifts_are_in_mm():
    vol, centre = _point_volume()
    out = augment.rigid_resample_3d(vol, np.eye(3), tf.constant([4.0, -3.0, 0.0]), [2.0, 3.0, 1.0]).numpy()
    assert np.unravel_index(out.argmax(), out.shape) == tuple(centre + [2, -1, 0])


def test_temporal_shift_pads_with_empty_frames_and_masks_them():
    run = np.broadcast_to(np.arange(1, 9, dtype=np.float32)[:, None, None, None], (8, 3, 3, 2)).copy()
    run[6:] = 0.0  # the participant level padded a 6-frame run to 8
    mask = np.arange(8) < 6
    later, later_mask = augment.temporal_shift(run, mask, 2)
    assert list(later[:, 0, 0, 0].numpy()) == [3, 4, 5, 6, 0, 0, 0, 0]  # no wrap: frames 1-2 dropped, not moved
    assert list(later_mask.numpy()) == [True] * 4 + [False] * 4
    earlier, earlier_mask = augment.temporal_shift(run, mask, -2)
    assert list(earlier[:, 0, 0, 0].numpy()) == [1, 2, 3, 4, 0, 0, 0, 0]
    assert list(earlier_mask.numpy()) == [True] * 4 + [False] * 4
    short, short_mask = augment.temporal_shift(run[:3], [True, False, False], 2)  # one real frame: kept
    assert list(short[:, 0, 0, 0].numpy()) == [1, 0, 0] and list(short_mask.numpy()) == [True, False, False]
    params = {"rotation_deg": 0, "shift_mm": 0, "intensity_scale": (1, 1), "noise_std": 0, "temporal_shift_frames": 2,
              "motion_step_deg": 0, "motion_step_mm": 0}
    seen = set()
    for s in range(12):
        out, out_mask = augment.augment_fmri(run, tf.constant([s, 0], tf.int64), params, frame_mask=mask)
        values, kept = out[:, 0, 0, 0].numpy(), out_mask.numpy()
        assert np.array_equal(values[~kept], np.zeros((~kept).sum())) and kept[0] and not kept[6:].any()
        first, n = int(values[0]), int(kept.sum())
        assert np.array_equal(values[kept], np.arange(first, first + n))  # consecutive real frames, in order
        seen.add((first, n))
    assert len(seen) > 2  # several shifts drawn, later and earlier


def test_synthetic_motion_is_a_smooth_random_walk():
    angles, shifts = (v.numpy() for v in augment.synthetic_motion(SEED, 200, step_deg=0.05, step_mm=0.1))
    assert angles.shape == shifts.shape == (200, 3) and not angles[0].any() and not shifts[0].any()
    steps = np.diff(shifts, axis=0)
    assert steps.std() == pytest.approx(0.1, rel=0.1) and np.diff(angles, axis=0).std() == pytest.approx(0.05, rel=0.1)
    spread = shifts.max(axis=0) - shifts.min(axis=0)
    assert np.all(np.median(np.abs(steps), axis=0) < 0.1 * spread)  # consecutive frames close, the run drifts
    assert np.all(np.abs(steps).max(axis=0) < 0.5 * spread)


def test_augment_fmri_moves_each_frame_by_its_motion_in_mm():
    voxel = np.array([2.0, 3.0, 4.0], np.float32)
    frame = np.zeros((14, 12, 10), np.float32)
    frame[5:9, 4:8, 3:7] = 1.0
    run = np.stack([frame] * 6)
    params = {"rotation_deg": 0, "shift_mm": 0, "intensity_scale": (1, 1), "noise_std": 0, "temporal_shift_frames": 0,
              "motion_step_deg": 0, "motion_step_mm": 0.5}
    out, mask = augment.augment_fmri(run, SEED, params, voxel_mm=voxel)
    out = out.numpy()
    assert out.shape == run.shape and mask.numpy().all()
    coords = _physical(frame.shape, voxel).reshape(-1, 3)
    centroids = np.array([coords.T @ f.ravel() / f.sum() for f in out])
    seeds = augment._split(SEED, 6)  # the seed augment_fmri gives the motion (a batch of one run)
    _, expected = augment.synthetic_motion(seeds[3], 6, 0.0, 0.5, batch=1)
    assert np.allclose(centroids - centroids[0], expected.numpy()[0], atol=0.02)  # each frame moved by its walk, in mm
    assert np.allclose(out.reshape(6, -1).sum(axis=1), 64.0, atol=1e-3)  # sub-voxel moves of an interior cube
    again, _ = augment.augment_fmri(run, SEED, params, voxel_mm=voxel)
    assert np.array_equal(out, again.numpy())
