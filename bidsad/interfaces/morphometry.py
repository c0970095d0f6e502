"""Grey-matter features: GM probability at 4 mm in MNI, Jacobian-modulated GM, regional GM volumes (ml and
fractions of the total intracranial volume), tissue volumes and approximate medial-temporal volumes."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits

GM_4MM_METHOD = (
    "grey-matter probability (antspyx Atropos, native space) resampled once into MNI152NLin2009aSym at 2 mm "
    "(linear), then averaged over 2x2x2 blocks to 4 mm (the mean probability of each 4 mm voxel)"
)
REGIONAL_METHOD = (
    "native-space grey-matter volume per region: the parcellation warped from MNI152NLin2009aSym to the "
    "T1w with the inverse of the T1w->MNI transform (antspyx, nearest neighbour), then the sum of the "
    "native GM probability x voxel volume (mm^3) / 1000 in each region; n/a for a region with no voxel"
)
MODULATION_METHOD = (
    "Jacobian modulation (Ashburner & Friston 2000; Good et al. 2001): the native grey-matter probability "
    "(antspyx Atropos) is Gaussian anti-aliased to the output voxel size, resampled once (linear, antspyx) "
    "through the T1w->MNI152NLin2009aSym transform onto the output grid and multiplied voxel-wise by the "
    "determinant of the Jacobian of that transform on the same grid (the transform composed into one "
    "displacement field, antsApplyTransforms; determinant by ANTs CreateJacobianDeterminantImage). Each "
    "value is ml of native grey matter per ml of template space: the sum of value x voxel volume is the "
    "native grey-matter volume (larger heads and less atrophy give larger values)"
)
#: What the Jacobian determinant holds, per registration (``--anat-registration``, or fMRIPrep's transform).
JACOBIAN_SOURCE = {
    "syn": "determinant of the Jacobian of the composed affine + SyN T1w->MNI152NLin2009aSym transform "
           "(local volume change: regional atrophy and head size)",
    "affine": "determinant of the affine T1w->MNI152NLin2009aSym transform, constant over the image "
              "(--anat-registration affine has no nonlinear warp: global head-size scaling only, no local atrophy)",
    "fmriprep": "determinant of the Jacobian of fMRIPrep's T1w->template transform (composed into one "
                "displacement field)",
}
VOLUMES_METHOD = (
    "native space. CSF, GM, WM: sum of each tissue probability x voxel volume (mm^3) / 1000 inside the brain "
    "mask; TIV (total intracranial volume) = CSF + GM + WM inside the brain mask (for skull-stripped inputs "
    "only the CSF inside the given mask counts). Medial-temporal regions (hippocampus, amygdala, entorhinal, "
    "left/right): the approximate mtlapprox regions (bidsad.atlases) warped to the T1w with the inverse of the "
    "T1w->MNI transform (antspyx, nearest neighbour), then the sum of native GM probability x voxel volume "
    "(region_ml: the warped region's own volume, all tissues); APPROXIMATE regions placed from published MNI "
    "coordinates, not validated anatomical labels: GM inside them is smaller than a manual volume of the structure"
)


def block_average(in_file, out_file, factor: int = 2) -> Path:
    """Average a 3-D image over ``factor``^3 voxel blocks (float32); trailing voxels that do not fill a
    block are dropped. The output affine keeps the world position of each block's centre.

    Used to turn a 2 mm probability map into a 4 mm one without a second interpolation.
    """
    import nibabel as nb
    import numpy as np

    img = nb.load(str(in_file))
    data = np.asarray(img.dataobj, dtype=np.float32)
    shape = [s // factor for s in data.shape[:3]]
    data = data[: shape[0] * factor, : shape[1] * factor, : shape[2] * factor]
    blocks = data.reshape(shape[0], factor, shape[1], factor, shape[2], factor).mean(axis=(1, 3, 5))
    affine = img.affine.copy()
    affine[:3, :3] = img.affine[:3, :3] * factor
    affine[:3, 3] = nb.affines.apply_affine(img.affine, [(factor - 1) / 2.0] * 3)
    out = nb.Nifti1Image(blocks.astype(np.float32), affine)
    out.set_qform(affine, code=1)
    nb.save(out, str(out_file))
    return Path(out_file)


def jacobian_determinant(transform, reference, out_file) -> Path:
    """Determinant of the Jacobian of a point mapping at each voxel of ``reference`` (antspyx).

    ``transform``: the T1w -> template transform as used to resample the T1w into the template (ITK
    composite ``.h5`` or ``.mat``; it maps template points to T1w points), composed into one displacement
    field on the grid of ``reference``; the determinant is ANTs' ``CreateJacobianDeterminantImage``
    (finite differences). Values > 1 where the T1w is larger than the template. A pure scaling by 1.2
    gives 1.728 at every voxel not on the grid's border. Writes float32 NIfTI on ``reference``'s grid.
    """
    import ants
    import nibabel as nb
    import numpy as np

    out_file = Path(out_file)
    grid = ants.image_read(str(reference))
    prefix = out_file.parent / f"{out_file.name.split('.')[0]}_"
    field = ants.apply_transforms(fixed=grid, moving=grid, transformlist=[str(transform)], compose=str(prefix))
    determinant = ants.create_jacobian_determinant_image(grid, field).numpy().astype(np.float32)
    Path(field).unlink(missing_ok=True)
    ref = nb.load(str(reference))
    img = nb.Nifti1Image(determinant, ref.affine)
    img.set_qform(ref.affine, code=1)
    nb.save(img, str(out_file))
    return out_file


def modulate_gm(gm_file, transform, reference, out_file) -> dict:
    """Jacobian-modulated grey matter on the grid of ``reference`` (:data:`MODULATION_METHOD`).

    ``gm_file``: native GM probability (float, 0..1); ``transform``: T1w -> template (see
    :func:`jacobian_determinant`). Writes float32 NIfTI ``out_file`` (ml of native GM per ml of template
    space) and returns ``{"native_ml", "modulated_ml", "jacobian_median", "jacobian_min", "jacobian_max"}``
    (the Jacobian statistics over voxels with modulated GM > 0.1), where ``modulated_ml`` (the sum of the
    output x voxel volume) approximates ``native_ml`` (the native GM volume).
    """
    import nibabel as nb
    import numpy as np

    from bidsad.interfaces.registration import apply_transforms
    from bidsad.interfaces.tensors import antialias

    out_file = Path(out_file)
    stem = out_file.parent / out_file.name.split(".")[0]
    ref = nb.load(str(reference))
    voxel = np.sqrt((ref.affine[:3, :3] ** 2).sum(axis=0))
    smoothed = antialias(gm_file, f"{stem}_smoothed.nii", voxel)
    moved = apply_transforms(smoothed, reference, [transform], f"{stem}_resampled.nii.gz")
    jacobian = np.asarray(nb.load(str(jacobian_determinant(transform, reference, f"{stem}_jacobian.nii.gz"))).dataobj)
    data = (np.clip(np.asarray(nb.load(str(moved)).dataobj, dtype=np.float32), 0, None) * jacobian).astype(np.float32)
    img = nb.Nifti1Image(data, ref.affine)
    img.set_qform(ref.affine, code=1)
    nb.save(img, str(out_file))
    native = nb.load(str(gm_file))
    native_ml = float(np.clip(np.asarray(native.dataobj, np.float64), 0, 1).sum()
                      * abs(np.linalg.det(native.affine[:3, :3])) / 1000.0)
    brain = data > 0.1
    jac = jacobian[brain] if brain.any() else np.array([np.nan])
    return {"native_ml": native_ml, "modulated_ml": float(data.sum(dtype=np.float64) * np.prod(voxel) / 1000.0),
            "jacobian_median": float(np.median(jac)), "jacobian_min": float(jac.min()), "jacobian_max": float(jac.max())}


def tissue_volumes(probseg, mask_file) -> dict:
    """Native tissue volumes (ml): ``{"TIV", "CSF", "GM", "WM"}`` from the CSF, GM, WM probability maps
    ``probseg`` (same grid) inside the brain mask ``mask_file`` (:data:`VOLUMES_METHOD`)."""
    import nibabel as nb
    import numpy as np

    from bidsad.interfaces.segmentation import TISSUES

    mask_img = nb.load(str(mask_file))
    mask = np.asarray(mask_img.dataobj) > 0
    voxel_ml = float(abs(np.linalg.det(mask_img.affine[:3, :3]))) / 1000.0
    volumes = {}
    for label, path in zip(TISSUES, probseg):
        data = np.asarray(nb.load(str(path)).dataobj, dtype=np.float64)
        if data.shape != mask.shape:
            raise ValueError(f"{path}: grid {data.shape} differs from the brain mask's {mask.shape} ({mask_file})")
        volumes[label] = float(np.clip(data[mask], 0, 1).sum() * voxel_ml)
    return {"TIV": sum(volumes.values()), **volumes}


def regional_volumes(gm_file, labels_file, table) -> "pd.DataFrame":  # noqa: F821
    """GM volume (ml) per region: sum of GM probability x voxel volume over each label.

    ``gm_file``: native GM probability (float, 0..1); ``labels_file``: integer labels on the same grid;
    ``table``: DataFrame with ``index`` and ``name``. Returns a DataFrame with ``index``, ``name`` and
    ``volume_ml`` (float; NaN for a label absent from ``labels_file``).
    """
    import nibabel as nb
    import numpy as np
    from scipy import ndimage

    gm_img = nb.load(str(gm_file))
    gm = np.clip(np.asarray(gm_img.dataobj, dtype=np.float64), 0.0, 1.0)
    labels = np.rint(np.asarray(nb.load(str(labels_file)).dataobj)).astype(np.int32)
    if labels.shape != gm.shape:
        raise ValueError(f"{labels_file}: grid {labels.shape} differs from the GM map's {gm.shape}")
    voxel_ml = float(abs(np.linalg.det(gm_img.affine[:3, :3]))) / 1000.0
    index = table["index"].to_numpy(int)
    sums = np.asarray(ndimage.sum(gm, labels, index), float) * voxel_ml
    counts = np.asarray(ndimage.sum(np.ones_like(gm), labels, index), float)
    out = table[["index", "name"]].copy()
    out["volume_ml"] = np.where(counts > 0, sums, np.nan)
    return out


class _Gm4mmInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="GM probability in MNI at 2 mm")


class _FileOutputSpec(TraitedSpec):
    out_file = File(desc="output")


class GmProbability4mm(SimpleInterface):
    """:func:`block_average` of the 2 mm MNI GM probability to 4 mm."""

    input_spec = _Gm4mmInputSpec
    output_spec = _FileOutputSpec

    def _run_interface(self, runtime):
        out = Path(runtime.cwd) / "gm_res-4.nii.gz"
        self._results["out_file"] = str(block_average(self.inputs.in_file, out, 2))
        return runtime


class _RegionalInputSpec(BaseInterfaceInputSpec):
    gm_file = File(exists=True, mandatory=True, desc="native GM probability")
    transform = File(exists=True, mandatory=True, desc="MNI -> T1w transform (.h5)")
    tiv_ml = traits.Float(desc="total intracranial volume (ml): adds the column fraction_of_tiv")


class _RegionalOutputSpec(TraitedSpec):
    out_file = File(desc="TSV: index, name, volume_ml[, fraction_of_tiv]")
    total_ml = traits.Float(desc="sum over regions (ml)")


def _native_labels(atlas_file, gm_file, transform, out_file) -> Path:
    """An MNI label image warped onto the native GM grid (nearest neighbour)."""
    from bidsad.interfaces.registration import apply_transforms

    return apply_transforms(atlas_file, gm_file, [transform], out_file, interpolation="nearestNeighbor")


class RegionalGmVolumes(SimpleInterface):
    """Warp the shipped parcellation to the native T1w (nearest neighbour) and sum GM per region; with
    ``tiv_ml``, also each region's GM volume as a fraction of the total intracranial volume."""

    input_spec = _RegionalInputSpec
    output_spec = _RegionalOutputSpec

    def _run_interface(self, runtime):
        import numpy as np
        from nipype.interfaces.base import isdefined

        from bidsad.atlases import PARCELLATION_FILE, parcellation

        cwd = Path(runtime.cwd)
        _, table = parcellation()
        native = _native_labels(PARCELLATION_FILE, self.inputs.gm_file, self.inputs.transform, cwd / "labels_native.nii")
        volumes = regional_volumes(self.inputs.gm_file, native, table)
        if isdefined(self.inputs.tiv_ml):
            volumes["fraction_of_tiv"] = volumes["volume_ml"] / self.inputs.tiv_ml
        out = cwd / "morph.tsv"
        volumes.to_csv(out, sep="\t", index=False, na_rep="n/a", float_format="%.6g")
        self._results["out_file"] = str(out)
        self._results["total_ml"] = float(np.nansum(volumes["volume_ml"]))
        return runtime


