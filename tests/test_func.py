"""Functional workflow: motion conventions and recovery, coregistration, confounds, denoising, demo outputs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from bidsad.interfaces import confounds, motion
from tests.conftest import DEMO

BOLD_RUNS = sorted(DEMO.glob("sub-*/func/*_task-rest_bold.nii.gz"))


def _conformed(path: Path, tmp_path: Path) -> nb.Nifti1Image:
    from bidsad.interfaces.images import conform_image

    out = tmp_path / (path.name.split(".")[0] + "_ras.nii.gz")
    conform_image(path, out, 4, "BOLD", path.name)
    return nb.load(out)


def _move(volume: np.ndarray, affine: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``vol(q) = ref(M^-1 q)``: the reference volume with the head moved by ``matrix`` (cubic spline)."""
    from scipy import ndimage

    ijk = np.indices(volume.shape).reshape(3, -1).astype(float)
    world = affine[:3, :3] @ ijk + affine[:3, 3:4]
    src = np.linalg.inv(affine) @ np.linalg.inv(matrix) @ np.vstack([world, np.ones(world.shape[1])])
    return ndimage.map_coordinates(volume, src[:3], order=3, cval=0.0).reshape(volume.shape)


def test_rigid_parameters_round_trip():
    rng = np.random.default_rng(1)
    for _ in range(20):
        params = [*rng.uniform(-5, 5, 3), *np.deg2rad(rng.uniform(-10, 10, 3))]
        centre = rng.uniform(-50, 50, 3)
        assert np.allclose(motion.rigid_params(motion.rigid_matrix(params, centre), centre), params, atol=1e-10)


def test_framewise_displacement_power():
    params = np.zeros((3, 6))
    params[1] = [1.0, 0, 0, 0, 0, 0]
    params[2] = [1.0, -1.0, 0, 0.01, 0, 0]
    fd = motion.framewise_displacement(params)
    assert np.isnan(fd[0])
    assert fd[1:] == pytest.approx([1.0, 1.0 + 50 * 0.01])


def test_nonsteady_volumes_found():
    rng = np.random.default_rng(0)
    data = 100 + rng.normal(0, 1, (8, 8, 8, 30)).astype(np.float32)
    data[..., :3] *= np.array([1.6, 1.3, 1.15], np.float32)
    assert motion.nonsteady_volumes(data) == 3
    assert motion.nonsteady_volumes(data[..., 3:]) == 0


@pytest.fixture(scope="module")
def synthetic_motion(tmp_path_factory):
    """40 volumes of a real BOLD volume (sub-03, 64x64x34, 3x3x3.5 mm) moved by a known random walk
    (translations within 2 mm, rotations within 2 degrees), the motion recovered and its CPU seconds."""
    tmp = tmp_path_factory.mktemp("motion")
    img = _conformed(DEMO / "sub-03/func/sub-03_task-rest_bold.nii.gz", tmp)
    ref = np.asarray(img.dataobj, dtype=np.float32)[..., 10]
    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.normal(0, 0.4, (40, 6)), axis=0)
    walk[0] = 0
    walk = np.clip(walk, -2, 2)
    truth = np.column_stack([walk[:, :3], np.deg2rad(walk[:, 3:])])
    centre = motion.fov_centre(img)
    series = np.stack([_move(ref, img.affine, motion.rigid_matrix(p, centre)) for p in truth], axis=-1)
    nb.save(nb.Nifti1Image(series.astype(np.float32), img.affine), tmp / "bold.nii.gz")
    nb.save(nb.Nifti1Image(ref, img.affine), tmp / "ref.nii.gz")
    cpu = time.process_time()
    matrices, params = motion.estimate_motion(tmp / "bold.nii.gz", tmp / "ref.nii.gz")
    cpu = time.process_time() - cpu
    mask = ref > 0.1 * np.percentile(ref, 99)
    return {"truth": truth, "matrices": matrices, "params": params, "centre": centre, "mask": mask,
            "affine": img.affine, "cpu_per_volume": cpu / len(truth)}


