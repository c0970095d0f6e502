"""BOLD reference, non-steady-state volumes, head-motion estimation and motion parameters.

Conventions (tested against synthetic motion in ``tests/test_func.py``):

* a volume's motion is a 4x4 matrix ``M`` in RAS+ world coordinates (mm) that maps a point of the
  reference volume to the same anatomical point in that volume (``vol(M @ p) == ref(p)``); it is what
  a registration with the reference as fixed image estimates (antsRegistration's, converted from ITK's
  LPS by :func:`itk_to_ras`, is the same);
* the six parameters follow fMRIPrep's confound names: ``trans_x/y/z`` (mm) and ``rot_x/y/z``
  (radians), with ``M[:3, :3] = Rx(rot_x) @ Ry(rot_y) @ Rz(rot_z)`` and the translation of the
  reference volume's field-of-view centre ``c``: ``trans = M @ c - c``.
"""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits

#: Modified z-score threshold for non-steady-state volumes (Iglewicz & Hoaglin 1993).
NONSTEADY_Z = 3.5
#: Volumes of the first steady-state stretch whose median is the BOLD reference.
REFERENCE_VOLUMES = 10
NONSTEADY_METHOD = (
    "leading volumes whose global signal (mean inside the foreground of the median volume) has a "
    f"modified z-score above {NONSTEADY_Z} against the whole run (at most half the run)"
)
#: Realignment levels: (Gaussian smoothing sigma in voxels, sampling step in voxels), coarse to fine.
MOTION_LEVELS = ((1.0, 2), (0.0, 1))
MOTION_METHOD = (
    "rigid least-squares realignment of every volume to the BOLD reference (Gauss-Newton, the method of "
    "SPM's realign, Friston et al. 1995, in its inverse-compositional form, Baker & Matthews 2004): "
    "trilinear interpolation, voxels of the reference's foreground, a level smoothed by 1 voxel and "
    "sampled every 2 voxels, then the unsmoothed volume at every voxel"
)
MOTION_PARAMETERS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
LPS = [-1.0, -1.0, 1.0, 1.0]


def nonsteady_volumes(data, max_fraction: float = 0.5) -> int:
    """Number of non-steady-state volumes at the start of a run.

    ``data``: float array (x, y, z, t). The global signal of each volume is its mean inside the voxels
    above 10% of the 99th percentile of the median volume; a volume is non-steady-state when its
    modified z-score ``0.6745 (g - median(g)) / MAD(g)`` exceeds :data:`NONSTEADY_Z` (bright, as before
    the longitudinal magnetisation reaches its steady state). Returns the count of such volumes before
    the first steady-state one, at most ``max_fraction`` of the run.
    """
    import numpy as np

    n_vol = data.shape[3]
    if n_vol < 3:
        return 0
    median = np.median(data, axis=3)
    mask = median > 0.1 * np.percentile(median, 99)
    signal = data[mask].mean(axis=0)
    mad = np.median(np.abs(signal - np.median(signal)))
    if mad <= 0:
        return 0
    z = 0.6745 * (signal - np.median(signal)) / mad
    count = 0
    while count < int(n_vol * max_fraction) and z[count] > NONSTEADY_Z:
        count += 1
    return count


def bold_reference(data, dummy_scans: int):
    """Reference volume (x, y, z, float32): median of the first :data:`REFERENCE_VOLUMES` steady-state volumes."""
    import numpy as np

    stop = min(data.shape[3], dummy_scans + REFERENCE_VOLUMES)
    return np.median(data[..., dummy_scans:stop], axis=3).astype(np.float32)


def itk_to_ras(transform_file) -> "np.ndarray":
    """4x4 RAS+ matrix (mm) of an antspyx/ITK linear transform file (``.mat``), in ITK's direction
    (fixed-image points to moving-image points), whatever its parametrisation and centre."""
    import ants
    import numpy as np

    tx = ants.read_transform(str(transform_file))
    points = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    mapped = np.array([tx.apply_to_point(tuple(p)) for p in points])  # LPS
    lps = np.eye(4)
    lps[:3, 3] = mapped[0]
    lps[:3, :3] = (mapped[1:] - mapped[0]).T
    flip = np.diag(LPS)
    return flip @ lps @ flip


def euler_matrix(rot_x: float, rot_y: float, rot_z: float):
    """3x3 rotation ``Rx @ Ry @ Rz`` (angles in radians)."""
    import numpy as np

    cx, sx, cy, sy, cz, sz = np.cos(rot_x), np.sin(rot_x), np.cos(rot_y), np.sin(rot_y), np.cos(rot_z), np.sin(rot_z)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rx @ ry @ rz


