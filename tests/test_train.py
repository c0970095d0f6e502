"""One fold's training (bidsad.learn.train.train_fold): the recipe it applies, class weights from training
participants only, a weighted early-stopping loss, the cosine schedule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("tensorflow")

from bidsad.config import RECIPES, Config, apply_recipe, recipe_summary  # noqa: E402
from bidsad.learn.folds import make_fold  # noqa: E402
from bidsad.learn.train import class_weights, make_optimizer, train_fold  # noqa: E402


class _Captured(Exception):
    """Raised by the patched ``fit`` once it has recorded its arguments."""


@pytest.fixture
def cohort(tmp_path):
    """Twelve participants with tiny MRI tensors on disk (labels CN CN CN AD, repeated)."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        np.save(tmp_path / f"m{i}.npy", rng.normal(size=(8, 8, 8)).astype(np.float32))
        label = 2 if i % 4 == 3 else 0
        rows.append({"participant_id": f"sub-{i:02d}", "mri": f"m{i}.npy", "bold": "", "label": label,
                     "diagnosis": ["CN", "MCI", "AD"][label], "copy": 0})
    return tmp_path, pd.DataFrame(rows)


def _fit_arguments(monkeypatch, out_dir, train, test, validation):
    """What train_fold passes to ``keras.Model.fit`` (training is stopped there)."""
    import keras

    seen = {}

    def fit(self, data, **kwargs):
        seen.update(kwargs, model=self)
        raise _Captured

    monkeypatch.setattr(keras.Model, "fit", fit)
    config = Config()
    config.learning.mri_downsample = 1
    with pytest.raises(_Captured):
        train_fold(config, out_dir, make_fold("3dcnn-gap", config.seeds.random_seed, train, test, validation), out_dir / "model")
    return seen


def test_class_weights_come_from_training_participants_only(cohort, monkeypatch):
    out_dir, rows = cohort
    train = rows.iloc[:8]  # 6 CN, 2 AD
    base = _fit_arguments(monkeypatch, out_dir, train, rows.iloc[8:10], rows.iloc[10:12])
    # sklearn's 'balanced': n / (k * n_c) over the training participants: 8 / (2 * 6) and 8 / (2 * 2)
    assert base["class_weight"] == pytest.approx({0: 8 / 12, 1: 1.0, 2: 2.0})
    # other validation and test participants (here: only AD ones, or all CN) do not change them
    ad = rows[rows["label"] == 2]
    cn = rows[rows["label"] == 0]
    other = _fit_arguments(monkeypatch, out_dir, train, ad.iloc[:1], cn.iloc[-2:])
    assert other["class_weight"] == base["class_weight"]
    # the validation loss is weighted the same way: (x, y, weight) batches with the training weights
    batches = list(other["validation_data"])
    weights = np.concatenate([b[2].numpy() for b in batches])
    assert weights == pytest.approx([8 / 12, 8 / 12])
    # and a different training set does change them
    changed = _fit_arguments(monkeypatch, out_dir, rows.iloc[:4], rows.iloc[8:10], rows.iloc[10:12])
    assert changed["class_weight"] == pytest.approx({0: 4 / 6, 1: 1.0, 2: 2.0})


def test_paper_recipe_has_no_class_weights():
    assert class_weights([0, 0, 0, 2], "none") is None
    assert class_weights([0, 0, 0, 1], "balanced", n_classes=2) == pytest.approx({0: 4 / 6, 1: 2.0})  # --classes CN AD
    learning = Config().learning
    apply_recipe(learning, "paper")
    assert (learning.learning_rate, learning.epochs, learning.batch_size, learning.class_weight) == (1e-5, 20, 2, "none")
    assert learning.validation is False and learning.lr_schedule == "constant" and learning.mri_downsample == 1


def test_defaults_are_the_bidsad_recipe_and_overrides_are_recorded():
    learning = Config().learning
    summary = recipe_summary(learning)
    assert summary["name"] == "bidsad" and summary["overrides"] == {}
    assert summary["hyperparameters"] == RECIPES["bidsad"]
    learning.epochs = 3
    assert recipe_summary(learning)["overrides"] == {"epochs": 3}


def test_cosine_schedule_decays_to_zero_over_the_epoch_budget():
    learning = Config().learning
    learning.learning_rate, learning.epochs, learning.batch_size, learning.lr_schedule = 1e-3, 4, 5, "cosine"
    optimizer = make_optimizer(learning, n_train=10)  # 2 steps per epoch, 8 steps in all
    schedule = optimizer.learning_rate if callable(optimizer.learning_rate) else optimizer._learning_rate
    rates = [float(schedule(step)) for step in (0, 4, 8)]
    assert rates == pytest.approx([1e-3, 5e-4, 0.0], abs=1e-9)
    learning.lr_schedule = "constant"
    assert float(make_optimizer(learning, 10).learning_rate) == pytest.approx(1e-3)


def test_augmentation_ranges_come_from_the_config_and_are_recorded_in_metrics_json(tmp_path):
    from bidsad.group.summary import run_summary

    config = Config()
    config.update({"augmentation": {"rotation_deg": 5.0, "shift_mm": 3.0}})
    splits = pd.DataFrame({"cohort": ["all", "all"], "fold": [1, 2]})

    def summary():
        return run_summary(config, results={}, baselines={}, classes=["CN", "AD"], splits=splits, device="CPU",
                           warnings=[])

    assert summary()["augmentation_parameters"] is None  # the bidsad recipe does not augment
    config.learning.augment = True
    recorded = summary()["augmentation_parameters"]
    assert recorded == {"rotation_deg": 5.0, "shift_mm": 3.0, "intensity_scale": [0.9, 1.1], "noise_std": 0.05,
                        "temporal_shift_frames": 2, "motion_step_deg": 0.05, "motion_step_mm": 0.1}
    saved = Config.load(config.save(tmp_path / "config.toml"))
    assert saved.augmentation == config.augmentation
