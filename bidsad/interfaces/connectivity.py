"""ROI time series (nilearn spheres) and Pearson connectivity matrices, with explicit ``n/a``."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, isdefined, traits

#: fMRIPrep confound columns regressed out of the ROI signals when present.
DENOISE_COLUMNS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z", "csf", "white_matter")
DENOISE = (
    "mean signal in each sphere (nilearn NiftiSpheresMasker, inside the BOLD brain mask), then linear "
    "detrending and regression of the confound columns present among " + ", ".join(DENOISE_COLUMNS)
    + " (nilearn.signal.clean); no temporal filtering, no smoothing. A region with no voxel in the mask, "
    "or whose signal is constant, is n/a (whole column)"
)
CONNECTIVITY = (
    "Pearson correlation of the denoised ROI signals over the whole run (nilearn ConnectivityMeasure, "
    "kind='correlation', empirical covariance); n/a for constant or empty regions and on the diagonal"
)
#: Relative standard deviation below which a signal counts as constant.
CONSTANT_RTOL = 1e-6


def roi_timeseries(bold_file, mask_file, coords, *, radius_mm: float, confounds_file=None, tr=None):
    """Mean BOLD signal of spheres, denoised; constant or empty regions are NaN.

    Parameters
    ----------
    bold_file : 4-D BOLD in a template space (world coordinates in mm, any grid).
    mask_file : 3-D brain mask on the same grid (voxels > 0 are used), or None for all voxels.
    coords : (n_regions, 3) sphere centres in mm; ``radius_mm`` their radius.
    confounds_file : fMRIPrep-style TSV (one row per volume, ``n/a`` allowed in derivative columns);
        the columns of :data:`DENOISE_COLUMNS` present are regressed out. ``tr``: seconds.

    Returns float64 array (n_volumes, n_regions); a column is all NaN when its sphere holds no voxel
    of the mask or its raw signal is constant (relative std < :data:`CONSTANT_RTOL`), so that no
    correlation is ever computed from it. Source: nilearn (Abraham et al. 2014).
    """
    import nibabel as nb
    import numpy as np
    import pandas as pd
    from nilearn import image, signal
    from nilearn.maskers import NiftiSpheresMasker
    from scipy.spatial import cKDTree

    bold = nb.load(str(bold_file))
    if mask_file is not None:
        mask = np.asarray(image.resample_to_img(str(mask_file), image.index_img(bold, 0), interpolation="nearest",
                                                force_resample=True, copy_header=True).dataobj) > 0
    else:
        mask = np.ones(bold.shape[:3], bool)
    n_vol = bold.shape[3]
    coords = np.asarray(coords, float)
    # spheres with no mask voxel (nilearn refuses them) are left out and reported as NaN
    tree = cKDTree(nb.affines.apply_affine(bold.affine, np.argwhere(mask)))
    coverage = np.array([len(tree.query_ball_point(c, radius_mm)) for c in coords])
    raw = np.full((n_vol, len(coords)), np.nan)
    if (coverage > 0).any():
        masker = NiftiSpheresMasker(coords[coverage > 0], radius=radius_mm, mask_img=nb.Nifti1Image(
            mask.astype(np.uint8), bold.affine), allow_overlap=True, standardize=None)
        raw[:, coverage > 0] = masker.fit_transform(bold)
    scale = np.abs(np.nan_to_num(raw)).max(axis=0) if n_vol else np.zeros(len(coords))
    with np.errstate(invalid="ignore"):
        constant = ~(raw.std(axis=0) > CONSTANT_RTOL * np.where(scale > 0, scale, 1.0))
    bad = (coverage <= 0) | constant | ~np.isfinite(raw).all(axis=0)
    out = np.full(raw.shape, np.nan)
    good = ~bad
    if good.any():
        conf = None
        if confounds_file is not None:
            table = pd.read_csv(confounds_file, sep="\t", na_values="n/a")
            cols = [c for c in DENOISE_COLUMNS if c in table.columns]
            if cols:
                if len(table) != n_vol:
                    raise ValueError(f"{confounds_file}: {len(table)} rows but the BOLD run has {n_vol} volumes")
                conf = table[cols].fillna(0.0).to_numpy(float)
        out[:, good] = signal.clean(raw[:, good], detrend=True, standardize=None, confounds=conf,
                                    t_r=tr, standardize_confounds=True)
        after = out[:, good].std(axis=0) <= CONSTANT_RTOL * np.where(scale[good] > 0, scale[good], 1.0)
        idx = np.flatnonzero(good)[after]
        out[:, idx] = np.nan
    return out


def pearson_matrix(timeseries):
    """Pearson correlation (float64, n_regions x n_regions) of the non-NaN columns of ``timeseries``
    (n_volumes, n_regions) with nilearn's ConnectivityMeasure (empirical covariance); NaN on the
    diagonal and in every row/column of a NaN region. Fisher z, where wanted, is ``arctanh(r)``."""
    import numpy as np
    from nilearn.connectome import ConnectivityMeasure
    from sklearn.covariance import EmpiricalCovariance

    ts = np.asarray(timeseries, float)
    n = ts.shape[1]
    good = np.isfinite(ts).all(axis=0)
    out = np.full((n, n), np.nan)
    if good.sum() >= 2 and ts.shape[0] >= 3:
        measure = ConnectivityMeasure(cov_estimator=EmpiricalCovariance(), kind="correlation", standardize=None)
        r = measure.fit_transform([ts[:, good]])[0]
        out[np.ix_(good, good)] = np.clip(r, -1.0, 1.0)
    np.fill_diagonal(out, np.nan)
    return out


def write_tsv(array, names, path: Path) -> Path:
    """Write a float array with a header of ``names`` and ``n/a`` for NaN (no index column)."""
    import pandas as pd

    pd.DataFrame(array, columns=list(names)).to_csv(path, sep="\t", index=False, na_rep="n/a",
                                                     float_format="%.6g")
    return Path(path)


class _RoiInputSpec(BaseInterfaceInputSpec):
    bold_file = File(exists=True, mandatory=True, desc="4-D BOLD in MNI space")
    mask_file = File(exists=True, desc="BOLD brain mask, same grid")
    confounds = File(exists=True, desc="confounds TSV (fMRIPrep columns)")
    repetition_time = traits.Float(desc="seconds")
    atlas = traits.Str("power2011", usedefault=True, desc="ROI atlas name (bidsad.atlases)")
    meta = traits.Dict(desc="extra sidecar fields (sources, preprocessing source)")


class _RoiOutputSpec(TraitedSpec):
    timeseries = File(desc="TSV, one column per region")
    relmat = File(desc="TSV, square Pearson correlation matrix")
    timeseries_meta = traits.Dict()
    relmat_meta = traits.Dict()
    n_valid = traits.Int(desc="regions with a usable signal")


class RoiConnectivity(SimpleInterface):
    """ROI time series and their Pearson correlation matrix (:func:`roi_timeseries`, :func:`pearson_matrix`)."""

    input_spec = _RoiInputSpec
    output_spec = _RoiOutputSpec

    def _run_interface(self, runtime):
        import numpy as np

        from bidsad.atlases import ATLAS_INFO, ROI_ATLAS, ROI_RADIUS_MM, power2011_coords

        if self.inputs.atlas != ROI_ATLAS:
            raise ValueError(f"unknown ROI atlas '{self.inputs.atlas}' (available: {ROI_ATLAS})")
        coords, names = power2011_coords()
        tr = self.inputs.repetition_time if isdefined(self.inputs.repetition_time) else None
        ts = roi_timeseries(self.inputs.bold_file, self.inputs.mask_file if isdefined(self.inputs.mask_file) else None,
                            coords, radius_mm=ROI_RADIUS_MM, tr=tr,
                            confounds_file=self.inputs.confounds if isdefined(self.inputs.confounds) else None)
        r = pearson_matrix(ts)
        cwd = Path(runtime.cwd)
        self._results["timeseries"] = str(write_tsv(ts, names, cwd / "timeseries.tsv"))
        self._results["relmat"] = str(write_tsv(r, names, cwd / "relmat.tsv"))
        valid = int(np.isfinite(ts).all(axis=0).sum())
        base = {**(self.inputs.meta or {}), "Atlas": ROI_ATLAS,
                "AtlasDescription": ATLAS_INFO[ROI_ATLAS], "RepetitionTime": tr,
                "Denoise": DENOISE, "RegionsValid": valid, "RegionsTotal": len(names)}
        self._results["timeseries_meta"] = {**base, "SamplingFrequency": 1.0 / tr if tr else None}
        self._results["relmat_meta"] = {**base, "Measure": "pearsoncorrelation", "Method": CONNECTIVITY}
        self._results["n_valid"] = valid
        return runtime
