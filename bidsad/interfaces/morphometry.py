"""Grey-matter features for the classical baselines: GM probability at 4 mm in MNI, regional GM volumes (ml)."""

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


class _RegionalOutputSpec(TraitedSpec):
    out_file = File(desc="TSV: index, name, volume_ml")
    total_ml = traits.Float(desc="sum over regions (ml)")


class RegionalGmVolumes(SimpleInterface):
    """Warp the shipped parcellation to the native T1w (nearest neighbour) and sum GM per region."""

    input_spec = _RegionalInputSpec
    output_spec = _RegionalOutputSpec

    def _run_interface(self, runtime):
        import numpy as np

        from bidsad.atlases import PARCELLATION_FILE, parcellation
        from bidsad.interfaces.registration import apply_transforms

        cwd = Path(runtime.cwd)
        _, table = parcellation()
        native = apply_transforms(PARCELLATION_FILE, self.inputs.gm_file, [self.inputs.transform],
                                  cwd / "labels_native.nii.gz", interpolation="nearestNeighbor")
        volumes = regional_volumes(self.inputs.gm_file, native, table)
        out = cwd / "morph.tsv"
        volumes.to_csv(out, sep="\t", index=False, na_rep="n/a", float_format="%.4f")
        self._results["out_file"] = str(out)
        self._results["total_ml"] = float(np.nansum(volumes["volume_ml"]))
        return runtime
