"""One-shot resampling of BOLD volumes into ``MNI152NLin2009aSym``: motion, coregistration and the
T1w->MNI transform composed, each volume interpolated once from the conformed original."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits

INTERPOLATION = (
    "one trilinear interpolation per volume from the original BOLD (after NIfTI conformance): the "
    "T1w->MNI152NLin2009aSym transform and the BOLD->T1w coregistration (antspyx, evaluated once as a "
    "coordinate field) composed with the volume's rigid head-motion matrix (scipy map_coordinates)"
)
MODEL_INTERPOLATION = INTERPOLATION + (
    "; for the model grid, each native volume is first smoothed with a Gaussian of FWHM "
    "sqrt(target^2 - source^2) mm per axis (anti-aliasing)"
)


def std_grid(resolution: int = 3):
    """nilearn's ``MNI152NLin2009aSym`` template at ``resolution`` mm (nibabel image; (67, 79, 64) at 3 mm)."""
    from nilearn import datasets

    return datasets.load_mni152_template(resolution=resolution)


def coordinate_field(ref_img, grid_affine, grid_shape, transforms, work_dir):
    """RAS+ world coordinates (mm) in the BOLD-reference space of every voxel of a target grid.

    ``transforms``: antspyx transform list taking target-grid points to BOLD-reference points (e.g.
    ``[t1w2mni, coreg]``). The three coordinate images of the reference grid and a ones image are
    resampled linearly through ``transforms`` (exact for these linear images). Returns ``coords``
    (3, N) float64 and ``valid`` (N,) bool (inside the reference field of view).
    """
    import ants
    import nibabel as nb
    import numpy as np

    work_dir = Path(work_dir)
    target = work_dir / "target_grid.nii.gz"
    nb.save(nb.Nifti1Image(np.zeros(tuple(grid_shape), np.float32), grid_affine), str(target))
    fixed = ants.image_read(str(target))
    shape = ref_img.shape[:3]
    ijk = np.indices(shape, dtype=np.float64).reshape(3, -1)
    world = ref_img.affine[:3, :3] @ ijk + ref_img.affine[:3, 3:4]
    channels = [*world, np.ones(world.shape[1])]
    out = []
    for index, values in enumerate(channels):
        path = work_dir / f"coord{index}.nii.gz"
        nb.save(nb.Nifti1Image(values.reshape(shape).astype(np.float32), ref_img.affine), str(path))
        moved = ants.apply_transforms(fixed=fixed, moving=ants.image_read(str(path)),
                                      transformlist=[str(t) for t in transforms], interpolator="linear")
        out.append(moved.numpy().astype(np.float64).reshape(-1))
    return np.array(out[:3]), out[3] > 0.999


def resample_series(data, affine, matrices, coords, valid, grid_shape, fwhm_mm=None):
    """Sample every volume of the 4-D array ``data`` (RAS+ ``affine``) at ``matrices[t] @ coords`` (trilinear,
    0 outside).

    ``matrices``: (T, 4, 4) reference->volume RAS+ matrices; ``coords``/``valid`` from
    :func:`coordinate_field`; ``fwhm_mm``: optional per-axis Gaussian FWHM (mm) applied to each native
    volume first. Returns float32 (x, y, z, T) on the target grid, in Fortran order (NIfTI's: one volume after
    the other), so that writing it needs no reordering copy (issue 19: the C-ordered array cost 7 of the
    44 CPU s of :func:`bold_to_standard` on a 200-volume run, in nibabel's reordering).
    """
    import numpy as np
    from scipy import ndimage

    inv = np.linalg.inv(affine)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    sigma = None
    if fwhm_mm is not None and np.any(np.asarray(fwhm_mm) > 0):
        sigma = np.asarray(fwhm_mm, float) / (2 * np.sqrt(2 * np.log(2))) / zooms
    # the target voxels in NIfTI order (first axis fastest)
    order = np.arange(int(np.prod(grid_shape))).reshape(grid_shape).ravel(order="F")
    inside = valid[order]
    homog = np.vstack([coords[:, order][:, inside], np.ones(int(inside.sum()))])
    out = np.zeros((data.shape[3], order.size), np.float32)
    for t in range(data.shape[3]):
        vol = data[..., t]
        if sigma is not None:
            vol = ndimage.gaussian_filter(vol, sigma, mode="constant")
        ijk = (inv @ matrices[t])[:3] @ homog
        out[t, inside] = ndimage.map_coordinates(vol, ijk, order=1, mode="constant", cval=0.0)
    return out.reshape(data.shape[3], *tuple(grid_shape)[::-1]).transpose(3, 2, 1, 0)