class _VolumesInputSpec(BaseInterfaceInputSpec):
    probseg = traits.List(File(exists=True), mandatory=True, desc="native CSF, GM, WM probability maps")
    mask_file = File(exists=True, mandatory=True, desc="native brain mask")
    transform = File(exists=True, mandatory=True, desc="MNI -> T1w transform (.h5)")


class _VolumesOutputSpec(TraitedSpec):
    out_file = File(desc="TSV: name, volume_ml, fraction_of_tiv, region_ml")
    tiv_ml = traits.Float(desc="total intracranial volume (ml)")


class TissueAndMtlVolumes(SimpleInterface):
    """Native TIV, CSF, GM, WM and approximate medial-temporal GM volumes (:data:`VOLUMES_METHOD`) in one
    table: rows ``TIV``, ``CSF``, ``GM``, ``WM``, then the ``mtlapprox`` regions (``hippocampus_left``...);
    columns ``name``, ``volume_ml``, ``fraction_of_tiv`` and ``region_ml`` (the volume of the warped region
    itself, all tissues; n/a for the tissue rows)."""

    input_spec = _VolumesInputSpec
    output_spec = _VolumesOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nb
        import numpy as np
        import pandas as pd

        from bidsad.atlases import MTL_FILE, mtl_atlas

        cwd = Path(runtime.cwd)
        gm_file = self.inputs.probseg[1]
        tissues = tissue_volumes(self.inputs.probseg, self.inputs.mask_file)
        _, table = mtl_atlas()
        native = _native_labels(MTL_FILE, gm_file, self.inputs.transform, cwd / "mtl_native.nii")
        mtl = regional_volumes(gm_file, native, table)
        labels_img = nb.load(str(native))
        labels = np.rint(np.asarray(labels_img.dataobj)).astype(int)
        voxel_ml = float(abs(np.linalg.det(labels_img.affine[:3, :3]))) / 1000.0
        mtl["region_ml"] = [(labels == index).sum() * voxel_ml for index in table["index"]]
        rows = pd.concat([pd.DataFrame({"name": list(tissues), "volume_ml": list(tissues.values())}),
                          mtl[["name", "volume_ml", "region_ml"]]], ignore_index=True)
        rows["fraction_of_tiv"] = rows["volume_ml"] / tissues["TIV"]
        rows = rows[["name", "volume_ml", "fraction_of_tiv", "region_ml"]]
        out = cwd / "volumes.tsv"
        rows.to_csv(out, sep="\t", index=False, na_rep="n/a", float_format="%.6g")
        self._results["out_file"] = str(out)
        self._results["tiv_ml"] = tissues["TIV"]
        return runtime