def rigid_matrix(params, centre):
    """4x4 matrix from six parameters (``trans_x/y/z`` mm, ``rot_x/y/z`` rad) about ``centre`` (mm)."""
    import numpy as np

    matrix = np.eye(4)
    matrix[:3, :3] = euler_matrix(*params[3:])
    centre = np.asarray(centre, float)
    matrix[:3, 3] = centre + np.asarray(params[:3], float) - matrix[:3, :3] @ centre
    return matrix


def rigid_params(matrix, centre):
    """Six parameters (``trans_x/y/z`` mm, ``rot_x/y/z`` rad) of a rigid 4x4 matrix; inverse of :func:`rigid_matrix`."""
    import numpy as np

    rot = np.asarray(matrix)[:3, :3]
    rot_y = float(np.arcsin(np.clip(rot[0, 2], -1, 1)))
    rot_x = float(np.arctan2(-rot[1, 2], rot[2, 2]))
    rot_z = float(np.arctan2(-rot[0, 1], rot[0, 0]))
    centre = np.asarray(centre, float)
    trans = np.asarray(matrix)[:3, :3] @ centre + np.asarray(matrix)[:3, 3] - centre
    return [*map(float, trans), rot_x, rot_y, rot_z]


def framewise_displacement(params, radius_mm: float = 50.0):
    """Framewise displacement (Power et al. 2012), mm: ``sum |d trans| + radius * sum |d rot|``.

    ``params``: (T, 6) array (``trans_x/y/z`` mm, ``rot_x/y/z`` rad). Returns (T,) float64 with
    ``nan`` for the first volume (no previous one).
    """
    import numpy as np

    params = np.asarray(params, float)
    diff = np.abs(np.diff(params, axis=0))
    fd = diff[:, :3].sum(axis=1) + radius_mm * diff[:, 3:].sum(axis=1)
    return np.concatenate([[np.nan], fd])


def fov_centre(img):
    """World coordinates (mm) of the centre of an image's field of view."""
    import numpy as np

    centre = (np.asarray(img.shape[:3], float) - 1) / 2
    return (img.affine @ np.array([*centre, 1.0]))[:3]


def _level_setup(ref, affine, centre, points_ijk, sigma: float):
    """Fixed part of one Gauss-Newton level: reference values, homogeneous world points (N, 4), the
    steepest-descent images (N, 6: d ref / d parameters at the identity) and the inverse Hessian (6, 6)."""
    import numpy as np
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(ref, sigma) if sigma else ref
    grad_ijk = np.stack([g[tuple(points_ijk.T)] for g in np.gradient(smooth)], axis=1)
    grad = grad_ijk @ np.linalg.inv(affine[:3, :3])  # world-coordinate gradient (row vectors)
    points = points_ijk @ affine[:3, :3].T + affine[:3, 3]
    arm = points - centre
    # d/d rot_k of Rx Ry Rz (p - c) at 0 is e_k x (p - c): its dot product with the gradient
    rot = np.stack([np.cross(np.eye(3)[k], arm) for k in range(3)], axis=2)
    steepest = np.concatenate([grad, np.einsum("ni,nik->nk", grad, rot)], axis=1)
    hessian = steepest.T @ steepest
    if np.linalg.matrix_rank(hessian) < 6:
        raise ValueError("the BOLD reference has too little structure to estimate head motion")
    return smooth[tuple(points_ijk.T)], np.c_[points, np.ones(len(points))], steepest, np.linalg.inv(hessian)