def bold_to_standard(bold_file, ref_file, mask_file, matrices_file, coreg, t1w2mni, out_dir, *,
                     model_shape, model_affine, dummy_scans: int, repetition_time: float = 1.0):
    """Resample a BOLD run once into ``MNI152NLin2009aSym`` at 3 mm and onto the model grid.

    Parameters
    ----------
    bold_file : conformed 4-D BOLD (float32, RAS+); ``ref_file``/``mask_file`` its reference and mask.
    matrices_file : ``.npy`` (T, 4, 4) motion matrices (:mod:`bidsad.interfaces.motion`).
    coreg, t1w2mni : BOLD-reference->T1w (``.mat``) and T1w->MNI (``.h5``) antspyx transforms.
    model_shape, model_affine : the preset's model grid (voxels, RAS+ affine in MNI mm).
    dummy_scans : non-steady-state volumes removed from the outputs (kept in ``bold_all``).
    repetition_time : seconds, written to the outputs' headers.

    Returns paths: ``bold_all`` (3 mm, every volume; for confounds), ``bold_std`` (3 mm, without the
    non-steady-state volumes), ``mask_std`` (uint8, BOLD mask in MNI), ``bold_model`` (model grid,
    without non-steady-state volumes), all float32 NIfTI except the mask.
    """
    import nibabel as nb
    import numpy as np

    out_dir = Path(out_dir)
    matrices = np.load(str(matrices_file))
    ref_img = nb.load(str(ref_file))
    bold_img = nb.load(str(bold_file))
    transforms = [t1w2mni, coreg]
    grid = std_grid(3)
    std_shape, std_affine = grid.shape[:3], grid.affine
    paths = {}

    def save(data, affine, name, dtype=np.float32):
        img = nb.Nifti1Image(np.asarray(data, dtype=dtype), affine)
        img.set_qform(affine, code=4)
        img.set_sform(affine, code=4)
        if data.ndim == 4:
            img.header.set_xyzt_units("mm", "sec")
            img.header["pixdim"][4] = repetition_time
        path = out_dir / name
        nb.save(img, str(path))
        return str(path)

    data = np.asarray(bold_img.dataobj, dtype=np.float32)
    coords, valid = coordinate_field(ref_img, std_affine, std_shape, transforms, out_dir)
    series = resample_series(data, bold_img.affine, matrices, coords, valid, std_shape)
    paths["bold_all"] = save(series, std_affine, "bold_all_std.nii")  # uncompressed: work file
    paths["bold_std"] = save(series[..., dummy_scans:], std_affine, "bold_std.nii.gz")
    del series
    mask = np.asarray(nb.load(str(mask_file)).dataobj, dtype=np.float64)
    ijk = np.linalg.inv(ref_img.affine) @ np.vstack([coords[:, valid], np.ones(int(valid.sum()))])
    from scipy import ndimage

    mask_std = np.zeros(int(np.prod(std_shape)), np.uint8)
    mask_std[valid] = ndimage.map_coordinates(mask, ijk[:3], order=1, cval=0.0) > 0.5
    paths["mask_std"] = save(mask_std.reshape(std_shape), std_affine, "bold_mask_std.nii.gz", np.uint8)

    coords, valid = coordinate_field(ref_img, model_affine, model_shape, transforms, out_dir)
    source = np.sqrt((bold_img.affine[:3, :3] ** 2).sum(axis=0))
    target = np.sqrt((np.asarray(model_affine)[:3, :3] ** 2).sum(axis=0))
    fwhm = np.sqrt(np.clip(target**2 - source**2, 0, None))
    model = resample_series(data, bold_img.affine, matrices, coords, valid, tuple(model_shape), fwhm_mm=fwhm)
    paths["bold_model"] = save(model[..., dummy_scans:], model_affine, "bold_model.nii")
    return paths


class _StdInputSpec(BaseInterfaceInputSpec):
    bold_file = File(exists=True, mandatory=True, desc="conformed 4-D BOLD")
    ref_file = File(exists=True, mandatory=True, desc="BOLD reference")
    mask_file = File(exists=True, mandatory=True, desc="BOLD mask (reference grid)")
    matrices = File(exists=True, mandatory=True, desc="motion matrices (.npy)")
    coreg = File(exists=True, mandatory=True, desc="BOLD->T1w transform")
    t1w2mni = File(exists=True, mandatory=True, desc="T1w->MNI transform")
    model_shape = traits.Tuple(traits.Int, traits.Int, traits.Int, mandatory=True, desc="model grid shape")
    model_affine = traits.List(traits.List(traits.Float), mandatory=True, desc="model grid affine (4x4)")
    dummy_scans = traits.Int(0, usedefault=True, desc="non-steady-state volumes to drop")
    repetition_time = traits.Float(1.0, usedefault=True, desc="seconds (output headers)")


class _StdOutputSpec(TraitedSpec):
    bold_all = File(exists=True, desc="MNI 3 mm BOLD, every volume")
    bold_std = File(exists=True, desc="MNI 3 mm BOLD without non-steady-state volumes")
    mask_std = File(exists=True, desc="BOLD brain mask in MNI 3 mm")
    bold_model = File(exists=True, desc="BOLD on the model grid")


class BoldToStandard(SimpleInterface):
    """nipype wrapper of :func:`bold_to_standard`."""

    input_spec = _StdInputSpec
    output_spec = _StdOutputSpec

    def _run_interface(self, runtime):
        import numpy as np

        paths = bold_to_standard(
            self.inputs.bold_file, self.inputs.ref_file, self.inputs.mask_file, self.inputs.matrices,
            self.inputs.coreg, self.inputs.t1w2mni, Path(runtime.cwd), model_shape=self.inputs.model_shape,
            model_affine=np.array(self.inputs.model_affine), dummy_scans=self.inputs.dummy_scans,
            repetition_time=self.inputs.repetition_time)
        self._results.update(paths)
        return runtime
