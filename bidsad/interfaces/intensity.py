"""Intensity steps of the T1w: N4 bias-field correction (antspyx) and standardisation inside the brain."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec

#: Recorded in sidecars: how the T1w intensities were standardised.
STANDARDISATION = (
    "z-score inside the brain mask: the N4-corrected T1w minus its mean inside the mask, divided by its "
    "standard deviation inside the mask; voxels outside the mask set to 0"
)
#: N4 settings ANTs recommends for brain images (antsBrainExtraction.sh: ``-s 4 -b [200] -c [50x50x50x50,1e-7]``).
N4_SHRINK = 4
N4_SPLINE_DISTANCE_MM = 200
N4_CONVERGENCE = {"iters": [50, 50, 50, 50], "tol": 1e-7}
N4_METHOD = ("N4 bias-field correction (antspyx n4_bias_field_correction; shrink factor 4, B-spline distance "
             "200 mm, 4 x 50 iterations, convergence 1e-7; head mask from ants.get_mask at the fitting resolution)")


def _save_like(data, reference, out_file: Path) -> Path:
    """Save ``data`` (float32) with the affine and header of the nibabel image ``reference``."""
    import nibabel as nb
    import numpy as np

    header = reference.header.copy()
    header.set_data_dtype(np.float32)
    out = nb.Nifti1Image(np.asarray(data, dtype=np.float32), reference.affine, header)
    out.header.set_slope_inter(1, 0)
    nb.save(out, str(out_file))
    return Path(out_file)


def head_mask(image, shrink: int = N4_SHRINK):
    """Head mask (antspyx image, same grid) from ``ants.get_mask`` computed at ``shrink`` times the voxel size.

    ``ants.get_mask`` (threshold at the mean, morphological clean-up, largest component, holes filled)
    costs minutes at 1 mm; N4 fits at ``shrink`` times the voxel size anyway, so the mask is computed
    there and brought back to the image's grid (nearest neighbour).
    """
    import ants

    if shrink <= 1:
        return ants.get_mask(image)
    small = ants.resample_image(image, [s * shrink for s in image.spacing], use_voxels=False, interp_type=0)
    return ants.resample_image_to_target(ants.get_mask(small), image, interp_type="nearestNeighbor")


def n4_correct(in_file: Path, out_file: Path) -> Path:
    """N4 bias-field correction (Tustison et al. 2010, antspyx) of a conformed 3-D T1w.

    The bias field is fitted inside a head mask (:func:`head_mask`) with the settings ANTs recommends for
    brain images (:data:`N4_SHRINK`, :data:`N4_SPLINE_DISTANCE_MM`, :data:`N4_CONVERGENCE`) and
    divided out of the whole image. N4 runs on the voxel array with its voxel sizes only (no origin
    or direction): ITK's B-spline fit depends on the direction matrix, and the result must not depend
    on how the head is rotated in the header. ``in_file``: float32 RAS+ NIfTI; ``out_file``: float32 NIfTI on
    the same grid (no resampling). Voxels that are exactly 0 stay 0.
    """
    import ants
    import nibabel as nb
    import numpy as np

    img = nb.load(str(in_file))
    data = np.asarray(img.dataobj, dtype=np.float32)
    spacing = tuple(float(z) for z in img.header.get_zooms()[:3])
    image = ants.from_numpy(data, spacing=spacing)
    corrected = ants.n4_bias_field_correction(image, mask=head_mask(image), shrink_factor=N4_SHRINK,
                                              convergence=N4_CONVERGENCE, spline_param=N4_SPLINE_DISTANCE_MM).numpy()
    corrected = np.where(data == 0, 0.0, np.clip(corrected, 0, None))
    return _save_like(corrected, img, out_file)


def standardise_intensity(in_file: Path, mask_file: Path, out_file: Path) -> dict:
    """Standardise a T1w inside its brain mask (see :data:`STANDARDISATION`).

    ``in_file``: 3-D float32 image; ``mask_file``: binary mask on the same grid. Returns the mean and
    standard deviation used (input intensity units). Raises ``ValueError`` for an empty mask.
    """
    import nibabel as nb
    import numpy as np

    img = nb.load(str(in_file))
    data = np.asarray(img.dataobj, dtype=np.float32)
    mask = np.asarray(nb.load(str(mask_file)).dataobj) > 0
    if not mask.any():
        raise ValueError(f"{in_file}: empty brain mask")
    mean, std = float(data[mask].mean()), float(data[mask].std())
    _save_like(np.where(mask, (data - mean) / (std if std > 0 else 1.0), 0.0), img, out_file)
    return {"mean": mean, "std": std}


class _N4InputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="conformed T1w")


class _OutFileSpec(TraitedSpec):
    out_file = File(exists=True, desc="output image")


class N4BiasCorrection(SimpleInterface):
    """nipype wrapper of :func:`n4_correct`."""

    input_spec = _N4InputSpec
    output_spec = _OutFileSpec

    def _run_interface(self, runtime):
        self._results["out_file"] = str(n4_correct(self.inputs.in_file, Path(runtime.cwd) / "t1w_n4.nii.gz"))
        return runtime


class _StdInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="N4-corrected T1w")
    mask_file = File(exists=True, mandatory=True, desc="brain mask")


class StandardiseIntensity(SimpleInterface):
    """nipype wrapper of :func:`standardise_intensity`."""

    input_spec = _StdInputSpec
    output_spec = _OutFileSpec

    def _run_interface(self, runtime):
        out_file = Path(runtime.cwd) / "t1w_std.nii"
        standardise_intensity(self.inputs.in_file, self.inputs.mask_file, out_file)
        self._results["out_file"] = str(out_file)
        return runtime
