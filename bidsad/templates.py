"""The MNI152NLin2009aSym template images nilearn ships (no download): the space every derivative is written in
(:data:`bidsad.derivatives.TEMPLATE_SPACE`)."""

from __future__ import annotations


def template_image(kind: str = "T1w", resolution: int = 2):
    """nilearn's MNI152NLin2009aSym image (nibabel, in memory, no download).

    ``kind``: ``T1w`` (skull-stripped template), ``mask`` (its brain mask), ``GM`` or ``WM`` (tissue
    templates); ``resolution``: 1 or 2 (mm). Shapes: (197, 233, 189) at 1 mm, (99, 117, 95) at 2 mm.
    """
    from nilearn import datasets

    loader = {"T1w": datasets.load_mni152_template, "mask": datasets.load_mni152_brain_mask,
              "GM": datasets.load_mni152_gm_template, "WM": datasets.load_mni152_wm_template}[kind]
    return loader(resolution=resolution)
