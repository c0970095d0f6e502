"""Model-input tensors: MRI and fMRI on the preset grids in ``MNI152NLin2009aSym``, standardised, saved as ``.npy``."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from bidsad.derivatives import (FRAME_MASK_KEY, PARAMETERS_HASH_KEY, TEMPLATE_FOV_MM, TEMPLATE_SPACE, bold_model_grid,
                                parameters_hash, resize_mri_volume_grid)

#: Recorded in every tensor sidecar (part of the parameter hash the group level compares): MRI tensor.
MRI_NORMALISATION = (
    "T1w z-scored inside its brain mask (native space), resampled, then z-scored again inside the "
    "resampled brain mask (> 0.5); voxels outside the mask set to 0"
)
MRI_INTERPOLATION = (
    "Gaussian anti-aliasing in native space (FWHM = sqrt(target^2 - source^2) mm per axis), then one "
    "linear resampling from the native T1w through the T1w->MNI152NLin2009aSym transform (antspyx) onto "
    "the model grid: the template's 197x233x189 mm field of view resized to the preset shape "
    "(the paper's resize_mri_volume)"
)


def antialias(in_file, out_file, target_voxel_mm) -> Path:
    """Gaussian anti-aliasing of a native image before one resampling onto a coarser grid.

    Isotropic FWHM = sqrt(max(target voxel)^2 - min(source voxel)^2) mm (nilearn ``smooth_img``); the image
    is copied unchanged when the target is not coarser. Smoothing keeps the image's integral (volume).
    """
    import nibabel as nb
    import numpy as np
    from nilearn.image import smooth_img

    img = nb.load(str(in_file))
    source_voxel = np.sqrt((img.affine[:3, :3] ** 2).sum(axis=0))
    fwhm = float(np.sqrt(max(0.0, float(np.max(target_voxel_mm)) ** 2 - source_voxel.min() ** 2)))
    nb.save(smooth_img(img, fwhm=fwhm) if fwhm > 0 else img, str(out_file))
    return Path(out_file)


def make_mri_tensor(in_file, mask_file, transform, out_file, *, shape):
    """MRI model tensor: the standardised T1w resampled once into ``MNI152NLin2009aSym`` on the model grid.

    Parameters
    ----------
    in_file : native standardised T1w (float32, 0 outside the brain), ``mask_file`` its brain mask.
    transform : T1w -> template transform (antspyx / ITK ``.h5``).
    shape : model grid (x, y, z) voxels; see :func:`resize_mri_volume_grid`.

    Saves a float32 ``.npy`` of ``shape`` (RAS order) and returns sidecar metadata (``shape``, ``dtype``,
    ``grid_affine``, ``voxel_size_mm``, ``field_of_view_mm``, ``mask_fraction``; ``frames`` etc. None).
    """
    import nibabel as nb
    import numpy as np

    from bidsad.interfaces.registration import apply_transforms

    out_file = Path(out_file)
    affine = resize_mri_volume_grid(shape)
    reference = out_file.with_name("model_grid.nii.gz")
    nb.save(nb.Nifti1Image(np.zeros(tuple(shape), np.float32), affine), str(reference))
    target_voxel = np.diag(affine)[:3]
    smoothed = antialias(in_file, out_file.with_name("t1w_smoothed.nii"), target_voxel)
    moved = apply_transforms(smoothed, reference, [transform], out_file.with_name("t1w_grid.nii.gz"))
    moved_mask = apply_transforms(mask_file, reference, [transform], out_file.with_name("mask_grid.nii.gz"),
                                  threshold=0.5)
    data = np.asarray(nb.load(str(moved)).dataobj, dtype=np.float32)
    mask = np.asarray(nb.load(str(moved_mask)).dataobj) > 0
    if not mask.any():
        raise ValueError(f"{in_file}: the brain mask does not overlap the model grid after registration")
    mean, std = float(data[mask].mean()), float(data[mask].std())
    data = np.where(mask, (data - mean) / (std if std > 0 else 1.0), 0.0).astype(np.float32)
    np.save(out_file, data, allow_pickle=False)
    return {
        "n_volumes": None, "frames": None, FRAME_MASK_KEY: None,
        "shape": list(data.shape), "dtype": "float32", "grid_affine": affine.round(6).tolist(),
        "voxel_size_mm": [round(float(v), 6) for v in target_voxel],
        "field_of_view_mm": [float(v) for v in TEMPLATE_FOV_MM], "mask_fraction": round(float(mask.mean()), 6),
        "Space": TEMPLATE_SPACE,
    }


#: Normalisation of the modulated grey-matter tensor (the Jacobian's source is appended, see
#: :data:`bidsad.interfaces.morphometry.JACOBIAN_SOURCE`, so that tensors of syn and affine runs never mix).
GM_NORMALISATION = (
    "none: Jacobian-modulated grey-matter probability, ml of native grey matter per ml of template space "
    "(sum x voxel volume = native GM volume); not rescaled per image, 0 outside the brain"
)
GM_INTERPOLATION = (
    "Gaussian anti-aliasing of the native GM probability in native space (FWHM = sqrt(target^2 - source^2) mm), "
    "then one linear resampling through the T1w->MNI152NLin2009aSym transform (antspyx) onto the model grid "
    "(the template's 197x233x189 mm field of view resized to the preset shape), multiplied by the Jacobian "
    "determinant of the transform on the model grid"
)


def make_gm_tensor(gm_file, transform, out_file, *, shape):
    """Modulated grey-matter model tensor on the MRI model grid (:func:`resize_mri_volume_grid`).

    ``gm_file``: native GM probability; ``transform``: T1w -> template (``.h5``). Saves a float32 ``.npy`` of
    ``shape`` (RAS order; :func:`bidsad.interfaces.morphometry.modulate_gm`, :data:`GM_NORMALISATION`) and
    returns sidecar metadata as :func:`make_mri_tensor`, plus ``GreyMatterVolume_ml`` (native) and
    ``ModulatedIntegral_ml`` (sum of the tensor x voxel volume; equal to the former within a few %).
    """
    import nibabel as nb
    import numpy as np

    from bidsad.interfaces.morphometry import modulate_gm

    out_file = Path(out_file)
    affine = resize_mri_volume_grid(shape)
    reference = out_file.with_name("model_grid.nii.gz")
    nb.save(nb.Nifti1Image(np.zeros(tuple(shape), np.float32), affine), str(reference))
    stats = modulate_gm(gm_file, transform, reference, out_file.with_name("gm_grid.nii.gz"))
    data = np.asarray(nb.load(str(out_file.with_name("gm_grid.nii.gz"))).dataobj, dtype=np.float32)
    if not np.isfinite(data).all() or not (data > 0).any():
        raise ValueError(f"{gm_file}: the modulated grey matter is empty or not finite on the model grid")
    np.save(out_file, data, allow_pickle=False)
    return {
        "n_volumes": None, "frames": None, FRAME_MASK_KEY: None,
        "shape": list(data.shape), "dtype": "float32", "grid_affine": affine.round(6).tolist(),
        "voxel_size_mm": [round(float(v), 6) for v in np.diag(affine)[:3]],
        "field_of_view_mm": [float(v) for v in TEMPLATE_FOV_MM], "mask_fraction": round(float((data > 0).mean()), 6),
        "Space": TEMPLATE_SPACE, "GreyMatterVolume_ml": round(stats["native_ml"], 3),
        "ModulatedIntegral_ml": round(stats["modulated_ml"], 3),
    }


BOLD_NORMALISATION = (
    "z-score over all voxels of the kept (real) frames inside the BOLD brain mask (resampled to the model grid, "
    "nearest neighbour); voxels outside the mask and padded frames set to 0"
)
BOLD_INTERPOLATION = "as the input model-grid BOLD (recorded by the workflow that made it)"
FMRIPREP_BOLD_INTERPOLATION = (
    "fMRIPrep's template-space BOLD, Gaussian anti-aliasing (FWHM = sqrt(target^2 - source^2) mm per axis) "
    "then trilinear resampling onto the model grid (nilearn); a second interpolation after fMRIPrep's"
)
#: How runs of another length than the preset's frame count are handled (sidecar ``FramePolicy``).
FRAME_POLICY = (
    "first `frames` volumes (after non-steady-state removal) are kept; a longer run is cropped, a shorter "
    "one padded at the end with zero frames; frame_mask marks the real frames (true) and the padding (false)"
)


def resample_to_model_grid(in_file, out_file, *, shape):
    """Resample a template-space 3-D/4-D image onto :func:`bold_model_grid` (``shape`` voxels): Gaussian
    anti-aliasing where the grid is coarser, then trilinear (nilearn). Writes float32 NIfTI."""
    import nibabel as nb
    import numpy as np
    from nilearn.image import resample_img, smooth_img

    img = nb.load(str(in_file))
    affine = bold_model_grid(shape)
    source_voxel = np.sqrt((img.affine[:3, :3] ** 2).sum(axis=0))
    fwhm = np.sqrt(np.clip(np.diag(affine)[:3] ** 2 - source_voxel**2, 0, None))
    if fwhm.any():
        img = smooth_img(img, fwhm=np.where(fwhm > 0, fwhm, 1e-3))
    grid = resample_img(img, target_affine=affine, target_shape=tuple(shape), interpolation="linear",
                        fill_value=0, force_resample=True, copy_header=True)
    nb.save(nb.Nifti1Image(np.asarray(grid.dataobj, dtype=np.float32), affine), str(out_file))
    return Path(out_file)


def make_bold_tensor(in_file, out_file, *, frames: int, mask_file=None, shape=None):
    """fMRI model tensor from a BOLD run already on the model grid (``bold_model``).

    Parameters
    ----------
    in_file : 4-D float NIfTI (x, y, z, t) on the model grid, non-steady-state volumes removed.
    frames : the preset's frame count; see :data:`FRAME_POLICY` (crop or zero-pad, ``frame_mask``).
    mask_file : BOLD brain mask (any grid; resampled to the model grid, nearest neighbour); without it,
        voxels of the temporal mean above 10% of its 99th percentile.
    shape : expected spatial shape; a different ``in_file`` grid raises ``ValueError``.

    Saves a float32 ``.npy`` of shape (frames, x, y, z), z-scored inside the mask over the real frames
    (:data:`BOLD_NORMALISATION`), and returns sidecar metadata (``shape``, ``dtype``, ``grid_affine``,
    ``voxel_size_mm``, ``field_of_view_mm``, ``frames``, ``n_volumes``, ``frame_mask``, ``mask_fraction``).
    """
    import nibabel as nb
    import numpy as np
    from nilearn.image import resample_to_img

    img = nb.load(str(in_file))
    if img.ndim != 4:
        raise ValueError(f"{in_file}: a BOLD run must be 4-D, this one has shape {img.shape}")
    if shape is not None and tuple(img.shape[:3]) != tuple(shape):
        raise ValueError(f"{in_file}: grid {img.shape[:3]} is not the preset's {tuple(shape)}")
    data = np.moveaxis(np.asarray(img.dataobj, dtype=np.float32), 3, 0)  # (T, x, y, z)
    if mask_file is not None:
        ref = nb.Nifti1Image(np.zeros(img.shape[:3], np.float32), img.affine)
        mask = np.asarray(resample_to_img(str(mask_file), ref, interpolation="nearest", force_resample=True,
                                          copy_header=True).dataobj) > 0
    else:
        mean = data.mean(axis=0)
        mask = mean > 0.1 * np.percentile(mean, 99)
    if not mask.any():
        raise ValueError(f"{in_file}: the BOLD brain mask has no voxel on the model grid")
    n_vol = data.shape[0]
    keep = min(n_vol, frames)
    data = data[:keep]  # statistics over the frames the tensor keeps
    values = data[:, mask]
    mu, sd = float(values.mean()), float(values.std())
    data = np.where(mask, (data - mu) / (sd if sd > 0 else 1.0), 0.0).astype(np.float32)
    tensor = np.zeros((frames, *data.shape[1:]), dtype=np.float32)
    tensor[:keep] = data[:keep]
    if not np.isfinite(tensor).all():
        raise ValueError(f"{in_file}: non-finite values in the BOLD tensor (bug); please report it")
    np.save(out_file, tensor, allow_pickle=False)
    voxel = np.sqrt((img.affine[:3, :3] ** 2).sum(axis=0))
    return {
        "shape": list(tensor.shape), "dtype": "float32", "grid_affine": img.affine.round(6).tolist(),
        "voxel_size_mm": [round(float(v), 6) for v in voxel],
        "field_of_view_mm": [round(float(v * s), 4) for v, s in zip(voxel, img.shape[:3])],
        "frames": frames, "n_volumes": n_vol, FRAME_MASK_KEY: [i < keep for i in range(frames)],
        "FramePolicy": FRAME_POLICY, "mask_fraction": round(float(mask.mean()), 6), "Space": TEMPLATE_SPACE,
    }


def finish_meta(meta: dict, extra: dict, *, normalisation: str, interpolation: str, warnings) -> dict:
    """Add the run's fields and the ``ParametersHash`` (:func:`bidsad.derivatives.parameters_hash`, over
    :data:`bidsad.derivatives.HASHED_PARAMETERS`, the fields the group level compares)."""
    from bidsad import __version__

    meta.update(extra or {})
    meta["Normalisation"] = normalisation
    meta["Interpolation"] = interpolation
    meta["bidsad_version"] = __version__
    meta["Warnings"] = list(warnings) if warnings else []
    meta[PARAMETERS_HASH_KEY] = parameters_hash(meta)
    return meta


class _TensorBaseInputSpec(BaseInterfaceInputSpec):
    shape = traits.Tuple(traits.Int, traits.Int, traits.Int, mandatory=True, desc="grid shape (x, y, z)")
    meta = traits.Dict(desc="metadata to add to the sidecar (preset, sources, TR, ...)")
    warnings = traits.List(traits.Str, desc="earlier steps' warnings, recorded in the sidecar")


class _TensorOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="float32 .npy tensor")
    meta = traits.Dict(desc="sidecar metadata")


class _MriTensorInputSpec(_TensorBaseInputSpec):
    in_file = File(exists=True, mandatory=True, desc="native standardised T1w")
    mask_file = File(exists=True, mandatory=True, desc="native brain mask")
    transform = File(exists=True, mandatory=True, desc="T1w -> MNI transform (.h5)")
    source_file = File(exists=True, desc="raw T1w: its voxel content hash goes into the sidecar (SourceContentHash)")


class MriTensor(SimpleInterface):
    """nipype wrapper of :func:`make_mri_tensor`."""

    input_spec = _MriTensorInputSpec
    output_spec = _TensorOutputSpec

    def _run_interface(self, runtime):
        from nipype.interfaces.base import isdefined

        from bidsad.derivatives import CONTENT_HASH_KEY, image_content_hash

        out_file = Path(runtime.cwd) / "tensor.npy"
        meta = make_mri_tensor(self.inputs.in_file, self.inputs.mask_file, self.inputs.transform, out_file,
                               shape=self.inputs.shape)
        if isdefined(self.inputs.source_file):  # the group level's duplicate-scan check (leakage)
            meta[CONTENT_HASH_KEY] = image_content_hash(self.inputs.source_file)
        self._results["out_file"] = str(out_file)
        self._results["meta"] = finish_meta(meta, self.inputs.meta, normalisation=MRI_NORMALISATION,
                                            interpolation=MRI_INTERPOLATION, warnings=self.inputs.warnings)
        return runtime


class _GmTensorInputSpec(_TensorBaseInputSpec):
    probseg = traits.List(File(exists=True), mandatory=True, desc="native CSF, GM, WM probability maps")
    transform = File(exists=True, mandatory=True, desc="T1w -> MNI transform (.h5)")
    jacobian = traits.Str(mandatory=True, desc="what the Jacobian holds (morphometry.JACOBIAN_SOURCE)")


class GmTensor(SimpleInterface):
    """nipype wrapper of :func:`make_gm_tensor` (the GM map is ``probseg[1]``)."""

    input_spec = _GmTensorInputSpec
    output_spec = _TensorOutputSpec

    def _run_interface(self, runtime):
        out_file = Path(runtime.cwd) / "tensor.npy"
        meta = make_gm_tensor(self.inputs.probseg[1], self.inputs.transform, out_file, shape=self.inputs.shape)
        self._results["out_file"] = str(out_file)
        self._results["meta"] = finish_meta(meta, self.inputs.meta,
                                            normalisation=f"{GM_NORMALISATION}; Jacobian: {self.inputs.jacobian}",
                                            interpolation=GM_INTERPOLATION, warnings=self.inputs.warnings)
        return runtime


class _BoldTensorInputSpec(_TensorBaseInputSpec):
    in_file = File(exists=True, mandatory=True, desc="4-D BOLD on the model grid (bold_model)")
    mask_file = File(exists=True, desc="BOLD brain mask (any grid)")
    frames = traits.Int(mandatory=True, desc="the preset's frame count")
    interpolation = traits.Str(BOLD_INTERPOLATION, usedefault=True, desc="how in_file was made (sidecar)")


class BoldTensor(SimpleInterface):
    """nipype wrapper of :func:`make_bold_tensor`."""

    input_spec = _BoldTensorInputSpec
    output_spec = _TensorOutputSpec

    def _run_interface(self, runtime):
        from nipype.interfaces.base import isdefined

        out_file = Path(runtime.cwd) / "tensor.npy"
        meta = make_bold_tensor(self.inputs.in_file, out_file, frames=self.inputs.frames, shape=self.inputs.shape,
                                mask_file=self.inputs.mask_file if isdefined(self.inputs.mask_file) else None)
        self._results["out_file"] = str(out_file)
        self._results["meta"] = finish_meta(meta, self.inputs.meta, normalisation=BOLD_NORMALISATION,
                                            interpolation=self.inputs.interpolation, warnings=self.inputs.warnings)
        return runtime
