"""Tissue probability maps (CSF, GM, WM) of the T1w inside its brain mask (antspyx Atropos)."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits

#: BIDS ``label-`` values of the probability maps, in the order of the output list (dark to bright on T1w).
TISSUES = ("CSF", "GM", "WM")
METHOD = "antspyx Atropos (Avants et al. 2011), 3-class k-means initialisation, MRF 0.2, inside the brain mask"


def segment_tissues(in_file: Path, mask_file: Path, out_dir: Path) -> list[Path]:
    """Three-class segmentation of a bias-corrected T1w inside ``mask_file``.

    Returns the paths of the CSF, GM and WM probability maps (float32 in [0, 1], same grid; 0 outside
    the mask), named ``<label>_probseg.nii.gz`` in ``out_dir``.
    """
    import ants
    import nibabel as nb
    import numpy as np

    ref = nb.load(str(in_file))
    image = ants.image_read(str(in_file))
    mask = ants.image_read(str(mask_file)).clone("float")
    # r=0: Atropos' constant internal seed (its default, 1, seeds from the clock: results changed run to run)
    result = ants.atropos(a=image, x=mask, i="Kmeans[3]", m="[0.2,1x1x1]", c="[5,0]", r=0)
    outs = []
    for label, prob in zip(TISSUES, result["probabilityimages"]):
        out = Path(out_dir) / f"{label}_probseg.nii.gz"
        data = np.clip(prob.numpy(), 0, 1).astype(np.float32)
        nb.save(nb.Nifti1Image(data, ref.affine), str(out))
        outs.append(out)
    return outs


class _SegInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="N4-corrected T1w")
    mask_file = File(exists=True, mandatory=True, desc="brain mask")


class _SegOutputSpec(TraitedSpec):
    probseg = traits.List(File(exists=True), desc="CSF, GM, WM probability maps")


class TissueSegmentation(SimpleInterface):
    """nipype wrapper of :func:`segment_tissues`."""

    input_spec = _SegInputSpec
    output_spec = _SegOutputSpec

    def _run_interface(self, runtime):
        outs = segment_tissues(self.inputs.in_file, self.inputs.mask_file, Path(runtime.cwd))
        self._results["probseg"] = [str(p) for p in outs]
        return runtime
