"""Metrics on known predictions."""

from __future__ import annotations

import numpy as np
import pytest

from bidsad.learn.evaluate import classification_metrics, metrics_rows


def test_perfect_predictions():
    y = [0, 1, 2, 0, 1, 2]
    proba = np.eye(3)[y] * 0.8 + 0.2 / 3
    m = classification_metrics(y, proba)
    assert m["balanced_accuracy"] == 1.0 and m["roc_auc_macro"] == 1.0
    assert m["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]


def test_known_values():
    y = np.array([0, 0, 1, 1, 2, 2])
    proba = np.array([[.7, .2, .1], [.3, .6, .1], [.2, .5, .3], [.6, .3, .1], [.1, .1, .8], [.2, .2, .6]])
    m = classification_metrics(y, proba)
    # predictions: 0, 1, 1, 0, 2, 2 -> recalls 0.5, 0.5, 1.0
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[1, 1, 0], [1, 1, 0], [0, 0, 2]]
    # CN vs rest: positives .7 .3, negatives .2 .6 .1 .2 -> 7 of 8 pairs ranked correctly
    assert m["roc_auc_CN"] == pytest.approx(7 / 8)
    assert m["roc_auc_AD"] == pytest.approx(1.0)


def test_auc_undefined_when_class_absent():
    m = classification_metrics([1, 2], [[.2, .5, .3], [.1, .2, .7]])
    assert m["roc_auc_CN"] is None and m["roc_auc_MCI"] == 1.0 and m["roc_auc_macro"] == 1.0
    rows = {r["metric"]: r["value"] for r in metrics_rows("3dcnn", "pooled", m)}
    assert rows["roc_auc_CN"] == "n/a" and rows["confusion_true-AD_pred-AD"] == 1


KNOWN_Y = np.array([0, 0, 1, 1, 2, 2])
KNOWN_P = np.array([[.7, .2, .1], [.3, .6, .1], [.2, .5, .3], [.6, .3, .1], [.1, .1, .8], [.2, .2, .6]])


def test_known_values_more_metrics():
    """By hand: predictions 0 1 1 0 2 2; confusion [[1,1,0],[1,1,0],[0,0,2]]."""
    m = classification_metrics(KNOWN_Y, KNOWN_P)
    # MCC (Gorodkin 2004): (c*s - sum p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)) = (4*6 - 12) / 24
    assert m["matthews_corrcoef"] == pytest.approx(0.5)
    assert (m["precision_CN"], m["precision_MCI"], m["precision_AD"]) == pytest.approx((0.5, 0.5, 1.0))
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3) and m["f1"] == pytest.approx(2 / 3)
    # Brier: per-row sums of squares .14 .86 .38 .86 .06 .24 -> 2.54 / 6
    assert m["brier_score"] == pytest.approx(2.54 / 6)
    # ECE: bins (.5,.6]: 3 rows, accuracy 1/3, confidence .6; (.6,.7]: acc 1, conf .7; (.4,.5]: 1, .5; (.7,.8]: 1, .8
    assert m["expected_calibration_error"] == pytest.approx((3 * abs(1 / 3 - .6) + .3 + .5 + .2) / 6)
    assert m["expected_calibration_error"] == pytest.approx(0.3)


def test_reliability_curve_bins():
    from bidsad.learn.evaluate import reliability_curve

    curve = {round(b["bin_high"], 1): (b["count"], b["accuracy"], b["confidence"]) for b in reliability_curve(KNOWN_Y, KNOWN_P)}
    assert curve == {0.5: (1, 1.0, 0.5), 0.6: (3, pytest.approx(1 / 3), pytest.approx(0.6)), 0.7: (1, 1.0, 0.7), 0.8: (1, 1.0, 0.8)}


def test_undefined_precision_and_recall_are_none():
    m = classification_metrics([1, 2], [[.2, .5, .3], [.1, .2, .7]])
    assert m["recall_CN"] is None and m["precision_CN"] is None  # CN neither true nor predicted
    assert m["precision"] == 1.0 and m["f1_MCI"] == 1.0


def test_bootstrap_ci_matches_binomial_interval():
    """70 of 100 correct: the bootstrap CI of accuracy is about 0.7 +- 1.96 sqrt(0.21 / 100) = [0.61, 0.79]."""
    from bidsad.learn.bootstrap import bootstrap_ci

    y = np.array([0, 1] * 50)
    predicted = np.where(np.arange(100) < 70, y, 1 - y)
    proba = np.eye(3)[predicted] * 0.9 + 0.1 / 3
    ci = bootstrap_ci(y, proba, n_resamples=200, seed=1, metrics=("accuracy",))["accuracy"]
    assert ci["ci_low"] == pytest.approx(0.61, abs=0.03) and ci["ci_high"] == pytest.approx(0.79, abs=0.03)
    assert ci["n_resamples"] == 200
    few = bootstrap_ci(y, proba, n_resamples=20, seed=1, metrics=("accuracy",))["accuracy"]
    assert few == bootstrap_ci(y, proba, n_resamples=20, seed=1, metrics=("accuracy",))["accuracy"]
    assert few != bootstrap_ci(y, proba, n_resamples=20, seed=2, metrics=("accuracy",))["accuracy"]


