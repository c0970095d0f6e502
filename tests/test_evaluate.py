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