def estimate_motion(bold_file, reference_file, *, max_iterations: int = 20, tolerance_mm: float = 1e-4):
    """Rigid head motion of every volume relative to the reference (:data:`MOTION_METHOD`).

    Least squares between each volume, trilinearly interpolated, and the reference at the voxels of the
    reference's foreground (above 10% of its 99th percentile, dilated by 2 voxels), minimised by
    Gauss-Newton over the six parameters at each of :data:`MOTION_LEVELS`; the reference's gradient and
    Hessian are computed once (inverse compositional), each volume starts from the previous one's motion.
    A level stops when an update moves no point within 50 mm of the centre by more than ``tolerance_mm``.
    Deterministic (no random sampling), single-threaded numpy/scipy.

    ``bold_file``: conformed 4-D BOLD (float32, RAS+); ``reference_file``: 3-D reference on its grid.
    Returns (``matrices`` (T, 4, 4) float64 RAS+ per :mod:`this module's convention
    <bidsad.interfaces.motion>`, ``params`` (T, 6) float64). Raises ``ValueError`` for a reference
    without structure.
    """
    import nibabel as nb
    import numpy as np
    from scipy import ndimage
    from threadpoolctl import threadpool_limits

    ref_img = nb.load(str(reference_file))
    ref = np.asarray(ref_img.dataobj, dtype=np.float32)
    bold = nb.load(str(bold_file))
    series = np.asarray(bold.dataobj, dtype=np.float32)  # once: a volume of a .nii.gz re-reads the file up to it
    affine = ref_img.affine
    centre = fov_centre(ref_img)
    mask = ndimage.binary_dilation(ref > 0.1 * np.percentile(ref, 99), iterations=2)
    points = np.argwhere(mask)
    levels = [(sigma, _level_setup(ref, affine, centre, points[np.all(points % step == 0, axis=1)], sigma))
              for sigma, step in MOTION_LEVELS]
    to_voxels = np.linalg.inv(bold.affine)
    matrices = np.empty((bold.shape[3], 4, 4))
    matrix = np.eye(4)
    with threadpool_limits(limits=1):  # products of 6 x N: BLAS threads only add spinning
        for index in range(bold.shape[3]):
            volume = series[..., index]
            for sigma, (values, world, steepest, inv_hessian) in levels:
                smooth = ndimage.gaussian_filter(volume, sigma) if sigma else volume
                for _ in range(max_iterations):
                    voxels = (to_voxels @ matrix @ world.T)[:3]
                    error = ndimage.map_coordinates(smooth, voxels, order=1, mode="nearest") - values
                    delta = inv_hessian @ (steepest.T @ error)
                    matrix = matrix @ np.linalg.inv(rigid_matrix(delta, centre))
                    if max(np.abs(delta[:3]).max(), 50.0 * np.abs(delta[3:]).max()) < tolerance_mm:
                        break
            matrices[index] = matrix
    params = np.array([rigid_params(m, centre) for m in matrices])
    return matrices, params


class _RefInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="conformed 4-D BOLD")


class _RefOutputSpec(TraitedSpec):
    ref_file = File(exists=True, desc="BOLD reference (3-D)")
    mask_file = File(exists=True, desc="BOLD brain mask (uint8, reference grid)")
    dummy_scans = traits.Int(desc="non-steady-state volumes at the start")


class BoldReference(SimpleInterface):
    """Non-steady-state volumes (:func:`nonsteady_volumes`), reference (:func:`bold_reference`) and a
    brain mask of the reference (nilearn ``compute_epi_mask``, Nichols' lower/upper cut)."""

    input_spec = _RefInputSpec
    output_spec = _RefOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb
        import numpy as np
        from nilearn.masking import compute_epi_mask

        img = nb.load(self.inputs.in_file)
        data = np.asarray(img.dataobj, dtype=np.float32)
        dummies = nonsteady_volumes(data)
        ref = nb.Nifti1Image(bold_reference(data, dummies), img.affine)
        ref_file = Path(runtime.cwd) / "boldref.nii.gz"
        nb.save(ref, str(ref_file))
        mask = compute_epi_mask(ref)
        mask_file = Path(runtime.cwd) / "boldref_mask.nii.gz"
        nb.save(nb.Nifti1Image(np.asarray(mask.dataobj).astype(np.uint8), img.affine), str(mask_file))
        self._results.update(ref_file=str(ref_file), mask_file=str(mask_file), dummy_scans=int(dummies))
        return runtime


class _MotionInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="conformed 4-D BOLD")
    ref_file = File(exists=True, mandatory=True, desc="BOLD reference")


class _MotionOutputSpec(TraitedSpec):
    matrices = File(exists=True, desc=".npy (T, 4, 4) RAS+ reference->volume matrices")
    params = File(exists=True, desc=".npy (T, 6) motion parameters (mm, rad)")


class HeadMotion(SimpleInterface):
    """nipype wrapper of :func:`estimate_motion`."""

    input_spec = _MotionInputSpec
    output_spec = _MotionOutputSpec

    def _run_interface(self, runtime):
        import numpy as np

        matrices, params = estimate_motion(self.inputs.in_file, self.inputs.ref_file)
        out = Path(runtime.cwd)
        np.save(out / "matrices.npy", matrices)
        np.save(out / "params.npy", params)
        self._results.update(matrices=str(out / "matrices.npy"), params=str(out / "params.npy"))
        return runtime
