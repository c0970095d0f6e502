"""Tiny synthetic BIDS datasets for the field bug cases (tests/test_bugcases.py).

An analytic head phantom (nested ellipsoids: scalp, skull, CSF, grey and white matter, two ventricles)
is sampled at the world coordinates of any voxel grid, so the same object can be stored with any affine
(RAS, LPS, PIR, oblique) and compared exactly. numpy + nibabel only.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nb
import numpy as np

CENTRE = np.array([0.0, -18.0, 10.0])  # world (RAS+, mm) centre of the head
BRAIN = np.array([68.0, 87.0, 65.0])  # brain ellipsoid radii (mm)
T1 = np.array([0, 500, 80, 200, 650, 950], np.float32)  # background, scalp, skull, CSF, GM, WM
BOLD = np.array([0, 300, 50, 1200, 900, 700], np.float32)


def _inside(xyz, centre, radii):
    return (((xyz - np.asarray(centre, float)) / np.asarray(radii, float)) ** 2).sum(-1) <= 1


def labels_at(xyz):
    """Tissue label (0-5) at world coordinates ``xyz[..., 3]`` (mm)."""
    lab = np.zeros(xyz.shape[:-1], np.uint8)
    for k, extra in ((1, 12), (2, 7), (3, 2), (4, 0)):
        lab[_inside(xyz, CENTRE, BRAIN + extra)] = k
    lab[_inside(xyz, CENTRE, 0.75 * BRAIN)] = 5
    for side in (-10, 10):
        lab[_inside(xyz, CENTRE + [side, 8, 5], [6, 20, 10])] = 3
    return lab


def affine_for(shape, zooms, rotation=np.eye(3)):
    """Affine whose voxel-grid centre maps to the head centre; ``rotation`` permutes/flips/tilts axes."""
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(rotation) @ np.diag(zooms)
    affine[:3, 3] = CENTRE - affine[:3, :3] @ ((np.array(shape[:3]) - 1) / 2)
    return affine


def world(shape, affine):
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape[:3]], indexing="ij"), -1)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def rotation_x(degrees):
    a = np.deg2rad(degrees)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def save(data, affine, path, tr=None, tr_unit="sec"):
    img = nb.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    if tr is not None:
        img.header.set_xyzt_units("mm", tr_unit)
        img.header.set_zooms(img.header.get_zooms()[:3] + (tr,) + img.header.get_zooms()[4:])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    nb.save(img, str(path))
    return img


def t1w_data(shape=(32, 38, 32), zooms=(6, 6, 6), rotation=np.eye(3), seed=0):
    affine = affine_for(shape, zooms, rotation)
    xyz = world(shape, affine)
    values = T1[labels_at(xyz)] * (1 + 0.15 * (xyz[..., 1] - CENTRE[1]) / 100)
    values += np.random.default_rng(seed).normal(0, 15, values.shape)
    return np.clip(values, 0, None).astype(np.float32), affine


def bold_data(shape=(20, 24, 20), zooms=(8, 8, 8), n_vols=12, rotation=np.eye(3), seed=0):
    affine = affine_for(shape, zooms, rotation)
    base = BOLD[labels_at(world(shape, affine))]
    noise = np.random.default_rng(seed).standard_normal((*shape, n_vols)).astype(np.float32)
    return (base[..., None] * (1 + 0.01 * noise)).astype(np.float32), affine


def make_dataset(root, subjects=("01", "02"), bold=True, n_vols=12, diagnoses=("CN", "AD", "MCI")):
    """A BIDS dataset: per subject a 6 mm T1w (int16) and, with ``bold``, an 8 mm BOLD with TR 2 s."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "bugcases", "BIDSVersion": "1.8.0"}))
    rows = ["participant_id\tage\tsex\tdiagnosis"]
    for i, sub in enumerate(subjects):
        rows.append(f"sub-{sub}\t{70 + i}\t{'FM'[i % 2]}\t{diagnoses[i % len(diagnoses)]}")
        data, affine = t1w_data(seed=i)
        save(data.astype(np.int16), affine, root / f"sub-{sub}/anat/sub-{sub}_T1w.nii.gz")
        if bold:
            series, affine = bold_data(n_vols=n_vols, seed=100 + i)
            save(series, affine, root / f"sub-{sub}/func/sub-{sub}_task-rest_bold.nii.gz", tr=2.0)
            write_json(root / f"sub-{sub}/func/sub-{sub}_task-rest_bold.json", {"RepetitionTime": 2.0, "TaskName": "rest"})
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    return root


def write_json(path, data):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data))
