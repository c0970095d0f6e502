"""tf.data streaming: shapes, labels, frame masks; on-the-fly seeded augmentation of training batches only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("tensorflow")

from bidsad.learn.data import make_dataset  # noqa: E402


@pytest.fixture
def tensors(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(4):
        np.save(tmp_path / f"m{i}.npy", rng.normal(size=(10, 12, 10)).astype(np.float32))
        np.save(tmp_path / f"b{i}.npy", rng.normal(size=(3, 6, 6, 5)).astype(np.float32))
        rows.append({"participant_id": f"sub-{i}", "mri": f"m{i}.npy", "bold": f"b{i}.npy", "label": i % 3,
                     "diagnosis": ["CN", "MCI", "AD"][i % 3]})
    return tmp_path, pd.DataFrame(rows)


def _epoch(dataset):
    return [(x["mri"].numpy(), x["bold"].numpy() if "bold" in x else None, y.numpy()) for x, y in dataset]


def test_plain_stream_reads_the_tensors(tensors):
    root, rows = tensors
    batches = _epoch(make_dataset(root, rows, ("mri", "bold"), batch_size=3, shuffle=False, seed=0))
    assert [b[0].shape for b in batches] == [(3, 10, 12, 10, 1), (1, 10, 12, 10, 1)]
    assert batches[0][1].shape == (3, 3, 6, 6, 5, 1)
    assert np.array_equal(batches[0][0][1, ..., 0], np.load(root / "m1.npy"))
    assert list(np.concatenate([b[2] for b in batches])) == [0, 1, 2, 0]


def test_augment_layer_changes_every_training_batch_is_seeded_and_leaves_inference_alone(tensors):
    from bidsad.learn.layers import Augment

    root, rows = tensors
    inputs = next(iter(make_dataset(root, rows, ("mri", "bold"), batch_size=4, shuffle=False, seed=5)))[0]
    voxels = {"mri": [1.5, 1.8, 1.1], "bold": [2.8, 3.4, 5.6]}

    def draws(seed):
        layer = Augment({"temporal_shift_frames": 1}, voxels, seed=seed)
        return [{k: v.numpy() for k, v in layer(inputs, training=True).items()} for _ in range(2)]

    first, second = draws(5)
    assert not np.allclose(first["mri"], inputs["mri"].numpy())  # augmented
    assert not np.allclose(first["mri"], second["mri"]) and not np.allclose(first["bold"], second["bold"])  # new draw
    again = draws(5)
    assert all(np.array_equal(a[k], b[k]) for a, b in zip((first, second), again) for k in a)  # same seed, same draws
    assert not np.allclose(draws(6)[0]["mri"], first["mri"])
    plain = Augment({}, voxels, seed=5)(inputs, training=False)
    assert all(np.array_equal(plain[k].numpy(), inputs[k].numpy()) for k in inputs)  # validation, test, saliency


def test_train_fold_uses_the_inner_validation_split(tensors, tmp_path):
    from bidsad.config import Config
    from bidsad.learn.folds import make_fold
    from bidsad.learn.train import train_fold

    root, rows = tensors
    config = Config()
    config.learning.epochs, config.learning.patience = 4, 1
    config.learning.mri_downsample = 1  # 10x12x10 tensors: too small to halve
    model_dir = tmp_path / "model"
    predictions = train_fold(config, root, make_fold("3dcnn-gap", config.seeds.random_seed, rows.iloc[:2], rows.iloc[3:],
                                                     rows.iloc[2:3]), model_dir)
    history = pd.read_csv(model_dir / "history.tsv", sep="\t")
    assert {"val_loss", "val_accuracy"} <= set(history.columns) and np.isfinite(history.val_loss).all()
    assert 1 <= len(history) <= 4
    assert list(predictions.participant_id) == ["sub-3"]


@pytest.mark.parametrize("model_name", ["3dcnn-gap", "2dcnn"])  # 2dcnn: its saved checkpoints reload too
def test_interrupted_fold_resumes_after_its_last_epoch_and_a_finished_fold_is_reused(tensors, tmp_path, model_name):
    import keras

    from bidsad.config import Config
    from bidsad.learn.folds import make_fold
    from bidsad.learn.train import train_fold

    root, rows = tensors
    config = Config()
    config.learning.epochs, config.learning.patience = 4, 10
    config.learning.mri_downsample = 1  # 10x12x10 tensors: too small to halve
    state = tmp_path / "work" / f"model-{model_name}" / "fold-1"

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == 2:
                raise RuntimeError("interrupted after epoch 2")

    class Epochs(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_epoch_begin(self, epoch, logs=None):
            self.seen.append(epoch + 1)

    def run(*callbacks, out="model"):
        fold = make_fold(model_name, config.seeds.random_seed, rows.iloc[:2], rows.iloc[3:], rows.iloc[2:3])
        return train_fold(config, root, fold, tmp_path / out, state_dir=state, extra_callbacks=callbacks)

    with pytest.raises(RuntimeError, match="after epoch 2"):
        run(Interrupt())
    assert (state / "checkpoint.keras").is_file()
    resumed = Epochs()
    first = run(resumed)
    assert resumed.seen == [3, 4]  # resumed from the checkpoint of epoch 2, not from scratch
    history = pd.read_csv(tmp_path / "model" / "history.tsv", sep="\t")
    assert list(history.epoch) == [1, 2, 3, 4] and np.isfinite(history.val_loss).all() and (history.seconds > 0).all()

    reused = Epochs()
    again = run(reused, out="model2")
    assert reused.seen == [] and again.equals(first)  # finished with the same parameters: not retrained
    config.learning.epochs = 3  # other parameters: trained afresh
    fresh = Epochs()
    run(fresh, out="model3")
    assert fresh.seen == [1, 2, 3]


def test_balanced_class_weights():
    from bidsad.learn.train import class_weights

    weights = class_weights([0, 0, 0, 1], "balanced")
    assert weights == pytest.approx({0: 4 / 6, 1: 2.0, 2: 1.0})
    assert class_weights([0, 1], "none") is None


def test_frame_masks_come_from_the_sidecars_and_follow_the_temporal_shift(tensors):
    import json

    import tensorflow as tf

    from bidsad.learn.augment import augment_batch

    root, rows = tensors
    for i in range(4):  # runs of 3, 2, 3, 2 real frames padded to 3
        np.save(root / f"b{i}.npy", np.where(np.arange(3)[:, None, None, None] < 3 - i % 2,
                                             np.load(root / f"b{i}.npy"), 0.0).astype(np.float32))
        (root / f"b{i}.json").write_text(json.dumps({"frame_mask": [True, True, i % 2 == 0],
                                                      "voxel_size_mm": [2.8, 3.4, 5.6]}))
    inputs = next(iter(make_dataset(root, rows, ("bold",), batch_size=4, shuffle=False, seed=0)))[0]
    assert inputs["frame_mask"].numpy().tolist() == [[1, 1, 1], [1, 1, 0], [1, 1, 1], [1, 1, 0]]
    shifted = set()
    for seed in range(4):
        augmented = augment_batch(inputs, tf.constant([seed, 0], tf.int64), {"temporal_shift_frames": 1},
                                  {"bold": [2.8, 3.4, 5.6]})
        mask, bold = augmented["frame_mask"].numpy(), augmented["bold"].numpy()
        assert mask[:, 0].all() and (mask.sum(axis=1) <= [3, 2, 3, 2]).all()  # never more real frames than before
        assert not bold[mask == 0].any()  # padded frames empty
        shifted.update(mask.sum(axis=1) < [3, 2, 3, 2])
    assert shifted == {True, False}


def test_saliency_and_apply_feed_the_frame_mask_and_old_models_without_it_still_predict(tensors, tmp_path):
    import json

    import keras

    import bidsad.learn.layers  # noqa: F401  (registers the custom layers for loading)
    from bidsad.learn.apply import ensemble_predict
    from bidsad.learn.models import build_model
    from bidsad.learn.saliency import SaliencyAccumulator, fold_saliency

    root, rows = tensors
    for i in range(4):  # grids the frame CNN can pool twice
        np.save(root / f"b{i}.npy", np.random.default_rng(i).normal(size=(3, 12, 12, 12)).astype(np.float32))
    (root / "b1.json").write_text(json.dumps({"frame_mask": [True, True, False]}))
    shapes = {"mri": (10, 12, 10, 1), "bold": (3, 12, 12, 12, 1)}
    fusion = build_model("3dcnn-lstm-gap", shapes, 3)
    accumulator = SaliencyAccumulator()
    fold_saliency(fusion, root, rows, ("mri", "bold"), 2, accumulator)
    assert sum(accumulator.counts.values()) == 4
    mri = keras.Input(shapes["mri"], name="mri")  # a model saved before the frame mask was an input
    old = keras.Model({"mri": mri}, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(mri)))
    fusion.save(tmp_path / "fusion.keras")
    old.save(tmp_path / "old.keras")
    for name, modalities, model in (("fusion", ("mri", "bold"), fusion), ("old", ("mri",), old)):
        proba = ensemble_predict(tmp_path, [f"{name}.keras"], root, rows, modalities, 2)
        data = make_dataset(root, rows, modalities, batch_size=4, shuffle=False, seed=0, with_labels=False)
        inputs = {k: v for k, v in next(iter(data)).items() if k in {t.name for t in model.inputs}}
        np.testing.assert_allclose(proba, model.predict(inputs, verbose=0), rtol=1e-5, atol=1e-6)


def test_train_fold_augments_inside_the_model_and_saves_a_loadable_model(tensors, tmp_path):
    import keras

    import bidsad.learn.layers  # noqa: F401  (registers the custom layers for loading)
    from bidsad.config import Config
    from bidsad.learn.folds import make_fold
    from bidsad.learn.train import train_fold

    root, rows = tensors
    for i in range(4):  # grids the frame CNN can pool twice
        np.save(root / f"b{i}.npy", np.random.default_rng(i).normal(size=(3, 12, 12, 12)).astype(np.float32))
    config = Config()
    config.learning.epochs, config.learning.augment, config.learning.mri_downsample = 2, True, 1
    config.augmentation.rotation_deg = 7.0
    fold = make_fold("3dcnn-lstm-gap", config.seeds.random_seed, rows.iloc[:3], rows.iloc[3:], None)
    predictions = train_fold(config, root, fold, tmp_path / "model", state_dir=tmp_path / "state")
    model = keras.models.load_model(tmp_path / "model" / "model.keras")
    assert model.get_layer("augment").params["rotation_deg"] == 7.0
    test = make_dataset(root, rows.iloc[3:], ("mri", "bold"), batch_size=1, shuffle=False, seed=0, with_labels=False)
    proba = model.predict(test, verbose=0)  # the augmentation is off at inference
    assert np.allclose(proba[0], predictions.filter(like="probability_").to_numpy()[0], atol=1e-5)


def test_paper_protocol_copies_are_made_with_the_configured_ranges(tensors):
    root, rows = tensors
    copies = pd.concat([rows.iloc[:2].assign(copy=c) for c in (0, 1)], ignore_index=True)  # sub-0, sub-1, copies 1

    def first_batch(ranges):
        return next(iter(make_dataset(root, copies, ("mri", "bold"), batch_size=4, shuffle=False, seed=0,
                                      copy_ranges=ranges)))[0]

    still = {"rotation_deg": 0, "shift_mm": 0, "intensity_scale": [1, 1], "noise_std": 0, "temporal_shift_frames": 0,
             "motion_step_deg": 0, "motion_step_mm": 0}
    unchanged, default = first_batch(still), first_batch(None)
    assert np.allclose(unchanged["mri"][2, ..., 0], np.load(root / "m0.npy"), atol=1e-5)  # copy 1 with zero ranges
    assert not np.allclose(default["mri"][2, ..., 0], np.load(root / "m0.npy"), atol=1e-2)  # with the defaults
    assert np.array_equal(default["mri"][0, ..., 0], np.load(root / "m0.npy"))  # copy 0 is the original


def test_slice_protocol_rows_are_one_axial_slice(tensors):
    """A ``slice`` row is its participant's slice z in every z position (the 2dcnn then reads that slice alone)."""
    root, rows = tensors
    samples = rows.iloc[[0, 0, 1]].assign(slice=[2, 7, 2]).reset_index(drop=True)
    batch = _epoch(make_dataset(root, samples, ("mri",), batch_size=3, shuffle=False, seed=0))[0][0][..., 0]
    m0, m1 = np.load(root / "m0.npy"), np.load(root / "m1.npy")
    for got, volume, z in zip(batch, (m0, m0, m1), (2, 7, 2)):
        assert got.shape == volume.shape and all(np.array_equal(got[:, :, k], volume[:, :, z]) for k in range(10))
