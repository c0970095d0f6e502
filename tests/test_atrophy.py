"""Atrophy features on synthetic images with a known answer: Jacobian modulation, tissue volumes, the
approximate medial-temporal atlas, and the group level's choice of MRI input."""

from __future__ import annotations

import json

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from bidsad.interfaces.morphometry import block_average, jacobian_determinant, modulate_gm, tissue_volumes


def _grid(path, shape, voxel, origin):
    affine = np.diag([voxel, voxel, voxel, 1.0])
    affine[:3, 3] = origin
    nb.save(nb.Nifti1Image(np.zeros(shape, np.float32), affine), str(path))
    return path


def _ball(path, radius_mm, value=1.0):
    """A 1 mm native image: ``value`` inside a ball of ``radius_mm`` around the origin, 0 elsewhere."""
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = -45
    xyz = nb.affines.apply_affine(affine, np.indices((91, 91, 91)).reshape(3, -1).T).reshape(91, 91, 91, 3)
    data = np.where(np.linalg.norm(xyz, axis=-1) <= radius_mm, value, 0.0).astype(np.float32)
    nb.save(nb.Nifti1Image(data, affine), str(path))
    return path


def _scaling(path, factor):
    """An ITK affine that maps template points x to native points factor * x (a native brain ``factor`` larger)."""
    import ants

    tx = ants.create_ants_transform(transform_type="AffineTransform", dimension=3, matrix=np.eye(3) * factor,
                                    offset=(0, 0, 0), center=(0, 0, 0))
    ants.write_transform(tx, str(path))
    return path


def test_jacobian_of_a_pure_scaling_is_its_cube(tmp_path):
    reference = _grid(tmp_path / "ref.nii.gz", (31, 31, 31), 2.0, -30)
    jac = np.asarray(nb.load(str(jacobian_determinant(_scaling(tmp_path / "s.mat", 1.2), reference,
                                                      tmp_path / "jac.nii.gz"))).dataobj)
    inner = jac[2:-2, 2:-2, 2:-2]  # the derivative stencil is one-sided near the border
    print(f"Jacobian of a 1.2 scaling: interior {inner.min():.5f}..{inner.max():.5f} (1.728 expected)")
    np.testing.assert_allclose(inner, 1.2**3, rtol=1e-4)


@pytest.mark.parametrize("factor", [1.2, 0.85])
def test_modulated_gm_keeps_the_native_volume(tmp_path, factor):
    """A GM ball of radius 30 mm, the native brain ``factor`` times the template: in template space the ball is
    30 / factor mm; unmodulated, its volume would be off by factor^3, modulated it is the native volume."""
    gm = _ball(tmp_path / "gm.nii.gz", 30.0, 0.8)
    reference = _grid(tmp_path / "ref.nii.gz", (45, 45, 45), 2.0, -44)
    stats = modulate_gm(gm, _scaling(tmp_path / "s.mat", factor), reference, tmp_path / "mod.nii.gz")
    truth = 0.8 * 4 / 3 * np.pi * 30.0**3 / 1000.0
    out = nb.load(str(tmp_path / "mod.nii.gz"))
    data = np.asarray(out.dataobj, dtype=np.float64)
    unmodulated_ml = (data / factor**3).sum() * 8 / 1000
    print(f"factor {factor}: native {stats['native_ml']:.2f} ml (ball {truth:.2f}), modulated "
          f"{stats['modulated_ml']:.2f} ml, unmodulated {unmodulated_ml:.2f} ml, Jacobian {stats['jacobian_median']:.4f}")
    assert stats["native_ml"] == pytest.approx(truth, rel=0.02)
    assert stats["modulated_ml"] == pytest.approx(stats["native_ml"], rel=0.01)
    assert stats["modulated_ml"] == pytest.approx(data.sum() * 8 / 1000, rel=1e-6)
    assert stats["jacobian_median"] == pytest.approx(factor**3, rel=1e-4)
    assert abs(unmodulated_ml / stats["native_ml"] - factor**-3) < 0.02
    # centre of the ball: probability 0.8 times the Jacobian
    assert data[22, 22, 22] == pytest.approx(0.8 * factor**3, rel=1e-3)
    # the 4 mm block mean keeps the integral (value x 64 mm^3)
    four = np.asarray(nb.load(str(block_average(tmp_path / "mod.nii.gz", tmp_path / "mod4.nii.gz"))).dataobj)
    assert four.sum() * 64 / 1000 == pytest.approx(stats["modulated_ml"], rel=0.01)


