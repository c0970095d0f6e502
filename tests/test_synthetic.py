"""The synthetic-cohort generator: valid BIDS with the class effects it promises."""

from __future__ import annotations

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from bidsad import synthetic
from bidsad.bids import collect_participants
from bidsad.phenotype import read_participants_tsv


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return synthetic.make_synthetic_cohort(tmp_path_factory.mktemp("syn") / "bids", 9, seed=1)


def _dark_fraction_in_ventricle_box(path):
    """Fraction of in-brain voxels of the ventricle box darker than 40% of the brain median (voxel space)."""
    img = nb.load(path)
    data = img.get_fdata()
    _, mask, template_affine = synthetic._template()
    xyz = synthetic._world(data.shape, template_affine)  # the pose is in the header only: voxel grid = template's
    box = mask.copy()
    for axis, (low, high) in enumerate(synthetic.VENTRICLE_BOX_MNI):
        box &= (xyz[..., axis] >= low) & (xyz[..., axis] <= high)
    return float((data[box] < 0.4 * np.median(data[mask])).mean())


def _dmn_correlation(path):
    img = nb.load(path)
    data = img.get_fdata()
    _, _, template_affine = synthetic._template()
    target = np.diag([6.0, 6.0, 6.0, 1.0])
    target[:3, 3] = template_affine[:3, 3]
    xyz = synthetic._world(data.shape[:3], target)
    nodes = [data[np.linalg.norm(xyz - np.asarray(c), axis=-1) <= synthetic.NODE_RADIUS_MM].mean(axis=0)
             for c in synthetic.DMN_MNI[:2]]
    return float(np.corrcoef(nodes)[0, 1])


def test_cohort_is_valid_bids_with_inherited_tr(cohort):
    parts = collect_participants(cohort)
    assert len(parts) == 9 and all(p.t1w is not None and len(p.bold) == 1 for p in parts)
    assert {p.bold[0].repetition_time for p in parts} == {2.0} and {p.bold[0].n_volumes for p in parts} == {40}
    table = read_participants_tsv(cohort)
    assert table["label"].tolist() == [0, 1, 2] * 3


def test_class_effects_are_ordered(cohort):
    table = pd.read_csv(cohort / "participants.tsv", sep="\t")
    table["dark"] = [_dark_fraction_in_ventricle_box(cohort / f"{p}/anat/{p}_T1w.nii.gz") for p in table.participant_id]
    table["dmn"] = [_dmn_correlation(cohort / f"{p}/func/{p}_task-rest_bold.nii.gz") for p in table.participant_id]
    means = table.groupby("diagnosis")[["dark", "dmn", "ventricle_growth_mm"]].mean()
    assert means.loc["CN", "dark"] < means.loc["MCI", "dark"] < means.loc["AD", "dark"]
    assert means.loc["CN", "dmn"] > means.loc["AD", "dmn"] + 0.2
    assert means.loc["CN", "ventricle_growth_mm"] < 1.5 < means.loc["MCI", "ventricle_growth_mm"] < 4.5 < means.loc["AD", "ventricle_growth_mm"]


def test_no_effect_means_no_class_difference(tmp_path):
    root = synthetic.make_synthetic_cohort(tmp_path / "null", 6, seed=2, with_bold=False, effect=0.0,
                                           ventricle_sd_mm=0.0)
    darks = [_dark_fraction_in_ventricle_box(root / f"sub-{i:03d}/anat/sub-{i:03d}_T1w.nii.gz") for i in range(1, 7)]
    assert np.ptp(darks) < 0.02


def test_unknown_parameter(tmp_path):
    with pytest.raises(ValueError, match="atrophy"):
        synthetic.make_synthetic_cohort(tmp_path, 3, atrophy=2)
