"""Model registry: shapes, parameter counts at the paper's sizes, the 2D slice model."""

from __future__ import annotations

import numpy as np
import pytest

from bidsad.config import MODALITIES, MODEL_NAMES
from bidsad.learn.models import build_model

SMALL = {"mri": (24, 28, 24, 1), "bold": (4, 12, 14, 10, 1)}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_outputs_probabilities(name):
    model = build_model(name, SMALL)
    rng = np.random.default_rng(0)
    batch = {m: rng.normal(size=(2, *SMALL[m])).astype("float32") for m in MODALITIES[name]}
    if "bold" in batch:
        batch["frame_mask"] = np.ones((2, SMALL["bold"][0]), "float32")
    proba = np.asarray(model(batch, training=False))
    assert proba.shape == (2, 3) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)


def test_paper_sizes_mri_branch_reading():
    """At 128x128x176 the MRI branch flattens 16x16x22x32 = 180,224 features (method.md reading A)."""
    model = build_model("3dcnn", {"mri": (128, 128, 176, 1)})
    assert model.get_layer("mri_flatten").output.shape[1] == 180_224
    assert model.get_layer("mri_dense").count_params() == 180_224 * 128 + 128
    assert model.count_params() == 23_105_827


def test_paper_sizes_fusion_shapes():
    model = build_model("3dcnn-lstm", {"mri": (128, 128, 176, 1), "bold": (216, 64, 64, 32, 1)})
    assert model.get_layer("fusion").output.shape[1] == 128 + 32
    assert model.get_layer("bold_lstm3").output.shape[1] == 32
    assert model.get_layer("probabilities").output.shape[1] == 3
    assert model.count_params() == 24_205_891


def test_unknown_model():
    with pytest.raises(KeyError, match="resnet"):
        build_model("resnet", SMALL)


@pytest.mark.parametrize("name", ["3dcnn-gap", "3dcnn-lstm-gap"])
def test_gap_variants_have_far_fewer_weights(name):
    paper = {"mri": (128, 128, 176, 1), "bold": (216, 64, 64, 32, 1)}
    gap, full = build_model(name, paper), build_model(name.removesuffix("-gap"), paper)
    assert gap.get_layer("mri_dense").count_params() == 32 * 128 + 128
    assert gap.count_params() < full.count_params() / 100


def test_frames_folded_into_batch_equal_time_distributed():
    """The fMRI branch's frame CNN applied once on (batch*frames) equals keras.TimeDistributed."""
    import keras

    model = build_model("3dlstm", SMALL)
    folded = model.get_layer("bold_frames")
    distributed = keras.layers.TimeDistributed(folded.frame_model)
    x = np.random.default_rng(3).normal(size=(2, *SMALL["bold"])).astype("float32")
    a, b = np.asarray(folded(x)), np.asarray(distributed(x))
    assert a.shape == (2, SMALL["bold"][0], folded.frame_model.output_shape[-1])
    assert np.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_reloads_with_keras_defaults_and_predicts_the_same(name, tmp_path):
    """Saved folds are reused, resumed and applied (--apply-models) with plain ``keras.models.load_model``:
    no custom_objects, the default safe_mode (a Python lambda in a model makes it refuse the file)."""
    import keras

    model = build_model(name, SMALL)
    rng = np.random.default_rng(4)
    x = {m: rng.normal(size=(2, *SMALL[m])).astype("float32") for m in MODALITIES[name]}
    if "bold" in MODALITIES[name]:  # the last frame padding: the frame mask is part of the model
        x["frame_mask"] = np.tile(np.arange(SMALL["bold"][0]) < SMALL["bold"][0] - 1, (2, 1)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["3dlstm", "3dcnn-gru"])
def test_a_run_padded_with_masked_empty_frames_predicts_as_the_unpadded_run(name):
    frames, pad = 5, 3
    rng = np.random.default_rng(7)
    short = build_model(name, {"mri": SMALL["mri"], "bold": (frames, *SMALL["bold"][1:])})
    padded = build_model(name, {"mri": SMALL["mri"], "bold": (frames + pad, *SMALL["bold"][1:])})
    padded.set_weights(short.get_weights())  # the same weights: none depends on the number of frames
    run = rng.normal(size=(2, frames, *SMALL["bold"][1:])).astype("float32")
    x = {"mri": rng.normal(size=(2, *SMALL["mri"])).astype("float32"), "bold": run,
         "frame_mask": np.ones((2, frames), "float32")}
    x = {k: v for k, v in x.items() if k in MODALITIES[name] or k == "frame_mask"}
    expected = short.predict(x, verbose=0)
    x_padded = {**x, "bold": np.concatenate([run, np.zeros((2, pad, *run.shape[2:]), "float32")], axis=1),
                "frame_mask": np.concatenate([np.ones((2, frames)), np.zeros((2, pad))], axis=1).astype("float32")}
    np.testing.assert_allclose(padded.predict(x_padded, verbose=0), expected, rtol=1e-5, atol=1e-6)
    unmasked = padded.predict({**x_padded, "frame_mask": np.ones((2, frames + pad), "float32")}, verbose=0)
    assert np.abs(unmasked - expected).max() > 1e-4  # without the mask the empty frames change the prediction