def test_tissue_volumes_and_tiv(tmp_path):
    affine = np.diag([1.0, 1.2, 1.5, 1.0])
    shape = (20, 10, 10)
    mask = np.zeros(shape, np.uint8)
    mask[2:18, 1:9, 1:9] = 1  # 1024 voxels of 1.8 mm^3
    probs = {"CSF": 0.2, "GM": 0.5, "WM": 0.3}
    paths = []
    for name, value in probs.items():
        data = np.full(shape, value, np.float32)  # also outside the mask: must not count
        paths.append(tmp_path / f"{name}.nii.gz")
        nb.save(nb.Nifti1Image(data, affine), str(paths[-1]))
    nb.save(nb.Nifti1Image(mask, affine), str(tmp_path / "mask.nii.gz"))
    volumes = tissue_volumes(paths, tmp_path / "mask.nii.gz")
    assert volumes["TIV"] == pytest.approx(1024 * 1.8 / 1000)
    for name, value in probs.items():
        assert volumes[name] == pytest.approx(value * 1024 * 1.8 / 1000)
    bad = tmp_path / "bad.nii.gz"
    nb.save(nb.Nifti1Image(np.zeros((5, 5, 5), np.float32), affine), str(bad))
    with pytest.raises(ValueError, match="bad.nii.gz.*brain mask"):
        tissue_volumes([bad, *paths[1:]], tmp_path / "mask.nii.gz")


def test_shipped_mtl_atlas_is_the_documented_build():
    from bidsad.atlases import build_mtl_atlas, mtl_atlas

    img, table = mtl_atlas()
    built, built_table = build_mtl_atlas()
    np.testing.assert_array_equal(np.asarray(img.dataobj), np.asarray(built.dataobj))
    assert table.equals(built_table)
    data = np.asarray(img.dataobj)
    xyz = nb.affines.apply_affine(img.affine, np.argwhere(data > 0))
    labels = data[data > 0]
    volumes = {name: (data == index).sum() * 8 / 1000 for index, name in zip(table["index"], table["name"])}
    print(volumes)
    # template-space sizes: hippocampus 3-4.5 ml, amygdala and entorhinal 0.8-2 ml; sides mirror each other
    for side in ("left", "right"):
        assert 3.0 < volumes[f"hippocampus_{side}"] < 4.5
        assert 0.8 < volumes[f"amygdala_{side}"] < 2.0 and 0.8 < volumes[f"entorhinal_{side}"] < 2.0
    assert (xyz[labels <= 3, 0] < 0).all() and (xyz[labels > 3, 0] > 0).all()
    hippocampus = xyz[labels == 1].mean(axis=0)
    assert np.allclose(hippocampus, [-25, -22, -12], atol=4)  # AAL/Harvard-Oxford centroids


def _tensors(out, label, items):
    """Fake tensors: ``items`` maps a file ending (after ``_res-small_``) to its ParametersHash."""
    folder = out / f"sub-{label}" / "features"
    folder.mkdir(parents=True, exist_ok=True)
    for ending, digest in items.items():
        np.save(folder / f"sub-{label}_res-small_{ending}.npy", np.zeros(2, np.float32))
        meta = {"preset": "small", "shape": [2], "dtype": "float32", "ParametersHash": digest,
                "Normalisation": digest}
        (folder / f"sub-{label}_res-small_{ending}.json").write_text(json.dumps(meta))


