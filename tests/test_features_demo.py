"""Participant features on the bundled demo data (reusing the session-wide ``demo_run``), fMRIPrep
derivatives as input, and the group level's refusal of mismatched tensors."""

from __future__ import annotations

import json
import shutil

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from bidsad.atlases import PARCELLATION, parcellation
from bidsad.derivatives import image_content_hash

from .conftest import DEMO, run_bidsad

pytestmark = pytest.mark.integration
LABELS = ["01", "02", "03", "04", "05", "06"]


def _tensor_stats(path):
    meta = json.loads(path.with_suffix(".json").read_text())
    array = np.load(path, mmap_mode="r")
    data = np.asarray(array, dtype=np.float64)
    if meta["Modality"] == "bold":
        data = data[np.asarray(meta["frame_mask"], bool)]
        inside = np.broadcast_to((data != 0).any(axis=0), data.shape)  # mask voxels: 0 outside, never all 0 inside
    else:
        inside = data != 0
    return meta, array, data[inside]


def test_every_demo_tensor_matches_its_sidecar_and_is_standardised(demo_run):
    tensors = sorted(demo_run["out"].glob("sub-*/features/*_desc-model_*.npy"))
    assert {p.name.split("_")[0] for p in tensors} == {f"sub-{x}" for x in LABELS}
    gm = [p for p in tensors if p.name.endswith("_label-GM_desc-model_probseg.npy")]
    assert len(gm) == len(LABELS)
    for path in gm:  # modulated grey matter: not standardised, its integral is the native GM volume
        meta = json.loads(path.with_suffix(".json").read_text())
        array = np.load(path)
        t1w = json.loads(path.with_name(path.name.replace("_label-GM_desc-model_probseg", "_desc-model_T1w"))
                         .with_suffix(".json").read_text())
        integral = float(array.sum(dtype=np.float64)) * np.prod(meta["voxel_size_mm"]) / 1000
        print(f"{path.name}: native GM {meta['GreyMatterVolume_ml']:.1f} ml, tensor integral {integral:.1f} ml")
        assert list(array.shape) == meta["shape"] == t1w["shape"] and meta["grid_affine"] == t1w["grid_affine"]
        assert array.dtype == np.float32 and np.isfinite(array).all() and array.min() >= 0
        assert integral == pytest.approx(meta["GreyMatterVolume_ml"], rel=0.03)
        assert meta["Modality"] == "GM" and "SyN" in meta["Normalisation"] and meta["ParametersHash"]
    for path in sorted(set(tensors) - set(gm)):
        meta, array, inside = _tensor_stats(path)
        assert list(array.shape) == meta["shape"] and str(array.dtype) == meta["dtype"] == "float32"
        assert np.isfinite(array).all()
        print(f"{path.name}: shape {array.shape}, brain mean {inside.mean():+.2e}, std {inside.std():.4f}, "
              f"{inside.size} voxels")
        assert abs(inside.mean()) < 1e-3 and abs(inside.std() - 1) < 1e-3
        assert meta["ParametersHash"] and meta["bidsad_version"] and meta["grid_affine"]
        if meta["Modality"] == "T1w":  # the duplicate-scan check's key: the raw T1w's voxel content
            source = DEMO / meta["Sources"][0].removeprefix("bids:raw:")
            assert meta["SourceContentHash"] == image_content_hash(source)


def test_demo_grey_matter_features(demo_run):
    out = demo_run["out"]
    _, table = parcellation()
    for label in LABELS:
        gm4 = nb.load(str(out / f"sub-{label}/anat/sub-{label}_space-MNI152NLin2009aSym_res-4_label-GM_probseg.nii.gz"))
        assert gm4.shape == (49, 58, 47) and np.allclose(np.diag(gm4.affine)[:3], 4)
        gm = np.asarray(gm4.dataobj)
        assert np.isfinite(gm).all() and gm.min() >= -1e-3 and gm.max() <= 1.001
        morph = out / f"sub-{label}/anat/sub-{label}_atlas-{PARCELLATION}_desc-gm_morph.tsv"
        volumes = pd.read_csv(morph, sep="\t")
        assert list(volumes.columns) == ["index", "name", "volume_ml", "fraction_of_tiv"] and len(volumes) == len(table)
        total = volumes["volume_ml"].sum()
        _check_atrophy_features(out / f"sub-{label}/anat", label, volumes)
        sidecar = json.loads(morph.with_suffix(".json").read_text())
        assert sidecar["Atlas"] == PARCELLATION and "ICBM" in sidecar["License"]
        # the regions cover most cortical and deep grey matter (template GM > 0.3): 200-1000 ml
        print(f"sub-{label}: regional GM total {total:.0f} ml, smallest region {volumes.volume_ml.min():.2f} ml")
        assert 200 < total < 1000 and (volumes["volume_ml"] > 0).all()
    ignore = (out / ".bidsignore").read_text().split()
    assert "*_morph.tsv" in ignore and "*_relmat.tsv" in ignore


