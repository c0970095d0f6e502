"""Atlases that work offline: ROI spheres from nilearn's packaged tables, and a grey-matter parcellation
that bidsad derives from nilearn's MNI152NLin2009aSym grey-matter template and ships.

``power2011``
    The 264 regions of Power et al. (2011), Neuron 72(4):665-678 (MNI coordinates, mm), read by
    ``nilearn.datasets.fetch_coords_power_2011`` from a table inside the nilearn package (no download);
    used as 5 mm spheres. Coordinates are published facts; nilearn is BSD-3-Clause.
``gmkmeans100``
    100 regions (50 per hemisphere) made by k-means (scikit-learn, seed 0) of the voxel coordinates of
    the 2 mm ICBM 2009a grey-matter template (probability > 0.3) that nilearn ships, each hemisphere
    clustered separately (x < 0 left, x >= 0 right; midline voxels go right). Regions are compact,
    roughly equal-volume blobs of grey matter, not anatomical areas; they exist so that regional grey-
    matter volumes can be computed offline with a parcellation whose licence allows redistribution
    (the ICBM 2009a template's licence: use, copy, modify and distribute with its copyright notice,
    see :data:`ICBM_NOTICE`). Rebuild with ``python -m bidsad.atlases``; the shipped file is used at run
    time so that results do not depend on the installed scikit-learn.
``mtlapprox``
    APPROXIMATE medial-temporal regions, left and right (labels 1-3 left, 4-6 right): hippocampus,
    amygdala and entorhinal cortex, each the voxels of the same 2 mm grey-matter template (probability
    > 0.3) inside a simple shape placed from published MNI coordinates of the structure (:data:`MTL_SHAPES`:
    a capsule along the hippocampal long axis, ellipsoids for the amygdala and the entorhinal cortex; a
    voxel inside two shapes goes to the one whose centre (axis) is nearer in shape units). No atlas with a
    licence that allows shipping it is available offline (nilearn downloads every anatomical atlas), so
    these are geometric approximations, NOT manual or validated anatomical labels: their volumes track
    atrophy of the region, not the exact volume of the structure. Same licence as ``gmkmeans100``.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).parent / "data" / "atlases"
ROI_ATLAS = "power2011"
ROI_RADIUS_MM = 5.0
PARCELLATION = "gmkmeans100"
PARCELLATION_FILE = DATA / "tpl-MNI152NLin2009aSym_res-2_atlas-gmkmeans100_dseg.nii.gz"
PARCELLATION_TABLE = DATA / "tpl-MNI152NLin2009aSym_atlas-gmkmeans100_dseg.tsv"
MTL_ATLAS = "mtlapprox"
MTL_FILE = DATA / "tpl-MNI152NLin2009aSym_res-2_atlas-mtlapprox_dseg.nii.gz"
MTL_TABLE = DATA / "tpl-MNI152NLin2009aSym_atlas-mtlapprox_dseg.tsv"
#: Shapes of ``mtlapprox`` for the left hemisphere (MNI mm; the right is the mirror image, x -> -x).
#: ``capsule``: the points within ``radius`` of the segment ``start``-``end``; ``ellipsoid``: ``centre`` and
#: semi-axes (x, y, z). Placed from published MNI coordinates: hippocampal head near (-28, -10, -20), tail
#: near (-21, -38, -1), centroid near (-25, -21, -12) (AAL and Harvard-Oxford centroids); amygdala centroid
#: near (-23, -3, -18); entorhinal cortex on the anterior parahippocampal gyrus, inferior to the amygdala
#: and hippocampal head, centroid near (-24, -9, -31) (Amunts et al. 2005, Anat Embryol 210:343-352;
#: Insausti et al. 1998, AJNR 19:659-671).
MTL_SHAPES = {
    "hippocampus": {"capsule": {"start": (-28.0, -10.0, -20.0), "end": (-21.0, -38.0, -1.0), "radius": 5.5}},
    "amygdala": {"ellipsoid": {"centre": (-23.0, -3.0, -18.0), "semiaxes": (8.0, 7.0, 6.0)}},
    "entorhinal": {"ellipsoid": {"centre": (-24.0, -9.0, -31.0), "semiaxes": (6.0, 11.0, 5.0)}},
}
ICBM_NOTICE = (
    "Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological Institute, "
    "McGill University. Permission to use, copy, modify, and distribute this software and its documentation "
    "for any purpose and without fee is hereby granted, provided that the above copyright notice appear in all "
    "copies. The authors and McGill University make no representations about the suitability of this software "
    "for any purpose. It is provided \"as is\" without express or implied warranty."
)
#: Recorded in sidecars (``Atlas``) and docs/outputs.md.
ATLAS_INFO = {
    ROI_ATLAS: {
        "Name": ROI_ATLAS,
        "Description": "Power et al. (2011) 264 regions, 5 mm spheres around their MNI coordinates",
        "Reference": "Power JD et al. (2011) Functional network organization of the human brain. Neuron 72:665-678",
        "Source": "nilearn.datasets.fetch_coords_power_2011 (table packaged in nilearn; no download)",
        "License": "coordinates are published facts; nilearn BSD-3-Clause",
        "RadiusMm": ROI_RADIUS_MM,
    },
    PARCELLATION: {
        "Name": PARCELLATION,
        "Description": "100 grey-matter regions (50 per hemisphere): k-means (scikit-learn, seed 0) of the "
                       "coordinates of voxels with grey-matter probability > 0.3 in nilearn's 2 mm "
                       "MNI152NLin2009aSym grey-matter template; compact blobs, not anatomical areas",
        "Space": "MNI152NLin2009aSym",
        "Source": "derived by bidsad (bidsad/atlases.py) from the ICBM 2009a grey-matter template shipped by nilearn",
        "License": "derived from the ICBM 2009a template, redistributable with its notice: " + ICBM_NOTICE,
    },
    MTL_ATLAS: {
        "Name": MTL_ATLAS,
        "Description": "APPROXIMATE hippocampus, amygdala and entorhinal cortex (left, right): voxels with grey-matter "
                       "probability > 0.3 in nilearn's 2 mm MNI152NLin2009aSym grey-matter template inside simple "
                       "shapes placed from published MNI coordinates (bidsad.atlases.MTL_SHAPES); geometric "
                       "approximations, not validated anatomical labels",
        "Space": "MNI152NLin2009aSym",
        "Source": "derived by bidsad (bidsad/atlases.py) from the ICBM 2009a grey-matter template shipped by nilearn",
        "License": "derived from the ICBM 2009a template, redistributable with its notice: " + ICBM_NOTICE,
    },
}


def power2011_coords():
    """Power 2011 ROI centres: ``(coords, names)``, ``coords`` float64 (264, 3) MNI mm, ``names``
    ``roi-001`` ... ``roi-264`` in the table's order. Reads nilearn's packaged table (no download)."""
    import numpy as np
    from nilearn import datasets

    rois = datasets.fetch_coords_power_2011().rois
    coords = np.column_stack([rois["x"], rois["y"], rois["z"]]).astype(float)
    return coords, [f"roi-{i + 1:03d}" for i in range(len(coords))]


def parcellation():
    """The shipped ``gmkmeans100`` parcellation: ``(img, table)``, ``img`` int16 NIfTI on the 2 mm
    template grid (0 background, 1..100 regions), ``table`` a DataFrame with ``index`` and ``name``."""
    import nibabel as nb
    import pandas as pd

    return nb.load(str(PARCELLATION_FILE)), pd.read_csv(PARCELLATION_TABLE, sep="\t")


def mtl_atlas():
    """The shipped ``mtlapprox`` regions: ``(img, table)`` as :func:`parcellation` (labels 1-6:
    ``hippocampus_left``, ``amygdala_left``, ``entorhinal_left``, then the same ``_right``)."""
    import nibabel as nb
    import pandas as pd

    return nb.load(str(MTL_FILE)), pd.read_csv(MTL_TABLE, sep="\t")


def _shape_distance(xyz, shape: dict):
    """Distance of points ``xyz`` (..., 3) from a :data:`MTL_SHAPES` shape, in shape units (<= 1 inside)."""
    import numpy as np

    (kind, p), = shape.items()
    if kind == "capsule":
        a, b = np.asarray(p["start"], float), np.asarray(p["end"], float)
        t = np.clip(((xyz - a) @ (b - a)) / ((b - a) @ (b - a)), 0.0, 1.0)
        return np.linalg.norm(xyz - (a + t[..., None] * (b - a)), axis=-1) / p["radius"]
    return np.sqrt((((xyz - np.asarray(p["centre"])) / np.asarray(p["semiaxes"])) ** 2).sum(axis=-1))


def build_mtl_atlas(threshold: float = 0.3):
    """Build ``mtlapprox`` (see the module docstring) on the 2 mm template grid: ``(img, table)``."""
    import nibabel as nb
    import numpy as np
    import pandas as pd

    from bidsad.templates import template_image

    gm = template_image("GM", 2)
    data = np.asarray(gm.dataobj, dtype=np.float32)
    xyz = nb.affines.apply_affine(gm.affine, np.indices(data.shape).reshape(3, -1).T).reshape(*data.shape, 3)
    labels = np.zeros(data.shape, dtype=np.int16)
    names = []
    for h, (hemi, sign) in enumerate((("left", 1.0), ("right", -1.0))):
        mirrored = xyz * np.array([sign, 1.0, 1.0])
        distance = np.stack([_shape_distance(mirrored, shape) for shape in MTL_SHAPES.values()])
        inside = (distance.min(axis=0) <= 1.0) & (data > threshold)
        labels[inside] = 1 + h * len(MTL_SHAPES) + distance.argmin(axis=0)[inside]
        names += [f"{name}_{hemi}" for name in MTL_SHAPES]
    img = nb.Nifti1Image(labels, gm.affine)
    img.header.set_data_dtype(np.int16)
    return img, pd.DataFrame({"index": np.arange(1, len(names) + 1), "name": names})


def build_parcellation(n_per_hemisphere: int = 50, threshold: float = 0.3, seed: int = 0):
    """Build ``gmkmeans100`` from nilearn's 2 mm grey-matter template (see the module docstring).

    Returns ``(img, table)`` as :func:`parcellation`; labels 1..n are left, n+1..2n right, each
    hemisphere's clusters ordered by centroid (z, y, x) so that the numbering is stable.
    """
    import nibabel as nb
    import numpy as np
    import pandas as pd
    from sklearn.cluster import KMeans

    from bidsad.templates import template_image

    gm = template_image("GM", 2)
    data = np.asarray(gm.dataobj, dtype=np.float32)
    ijk = np.argwhere(data > threshold)
    xyz = nb.affines.apply_affine(gm.affine, ijk)
    labels = np.zeros(data.shape, dtype=np.int16)
    names = []
    for h, (hemi, side) in enumerate((("L", xyz[:, 0] < 0), ("R", xyz[:, 0] >= 0))):
        km = KMeans(n_clusters=n_per_hemisphere, n_init=4, random_state=seed).fit(xyz[side])
        order = np.lexsort(km.cluster_centers_[:, ::-1].T)  # by z, then y, then x
        rank = np.empty(n_per_hemisphere, int)
        rank[order] = np.arange(n_per_hemisphere)
        sel = ijk[side]
        labels[sel[:, 0], sel[:, 1], sel[:, 2]] = 1 + h * n_per_hemisphere + rank[km.labels_]
        names += [f"{hemi}{k + 1:02d}" for k in range(n_per_hemisphere)]
    img = nb.Nifti1Image(labels, gm.affine)
    img.header.set_data_dtype(np.int16)
    table = pd.DataFrame({"index": np.arange(1, 2 * n_per_hemisphere + 1), "name": names})
    return img, table


if __name__ == "__main__":
    import nibabel as nb

    DATA.mkdir(parents=True, exist_ok=True)
    for build, image_file, table_file in ((build_parcellation, PARCELLATION_FILE, PARCELLATION_TABLE),
                                          (build_mtl_atlas, MTL_FILE, MTL_TABLE)):
        img, table = build()
        nb.save(img, str(image_file))
        table.to_csv(table_file, sep="\t", index=False)
        print(f"wrote {image_file} and {table_file}")
