"""Baselines: regional and voxel-wise grey matter, tangent-space connectivity and age + sex, class-balanced and
tuned (nested cross-validation) on training participants only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bidsad.learn import baselines
from bidsad.synthetic import make_synthetic_derivatives


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from bidsad.learn.cohort import build_cohort

    bids, out = make_synthetic_derivatives(tmp_path_factory.mktemp("baselines"), 18, preset="small", seed=3)
    return out, build_cohort(out, bids, "small")


def _fitted_state(pipeline):
    """Every fitted array of the pipeline (tangent reference, imputer, scaler, classifier)."""
    state = []
    for _, step in pipeline.steps:
        inner = getattr(step, "measure_", step)
        for name in ("mean_", "whitening_", "statistics_", "scale_", "var_", "coef_", "intercept_"):
            if hasattr(inner, name):
                state.append(np.asarray(getattr(inner, name), float))
        for calibrated in getattr(step, "calibrated_classifiers_", []):
            state.append(np.asarray(calibrated.estimator.coef_, float))
    return state


def _features(out, ids, kind):
    found = baselines.find_inputs(out, ids)
    if kind == "connectivity":
        return baselines.read_timeseries(found["connectivity"])
    if kind == "voxel":
        return baselines.read_voxels(found["voxel"])[0]
    if kind == "demography":
        return baselines.read_demography(out.parent / "bids", ids)
    if kind == "volumes":
        return baselines.read_volumes(found["volumes"])
    return baselines.read_gm(found["gm"])


def test_volumes_baseline_reads_fractions_of_tiv_without_tiv(tmp_path):
    """The participant level's tissue table (desc-volumes_morph.tsv): every row but TIV, as fraction_of_tiv."""
    table = tmp_path / "sub-01_desc-volumes_morph.tsv"
    table.write_text("name\tvolume_ml\tfraction_of_tiv\tregion_ml\nTIV\t1892.92\t1\tn/a\nCSF\t365.092\t0.192872\tn/a\n"
                     "GM\t755.519\t0.399129\tn/a\nhippocampus_left\t2.15184\t0.00113678\t3.384\n"
                     "amygdala_left\tn/a\tn/a\t1.352\n")
    features = baselines.read_volumes({"sub-01": table})
    assert list(features.columns) == ["CSF", "GM", "hippocampus_left", "amygdala_left"]
    np.testing.assert_allclose(features.loc["sub-01"].to_numpy()[:3], [0.192872, 0.399129, 0.00113678])
    assert np.isnan(features.loc["sub-01", "amygdala_left"])


def test_volumes_baseline_learns_global_atrophy(cohort):
    """On the synthetic cohort the "hippocampi" shrink with severity: the volumes baseline separates CN from AD."""
    from sklearn.metrics import roc_auc_score

    out, table = cohort
    pair = table[table["diagnosis"].isin(["CN", "AD"])]
    ids = list(pair["participant_id"])
    labels = {i: int(d == "AD") for i, d in zip(ids, pair["diagnosis"])}
    features = baselines.read_volumes(baselines.find_inputs(out, ids)["volumes"])
    assert set(features.columns) == {"GM", "hippocampus_left", "hippocampus_right"}
    train, test = ids[:8], ids[8:]  # CN and AD alternate: 4 + 4 in training
    _, proba, _ = baselines.fit_predict_fold("volumes", "logreg", features, labels, train, test, seed=0, n_classes=2)
    assert roc_auc_score([labels[i] for i in test], proba[:, 1]) >= 0.9


@pytest.mark.parametrize("name", list(baselines.BASELINES))
def test_test_participants_never_reach_the_fit(cohort, name):
    out, table = cohort
    kind, classifier = baselines.BASELINES[name]
    ids = list(table.participant_id)
    labels = dict(zip(ids, table.label.astype(int)))
    assert baselines.find_inputs(out, ids)["atlas"] == {"gm": "synthetic", "connectivity": "synthetic"}
    features = _features(out, ids, kind)
    train, test = ids[:12], ids[12:]  # 4 per class: C is tuned on inner folds of these 12
    fitted, proba, C = baselines.fit_predict_fold(kind, classifier, features, labels, train, test, seed=0)
    assert C in baselines.C_GRID[classifier]
    # perturb every test participant's data wildly: the fitted model must not change, its predictions must
    rng = np.random.default_rng(0)
    if kind != "connectivity":
        perturbed = features.astype(np.float64)
        perturbed.loc[test] = rng.normal(100, 50, size=perturbed.loc[test].shape)
    else:
        perturbed = {k: (v if k in train else rng.normal(size=v.shape) * 10) for k, v in features.items()}
    refitted, proba2, C2 = baselines.fit_predict_fold(kind, classifier, perturbed, labels, train, test, seed=0)
    assert C2 == C
    before, after = _fitted_state(fitted), _fitted_state(refitted)
    assert len(before) >= 3 and all(np.array_equal(a, b) for a, b in zip(before, after))
    assert not np.allclose(proba, proba2)
    assert proba.shape == (6, 3) and np.allclose(proba.sum(axis=1), 1.0)


def test_gm_baseline_learns_a_strong_regional_effect(cohort):
    out, table = cohort
    ids = list(table.participant_id)
    labels = dict(zip(ids, table.label.astype(int)))
    features = baselines.read_gm(baselines.find_inputs(out, ids)["gm"])
    _, proba, _ = baselines.fit_predict_fold("gm", "logreg", features, labels, ids[:12], ids[12:], seed=0)
    truth = np.array([labels[i] for i in ids[12:]])
    # CN vs AD differ by 40% of the "hippocampal" volume: at least these two classes are told apart
    extreme = truth != 1
    assert (proba.argmax(axis=1)[extreme] == truth[extreme]).mean() >= 0.75