class _ModulatedInputSpec(BaseInterfaceInputSpec):
    probseg = traits.List(File(exists=True), mandatory=True, desc="native CSF, GM, WM probability maps")
    transform = File(exists=True, mandatory=True, desc="T1w -> MNI transform (.h5)")


class _ModulatedOutputSpec(TraitedSpec):
    out_file = File(desc="modulated GM on the 2 mm template grid")
    out_4mm = File(desc="the same averaged over 2x2x2 blocks (4 mm)")
    stats = traits.Dict(desc="native_ml, modulated_ml, Jacobian median/min/max (see modulate_gm)")


class ModulatedGm(SimpleInterface):
    """:func:`modulate_gm` of the native GM onto the 2 mm ``MNI152NLin2009aSym`` grid, and its
    :func:`block_average` to 4 mm (a block mean keeps the integral: value x 64 mm^3 per 4 mm voxel)."""

    input_spec = _ModulatedInputSpec
    output_spec = _ModulatedOutputSpec

    def _run_interface(self, runtime):
        from bidsad.interfaces.registration import template_file

        cwd = Path(runtime.cwd)
        out = cwd / "gm_modulated_res-2.nii.gz"
        stats = modulate_gm(self.inputs.probseg[1], self.inputs.transform, template_file(cwd, "T1w", 2), out)
        self._results.update(out_file=str(out), stats=stats,
                             out_4mm=str(block_average(out, cwd / "gm_modulated_res-4.nii.gz", 2)))
        return runtime
