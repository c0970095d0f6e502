"""tf.data streaming: shapes, labels, on-the-fly seeded augmentation of training data only."""

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


def test_augmentation_changes_every_epoch_and_is_seeded(tensors):
    root, rows = tensors
    ds = make_dataset(root, rows, ("mri", "bold"), batch_size=4, shuffle=False, seed=5, augment={})
    first, second = _epoch(ds), _epoch(ds)
    original = np.load(root / "m0.npy")
    assert not np.allclose(first[0][0][0, ..., 0], original)  # augmented
    assert not np.allclose(first[0][0], second[0][0])  # a new draw each epoch
    again = _epoch(make_dataset(root, rows, ("mri", "bold"), batch_size=4, shuffle=False, seed=5, augment={}))
    assert np.array_equal(first[0][0], again[0][0]) and np.array_equal(first[0][1], again[0][1])
    assert list(first[0][2]) == [0, 1, 2, 0]  # labels untouched
    plain = _epoch(make_dataset(root, rows, ("mri",), batch_size=4, shuffle=False, seed=5))
    assert np.array_equal(plain[0][0][0, ..., 0], original)


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


def test_slice_protocol_rows_are_one_axial_slice(tensors):
    """A ``slice`` row is its participant's slice z in every z position (the 2dcnn then reads that slice alone)."""
    root, rows = tensors
    samples = rows.iloc[[0, 0, 1]].assign(slice=[2, 7, 2]).reset_index(drop=True)
    batch = _epoch(make_dataset(root, samples, ("mri",), batch_size=3, shuffle=False, seed=0))[0][0][..., 0]
    m0, m1 = np.load(root / "m0.npy"), np.load(root / "m1.npy")
    for got, volume, z in zip(batch, (m0, m0, m1), (2, 7, 2)):
        assert got.shape == volume.shape and all(np.array_equal(got[:, :, k], volume[:, :, z]) for k in range(10))