def _check_atrophy_features(anat, label, regional):
    """Modulated GM keeps the native GM volume; TIV is the sum of the tissues; MTL volumes are plausible."""
    native = nb.load(str(anat / f"sub-{label}_label-GM_probseg.nii.gz"))
    native_ml = np.asarray(native.dataobj, np.float64).sum() * abs(np.linalg.det(native.affine[:3, :3])) / 1000
    stem = f"sub-{label}_space-MNI152NLin2009aSym_res-%s_label-GM_desc-modulated_probseg"
    for res in ("2", "4"):
        img = nb.load(str(anat / f"{stem % res}.nii.gz"))
        data = np.asarray(img.dataobj, np.float64)
        integral = data.sum() * abs(np.linalg.det(img.affine[:3, :3])) / 1000
        print(f"sub-{label}: native GM {native_ml:.1f} ml, modulated {res} mm integral {integral:.1f} ml")
        assert np.allclose(np.diag(img.affine)[:3], int(res)) and data.min() >= 0
        assert integral == pytest.approx(native_ml, rel=0.03)
        assert "Jacobian" in json.loads((anat / f"{stem % res}.json").read_text())
    volumes = pd.read_csv(anat / f"sub-{label}_desc-volumes_morph.tsv", sep="\t", index_col="name")
    ml = volumes["volume_ml"]
    print(f"sub-{label}: TIV {ml['TIV']:.0f} ml (CSF {ml['CSF']:.0f}, GM {ml['GM']:.0f}, WM {ml['WM']:.0f}); "
          + ", ".join(f"{n} {ml[n]:.2f} ({volumes.region_ml[n]:.2f})" for n in ml.index[4:]))
    assert list(ml.index[:4]) == ["TIV", "CSF", "GM", "WM"] and len(ml) == 10
    assert 900 < ml["TIV"] < 2000 and ml["TIV"] == pytest.approx(ml[["CSF", "GM", "WM"]].sum(), rel=1e-5)
    assert ml["GM"] == pytest.approx(native_ml, rel=1e-3)
    np.testing.assert_allclose(volumes["fraction_of_tiv"], ml / ml["TIV"], rtol=1e-4)
    np.testing.assert_allclose(regional["fraction_of_tiv"], regional["volume_ml"] / ml["TIV"], rtol=1e-3)
    # grey matter inside approximate regions (sub-01 1.7-1.8 ml per hippocampus; sub-04, whose Atropos
    # segmentation calls half its brain CSF, 0.7-1.0 ml); region_ml: the whole warped region (2.4-2.9 ml;
    # sub-06, a smaller head (TIV 1263 ml), 1.89 / 2.16 ml: the regions are approximate, see docs/outputs.md)
    for side in ("left", "right"):
        assert 0.5 < ml[f"hippocampus_{side}"] < 4.0 and 1.5 < volumes.region_ml[f"hippocampus_{side}"] < 5.0
        for name in ("amygdala", "entorhinal"):
            assert 0.1 < ml[f"{name}_{side}"] < 2.0 and ml[f"{name}_{side}"] <= volumes.region_ml[f"{name}_{side}"]