def test_regularisation_options():
    import keras

    plain = build_model("3dcnn", SMALL)
    reg = build_model("3dcnn", SMALL, l2=1e-3, batch_norm=True, mri_downsample=2)
    assert not plain.losses and len(reg.losses) == 4  # two convolutions and two dense layers penalised
    assert isinstance(reg.get_layer("mri_conv1_bn"), keras.layers.BatchNormalization)
    # the 2x coarser input halves every spatial size after the first convolution
    assert reg.get_layer("mri_conv1").output.shape[1:4] == tuple((s + 3) // 4 for s in SMALL["mri"][:3])
    assert plain.get_layer("mri_conv1").output.shape[1:4] == tuple((s + 1) // 2 for s in SMALL["mri"][:3])
    x = {"mri": np.random.default_rng(5).normal(size=(2, *SMALL["mri"])).astype("float32")}
    assert np.allclose(np.asarray(reg(x)).sum(axis=1), 1, atol=1e-5)
    flat = build_model("2dcnn", SMALL, mri_downsample=2)  # the slices averaged over 2 x 2 pixels
    slice_cnn = flat.get_layer("slice_probabilities").frame_model
    assert slice_cnn.get_layer("mri_downsample").output.shape[1:3] == tuple((s + 1) // 2 for s in SMALL["mri"][:2])


def test_2dcnn_reads_the_documented_slices_and_averages_their_probabilities():
    """Default: the grid's axial slices nearest to MNI z = -30, -25, ..., -5 mm; output = mean of their probabilities."""
    from bidsad.derivatives import mri_axial_slices, resize_mri_volume_grid

    shape = (48, 56, 48, 1)  # the small preset's grid: slices 3.94 mm apart
    model = build_model("2dcnn", {"mri": shape})
    indices = model.get_layer("axial_slices").indices
    affine = resize_mri_volume_grid(shape[:3])
    z_mm = affine[2, 2] * np.array(indices) + affine[2, 3]
    assert indices == [10, 12, 13, 14, 15, 17]
    np.testing.assert_allclose(z_mm, [-31.156, -23.281, -19.344, -15.406, -11.469, -3.594], atol=1e-3)
    assert np.all(np.abs(z_mm - [-30, -25, -20, -15, -10, -5]) <= affine[2, 2] / 2)
    assert mri_axial_slices((128, 128, 176), [-30, -25, -20, -15, -10, -5]) == [39, 44, 48, 53, 58, 62]  # paper grid
    assert mri_axial_slices((24, 28, 24), [-30, -25, -20, -15, -10, -5]) == [5, 6, 7, 8]  # coarse: each slice once
    with pytest.raises(ValueError, match="z range"):
        mri_axial_slices(shape[:3], [-80.0])

    x = np.random.default_rng(6).normal(size=(2, *shape)).astype("float32")
    slice_cnn = model.get_layer("slice_probabilities").frame_model
    per_slice = np.asarray(slice_cnn(np.moveaxis(x[:, :, :, indices], 3, 1).reshape(12, 48, 56, 1)))
    np.testing.assert_allclose(np.asarray(model({"mri": x})), per_slice.reshape(2, 6, 3).mean(axis=1),
                               rtol=1e-5, atol=1e-6)
    elsewhere, inside = x.copy(), x.copy()
    elsewhere[:, :, :, [0, 11, 16, 30]] += 3.0
    inside[:, :, :, 12] += 3.0
    assert np.allclose(np.asarray(model({"mri": elsewhere})), np.asarray(model({"mri": x})), atol=1e-6)
    assert not np.allclose(np.asarray(model({"mri": inside})), np.asarray(model({"mri": x})), atol=1e-4)
    assert build_model("2dcnn", {"mri": shape}, slices_mm=[22.0]).get_layer("axial_slices").indices == [24]