def test_bootstrap_skips_undefined_resamples():
    from bidsad.learn.bootstrap import bootstrap_ci

    ci = bootstrap_ci([0, 1], [[.9, .05, .05], [.1, .8, .1]], n_resamples=50, seed=0, metrics=("roc_auc_CN", "accuracy"))
    # resamples with only one class leave AUC undefined: about half of them
    assert 10 < ci["roc_auc_CN"]["n_resamples"] < 40 and ci["roc_auc_CN"]["ci_low"] == 1.0
    assert ci["accuracy"] == {"ci_low": 1.0, "ci_high": 1.0, "n_resamples": 50}


def test_permutation_pvalue_exact_cases():
    from bidsad.learn.evaluate import permutation_pvalue

    y = np.repeat([0, 1, 2], 4)
    perfect = np.eye(3)[y] * 0.9 + 0.1 / 3
    # a permutation reproduces all 12 labels with probability 4!^3 / 12! ~ 3e-5: p = 1 / (1 + 999)
    result = permutation_pvalue(y, perfect, n_permutations=999, seed=0)
    assert result["observed"] == 1.0 and result["p_value"] == pytest.approx(1 / 1000)
    # constant predictions: balanced accuracy 1/3 under every permutation -> p = 1
    constant = np.tile([.5, .3, .2], (12, 1))
    assert permutation_pvalue(y, constant, n_permutations=99, seed=0)["p_value"] == 1.0


def test_metrics_rows_carry_intervals():
    from bidsad.learn.bootstrap import bootstrap_ci

    m = classification_metrics(KNOWN_Y, KNOWN_P)
    ci = bootstrap_ci(KNOWN_Y, KNOWN_P, n_resamples=20, seed=0)
    rows = {r["metric"]: r for r in metrics_rows("3dcnn", "pooled", m, ci)}
    assert rows["balanced_accuracy"]["ci_low"] <= rows["balanced_accuracy"]["ci_high"]
    assert rows["n"]["ci_low"] == "n/a" and rows["confusion_true-CN_pred-CN"]["ci_high"] == "n/a"


def test_bad_shape_is_refused():
    with pytest.raises(ValueError, match="shape"):
        classification_metrics([0, 1], [[1.0, 0.0], [0.0, 1.0]])


def test_slice_predictions_are_averaged_per_participant():
    """Slice protocol: metrics are per participant, from the mean of its slices' probabilities (over folds)."""
    import pandas as pd

    from bidsad.learn.evaluate import average_repeats

    predictions = pd.DataFrame({
        "participant_id": ["sub-1", "sub-1", "sub-1", "sub-2", "sub-2"], "slice": [10, 12, 13, 10, 12],
        "repeat": 1, "fold": [1, 2, 2, 1, 3], "diagnosis": ["CN"] * 3 + ["AD"] * 2, "label": [0, 0, 0, 1, 1],
        "probability_CN": [0.9, 0.2, 0.43, 0.3, 0.6], "probability_AD": [0.1, 0.8, 0.57, 0.7, 0.4]})
    averaged = average_repeats(predictions)
    assert list(averaged.participant_id) == ["sub-1", "sub-2"] and "slice" not in averaged
    np.testing.assert_allclose(averaged.probability_CN, [0.51, 0.45])
    assert list(averaged.predicted_label) == [0, 1] and list(averaged.predicted_diagnosis) == ["CN", "AD"]


@pytest.mark.parametrize("classes", [("CN", "AD"), ("CN", "MCI", "AD")])
def test_resample_metrics_equal_scikit_learn(classes):
    """The batched bootstrap metrics equal classification_metrics (scikit-learn) on every resample, including
    resamples that lack a class or never predict one, and ties in the probabilities (ranks for the AUC)."""
    from bidsad.learn.bootstrap import resample_metrics
    from bidsad.learn.evaluate import CALIBRATION_BINS, ci_metrics

    rng = np.random.default_rng(3)
    K, n = len(classes), 9
    y = rng.integers(0, K, n)
    y[:2] = 0
    proba = rng.dirichlet(np.ones(K), n).round(1)  # rounded: tied scores
    proba[:, 0] += 0.01
    proba /= proba.sum(axis=1, keepdims=True)
    index = rng.integers(0, n, (60, n))
    index[0] = 0  # one class only: no recall / AUC for the others
    batch = resample_metrics(y, proba, index, classes, CALIBRATION_BINS)
    undefined = 0
    for b, rows in enumerate(index):
        expected = classification_metrics(y[rows], proba[rows], classes)
        for metric in ci_metrics(classes):
            if expected[metric] is None or np.isnan(expected[metric]):
                assert np.isnan(batch[metric][b]), (b, metric)
                undefined += 1
            else:
                assert batch[metric][b] == pytest.approx(expected[metric], abs=1e-12), (b, metric)
    assert undefined > 0