def _fmriprep_from_demo(demo_out, root):
    """An fMRIPrep-like derivatives folder for sub-01 with fMRIPrep's file names, built from our own
    outputs: native T1w, mask, tissue maps, transforms, the 3 mm MNI BOLD, its mask and confounds, with the
    template renamed to MNI152NLin2009cAsym."""
    fmriprep = root / "fmriprep"
    (fmriprep / "sub-01" / "anat").mkdir(parents=True)
    (fmriprep / "sub-01" / "func").mkdir(parents=True)
    (fmriprep / "dataset_description.json").write_text(json.dumps(
        {"Name": "fMRIPrep - fMRI PREProcessing workflow", "BIDSVersion": "1.4.0", "DatasetType": "derivative",
         "GeneratedBy": [{"Name": "fMRIPrep", "Version": "23.2.0"}]}))
    ours = demo_out / "sub-01"
    names = ["anat/sub-01_desc-preproc_T1w.nii.gz", "anat/sub-01_desc-brain_mask.nii.gz",
             "anat/sub-01_from-T1w_to-MNI152NLin2009aSym_mode-image_xfm.h5",
             "anat/sub-01_from-MNI152NLin2009aSym_to-T1w_mode-image_xfm.h5",
             *[f"anat/sub-01_label-{t}_probseg.nii.gz" for t in ("CSF", "GM", "WM")],
             "func/sub-01_task-rest_space-MNI152NLin2009aSym_res-3_desc-preproc_bold.nii.gz",
             "func/sub-01_task-rest_space-MNI152NLin2009aSym_res-3_desc-brain_mask.nii.gz",
             "func/sub-01_task-rest_desc-confounds_timeseries.tsv"]
    for name in names:
        shutil.copyfile(ours / name, fmriprep / "sub-01" / name.replace("MNI152NLin2009aSym", "MNI152NLin2009cAsym"))
    return fmriprep


def test_fmriprep_derivatives_give_the_same_tensors(demo_run, tmp_path):
    """fMRIPrep layout built from our own outputs -> the same MRI tensor, GM features and ROI signals, and
    a BOLD tensor close to ours (ours: one interpolation from the original run; from fMRIPrep's 3 mm MNI
    run: a second one onto the model grid)."""
    fmriprep = _fmriprep_from_demo(demo_run["out"], tmp_path)
    out = tmp_path / "out"
    run_bidsad(DEMO, out, "participant", "--preset", "small", "--participant-label", "01", "-w", tmp_path / "work",
               "--nprocs", "2", "--derivatives", f"fmriprep={fmriprep}", check_rc=0)
    ours, theirs = demo_run["out"] / "sub-01", out / "sub-01"
    name = "features/sub-01_res-small_desc-model_T1w.npy"
    a, b = np.load(ours / name), np.load(theirs / name)
    print(f"MRI tensor, fMRIPrep layout vs own: max |diff| {np.abs(a - b).max():.2e}")
    np.testing.assert_allclose(b, a, atol=1e-3)
    meta = json.loads((theirs / name).with_suffix(".json").read_text())
    assert meta["PreprocessingSource"] == "fmriprep" and meta["SourceSpace"] == "MNI152NLin2009cAsym"
    assert meta["ParametersHash"] == json.loads((ours / name).with_suffix(".json").read_text())["ParametersHash"]
    assert meta["SourceContentHash"] == json.loads((ours / name).with_suffix(".json").read_text())["SourceContentHash"]
    for gm in ("anat/sub-01_space-MNI152NLin2009aSym_res-4_label-GM_probseg.nii.gz",
               "anat/sub-01_space-MNI152NLin2009aSym_res-4_label-GM_desc-modulated_probseg.nii.gz"):
        np.testing.assert_allclose(nb.load(str(theirs / gm)).get_fdata(), nb.load(str(ours / gm)).get_fdata(), atol=1e-4)
    name = "features/sub-01_res-small_label-GM_desc-model_probseg.npy"
    np.testing.assert_allclose(np.load(theirs / name), np.load(ours / name), atol=1e-4)
    assert "fMRIPrep" in json.loads((theirs / name).with_suffix(".json").read_text())["Normalisation"]
    volumes = "anat/sub-01_desc-volumes_morph.tsv"
    np.testing.assert_allclose(pd.read_csv(theirs / volumes, sep="\t").volume_ml,
                               pd.read_csv(ours / volumes, sep="\t").volume_ml, rtol=1e-4)
    morph = f"anat/sub-01_atlas-{PARCELLATION}_desc-gm_morph.tsv"
    np.testing.assert_allclose(pd.read_csv(theirs / morph, sep="\t").volume_ml,
                               pd.read_csv(ours / morph, sep="\t").volume_ml, rtol=1e-4)
    # BOLD tensor: same shape, frames and mask handling; values close (two interpolations vs one)
    bold = "features/sub-01_task-rest_res-small_desc-model_bold.npy"
    meta, array, inside = _tensor_stats(theirs / bold)
    own_meta, own, _ = _tensor_stats(ours / bold)
    assert array.shape == own.shape and meta["frame_mask"] == own_meta["frame_mask"]
    assert meta["n_volumes"] == own_meta["n_volumes"] and meta["grid_affine"] == own_meta["grid_affine"]
    assert abs(inside.mean()) < 1e-3 and abs(inside.std() - 1) < 1e-3
    both = (np.asarray(array) != 0) & (np.asarray(own) != 0)
    r = np.corrcoef(np.asarray(array)[both], np.asarray(own)[both])[0, 1]
    rms = float(np.sqrt(np.mean((np.asarray(array)[both] - np.asarray(own)[both]) ** 2)))
    print(f"BOLD tensor, fMRIPrep layout vs own: correlation {r:.4f}, RMS difference {rms:.3f} (z units), "
          f"mask overlap {both.sum() / max((np.asarray(own) != 0).sum(), 1):.3f}")
    assert r > 0.95 and rms < 0.35
    # ROI time series and connectivity come from the same MNI run and confounds: equal
    stem = "func/sub-01_task-rest_space-MNI152NLin2009aSym_atlas-power2011"
    for suffix in ("_timeseries.tsv", "_stat-pearsoncorrelation_relmat.tsv"):
        mine, fp = (pd.read_csv(d / f"{stem}{suffix}", sep="\t") for d in (ours, theirs))
        assert list(mine.columns) == list(fp.columns) and mine.shape == fp.shape
        np.testing.assert_allclose(fp.to_numpy(float), mine.to_numpy(float), atol=1e-4, equal_nan=True)
    rel = pd.read_csv(theirs / f"{stem}_stat-pearsoncorrelation_relmat.tsv", sep="\t").to_numpy(float)
    assert rel.shape == (264, 264) and np.isnan(np.diag(rel)).all()
    assert json.loads((theirs / f"{stem}_timeseries.json").read_text())["PreprocessingSource"] == "fmriprep"