def test_baselines_skipped_with_a_message_without_regional_tables(cohort, tmp_path):
    from bidsad.config import Config

    out, table = cohort
    splits = pd.DataFrame({"cohort": "mri", "repeat": 1, "fold": [1] * len(table), "participant_id": table.participant_id,
                           "copy": 0, "role": ["test" if i % 3 == 0 else "train" for i in range(len(table))]})
    empty = tmp_path / "derivatives"
    empty.mkdir()
    results, rows, notes = baselines.run_baselines(empty, table, splits, Config())
    assert not results and not rows
    assert len(notes) == 5 and all("skipped" in n for n in notes)  # regional GM, connectivity, voxels, volumes, age + sex
    assert "desc-gm_morph.tsv" in notes[0] and "desc-modulated_probseg" in notes[2] and "desc-volumes_morph.tsv" in notes[3]
    assert "'age'" in notes[4]


@pytest.mark.parametrize("classifier", baselines.CLASSIFIERS)
def test_class_weights_come_from_the_training_participants_only(cohort, classifier, monkeypatch):
    """Every class weight the classifiers compute uses the fitted rows only (training participants, or inner
    folds of them); the final fit balances exactly the training participants' class counts."""
    import sklearn.linear_model._logistic as logistic
    import sklearn.svm._base as svm_base
    import sklearn.utils.class_weight as sample_weights  # compute_sample_weight: the calibrated SVM's final fit

    calls = []
    for module in (logistic, svm_base, sample_weights):
        original = module.compute_class_weight

        def spy(class_weight, *, classes, y, original=original, **kwargs):
            weights = original(class_weight, classes=classes, y=y, **kwargs)
            calls.append((class_weight, np.bincount(np.asarray(y, int), minlength=2), weights))
            return weights

        monkeypatch.setattr(module, "compute_class_weight", spy)
    out, table = cohort
    two = table[table.label != 1].reset_index(drop=True)  # CN (0) and AD (2) -> a two-class task
    ids = list(two.participant_id)
    labels = dict(zip(ids, (two.label == 2).astype(int)))
    train = [i for i in ids if labels[i] == 0] + [i for i in ids if labels[i] == 1][:4]  # 6 CN : 4 AD
    test = [i for i in ids if i not in train]  # the 2 other AD: test only
    features = _features(out, ids, "gm")
    _, proba, _ = baselines.fit_predict_fold("gm", classifier, features, labels, train, test, seed=0, n_classes=2)
    assert proba.shape == (2, 2) and calls
    # the calibrated SVM's inner LinearSVC is unweighted (class_weight None): its balance comes from the sample
    # weights of compute_sample_weight, which are among the calls
    calls = [call for call in calls if call[0] is not None]
    assert all(mode == "balanced" for mode, _, _ in calls)
    counts = np.array([6, 4])
    assert all((seen <= counts).all() for _, seen, _ in calls)  # never more rows of a class than training has
    full = [w for _, seen, w in calls if (seen == counts).all()]
    assert full and np.allclose(full[-1], 10 / (2 * counts))  # n / (k * n_class) of the training participants


def test_calibrated_svm_probabilities_do_not_favour_the_larger_class():
    """Platt scaling fitted without class weights learns the 4:1 prior, so argmax says "CN" for almost everyone;
    fit_balanced gives the sigmoid balanced weights too (measured: balanced accuracy 0.61 -> 0.74 here)."""
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(0)

    def draw(n0, n1):
        y = np.r_[np.zeros(n0, int), np.ones(n1, int)]
        X = rng.normal(size=(len(y), 20))
        X[:, 0] += 2.0 * y
        return X, y

    X, y = draw(48, 12)
    X_test, y_test = draw(200, 200)
    prior = baselines.make_pipeline("gm", "svm", 0, 3, 1.0).fit(X, y).predict_proba(X_test).argmax(1)
    balanced = baselines.fit_balanced(baselines.make_pipeline("gm", "svm", 0, 3, 1.0), X, y).predict_proba(X_test).argmax(1)
    print(balanced_accuracy_score(y_test, prior), balanced_accuracy_score(y_test, balanced))
    assert prior.mean() < 0.2  # the failure this guards against: the minority class is rarely predicted
    assert 0.35 < balanced.mean() < 0.75
    assert balanced_accuracy_score(y_test, balanced) >= balanced_accuracy_score(y_test, prior) + 0.08


def test_grey_matter_voxels_keeps_the_training_gm_mask_without_per_voxel_scaling():
    """The voxel baseline's feature step: voxels whose training mean is >= 20 % of the largest mean, centred
    on the training means, divided by one common SD (a noisy edge voxel is not blown up to unit variance)."""
    from bidsad.learn.baseline_steps import GreyMatterVoxels

    train = np.array([[0.00, 0.04, 0.4, 0.9, 0.2],
                      [0.00, 0.06, 0.6, 1.1, 0.4]])
    step = GreyMatterVoxels().fit(train)
    assert step.keep_.tolist() == [False, False, True, True, True]  # means 0, 0.05 | 0.5, 1.0, 0.3 (>= 0.2)
    centred = train[:, 2:] - [0.5, 1.0, 0.3]
    assert step.scale_ == pytest.approx(0.1)  # every kept value is 0.1 from its voxel's mean
    assert np.allclose(step.transform(train), centred / 0.1)
    assert np.allclose(step.transform(np.array([[9.0, 9.0, 0.5, 1.2, 0.3]])), [[0.0, 2.0, 0.0]])
    with pytest.raises(ValueError, match="no voxel has grey matter"):
        GreyMatterVoxels().fit(np.zeros((2, 3)))