def test_synthetic_motion_parameters(synthetic_motion):
    """Estimated parameters match the truth in fMRIPrep's convention (mm, radians).

    The realignment is deterministic; measured: RMS error per parameter 0.015-0.035 mm and
    0.011-0.027 degrees, largest error 0.075, about 0.05 s of CPU per volume (issue 19's targets: RMS
    <= 0.05 mm / 0.05 degrees, <= 0.2 s per volume)."""
    truth, params = synthetic_motion["truth"], synthetic_motion["params"]
    assert np.abs(truth[:, :3]).max() > 1.0 and np.rad2deg(np.abs(truth[:, 3:])).max() > 1.0  # real motion
    error = params - truth
    error[:, 3:] = np.rad2deg(error[:, 3:])
    rms = np.sqrt((error**2).mean(axis=0))
    print(f"RMS error per parameter (mm, deg): {np.round(rms, 3).tolist()}; largest: translation "
          f"{np.abs(error[:, :3]).max():.3f} mm, rotation {np.abs(error[:, 3:]).max():.3f} deg; "
          f"{synthetic_motion['cpu_per_volume']:.3f} s CPU per volume")
    assert rms.max() <= 0.05
    assert np.abs(error).max() <= 0.1
    assert synthetic_motion["cpu_per_volume"] <= 0.2


def test_synthetic_motion_residual_and_fd(synthetic_motion):
    s = synthetic_motion
    ijk = np.argwhere(s["mask"]).T
    points = s["affine"] @ np.vstack([ijk, np.ones(ijk.shape[1])])
    residual = [np.linalg.norm((m - motion.rigid_matrix(p, s["centre"])) @ points, axis=0).mean()
                for m, p in zip(s["matrices"], s["truth"])]
    fd, fd_true = motion.framewise_displacement(s["params"]), motion.framewise_displacement(s["truth"])
    r = np.corrcoef(fd[1:], fd_true[1:])[0, 1]
    print(f"mean residual displacement {np.mean(residual):.3f} mm; FD correlation {r:.3f}")
    assert np.mean(residual) <= 0.2
    assert r >= 0.9


def test_dvars_of_known_series():
    rng = np.random.default_rng(0)
    data = 1000 + rng.normal(0, 10, (500, 50))
    data[:, 25] += 50  # a spike: two large backward differences
    values, std = confounds.dvars(data)
    assert np.isnan(values[0]) and np.isnan(std[0])
    assert np.nanmedian(values) == pytest.approx(np.sqrt(2) * 10, rel=0.1)
    assert np.nanmedian(std) == pytest.approx(1.0, rel=0.1)
    assert values[25] > 3 * np.nanmedian(values) and values[26] > 3 * np.nanmedian(values)


def test_clean_signals_basic_and_too_short():
    rng = np.random.default_rng(0)
    n, tr = 150, 2.0
    table = pd.DataFrame(rng.normal(0, 1, (n + 2, len(confounds.DENOISE_REGRESSORS))),
                         columns=list(confounds.DENOISE_REGRESSORS))
    noise = table.iloc[2:].to_numpy() @ rng.normal(0, 1, (len(confounds.DENOISE_REGRESSORS), 3))
    signals = 5 + noise + 0.01 * rng.normal(0, 1, (n, 3))
    cleaned, applied, _ = confounds.clean_signals(signals, table, repetition_time=tr, dummy_scans=2)
    assert applied
    assert np.abs(cleaned).std() < 0.05 * noise.std()  # the regressors explained the signals
    same, applied, why = confounds.clean_signals(signals[:20], table.iloc[:22], repetition_time=tr, dummy_scans=2)
    assert not applied and "too short" in why and np.array_equal(same, signals[:20].astype(np.float32))
    with pytest.raises(ValueError, match="rows"):
        confounds.clean_signals(signals, table.iloc[:10], repetition_time=tr)


def test_denoise_option_parsed(tmp_path):
    from bidsad.cli.parser import parse_args

    config = parse_args([str(DEMO), str(tmp_path / "out"), "participant", "--denoise", "basic"])
    assert config.preprocessing.denoise == "basic"
    assert parse_args([str(DEMO), str(tmp_path / "out"), "participant"]).preprocessing.denoise == "none"


