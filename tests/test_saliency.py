"""Gradient saliency: known gradients of a linear softmax model; per-class NIfTI with the grid affine."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bidsad.learn.saliency import SaliencyAccumulator, gradient_saliency, write_saliency


def test_gradient_of_linear_softmax_model():
    """Dense softmax with weights a for CN and 0 otherwise, input 0: p = 1/3 each, so
    d p_CN / d x = p (a - a/3) = 2a/9 and d p_MCI / d x = -a/9; both scale to |a| / max|a|."""
    import keras

    rng = np.random.default_rng(0)
    a = rng.normal(size=64).astype(np.float32)
    mri = keras.Input((4, 4, 4, 1), name="mri")
    dense = keras.layers.Dense(3, activation="softmax")
    model = keras.Model({"mri": mri}, dense(keras.layers.Flatten()(mri)))
    dense.set_weights([np.stack([a, np.zeros(64), np.zeros(64)], axis=1).astype(np.float32), np.zeros(3, np.float32)])
    maps = gradient_saliency(model, {"mri": np.zeros((2, 4, 4, 4, 1), np.float32)}, [0, 1])
    expected = (np.abs(a) / np.abs(a).max()).reshape(4, 4, 4)
    assert maps.shape == (2, 4, 4, 4) and maps.dtype == np.float32
    assert np.allclose(maps[0], expected, atol=1e-5) and np.allclose(maps[1], expected, atol=1e-5)


def _tensors(tmp_path, affines, space=None):
    paths = []
    for i, affine in enumerate(affines):
        path = tmp_path / f"sub-{i}" / "features" / f"sub-{i}_res-small_desc-model_T1w.npy"
        path.parent.mkdir(parents=True)
        np.save(path, np.ones((3, 4, 5), np.float32))
        meta = {"grid_affine": affine.tolist(), **({"Space": space} if space else {})}
        path.with_suffix(".json").write_text(json.dumps(meta))
        paths.append(str(path.relative_to(tmp_path)))
    return paths


@pytest.mark.parametrize("same_grid", [True, False])
def test_write_saliency_per_class(tmp_path, same_grid):
    import nibabel as nb

    base = np.diag([2.0, 3.0, 4.0, 1.0])
    moved = base.copy()
    moved[:3, 3] = [10, -6, 4]
    affines = [base, base] if same_grid else [base, moved]
    paths = _tensors(tmp_path, affines, space="MNI152NLin2009aSym" if same_grid else None)
    acc = SaliencyAccumulator()
    maps = np.zeros((2, 3, 4, 5), np.float32)
    maps[0, 0, 0, 0], maps[1, 0, 0, 0], maps[1, 2, 3, 4] = 1.0, 0.5, 1.0
    acc.add(maps, np.ones((2, 3, 4, 5)), [2, 2])  # two AD participants
    acc.add(maps[:1], np.ones((1, 3, 4, 5)), [0])  # one CN participant
    written = write_saliency(acc, tmp_path, paths, tmp_path / "saliency", "3dcnn")
    prefix = "space-MNI152NLin2009aSym_" if same_grid else ""
    assert [p.name for p in written] == [f"{prefix}label-CN_desc-saliency_map.nii.gz", f"{prefix}label-AD_desc-saliency_map.nii.gz"]
    ad = nb.load(written[1])
    assert ad.get_fdata()[0, 0, 0] == pytest.approx(0.75) and ad.get_fdata()[2, 3, 4] == pytest.approx(0.5)
    assert np.allclose(ad.affine, np.mean(affines, axis=0))
    meta = json.loads(written[1].with_name(written[1].name.replace(".nii.gz", ".json")).read_text())
    assert meta["NumberOfParticipants"] == 2 and meta["GridAffinesConsistent"] is same_grid
    assert (tmp_path / "saliency" / f"{prefix}label-AD_desc-meaninput_T1w.nii.gz").is_file()
