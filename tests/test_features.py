"""Participant features on known inputs: ROI correlations, n/a regions, BOLD tensor policy, GM features."""

from __future__ import annotations

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from bidsad.interfaces.connectivity import pearson_matrix, roi_timeseries, write_tsv
from bidsad.interfaces.morphometry import block_average, regional_volumes
from bidsad.interfaces.tensors import make_bold_tensor

AFFINE_4MM = np.array([[4.0, 0, 0, -40], [0, 4, 0, -40], [0, 0, 4, -40], [0, 0, 0, 1]])


def _two_regions_bold(tmp_path, n_vol=400, noise_sd=0.5, seed=0):
    """4 mm BOLD: sphere A and B = shared signal + their own noise (constant within each sphere),
    sphere C constant, elsewhere independent voxel noise. Truth r(A,B) = 1 / (1 + noise_sd^2)."""
    rng = np.random.default_rng(seed)
    shape = (21, 21, 21)
    data = 100 + rng.normal(0, 1, (*shape, n_vol)).astype(np.float32)
    ijk = np.indices(shape).reshape(3, -1).T
    xyz = nb.affines.apply_affine(AFFINE_4MM, ijk).reshape(*shape, 3)
    coords = np.array([[-20.0, 0, 0], [20.0, 0, 0], [0, 20.0, 0], [200.0, 200.0, 200.0]])  # last: off the grid
    shared = rng.normal(0, 1, n_vol)
    for k, own in enumerate([rng.normal(0, noise_sd, n_vol), rng.normal(0, noise_sd, n_vol), None]):
        inside = np.linalg.norm(xyz - coords[k], axis=-1) <= 6.0
        data[inside] = 100 + (shared + own if own is not None else 0.0)
    bold = tmp_path / "bold.nii.gz"
    nb.save(nb.Nifti1Image(data, AFFINE_4MM), str(bold))
    mask = tmp_path / "mask.nii.gz"
    nb.save(nb.Nifti1Image(np.ones(shape, np.uint8), AFFINE_4MM), str(mask))
    return bold, mask, coords, 1.0 / (1.0 + noise_sd**2)


def test_shared_signal_correlation_and_constant_region_na(tmp_path):
    bold, mask, coords, truth = _two_regions_bold(tmp_path)
    ts = roi_timeseries(bold, mask, coords, radius_mm=6.0, tr=2.0)
    assert ts.shape == (400, 4)
    assert np.isfinite(ts[:, :2]).all()
    assert np.isnan(ts[:, 2]).all() and np.isnan(ts[:, 3]).all()  # constant region, sphere off the grid
    r = pearson_matrix(ts)
    print(f"r(A,B) = {r[0, 1]:.4f}, truth {truth:.4f}")
    assert abs(r[0, 1] - truth) < 0.05
    assert r[0, 1] == r[1, 0]
    assert np.isnan(np.diag(r)).all() and np.isnan(r[2]).all() and np.isnan(r[:, 3]).all()
    names = [f"roi-{i:03d}" for i in range(1, 5)]
    table = pd.read_csv(write_tsv(r, names, tmp_path / "relmat.tsv"), sep="\t", keep_default_na=False)
    assert list(table.columns) == names
    assert table.iloc[0, 2] == "n/a" and table.iloc[0, 0] == "n/a" and float(table.iloc[0, 1]) == pytest.approx(r[0, 1], abs=1e-5)
    assert not np.isinf(r[np.isfinite(r)]).any() and (np.abs(r[np.isfinite(r)]) < 1).all()


def test_motion_confound_is_regressed(tmp_path):
    """A motion-like confound added to both regions inflates r; regressing it restores the truth."""
    bold, mask, coords, truth = _two_regions_bold(tmp_path, seed=1)
    img = nb.load(str(bold))
    data = np.asarray(img.dataobj).copy()
    motion = np.random.default_rng(5).normal(0, 3, data.shape[3])
    data += motion  # every voxel
    nb.save(nb.Nifti1Image(data, img.affine), str(bold))
    conf = tmp_path / "confounds.tsv"
    pd.DataFrame({"trans_x": motion, "framewise_displacement": [np.nan, *np.ones(len(motion) - 1)]}).to_csv(
        conf, sep="\t", index=False, na_rep="n/a")
    raw = pearson_matrix(roi_timeseries(bold, mask, coords[:2], radius_mm=6.0))
    clean = pearson_matrix(roi_timeseries(bold, mask, coords[:2], radius_mm=6.0, confounds_file=conf, tr=2.0))
    assert raw[0, 1] > truth + 0.1
    assert abs(clean[0, 1] - truth) < 0.05