def _coreg_error(run: Path, out: Path, tmp: Path) -> float:
    """Mean point error (mm, over the T1w brain mask) of the coregistration of a rigidly perturbed
    (5 mm, 5 degrees) BOLD reference against the unperturbed coregistration composed with the perturbation."""
    from nilearn.masking import compute_epi_mask

    from bidsad.interfaces.registration import coregister_bold

    label = run.name.split("_")[0]
    t1w = out / label / "anat" / f"{label}_desc-preproc_T1w.nii.gz"
    mask = out / label / "anat" / f"{label}_desc-brain_mask.nii.gz"
    img = _conformed(run, tmp)
    data = np.asarray(img.dataobj, dtype=np.float32)
    ref = motion.bold_reference(data, motion.nonsteady_volumes(data))
    ref_mask = np.asarray(compute_epi_mask(nb.Nifti1Image(ref, img.affine)).dataobj).astype(np.uint8)
    centre = motion.fov_centre(img)
    perturb = motion.rigid_matrix([5 / np.sqrt(3)] * 3 + [np.deg2rad(5 / np.sqrt(3))] * 3, centre)
    for name, affine in (("ref", img.affine), ("ref_moved", perturb @ img.affine)):
        nb.save(nb.Nifti1Image(ref, affine), tmp / f"{name}.nii.gz")
        nb.save(nb.Nifti1Image(ref_mask, affine), tmp / f"{name}_mask.nii.gz")
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    plain, _ = coregister_bold(tmp / "ref.nii.gz", tmp / "ref_mask.nii.gz", t1w, mask, tmp / "a")
    moved, _ = coregister_bold(tmp / "ref_moved.nii.gz", tmp / "ref_moved_mask.nii.gz", t1w, mask, tmp / "b")
    mask_img = nb.load(mask)
    ijk = np.argwhere(np.asarray(mask_img.dataobj) > 0).T
    points = mask_img.affine @ np.vstack([ijk, np.ones(ijk.shape[1])])
    expected = perturb @ motion.itk_to_ras(plain)
    return float(np.linalg.norm((motion.itk_to_ras(moved) - expected) @ points, axis=0).mean())


