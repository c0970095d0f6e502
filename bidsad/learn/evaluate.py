"""Classification metrics (scikit-learn) on participant-level predictions."""

from __future__ import annotations

from bidsad.bids import CLASS_NAMES


def classification_metrics(y_true, proba) -> dict:
    """Metrics of one set of predictions.

    Parameters
    ----------
    y_true : int array (n,), class codes 0 CN, 1 MCI, 2 AD.
    proba : float array (n, 3), predicted class probabilities (rows sum to 1).

    Returns a dict: ``n``, ``balanced_accuracy``, ``accuracy``, ``roc_auc_<class>`` (one-vs-rest;
    ``None`` when the class or its complement is absent from ``y_true``), ``roc_auc_macro`` (mean of
    the defined per-class AUCs, ``None`` if none), ``confusion_matrix`` (3x3 list, rows true, columns
    predicted, classes in code order).
    """
    import warnings

    import numpy as np
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, roc_auc_score

    y_true = np.asarray(y_true, dtype=int)
    proba = np.asarray(proba, dtype=float)
    y_pred = proba.argmax(axis=1)
    with warnings.catch_warnings():  # a predicted class absent from y_true is expected with small folds
        warnings.simplefilter("ignore", UserWarning)
        balanced = float(balanced_accuracy_score(y_true, y_pred))
    result = {
        "n": int(len(y_true)),
        "balanced_accuracy": balanced,
        "accuracy": float(accuracy_score(y_true, y_pred)),
    }
    aucs = []
    for code, name in enumerate(CLASS_NAMES):
        positive = y_true == code
        if positive.any() and (~positive).any():
            auc = float(roc_auc_score(positive, proba[:, code]))
            aucs.append(auc)
        else:
            auc = None
        result[f"roc_auc_{name}"] = auc
    result["roc_auc_macro"] = float(np.mean(aucs)) if aucs else None
    result["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=list(range(len(CLASS_NAMES)))).tolist()
    return result


def metrics_rows(model: str, fold: str, metrics: dict) -> list[dict]:
    """Long-format rows (``model``, ``fold``, ``metric``, ``value``) of :func:`classification_metrics`.

    Confusion-matrix cells become ``confusion_true-<class>_pred-<class>``; undefined values ``n/a``.
    """
    rows = []
    for key, value in metrics.items():
        if key == "confusion_matrix":
            for i, true in enumerate(CLASS_NAMES):
                for j, pred in enumerate(CLASS_NAMES):
                    rows.append({"model": model, "fold": fold, "metric": f"confusion_true-{true}_pred-{pred}",
                                 "value": value[i][j]})
        else:
            rows.append({"model": model, "fold": fold, "metric": key, "value": "n/a" if value is None else value})
    return rows
