"""Registration to ``MNI152NLin2009aSym`` (the template nilearn ships) and resampling (antspyx)."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits

from bidsad.derivatives import TEMPLATE_SPACE
from bidsad.templates import template_image

#: antspyx ``type_of_transform`` per ``--anat-registration`` value.
TRANSFORMS = {"affine": "Affine", "syn": "SyN"}


def set_ants_seed(seed: int) -> None:
    """Fix antsRegistration's random sampling for this process (antspyx reads ``ants.config._random_seed``).

    ANTs reads a seed of 0 as "seed from the clock", so every bidsad seed (0 included) is passed plus one
    (the ``ants`` stream of :func:`bidsad.seeds.seed_for`).
    Bit-identical results also need one ITK thread (``--omp-nthreads 1``).
    """
    import ants.config

    from bidsad.seeds import seed_for

    ants.config._random_seed = seed_for("ants", seed)


def template_file(folder: Path, kind: str = "T1w", resolution: int = 2) -> Path:
    """Write :func:`template_image` as float32 NIfTI into ``folder`` (for antspyx) and return its path."""
    import nibabel as nb
    import numpy as np

    img = template_image(kind, resolution)
    out = Path(folder) / f"tpl-{TEMPLATE_SPACE}_res-{resolution}_{kind}.nii.gz"
    nb.save(nb.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine), str(out))
    return out


#: antspyx's default linear levels (shrink factor: (smoothing sigma in voxels, iterations)), coarse to fine.
LINEAR_LEVELS = {6: (3, 2100), 4: (2, 1200), 2: (1, 1200), 1: (0, 10)}
#: Grid of the template registrations run against (mm).
TEMPLATE_RESOLUTION_MM = 2.0


def stage_sizes(voxel_mm: float) -> dict:
    """antspyx ``registration`` keyword arguments sized to an input of ``voxel_mm`` (its largest voxel side).

    Registration runs against the 2 mm template; levels finer than the input carry no information, so an
    input of ``v`` mm stops at shrink factor ``floor(v / 2 mm)``, and SyN iterates only at its coarsest
    level (4x) for inputs of 4 mm and more. The linear stage always stops at shrink factor 2 (the template
    at 4 mm): antspyx's last level (1x, 10 iterations) cost 1.3-1.5 CPU s and changed nothing measurable
    (issue 19: a 2 mm OASIS-1 and the full-size 1 mm benchmark T1w gave warped brain masks with Dice 1.0000
    and warped T1w correlation 1.0000 with and without it).

    antspyx 0.6.3 reads the ``aff_*`` levels for ``type_of_transform="Affine"`` only: its ``SyN`` writes its
    own affine stage (``2100x1200x1200x0`` iterations, shrink factors ``4x2x2x1``, sigmas ``3x2x1x0``), so
    with ``--anat-registration syn`` only ``reg_iterations`` applies (seen in its ``verbose`` command line).
    """
    finest = max(1, int(voxel_mm // TEMPLATE_RESOLUTION_MM))
    linear_finest = max(2, finest)
    shrink = sorted({f for f in LINEAR_LEVELS if f > linear_finest} | {linear_finest}, reverse=True)
    nearest = {f: LINEAR_LEVELS[min(LINEAR_LEVELS, key=lambda g: abs(g - f))] for f in shrink}
    sizes = {"aff_shrink_factors": tuple(shrink), "aff_smoothing_sigmas": tuple(nearest[f][0] for f in shrink),
             "aff_iterations": tuple(nearest[f][1] for f in shrink)}
    if finest > 1:
        sizes["reg_iterations"] = (40, 0, 0)
    return sizes


#: Margin (mm) kept around the brain's bounding box in the moving image of :func:`register_to_template`.
CROP_MARGIN_MM = 20.0


def masked_brain_box(image_file: Path, mask_file: Path, margin_mm: float = CROP_MARGIN_MM):
    """The image times its brain mask, cropped to the mask's bounding box plus ``margin_mm`` (antspyx image).

    The crop keeps the voxels' world positions (``ants.crop_indices``), so a transform estimated with it
    applies to the full image. Outside the mask the image is 0 anyway; what changes is only how many voxels
    antsRegistration smooths and interpolates at each level (on the full-size 1 mm benchmark T1w, 176x256x256:
    SyN to the template 22.3 instead of 30.2 CPU s, warped brain masks' Dice 0.998, warped T1w correlation
    0.9991, template correlation 0.4453 vs 0.4456). Raises ``ValueError`` for an empty mask.
    """
    import ants

    mask = ants.image_read(str(mask_file)).clone("float")
    return _crop_to_box(ants.image_read(str(image_file)) * mask, mask.numpy(), margin_mm)


def _crop_to_box(image, mask, margin_mm: float):
    """``image`` (antspyx) cropped to the bounding box of the array ``mask`` (same grid) plus ``margin_mm``,
    world positions kept (``ants.crop_indices``)."""
    import ants
    import numpy as np

    from bidsad.interfaces.images import bounding_box

    box = bounding_box(mask, int(np.ceil(margin_mm / min(image.spacing))))
    return ants.crop_indices(image, [b.start for b in box], [b.stop for b in box])


#: Margin (mm) kept around the template's brain mask in the fixed image of :func:`register_to_template`.
TEMPLATE_CROP_MARGIN_MM = 10.0


def template_brain_box(folder: Path, margin_mm: float = TEMPLATE_CROP_MARGIN_MM):
    """The 2 mm template (:func:`template_file`) cropped to its brain mask's bounding box plus ``margin_mm``
    (antspyx image; ``ants.crop_indices`` keeps the voxels' world positions).

    antsRegistration estimates SyN's displacement fields on the fixed image's grid, so this is the field of
    view the deformation is computed on: 83 x 100 x 83 instead of 99 x 117 x 95 voxels at 2 mm (the template
    is skull-stripped; the rest is background). Outside the box the forward and inverse transforms are the
    affine part only; with the moving image masked to the brain there is nothing to move there.
    """
    import ants
    import numpy as np

    template = ants.image_read(str(template_file(folder, "T1w", 2)))
    return _crop_to_box(template, np.asarray(template_image("mask", 2).dataobj), margin_mm)


def register_to_template(in_file: Path, mask_file: Path, out_dir: Path, *, method: str = "syn", seed: int = 0) -> tuple[Path, Path]:
    """Register a brain-extracted T1w to the 2 mm ``MNI152NLin2009aSym`` template (antspyx).

    ``in_file``: bias-corrected T1w (RAS+, float32), masked by ``mask_file`` before registration, so
    that whole-head and skull-stripped inputs are treated alike. ``method``: ``affine`` (centre-of-mass
    initialisation, one affine stage, Mattes mutual information; antspyx's ``Affine`` has no separate rigid stage)
    or ``syn`` (the same affine stage followed by SyN,
    Avants et al. 2008). The transforms are estimated against the 2 mm template and act in world
    coordinates (mm), so they apply to any grid.

    The levels are sized to the input's voxel size (:func:`stage_sizes`); the moving image is the brain's
    bounding box (:func:`masked_brain_box`), the fixed image the template's brain box (:func:`template_brain_box`:
    on four 2 mm T1w, two OASIS-1 and two of the demo, 14.2-15.4 instead of 16.0-18.2 CPU s, warped brain masks'
    Dice with the template mask 0.9403/0.9235/0.9688 vs 0.9370/0.9269/0.9709, correlation with the template
    0.5614/0.5917/0.6459 vs 0.5258/0.5805/0.6392; benchmarks/README.md, issue 19).

    Returns the forward (T1w -> template, for resampling T1w images into the template) and inverse
    ITK composite transform files (``.h5``). ``seed`` fixes antsRegistration's random sampling (passed as
    ``seed + 1``: ANTs reads 0 as "no fixed seed").
    """
    import ants

    method = method.lower()
    if method not in TRANSFORMS:
        raise ValueError(f"unknown registration '{method}' (choose from {', '.join(TRANSFORMS)})")
    out_dir = Path(out_dir)
    fixed = template_brain_box(out_dir)
    moving = masked_brain_box(in_file, mask_file)
    set_ants_seed(seed)
    sizes = stage_sizes(max(moving.spacing))
    if method == "affine":
        sizes.pop("reg_iterations", None)
    result = ants.registration(fixed=fixed, moving=moving, type_of_transform=TRANSFORMS[method],
                               outprefix=str(out_dir / "reg_"), write_composite_transform=True, **sizes)
    return Path(result["fwdtransforms"]), Path(result["invtransforms"])


def apply_transforms(in_file: Path, reference: Path, transforms: list[Path], out_file: Path, *,
                     interpolation: str = "linear", threshold: float | None = None) -> Path:
    """Resample ``in_file`` once onto the grid of ``reference`` through ``transforms`` (antspyx).

    ``interpolation``: antspyx interpolator name (``linear``, ``nearestNeighbor``, ``bSpline``...).
    ``threshold``: when given, the result is binarised (``> threshold``, uint8), e.g. 0.5 for masks
    resampled linearly. Writes float32 (or uint8) NIfTI with the reference's affine.
    """
    import ants
    import nibabel as nb
    import numpy as np

    ref = nb.load(str(reference))
    moved = ants.apply_transforms(fixed=ants.image_read(str(reference)), moving=ants.image_read(str(in_file)),
                                  transformlist=[str(t) for t in transforms], interpolator=interpolation)
    data = moved.numpy()
    data = (data > threshold).astype(np.uint8) if threshold is not None else data.astype(np.float32)
    out = nb.Nifti1Image(data, ref.affine)
    out.set_qform(ref.affine, code=1)
    nb.save(out, str(out_file))
    return Path(out_file)


class _RegInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="bias-corrected T1w")
    mask_file = File(exists=True, mandatory=True, desc="its brain mask")
    method = traits.Enum("syn", "affine", usedefault=True, desc="--anat-registration")
    seed = traits.Int(0, usedefault=True, desc="random seed")


class _RegOutputSpec(TraitedSpec):
    forward = File(exists=True, desc="T1w -> template composite transform (.h5)")
    inverse = File(exists=True, desc="template -> T1w composite transform (.h5)")
    reference = File(exists=True, desc="the 2 mm template (grid of the MNI outputs)")


class RegisterToTemplate(SimpleInterface):
    """nipype wrapper of :func:`register_to_template`."""

    input_spec = _RegInputSpec
    output_spec = _RegOutputSpec

    def _run_interface(self, runtime):
        forward, inverse = register_to_template(self.inputs.in_file, self.inputs.mask_file, Path(runtime.cwd),
                                                method=self.inputs.method, seed=self.inputs.seed)
        self._results.update(forward=str(forward), inverse=str(inverse),
                             reference=str(template_file(Path(runtime.cwd), "T1w", 2)))
        return runtime


class _ApplyInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="image to resample")
    reference = File(exists=True, mandatory=True, desc="image defining the output grid")
    transforms = traits.List(File(exists=True), mandatory=True, desc="antspyx transform list")
    interpolation = traits.Str("linear", usedefault=True, desc="antspyx interpolator")
    threshold = traits.Float(desc="binarise the result above this value")


class _ApplyOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="resampled image")


class ApplyTransforms(SimpleInterface):
    """nipype wrapper of :func:`apply_transforms`."""

    input_spec = _ApplyInputSpec
    output_spec = _ApplyOutputSpec

    def _run_interface(self, runtime):
        from nipype.interfaces.base import isdefined

        name = Path(self.inputs.in_file).name.replace(".nii.gz", "").replace(".nii", "")
        out_file = Path(runtime.cwd) / f"{name}_resampled.nii.gz"
        threshold = self.inputs.threshold if isdefined(self.inputs.threshold) else None
        apply_transforms(self.inputs.in_file, self.inputs.reference, self.inputs.transforms, out_file,
                         interpolation=self.inputs.interpolation, threshold=threshold)
        self._results["out_file"] = str(out_file)
        return runtime


#: Method text of :func:`coregister_bold`.
COREG_METHOD = ("rigid antspyx registration between the brain-extracted BOLD reference and the brain-extracted "
                "bias-corrected T1w (Mattes mutual information sampled at every BOLD voxel, centre-of-mass "
                "initialisation)")


def coregister_bold(ref_file: Path, ref_mask: Path, t1w_file: Path, t1w_mask: Path, out_dir: Path, *,
                    seed: int = 0) -> tuple[Path, Path]:
    """Rigid registration of a BOLD reference to its T1w with a cross-modal metric (:data:`COREG_METHOD`).

    ``ref_file`` and ``ref_mask``: 3-D BOLD reference and its brain mask; ``t1w_file`` and ``t1w_mask``:
    bias-corrected T1w and its brain mask. Both images are masked (brain to brain). The BOLD reference
    is the fixed image, so that the metric can be sampled densely (every BOLD voxel, deterministic) at
    little cost; the estimated transform is inverted. On the real demo runs, started 5 mm and 5 degrees
    away, this agreed with the unperturbed result within 0.2-1.0 mm, where the T1w as fixed image with
    20% random sampling varied between runs up to 1.6 mm.

    Returns the transform (ITK ``.mat``, T1w points -> BOLD-reference points, i.e. it resamples the
    BOLD reference onto the T1w) and the BOLD reference resampled onto the T1w grid (for the reportlet).
    """
    import ants

    out_dir = Path(out_dir)
    t1w = ants.image_read(str(t1w_file))
    moving = t1w * ants.image_read(str(t1w_mask)).clone("float")
    reference = ants.image_read(str(ref_file))
    fixed = reference * ants.image_read(str(ref_mask)).clone("float")
    set_ants_seed(seed)
    result = ants.registration(fixed=fixed, moving=moving, type_of_transform="Rigid", aff_metric="mattes",
                               aff_random_sampling_rate=1.0, outprefix=str(out_dir / "coreg_"))
    transform = out_dir / "coreg_t1w_to_boldref.mat"
    ants.write_transform(ants.read_transform(result["fwdtransforms"][0]).invert(), str(transform))
    moved = out_dir / "boldref_in_t1w.nii"
    ants.image_write(ants.apply_transforms(fixed=t1w, moving=reference, transformlist=[str(transform)]), str(moved))
    return transform, moved


class _CoregInputSpec(BaseInterfaceInputSpec):
    ref_file = File(exists=True, mandatory=True, desc="BOLD reference")
    ref_mask = File(exists=True, mandatory=True, desc="BOLD reference brain mask")
    t1w_file = File(exists=True, mandatory=True, desc="bias-corrected T1w")
    t1w_mask = File(exists=True, mandatory=True, desc="T1w brain mask")
    seed = traits.Int(0, usedefault=True, desc="random seed")


class _CoregOutputSpec(TraitedSpec):
    transform = File(exists=True, desc="BOLD reference -> T1w rigid transform (.mat)")
    ref_in_t1w = File(exists=True, desc="BOLD reference resampled onto the T1w")


class CoregisterBold(SimpleInterface):
    """nipype wrapper of :func:`coregister_bold`."""

    input_spec = _CoregInputSpec
    output_spec = _CoregOutputSpec

    def _run_interface(self, runtime):
        transform, moved = coregister_bold(self.inputs.ref_file, self.inputs.ref_mask, self.inputs.t1w_file, self.inputs.t1w_mask,
                                           Path(runtime.cwd), seed=self.inputs.seed)
        self._results.update(transform=str(transform), ref_in_t1w=str(moved))
        return runtime
