"""QC figures (SVG, nilearn): brain mask on the T1w, template edges on the normalised T1w, tissues."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import BaseInterfaceInputSpec, File, InputMultiObject, SimpleInterface, TraitedSpec, traits

#: Reportlet kinds and their titles.
KINDS = {
    "brainmask": "Brain mask (red) on the bias-corrected T1w",
    "normalisation": "MNI152NLin2009aSym template edges (red) on the normalised T1w",
    "segmentation": "Tissues (p > 0.5): CSF blue, GM green, WM red",
}


def plot_reportlet(kind: str, background: Path, overlays: list[Path], out_file: Path) -> Path:
    """Draw one reportlet as SVG: ``background`` with ``overlays`` (masks or probability maps).

    ``kind``: ``brainmask`` (contour of ``overlays[0]``), ``normalisation`` (edges of the 2 mm
    template over ``background``) or ``segmentation`` (contours at 0.5 of the CSF, GM, WM maps).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from nilearn import plotting

    from bidsad.templates import template_image

    display = plotting.plot_anat(str(background), display_mode="ortho", title=KINDS[kind], dim=-0.3,
                                 draw_cross=False, annotate=True)
    if kind == "brainmask":
        display.add_contours(str(overlays[0]), levels=[0.5], colors="r", linewidths=1.0)
    elif kind == "normalisation":
        display.add_edges(template_image("T1w", 2), color="r")
    else:
        for prob, color in zip(overlays, ("b", "g", "r")):
            display.add_contours(str(prob), levels=[0.5], colors=color, linewidths=0.8)
    display.savefig(str(out_file))
    display.close()
    plt.close("all")
    return Path(out_file)


class _PlotInputSpec(BaseInterfaceInputSpec):
    kind = traits.Enum(*KINDS, mandatory=True, desc="reportlet kind")
    background = File(exists=True, mandatory=True, desc="background image")
    overlays = InputMultiObject(File(exists=True), desc="mask or probability maps")


class _PlotOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="SVG figure")


class Reportlet(SimpleInterface):
    """nipype wrapper of :func:`plot_reportlet`."""

    input_spec = _PlotInputSpec
    output_spec = _PlotOutputSpec

    def _run_interface(self, runtime):
        out_file = Path(runtime.cwd) / f"{self.inputs.kind}.svg"
        overlays = list(self.inputs.overlays) if self.inputs.overlays else []
        self._results["out_file"] = str(plot_reportlet(self.inputs.kind, self.inputs.background, overlays, out_file))
        return runtime


#: Functional reportlet kinds and their titles.
FUNC_KINDS = {
    "carpet": "Carpet plot of the MNI BOLD (brain mask) with framewise displacement and DVARS",
    "coregistration": "BOLD reference edges (red) on the bias-corrected T1w after coregistration",
    "tsnr": "Temporal SNR (mean / standard deviation over time) of the MNI BOLD",
}


def plot_func_reportlet(kind: str, out_file: Path, *, bold=None, mask=None, confounds=None, background=None,
                        overlay=None, repetition_time=None, dummy_scans: int = 0) -> Path:
    """Draw one functional reportlet as SVG (matplotlib, nilearn).

    ``carpet``: framewise displacement and DVARS traces (from the ``confounds`` TSV, non-steady-state
    rows dropped) above nilearn's carpet plot of ``bold`` inside ``mask``; ``coregistration``: edges
    of ``overlay`` (BOLD reference resampled onto the T1w) over ``background`` (T1w);
    ``tsnr``: voxel-wise mean / standard deviation over time of ``bold`` inside ``mask``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import nibabel as nb
    import numpy as np
    from nilearn import plotting

    if kind == "carpet":
        import pandas as pd

        table = pd.read_csv(confounds, sep="\t", na_values="n/a").iloc[dummy_scans:]
        fig = plt.figure(figsize=(10, 7))
        grid = fig.add_gridspec(4, 1, height_ratios=[1, 1, 0.15, 4])
        ax_fd, ax_dv = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
        for ax, column, unit in ((ax_fd, "framewise_displacement", "FD (mm)"), (ax_dv, "dvars", "DVARS")):
            ax.plot(np.arange(len(table)), table[column].to_numpy(float), lw=1)
            ax.set_ylabel(unit)
            ax.set_xlim(0, max(len(table) - 1, 1))
        ax_fd.set_title(FUNC_KINDS[kind])
        plotting.plot_carpet(str(bold), mask_img=str(mask), t_r=repetition_time, figure=fig,
                             axes=fig.add_subplot(grid[3]))
        fig.savefig(str(out_file))
    elif kind == "coregistration":
        display = plotting.plot_anat(str(background), display_mode="ortho", title=FUNC_KINDS[kind], dim=-0.3,
                                     draw_cross=False)
        display.add_edges(str(overlay), color="r")
        display.savefig(str(out_file))
        display.close()
    else:
        img = nb.load(str(bold))
        data = np.asarray(img.dataobj, dtype=np.float32)
        mask_data = np.asarray(nb.load(str(mask)).dataobj) > 0
        mean, std = data.mean(axis=3), data.std(axis=3)
        tsnr = np.where(mask_data & (std > 0), mean / np.where(std > 0, std, 1), 0).astype(np.float32)
        tsnr_img = nb.Nifti1Image(tsnr, img.affine)
        display = plotting.plot_img(tsnr_img, display_mode="ortho", title=FUNC_KINDS[kind], cmap="viridis",
                                    colorbar=True, draw_cross=False, vmin=0,
                                    vmax=float(np.percentile(tsnr[mask_data], 99)) if mask_data.any() else None)
        display.savefig(str(out_file))
        display.close()
    plt.close("all")
    return Path(out_file)


class _FuncPlotInputSpec(BaseInterfaceInputSpec):
    kind = traits.Enum(*FUNC_KINDS, mandatory=True, desc="reportlet kind")
    bold = File(exists=True, desc="4-D BOLD")
    mask = File(exists=True, desc="its mask")
    confounds = File(exists=True, desc="confounds TSV")
    background = File(exists=True, desc="T1w")
    overlay = File(exists=True, desc="BOLD reference on the T1w grid")
    repetition_time = traits.Float(desc="seconds")
    dummy_scans = traits.Int(0, usedefault=True, desc="non-steady-state rows of the confounds")


class FuncReportlet(SimpleInterface):
    """nipype wrapper of :func:`plot_func_reportlet`."""

    input_spec = _FuncPlotInputSpec
    output_spec = _PlotOutputSpec

    def _run_interface(self, runtime):
        from nipype.interfaces.base import isdefined

        kwargs = {k: getattr(self.inputs, k) for k in ("bold", "mask", "confounds", "background", "overlay",
                                                        "repetition_time") if isdefined(getattr(self.inputs, k))}
        out_file = Path(runtime.cwd) / f"{self.inputs.kind}.svg"
        plot_func_reportlet(self.inputs.kind, out_file, dummy_scans=self.inputs.dummy_scans, **kwargs)
        self._results["out_file"] = str(out_file)
        return runtime