@pytest.mark.parametrize("n_vol", [10, 16, 25])
def test_bold_tensor_frame_policy_and_standardisation(tmp_path, n_vol):
    rng = np.random.default_rng(n_vol)
    shape = (12, 14, 10)
    data = np.zeros((*shape, n_vol), np.float32)
    brain = np.zeros(shape, bool)
    brain[3:9, 3:11, 2:8] = True
    data[brain] = 500 + rng.normal(0, 20, (brain.sum(), n_vol))
    bold, mask = tmp_path / "bold.nii.gz", tmp_path / "mask.nii.gz"
    nb.save(nb.Nifti1Image(data, AFFINE_4MM), str(bold))
    nb.save(nb.Nifti1Image(brain.astype(np.uint8), AFFINE_4MM), str(mask))
    meta = make_bold_tensor(bold, tmp_path / "t.npy", frames=16, mask_file=mask, shape=shape)
    tensor = np.load(tmp_path / "t.npy", mmap_mode="r")
    keep = min(n_vol, 16)
    assert tensor.shape == (16, *shape) == tuple(meta["shape"]) and tensor.dtype == np.float32
    assert meta["frame_mask"] == [i < keep for i in range(16)] and meta["n_volumes"] == n_vol
    real = np.asarray(tensor[:keep])[:, brain]
    assert abs(real.mean()) < 1e-4 and abs(real.std() - 1) < 1e-3
    assert (np.asarray(tensor[keep:]) == 0).all() and (np.asarray(tensor)[:, ~brain] == 0).all()
    kept = data[brain][:, :keep]  # the first frames, standardised over themselves
    np.testing.assert_allclose(real, ((kept - kept.mean()) / kept.std()).T, atol=1e-4)
    with pytest.raises(ValueError, match="preset"):
        make_bold_tensor(bold, tmp_path / "u.npy", frames=16, shape=(10, 10, 10))


def test_gm_block_average_and_regional_volumes(tmp_path):
    gm = np.zeros((8, 6, 4), np.float32)
    gm[:4] = 0.5
    gm[4:, :, :2] = 1.0
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-10, -20, -30]
    nb.save(nb.Nifti1Image(gm, affine), str(tmp_path / "gm.nii.gz"))
    out = nb.load(str(block_average(tmp_path / "gm.nii.gz", tmp_path / "gm4.nii.gz")))
    assert out.shape == (4, 3, 2)
    np.testing.assert_allclose(np.asarray(out.dataobj)[:2], 0.5)
    np.testing.assert_allclose(np.asarray(out.dataobj)[2:, :, 0], 1.0)
    np.testing.assert_allclose(np.diag(out.affine)[:3], [4, 4, 4])
    np.testing.assert_allclose(out.affine[:3, 3], [-9, -19, -29])  # centre of the first 2x2x2 block
    labels = np.zeros(gm.shape, np.int16)
    labels[:4] = 1
    labels[4:] = 2
    nb.save(nb.Nifti1Image(labels, affine), str(tmp_path / "labels.nii.gz"))
    table = pd.DataFrame({"index": [1, 2, 3], "name": ["a", "b", "c"]})
    vol = regional_volumes(tmp_path / "gm.nii.gz", tmp_path / "labels.nii.gz", table)
    # region 1: 96 voxels x 0.5 x 8 mm^3 = 384 mm^3; region 2: 48 voxels x 1 x 8 mm^3 = 384 mm^3; 3 absent
    np.testing.assert_allclose(vol["volume_ml"][:2], [0.384, 0.384])
    assert np.isnan(vol["volume_ml"][2])