@pytest.mark.integration
@pytest.mark.parametrize("run", BOLD_RUNS, ids=lambda p: p.name.split("_")[0])
def test_coregistration_recovers_perturbation(run, demo_run, tmp_path):
    """Run in a child process with one ITK thread: ITK's multi-threaded Mattes metric sums in a varying order, and
    the error of sub-01 then varied from 0.36 to 2.04 mm between identical runs (0.577 mm every time with one)."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    code = ("import sys; from pathlib import Path; from tests.test_func import _coreg_error; "
            "print(_coreg_error(*map(Path, sys.argv[1:])))")
    env = {**os.environ, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    child = subprocess.run([sys.executable, "-c", code, str(run), str(demo_run["out"]), str(tmp_path)], env=env,
                           cwd=root, capture_output=True, text=True)
    assert child.returncode == 0, child.stderr[-3000:]
    error = float(child.stdout.split()[-1])
    print(f"{run.name}: mean point error {error:.3f} mm")
    assert error <= 1.5


@pytest.mark.integration
def test_every_bold_run_preprocessed(demo_run):
    """All BOLD runs of the demo: MNI BOLD, mask, confounds (finite except documented n/a), reportlets."""
    from nilearn import datasets

    out = demo_run["out"]
    template = np.asarray(datasets.load_mni152_brain_mask(resolution=3).dataobj) > 0
    first_row_na = {c for c in confounds.column_descriptions(0) if "derivative1" in c} | {
        "framewise_displacement", "dvars", "std_dvars"}
    for run in BOLD_RUNS:
        label = run.name.split("_")[0]
        stem = run.name.replace("_bold.nii.gz", "")
        func = out / label / "func"
        bold = nb.load(func / f"{stem}_space-MNI152NLin2009aSym_res-3_desc-preproc_bold.nii.gz")
        mask = nb.load(func / f"{stem}_space-MNI152NLin2009aSym_res-3_desc-brain_mask.nii.gz")
        meta = json.loads((func / f"{stem}_space-MNI152NLin2009aSym_res-3_desc-preproc_bold.json").read_text())
        n_acquired = nb.load(run).shape[3]
        assert bold.shape == (67, 79, 64, n_acquired - meta["NonSteadyStateVolumes"])
        assert bold.get_data_dtype() == np.float32 and mask.get_data_dtype() == np.uint8
        assert meta["RepetitionTime"] == pytest.approx(bold.header.get_zooms()[3])
        in_mask = np.asarray(mask.dataobj) > 0
        dice = 2 * (in_mask & template).sum() / (in_mask.sum() + template.sum())
        print(f"{label}: BOLD mask Dice with the template brain mask {dice:.3f}")
        assert dice >= 0.85
        table = pd.read_csv(func / f"{stem}_desc-confounds_timeseries.tsv", sep="\t", na_values="n/a",
                            keep_default_na=False)
        assert len(table) == n_acquired
        columns = json.loads((func / f"{stem}_desc-confounds_timeseries.json").read_text())
        assert set(table.columns) <= set(columns)
        for column in ("trans_x", "rot_z", "framewise_displacement", "dvars", "std_dvars", "global_signal",
                       "csf", "white_matter", "rot_y_derivative1_power2"):
            assert column in table
        na = table.isna()
        assert not na.iloc[1:].any().any()
        assert set(na.columns[na.iloc[0]]) == first_row_na
        assert np.isfinite(table.iloc[1:].to_numpy(float)).all()
        figures = out / label / "figures"
        for desc in ("carpetplot", "coreg"):
            assert (figures / f"{stem}_desc-{desc}_bold.svg").stat().st_size > 1000
        assert (figures / f"{stem}_space-MNI152NLin2009aSym_res-3_desc-tsnr_bold.svg").is_file()
        tensor = json.loads((out / label / "features" / f"{stem}_res-small_desc-model_bold.json").read_text())
        assert tensor["Denoise"]["Strategy"] == "none" and "NonSteadyStateVolumes" in tensor
        report = (out / f"{label}.html").read_text()
        assert "Carpet plot" in report and "Temporal SNR" in report and "BOLD reference edges" in report
        assert f"{columns['MeanFD']:.3f} mm" in report


def test_denoise_interface_cleans_image_or_warns(tmp_path):
    from bidsad.interfaces.confounds import DenoiseImage

    rng = np.random.default_rng(0)
    n = 150
    table = pd.DataFrame(rng.normal(0, 1, (n, len(confounds.DENOISE_REGRESSORS))),
                         columns=list(confounds.DENOISE_REGRESSORS))
    table.to_csv(tmp_path / "confounds.tsv", sep="\t", index=False, na_rep="n/a")
    noise = np.einsum("tk,xyzk->xyzt", table.to_numpy(), rng.normal(0, 1, (4, 4, 4, table.shape[1])))
    nb.save(nb.Nifti1Image((100 + noise).astype(np.float32), np.eye(4)), tmp_path / "bold.nii.gz")
    result = DenoiseImage(in_file=str(tmp_path / "bold.nii.gz"), confounds=str(tmp_path / "confounds.tsv"),
                          repetition_time=2.0, strategy="basic").run(cwd=str(tmp_path)).outputs
    assert result.record["Applied"] and not result.warnings
    assert np.asarray(nb.load(result.out_file).dataobj).std(axis=3).max() < 0.05 * noise.std(axis=3).mean()
    nb.save(nb.Nifti1Image((100 + noise[..., :30]).astype(np.float32), np.eye(4)), tmp_path / "short.nii.gz")
    table.iloc[:30].to_csv(tmp_path / "short.tsv", sep="\t", index=False)
    result = DenoiseImage(in_file=str(tmp_path / "short.nii.gz"), confounds=str(tmp_path / "short.tsv"),
                          repetition_time=2.0, strategy="basic", display_name="sub-x_bold.nii.gz").run(
                              cwd=str(tmp_path)).outputs
    assert not result.record["Applied"] and "too short" in result.record["Reason"]
    assert result.warnings and result.warnings[0].startswith("sub-x_bold.nii.gz: --denoise cleaning skipped")


def test_resample_series_known_shift_in_nifti_order():
    """Each volume sampled at matrices[t] @ coords: identity gives the volume back, a 2 mm shift along x moves
    it by one 2 mm voxel; the result is in NIfTI (Fortran) order, ready to write without a reordering copy."""
    from bidsad.interfaces.resample import resample_series

    rng = np.random.default_rng(0)
    data = rng.normal(size=(6, 5, 4, 3)).astype(np.float32)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-5, -4, -3]
    ijk = np.indices(data.shape[:3]).reshape(3, -1).astype(float)
    coords = affine[:3, :3] @ ijk + affine[:3, 3:4]
    valid = np.ones(coords.shape[1], bool)
    valid[0] = False  # outside the reference field of view: 0
    shift = np.eye(4)
    shift[0, 3] = 2.0
    matrices = np.stack([np.eye(4), shift, np.eye(4)])
    out = resample_series(data, affine, matrices, coords, valid, data.shape[:3])
    assert out.shape == data.shape and out.dtype == np.float32 and out.flags.f_contiguous
    assert out[0, 0, 0].tolist() == [0, 0, 0]
    assert np.allclose(out[..., 0].ravel()[1:], data[..., 0].ravel()[1:], atol=1e-6)
    assert np.allclose(out[:-1, ..., 1].ravel()[1:], data[1:, ..., 1].ravel()[1:], atol=1e-5)
    assert not out[-1, ..., 1].any()  # sampled beyond the last voxel
