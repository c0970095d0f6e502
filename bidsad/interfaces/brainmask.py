"""Brain extraction with deepbet (Fisch et al. 2024; MIT licence; its weights ship in its wheel)."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits

from bidsad import messages

#: Thickness (mm) of the shell outside deepbet's mask examined to recognise skull-stripped inputs.
SHELL_MM = 4.0
#: Fraction of exactly-zero voxels in that shell above which the input counts as skull-stripped.
SKULL_STRIPPED_ZERO_FRACTION = 0.5
METHOD = (
    "deepbet 1.0.2 (Fisch et al. 2024, MIT licence), threshold 0.5, largest component, holes filled; "
    "for inputs already skull-stripped at the source, the input's non-zero voxels within 4 mm of that mask"
)


def _deepbet_mask(img, nthreads: int):
    """deepbet's brain mask (bool array, the image's voxel grid) of a RAS+ nibabel image."""
    import numpy as np

    try:
        import torch
        from deepbet.bet import BrainExtraction
    except ImportError as err:
        raise RuntimeError(messages.DEEPBET_MISSING.format(why=err)) from err
    torch.set_num_threads(max(1, int(nthreads)))
    _, mask, _ = BrainExtraction(no_gpu=True).run(img, threshold=0.5)
    return np.asarray(mask.dataobj) > 0


def extract_brain(in_file: Path, mask_file: Path, *, display_name: str = "", nthreads: int = 1) -> dict:
    """Brain mask of a conformed (RAS+, float32) T1w, whole-head or already skull-stripped.

    deepbet (CPU, no network) gives the mask. If more than :data:`SKULL_STRIPPED_ZERO_FRACTION` of the
    voxels in a :data:`SHELL_MM` shell around it are exactly 0, the input was skull-stripped at its
    source: its non-zero voxels within that shell of the mask form the brain mask (largest connected
    component, holes filled), so that the source's skull stripping is kept.

    Writes ``mask_file`` (uint8, same grid). Returns ``{"SkullStripped": bool, "ShellZeroFraction": float,
    "warnings": [str]}``. Raises ``ValueError`` (naming ``display_name``) when no brain is found and
    ``RuntimeError`` when deepbet or torch is not installed.
    """
    import nibabel as nb
    import numpy as np
    from scipy import ndimage

    img = nb.load(str(in_file))
    name = display_name or Path(in_file).name
    data = np.asarray(img.dataobj, dtype=np.float32)
    mask = _deepbet_mask(img, nthreads)
    if not mask.any():
        raise ValueError(messages.BRAIN_MASK_EMPTY.format(file=name))
    voxel = np.sqrt((img.affine[:3, :3] ** 2).sum(axis=0))
    radius = np.maximum(1, np.round(SHELL_MM / voxel)).astype(int)
    ball = np.zeros(2 * radius + 1, bool)
    idx = np.indices(ball.shape) - radius[:, None, None, None]
    ball[((idx * voxel[:, None, None, None]) ** 2).sum(axis=0) <= SHELL_MM**2] = True
    near = ndimage.binary_dilation(mask, structure=ball)
    shell = near & ~mask
    zero_fraction = float((data[shell] == 0).mean()) if shell.any() else 0.0
    skull_stripped = zero_fraction > SKULL_STRIPPED_ZERO_FRACTION
    warnings = []
    if skull_stripped:
        candidate = near & (data != 0)
        labels, n = ndimage.label(candidate)
        if n:
            sizes = ndimage.sum(candidate, labels, index=np.arange(1, n + 1))
            mask = ndimage.binary_fill_holes(labels == (int(np.argmax(sizes)) + 1))
        warnings.append(messages.SKULL_STRIPPED_INPUT.format(file=name, percent=100 * zero_fraction, shell_mm=SHELL_MM))
    out = nb.Nifti1Image(mask.astype(np.uint8), img.affine)
    out.set_qform(img.affine, code=1)
    nb.save(out, str(mask_file))
    return {"SkullStripped": bool(skull_stripped), "ShellZeroFraction": round(zero_fraction, 4), "warnings": warnings}


class _BetInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="conformed (N4-corrected) T1w")
    display_name = traits.Str(desc="file name in messages")
    nthreads = traits.Int(1, usedefault=True, desc="torch threads")


class _BetOutputSpec(TraitedSpec):
    out_mask = File(exists=True, desc="brain mask (uint8)")
    skull_stripped = traits.Bool(desc="the input was skull-stripped at its source")
    warnings = traits.List(traits.Str, desc="messages for the report")


class BrainExtraction(SimpleInterface):
    """nipype wrapper of :func:`extract_brain`."""

    input_spec = _BetInputSpec
    output_spec = _BetOutputSpec

    def _run_interface(self, runtime):
        out_mask = Path(runtime.cwd) / "brain_mask.nii.gz"
        info = extract_brain(self.inputs.in_file, out_mask, display_name=self.inputs.display_name,
                             nthreads=self.inputs.nthreads)
        self._results.update(out_mask=str(out_mask), skull_stripped=info["SkullStripped"], warnings=info["warnings"])
        return runtime