def test_fmriprep_collection_names_what_is_missing(tmp_path):
    from bidsad.bids import BoldRun, ParticipantInputs
    from bidsad.fmriprep_inputs import collect_fmriprep, dummy_scans

    root = tmp_path / "fmriprep"
    anat = root / "sub-01" / "anat"
    anat.mkdir(parents=True)
    (root / "dataset_description.json").write_text('{"Name": "fMRIPrep", "BIDSVersion": "1.4.0", "DatasetType": "derivative"}')
    img = nb.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4))
    for name in ["sub-01_desc-preproc_T1w", "sub-01_desc-brain_mask", "sub-01_label-CSF_probseg",
                 "sub-01_label-GM_probseg", "sub-01_label-WM_probseg"]:
        nb.save(img, str(anat / f"{name}.nii.gz"))
    part = ParticipantInputs(label="01", t1w=tmp_path / "sub-01_T1w.nii.gz")
    assert collect_fmriprep(root, part, tmp_path) is None
    assert len(part.errors) == 1 and "from-T1w_to-{MNI152NLin2009cAsym,MNI152NLin6Asym}" in part.errors[0]
    for name in ["from-T1w_to-MNI152NLin6Asym", "from-MNI152NLin6Asym_to-T1w"]:
        (anat / f"sub-01_{name}_mode-image_xfm.h5").write_bytes(b"")
    raw = tmp_path / "sub-01" / "func" / "sub-01_task-rest_run-2_bold.nii.gz"
    part = ParticipantInputs(label="01", t1w=tmp_path / "sub-01_T1w.nii.gz", bold=[BoldRun(raw, 2.0, 10)])
    found = collect_fmriprep(root, part, tmp_path)
    assert found.space == "MNI152NLin6Asym" and found.t1w_preproc.name == "sub-01_desc-preproc_T1w.nii.gz"
    assert [p.name for p in found.probseg] == [f"sub-01_label-{t}_probseg.nii.gz" for t in ("CSF", "GM", "WM")]
    assert found.bold == [] and len(part.errors) == 3  # BOLD, its mask, confounds, each named
    assert "sub-01_task-rest_run-2_desc-confounds_timeseries.tsv" in " ".join(part.errors)
    conf = tmp_path / "c.tsv"
    pd.DataFrame({"a": range(5), "non_steady_state_outlier00": [1, 0, 0, 0, 0],
                  "non_steady_state_outlier01": [0, 1, 0, 0, 0]}).to_csv(conf, sep="\t", index=False)
    assert dummy_scans(conf) == 2


def test_cohort_refuses_mixed_parameters_naming_participant_and_parameter(tmp_path):
    import json

    from bidsad.bids import InputError
    from bidsad.learn.cohort import build_cohort

    bids, out = tmp_path / "bids", tmp_path / "out"
    bids.mkdir()
    (bids / "participants.tsv").write_text("participant_id\tdiagnosis\nsub-01\tCN\nsub-02\tAD\nsub-03\tMCI\n")
    for label, frames in (("01", 16), ("02", 16), ("03", 20)):
        folder = out / f"sub-{label}" / "features"
        folder.mkdir(parents=True)
        for suffix, meta in (("T1w", {"frames": None}), ("bold", {"frames": frames})):
            np.save(folder / f"sub-{label}_res-small_desc-model_{suffix}.npy", np.zeros(2, np.float32))
            meta = {"preset": "small", "shape": [2], "dtype": "float32", "ParametersHash": f"{suffix}{meta['frames']}", **meta}
            (folder / f"sub-{label}_res-small_desc-model_{suffix}.json").write_text(json.dumps(meta))
    with pytest.raises(InputError) as err:
        build_cohort(out, bids, "small")
    text = str(err.value)
    assert "sub-03: sub-03/features/sub-03_res-small_desc-model_bold.npy: frames = 20 (the others: 16)" in text
    assert "sub-01" not in text and "sub-02" not in text


def test_prepare_fmriprep_bold_drops_flagged_volumes(tmp_path):
    from bidsad.derivatives import bold_model_grid
    from bidsad.interfaces.fmriprep_bold import prepare_fmriprep_bold

    rng = np.random.default_rng(0)
    data = rng.normal(100, 1, (20, 24, 20, 9)).astype(np.float32)
    affine = np.diag([9.0, 9.0, 9.0, 1.0])
    affine[:3, 3] = [-90, -126, -72]
    nb.save(nb.Nifti1Image(data, affine), str(tmp_path / "bold.nii.gz"))
    nb.save(nb.Nifti1Image(np.ones((20, 24, 20), np.uint8), affine), str(tmp_path / "mask.nii.gz"))
    pd.DataFrame({"trans_x": range(9), "non_steady_state_outlier00": [1] + [0] * 8}).to_csv(
        tmp_path / "conf.tsv", sep="\t", index=False)
    out = prepare_fmriprep_bold(tmp_path / "bold.nii.gz", tmp_path / "mask.nii.gz", tmp_path / "conf.tsv", tmp_path,
                                bold_shape=(12, 14, 10))
    assert out["dummy_scans"] == 1
    np.testing.assert_array_equal(nb.load(out["bold_std"]).get_fdata(), data[..., 1:])
    assert pd.read_csv(out["confounds"], sep="\t")["trans_x"].tolist() == list(range(1, 9))
    model = nb.load(out["bold_model"])
    assert model.shape == (12, 14, 10, 8) and np.allclose(model.affine, bold_model_grid((12, 14, 10)))
