"""Turn one fMRIPrep BOLD run into the functional workflow's outputs (the contract of the features workflow)."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits


def prepare_fmriprep_bold(bold_file, mask_file, confounds_file, out_dir, *, bold_shape):
    """Drop fMRIPrep's flagged non-steady-state volumes and resample the run onto the fMRI model grid.

    Returns a dict with ``bold_std`` (4-D float32, fMRIPrep's grid, leading flagged volumes removed),
    ``bold_mask_std`` (uint8), ``bold_model`` (:func:`bidsad.interfaces.tensors.resample_to_model_grid`
    of ``bold_std``, ``bold_shape`` voxels), ``confounds`` (the same rows removed) and ``dummy_scans``.
    """
    import nibabel as nb
    import numpy as np
    import pandas as pd

    from bidsad.fmriprep_inputs import dummy_scans
    from bidsad.interfaces.tensors import resample_to_model_grid

    out_dir = Path(out_dir)
    n_dummy = dummy_scans(confounds_file)
    img = nb.load(str(bold_file))
    data = np.asarray(img.dataobj, dtype=np.float32)[..., n_dummy:]
    bold_std = out_dir / "bold_std.nii.gz"
    nb.save(nb.Nifti1Image(data, img.affine), str(bold_std))
    mask_img = nb.load(str(mask_file))
    bold_mask = out_dir / "bold_mask_std.nii.gz"
    nb.save(nb.Nifti1Image((np.asarray(mask_img.dataobj) > 0).astype(np.uint8), mask_img.affine), str(bold_mask))
    table = pd.read_csv(confounds_file, sep="\t", na_values="n/a").iloc[n_dummy:]
    confounds = out_dir / "confounds.tsv"
    table.to_csv(confounds, sep="\t", index=False, na_rep="n/a")
    bold_model = resample_to_model_grid(bold_std, out_dir / "bold_model.nii.gz", shape=bold_shape)
    return {"bold_std": str(bold_std), "bold_mask_std": str(bold_mask), "bold_model": str(bold_model),
            "confounds": str(confounds), "dummy_scans": n_dummy}


class _PrepInputSpec(BaseInterfaceInputSpec):
    bold_file = File(exists=True, mandatory=True, desc="fMRIPrep desc-preproc_bold in a template space")
    mask_file = File(exists=True, mandatory=True, desc="its desc-brain_mask")
    confounds = File(exists=True, mandatory=True, desc="fMRIPrep desc-confounds_timeseries.tsv")
    bold_shape = traits.Tuple(traits.Int, traits.Int, traits.Int, mandatory=True, desc="fMRI model grid")
    repetition_time = traits.Float(mandatory=True, desc="seconds")


class _PrepOutputSpec(TraitedSpec):
    bold_std = File(exists=True)
    bold_mask_std = File(exists=True)
    bold_model = File(exists=True)
    confounds = File(exists=True)
    repetition_time = traits.Float()
    dummy_scans = traits.Int()


class PrepareFmriprepBold(SimpleInterface):
    """nipype wrapper of :func:`prepare_fmriprep_bold` (outputs named as the functional workflow's)."""

    input_spec = _PrepInputSpec
    output_spec = _PrepOutputSpec

    def _run_interface(self, runtime):
        self._results.update(prepare_fmriprep_bold(self.inputs.bold_file, self.inputs.mask_file,
                                                   self.inputs.confounds, runtime.cwd,
                                                   bold_shape=self.inputs.bold_shape))
        self._results["repetition_time"] = self.inputs.repetition_time
        return runtime
