"""Confound time series with fMRIPrep's column names, and the optional ``--denoise`` cleaning."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits

from bidsad.config import DENOISE_STRATEGIES as DENOISE  # values of --denoise
from bidsad.interfaces.motion import MOTION_PARAMETERS

#: Band of ``--denoise basic`` (Hz).
BAND_HZ = (0.01, 0.08)
DENOISE_REGRESSORS = (*MOTION_PARAMETERS, "white_matter", "csf")
DENOISE_METHOD = {
    "none": "none",
    "basic": ("nilearn.signal.clean: linear detrending, 0.01-0.08 Hz Butterworth band-pass and regression of the "
              "six motion parameters, white matter and CSF signals (regressors filtered alike)"),
}
#: Tissue probability above which a voxel enters the WM / CSF mask (within the BOLD mask).
TISSUE_THRESHOLD = 0.9
#: Intensity scale of DVARS: the median over the mask of the temporal mean is set to this value (as nipype).
DVARS_SCALE = 1000.0


def column_descriptions(dummy_scans: int) -> dict:
    """BIDS column descriptions of the confounds TSV (the JSON sidecar)."""
    desc = {}
    for name in MOTION_PARAMETERS:
        unit = "mm" if name.startswith("trans") else "rad"
        axis = name[-1]
        what = "translation along" if name.startswith("trans") else "rotation about"
        desc[name] = {"Description": f"rigid head motion: {what} the {axis} axis (RAS+) relative to the BOLD "
                                     "reference", "Units": unit}
        desc[f"{name}_derivative1"] = {"Description": f"backward difference of {name}; n/a in the first row "
                                                      "(no previous volume)", "Units": unit}
        desc[f"{name}_power2"] = {"Description": f"square of {name}", "Units": f"{unit}^2"}
        desc[f"{name}_derivative1_power2"] = {"Description": f"square of {name}_derivative1; n/a in the first row",
                                              "Units": f"{unit}^2"}
    desc["framewise_displacement"] = {"Description": "framewise displacement (Power et al. 2012): sum of absolute "
                                      "backward differences of the translations and of the rotations times 50 mm; "
                                      "n/a in the first row", "Units": "mm"}
    desc["dvars"] = {"Description": "DVARS: root mean square over the BOLD mask of the backward temporal difference, "
                     f"after scaling the median of the temporal mean to {DVARS_SCALE:g}; n/a in the first row",
                     "Units": "arbitrary"}
    desc["std_dvars"] = {"Description": "DVARS divided by its expected value under stationarity (Nichols 2017: "
                         "mean over voxels of sqrt(2 (1 - lag-1 autocorrelation)) x robust standard deviation); "
                         "n/a in the first row", "Units": "arbitrary"}
    desc["global_signal"] = {"Description": "mean BOLD signal inside the BOLD brain mask", "Units": "arbitrary"}
    desc["csf"] = {"Description": f"mean BOLD signal in the CSF mask (CSF probability > {TISSUE_THRESHOLD} within "
                   "the BOLD mask; > 0.5 when empty)", "Units": "arbitrary"}
    desc["white_matter"] = {"Description": f"mean BOLD signal in the white-matter mask (WM probability > "
                            f"{TISSUE_THRESHOLD} within the BOLD mask; > 0.5 when empty)", "Units": "arbitrary"}
    for k in range(dummy_scans):
        desc[f"non_steady_state_outlier{k:02d}"] = {"Description": f"1 for volume {k}, a non-steady-state volume "
                                                    "removed from the preprocessed BOLD, else 0"}
    return desc


def dvars(data, steady_from: int = 0):
    """DVARS and standardised DVARS of masked time series.

    ``data``: float (V, T) voxels inside the mask. Intensities are scaled so the median temporal mean is
    :data:`DVARS_SCALE`; the voxel-wise robust standard deviation (IQR / 1.349) and lag-1
    autocorrelation are estimated from volumes ``steady_from`` onwards. Returns two (T,) float64 arrays
    with ``nan`` first (Nichols 2017; Power et al. 2012).
    """
    import numpy as np

    data = np.asarray(data, np.float64)
    scale = DVARS_SCALE / max(float(np.median(data.mean(axis=1))), 1e-6)
    data = data * scale
    diff = np.diff(data, axis=1)
    values = np.sqrt((diff**2).mean(axis=0))
    steady = data[:, steady_from:]
    q75, q25 = np.percentile(steady, [75, 25], axis=1)
    sd = (q75 - q25) / 1.349
    centred = steady - steady.mean(axis=1, keepdims=True)
    denom = (centred**2).sum(axis=1)
    ar1 = np.where(denom > 0, (centred[:, 1:] * centred[:, :-1]).sum(axis=1) / np.where(denom > 0, denom, 1), 0)
    expected = float(np.mean(np.sqrt(np.clip(2 * (1 - ar1), 0, None)) * sd))
    std = values / expected if expected > 0 else np.full_like(values, np.nan)
    return np.concatenate([[np.nan], values]), np.concatenate([[np.nan], std])


def compute_confounds(bold_file, mask_file, params, tissue_files, *, dummy_scans: int):
    """fMRIPrep-named confounds of one run (every acquired volume, one row each).

    Parameters
    ----------
    bold_file : 4-D BOLD in MNI (every volume, non-steady-state ones included), float32.
    mask_file : its BOLD brain mask (uint8, same grid).
    params : (T, 6) motion parameters (mm, rad; :mod:`bidsad.interfaces.motion`).
    tissue_files : CSF and WM probability maps on the same grid (in that order).
    dummy_scans : non-steady-state volumes (flagged by ``non_steady_state_outlierXX`` columns).

    Returns a pandas DataFrame (T rows); first-row derivatives, ``framewise_displacement``, ``dvars``
    and ``std_dvars`` are NaN (written ``n/a``).
    """
    import nibabel as nb
    import numpy as np
    import pandas as pd

    from bidsad.interfaces.motion import framewise_displacement

    params = np.asarray(params, float)
    data = np.asarray(nb.load(str(bold_file)).dataobj, dtype=np.float32)
    mask = np.asarray(nb.load(str(mask_file)).dataobj) > 0
    table = {}
    for index, name in enumerate(MOTION_PARAMETERS):
        values = params[:, index]
        deriv = np.concatenate([[np.nan], np.diff(values)])
        table[name] = values
        table[f"{name}_derivative1"] = deriv
        table[f"{name}_power2"] = values**2
        table[f"{name}_derivative1_power2"] = deriv**2
    table["framewise_displacement"] = framewise_displacement(params)
    masked = data[mask]
    table["dvars"], table["std_dvars"] = dvars(masked, steady_from=dummy_scans)
    table["global_signal"] = masked.mean(axis=0)
    for column, path in zip(("csf", "white_matter"), tissue_files):
        prob = np.asarray(nb.load(str(path)).dataobj, dtype=np.float32)
        region = (prob > TISSUE_THRESHOLD) & mask
        if not region.any():
            region = (prob > 0.5) & mask
        table[column] = data[region].mean(axis=0) if region.any() else np.full(data.shape[3], np.nan)
    for k in range(dummy_scans):
        table[f"non_steady_state_outlier{k:02d}"] = (np.arange(data.shape[3]) == k).astype(int)
    return pd.DataFrame(table)


def clean_signals(signals, confounds, *, repetition_time: float, strategy: str = "basic", dummy_scans: int = 0):
    """``--denoise`` cleaning of time series (nilearn ``signal.clean``; :data:`DENOISE_METHOD`).

    Parameters
    ----------
    signals : float (T, N) time series (after non-steady-state removal).
    confounds : DataFrame of :func:`compute_confounds` (every acquired volume: the first
        ``dummy_scans`` rows are dropped when it has ``T + dummy_scans`` rows).
    repetition_time : seconds. ``strategy``: ``none`` or ``basic``.

    Returns ``(cleaned (T, N) float32, applied, reason)``: ``applied`` is False (signals returned
    unchanged) for ``none`` and when the run is too short: fewer volumes than regressors + 10, or
    shorter than one period of the band's lower edge (1 / 0.01 Hz = 100 s).

    Raises
    ------
    ValueError
        Unknown ``strategy`` or confounds with a row count matching neither.
    """
    import numpy as np
    from nilearn import signal

    signals = np.asarray(signals, np.float32)
    if strategy not in DENOISE:
        raise ValueError(f"unknown --denoise strategy '{strategy}' (choose from {', '.join(DENOISE)})")
    if strategy == "none":
        return signals, False, "not requested"
    n_vol = signals.shape[0]
    table = confounds
    if len(table) == n_vol + dummy_scans:
        table = table.iloc[dummy_scans:]
    elif len(table) != n_vol:
        raise ValueError(f"confounds have {len(table)} rows for {n_vol} volumes")
    regressors = table[list(DENOISE_REGRESSORS)].to_numpy(float)
    duration = n_vol * repetition_time
    if n_vol < len(DENOISE_REGRESSORS) + 10 or duration < 1.0 / BAND_HZ[0]:
        return signals, False, f"run too short ({n_vol} volumes, {duration:g} s) for {len(DENOISE_REGRESSORS)} " \
                               f"regressors and a {BAND_HZ[0]} Hz high-pass"
    cleaned = signal.clean(signals, detrend=True, standardize=None, confounds=regressors,
                           low_pass=BAND_HZ[1], high_pass=BAND_HZ[0], t_r=repetition_time)
    return np.asarray(cleaned, np.float32), True, DENOISE_METHOD[strategy]


def clean_image(in_file, confounds_file, out_file, *, repetition_time: float, strategy: str, dummy_scans: int = 0):
    """:func:`clean_signals` applied to every voxel of a 4-D image (float32 NIfTI written to ``out_file``).

    Returns ``(applied, reason)``; the image is copied unchanged when cleaning is not applied.
    """
    import nibabel as nb
    import numpy as np
    import pandas as pd

    img = nb.load(str(in_file))
    data = np.asarray(img.dataobj, dtype=np.float32)
    table = pd.read_csv(confounds_file, sep="\t", na_values="n/a")
    flat = data.reshape(-1, data.shape[3]).T
    keep = flat.std(axis=0) > 0
    cleaned, applied, reason = clean_signals(flat[:, keep], table, repetition_time=repetition_time,
                                             strategy=strategy, dummy_scans=dummy_scans)
    out = np.zeros_like(flat)
    out[:, keep] = cleaned
    nb.save(nb.Nifti1Image(out.T.reshape(data.shape), img.affine, img.header), str(out_file))
    return applied, reason


class _ConfInputSpec(BaseInterfaceInputSpec):
    bold_file = File(exists=True, mandatory=True, desc="MNI BOLD, every volume")
    mask_file = File(exists=True, mandatory=True, desc="BOLD mask in MNI")
    params = File(exists=True, mandatory=True, desc="motion parameters (.npy)")
    tissue_files = traits.List(File(exists=True), mandatory=True, desc="native CSF, GM, WM probabilities")
    t1w2mni = File(exists=True, mandatory=True, desc="T1w->MNI transform (resamples the tissue maps)")
    dummy_scans = traits.Int(0, usedefault=True, desc="non-steady-state volumes")


class _ConfOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="confounds TSV")
    meta = traits.Dict(desc="column descriptions and run metadata")


class Confounds(SimpleInterface):
    """nipype wrapper of :func:`compute_confounds`; writes the TSV with ``n/a``."""

    input_spec = _ConfInputSpec
    output_spec = _ConfOutputSpec

    def _run_interface(self, runtime):
        import numpy as np

        import nibabel as nb

        from bidsad.interfaces.registration import apply_transforms

        mask = nb.load(self.inputs.mask_file)
        grid = Path(runtime.cwd) / "grid.nii.gz"
        nb.save(nb.Nifti1Image(np.zeros(mask.shape, np.float32), mask.affine), str(grid))
        csf, _, wm = self.inputs.tissue_files  # order of bidsad.interfaces.segmentation.TISSUES
        tissues = [apply_transforms(path, grid, [self.inputs.t1w2mni], Path(runtime.cwd) / f"{name}_std.nii.gz")
                   for name, path in (("csf", csf), ("wm", wm))]
        table = compute_confounds(self.inputs.bold_file, self.inputs.mask_file, np.load(self.inputs.params),
                                  tissues, dummy_scans=self.inputs.dummy_scans)
        out_file = Path(runtime.cwd) / "confounds.tsv"
        table.to_csv(out_file, sep="\t", index=False, na_rep="n/a", float_format="%.6g")
        fd = table["framewise_displacement"].iloc[self.inputs.dummy_scans + 1:]
        meta = column_descriptions(self.inputs.dummy_scans)
        meta["MeanFD"] = round(float(fd.mean()), 6) if len(fd) else None
        self._results.update(out_file=str(out_file), meta=meta)
        return runtime


class _DenoiseInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="4-D BOLD (non-steady-state volumes removed)")
    confounds = File(exists=True, mandatory=True, desc="confounds TSV")
    repetition_time = traits.Float(mandatory=True, desc="seconds")
    strategy = traits.Enum(*DENOISE, usedefault=True, desc="--denoise")
    dummy_scans = traits.Int(0, usedefault=True, desc="non-steady-state rows of the confounds")
    display_name = traits.Str("BOLD", usedefault=True, desc="run name in the warning")


class _DenoiseOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="cleaned (or unchanged) image")
    record = traits.Dict(desc="Denoise entry of the sidecar: strategy, applied, method or reason")
    warnings = traits.List(traits.Str, desc="why cleaning was skipped")


class DenoiseImage(SimpleInterface):
    """``--denoise``: :func:`clean_image` (``none`` passes the image through untouched)."""

    input_spec = _DenoiseInputSpec
    output_spec = _DenoiseOutputSpec

    def _run_interface(self, runtime):
        from bidsad import messages

        record = {"Strategy": self.inputs.strategy, "Applied": False, "Method": DENOISE_METHOD["none"]}
        warnings = []
        out_file = self.inputs.in_file
        if self.inputs.strategy != "none":
            out_file = str(Path(runtime.cwd) / "denoised.nii.gz")
            applied, reason = clean_image(self.inputs.in_file, self.inputs.confounds, out_file,
                                          repetition_time=self.inputs.repetition_time,
                                          strategy=self.inputs.strategy, dummy_scans=self.inputs.dummy_scans)
            record.update(Applied=applied, Method=reason if applied else DENOISE_METHOD["none"])
            if not applied:
                record["Reason"] = reason
                warnings.append(messages.DENOISE_SKIPPED.format(file=self.inputs.display_name, why=reason))
        self._results.update(out_file=out_file, record=record, warnings=warnings)
        return runtime
