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

    from bidsad.interfaces.registration import template_image

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