def test_cohort_reads_the_chosen_mri_input_with_the_same_checks(tmp_path):
    from bidsad.bids import InputError
    from bidsad.learn.cohort import build_cohort

    bids, out = tmp_path / "bids", tmp_path / "out"
    bids.mkdir()
    (bids / "participants.tsv").write_text("participant_id\tdiagnosis\nsub-01\tCN\nsub-02\tAD\nsub-03\tCN\n")
    t1w, gm = "desc-model_T1w", "label-GM_desc-model_probseg"
    for label in ("01", "02", "03"):
        _tensors(out, label, {t1w: "t", **({gm: "syn"} if label != "03" else {})})
    cohort = build_cohort(out, bids, "small", "gm")
    assert list(cohort["mri"]) == [f"sub-{x}/features/sub-{x}_res-small_{gm}.npy" for x in ("01", "02")] + [""]
    assert list(cohort["included"]) == [True, True, False]
    assert list(build_cohort(out, bids, "small")["mri"]) == [f"sub-{x}/features/sub-{x}_res-small_{t1w}.npy"
                                                           for x in ("01", "02", "03")]
    _tensors(out, "03", {gm: "affine"})  # a GM tensor from an affine-only run: another Jacobian
    with pytest.raises(InputError) as err:
        build_cohort(out, bids, "small", "gm")
    assert f"sub-03: sub-03/features/sub-03_res-small_{gm}.npy: Normalisation" in str(err.value)
    assert "sub-01:" not in str(err.value)
    for label in ("01", "02", "03"):
        for path in (out / f"sub-{label}" / "features").glob(f"*{gm}.*"):
            path.unlink()
    with pytest.raises(InputError) as err:  # derivatives of an older version: says what to do
        build_cohort(out, bids, "small", "gm")
    assert "none for --mri-input gm" in str(err.value) and "rerun" in str(err.value)


def test_mri_input_option_and_config(demo_dir, tmp_path):
    from bidsad.cli.parser import parse_args
    from bidsad.config import Config

    args = [str(demo_dir), str(tmp_path / "o"), "group", "-w", str(tmp_path / "w")]
    assert parse_args(args).features.mri_input == "t1w"
    assert parse_args([*args, "--mri-input", "gm"]).features.mri_input == "gm"
    config = Config()
    config.update({"features": {"mri_input": "jacobian"}})
    assert [p[:2] for p in config.problems()] == [("features", "mri_input")]


def test_methods_text_describes_modulation_and_volumes(tmp_path, monkeypatch):
    from bidsad.reports.boilerplate import write_boilerplate

    out = tmp_path / "out"
    features, anat = out / "sub-01" / "features", out / "sub-01" / "anat"
    features.mkdir(parents=True)
    anat.mkdir()
    (features / "sub-01_res-small_desc-model_T1w.json").write_text(json.dumps(
        {"Modality": "T1w", "preset": "small", "shape": [48, 56, 48], "voxel_size_mm": [4.1, 4.2, 3.9]}))
    (features / "sub-01_res-small_label-GM_desc-model_probseg.json").write_text(json.dumps(
        {"Modality": "GM", "preset": "small", "shape": [9, 9, 9], "voxel_size_mm": [1, 1, 1],
         "Normalisation": "none: ...; Jacobian: determinant of the affine transform"}))
    (anat / "sub-01_desc-volumes_morph.tsv").write_text("name\tvolume_ml\n")
    monkeypatch.setenv("PATH", "/nonexistent")  # no pandoc
    write_boilerplate(out)
    text = (out / "logs" / "CITATION.md").read_text()
    bib = (out / "logs" / "CITATION.bib").read_text()
    assert "48 x 56 x 48" in text and "9 x 9 x 9" not in text  # the MRI grid is the T1w tensor's
    assert "multiplying it by the determinant of the affine transform" in text
    assert "total intracranial volume" in text and "approximations" in text
    for key in ("ashburner2000voxel", "good2001voxel"):
        assert f"{{{key}," in bib


def test_group_methods_name_the_gm_input(tmp_path):
    from bidsad.reports.boilerplate import methods

    summary = {"epochs": 2, "learning_rate": 1e-5, "batch_size": 2, "dropout": 0.1, "random_seed": 0, "folds": 5,
               "preset": "small", "models": {"3dcnn": {"n_participants": 12}}, "versions": {}}
    texts = {}
    for mri_input in ("t1w", "gm"):
        (tmp_path / mri_input / "group").mkdir(parents=True)
        (tmp_path / mri_input / "group" / "metrics.json").write_text(json.dumps({**summary, "mri_input": mri_input}))
        texts[mri_input] = methods(tmp_path / mri_input)["group"]
    assert "Jacobian-modulated grey-matter map" in texts["gm"]
    assert "Jacobian-modulated" not in texts["t1w"]