def test_demo_roi_connectivity(demo_run):
    """Every demo BOLD run has 264 ROI columns, n/a exactly where a region is unusable, and r in (-1, 1)."""
    for ts_file in sorted(demo_run["out"].glob("sub-*/func/*_atlas-power2011_timeseries.tsv")):
        ts = pd.read_csv(ts_file, sep="\t")
        rel = pd.read_csv(str(ts_file).replace("_timeseries.tsv", "_stat-pearsoncorrelation_relmat.tsv"), sep="\t")
        meta = json.loads(ts_file.with_suffix(".json").read_text())
        valid = ts.notna().all().to_numpy()
        r = rel.to_numpy(float)
        print(f"{ts_file.name}: {ts.shape[0]} volumes, {valid.sum()}/264 regions usable")
        assert ts.shape[1] == 264 and meta["Atlas"] == "power2011" and meta["RegionsValid"] == valid.sum()
        assert (ts.isna().all() | ts.notna().all()).all()  # n/a is always a whole column
        off = ~np.eye(264, dtype=bool)
        assert np.isfinite(r[np.ix_(valid, valid)][off[np.ix_(valid, valid)]]).all()
        assert np.isnan(r[~valid]).all() and np.isnan(np.diag(r)).all()
        assert (np.abs(r[np.isfinite(r)]) < 1).all()


def test_group_level_refuses_a_changed_parameter(demo_run, tmp_path):
    """One participant's MRI tensor made with another grid: the group level stops and names it."""
    out = tmp_path / "out"
    shutil.copytree(demo_run["out"], out, ignore=shutil.ignore_patterns("group", "*.html", "figures"))
    sidecar = out / "sub-04/features/sub-04_res-small_desc-model_T1w.json"
    meta = json.loads(sidecar.read_text())
    meta["voxel_size_mm"] = [2.0, 2.0, 2.0]
    meta["ParametersHash"] = "0123456789abcdef"
    sidecar.write_text(json.dumps(meta))
    proc = run_bidsad(DEMO, out, "group", "--preset", "small", "--epochs", "1", "-w", tmp_path / "work", check_rc=2)
    print(proc.stderr)
    assert "sub-04" in proc.stderr and "voxel_size_mm" in proc.stderr and "[2.0, 2.0, 2.0]" in proc.stderr
    for other in ("sub-01", "sub-02", "sub-03", "sub-05", "sub-06"):
        assert other not in proc.stderr
    assert "Traceback" not in proc.stderr and not (out / "group" / "metrics.json").exists()
