"""Evaluation of participant-level predictions: metrics (scikit-learn), calibration, bootstrap
confidence intervals and a permutation p-value.

Every function takes ``y_true`` (int array (n,), class indices in the task's ``classes``: by default
0 CN, 1 MCI, 2 AD; a two-class task ``("CN", "AD")`` has 0 CN, 1 AD) and ``proba`` (float array
(n, n_classes), predicted class probabilities, rows summing to 1); the predicted class is the
arg-max of ``proba``. Metric names are scikit-learn's.
"""

from __future__ import annotations

import logging
import warnings

from bidsad.phenotype import CLASS_NAMES

LOGGER = logging.getLogger("bidsad")

#: Bootstrap resamples of participants for the 95% confidence intervals (Efron & Tibshirani 1993).
DEFAULT_BOOTSTRAP = 1000
#: Label permutations for the permutation p-value.
DEFAULT_PERMUTATIONS = 1000
#: Equal-width confidence bins of the reliability curve and the expected calibration error.
CALIBRATION_BINS = 10
#: Column prefix of the class probabilities in every predictions table (``probability_CN``, ...).
PROBABILITY_PREFIX = "probability_"


def ci_metrics(classes=CLASS_NAMES) -> tuple:
    """Metrics that get a bootstrap confidence interval (scalars of :func:`classification_metrics`)."""
    return ("balanced_accuracy", "accuracy", "matthews_corrcoef", "precision", "recall", "f1",
            "roc_auc_macro", *(f"roc_auc_{c}" for c in classes), "brier_score", "expected_calibration_error")



def prediction_classes(predictions) -> tuple:
    """The task's classes of a predictions table: the names of its ``probability_<class>`` columns, in order."""
    return tuple(c.removeprefix(PROBABILITY_PREFIX) for c in predictions.columns if c.startswith(PROBABILITY_PREFIX))


def probability_columns(classes) -> list[str]:
    """``probability_<class>`` column names of ``classes``."""
    return [f"{PROBABILITY_PREFIX}{c}" for c in classes]
#: Statistic of the permutation test.
PERMUTATION_METRIC = "balanced_accuracy"


def _arrays(y_true, proba, n_classes: int | None = None):
    import numpy as np

    y_true = np.asarray(y_true, dtype=int)
    proba = np.asarray(proba, dtype=float)
    n_classes = n_classes or (proba.shape[1] if proba.ndim == 2 else len(CLASS_NAMES))
    if proba.ndim != 2 or proba.shape != (len(y_true), n_classes) or n_classes < 2:
        raise ValueError(f"proba must have shape ({len(y_true)}, {n_classes}) with >= 2 classes, got {proba.shape}")
    return y_true, proba


def _none_if_nan(value):
    import math

    value = float(value)
    return None if math.isnan(value) else value


def confidence_bins(confidence, n_bins: int):
    """``(edges, index)``: the ``n_bins + 1`` equal-width bin edges on [0, 1] and the bin of each confidence
    (float array (n,) -> int array (n,)): bin ``b`` holds ``(b/n_bins, (b+1)/n_bins]``, the first bin includes 0."""
    import numpy as np

    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return edges, np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)


def reliability_curve(y_true, proba, n_bins: int = CALIBRATION_BINS) -> list[dict]:
    """Top-label reliability curve: accuracy against confidence in equal-width confidence bins.

    The confidence of a prediction is its largest probability; bin ``b`` holds the predictions with
    confidence in ``(b/n_bins, (b+1)/n_bins]`` (the first bin includes 0). Guo et al. (2017), On
    calibration of modern neural networks, ICML.

    Returns one dict per non-empty bin: ``bin_low``, ``bin_high``, ``count``, ``confidence`` (mean
    confidence), ``accuracy`` (fraction of correct predictions).
    """
    y_true, proba = _arrays(y_true, proba)
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y_true
    edges, index = confidence_bins(confidence, n_bins)
    curve = []
    for b in range(n_bins):
        members = index == b
        if members.any():
            curve.append({"bin_low": float(edges[b]), "bin_high": float(edges[b + 1]), "count": int(members.sum()),
                          "confidence": float(confidence[members].mean()), "accuracy": float(correct[members].mean())})
    return curve


def expected_calibration_error(y_true, proba, n_bins: int = CALIBRATION_BINS) -> float:
    """Expected calibration error (top label): ``sum_b n_b / n * |accuracy_b - confidence_b|``.

    Bins as in :func:`reliability_curve`. Naeini et al. (2015), AAAI; Guo et al. (2017), ICML.
    0 is perfectly calibrated, 1 the worst.
    """
    curve = reliability_curve(y_true, proba, n_bins)
    n = sum(b["count"] for b in curve)
    return float(sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in curve)) if n else float("nan")


def classification_metrics(y_true, proba, classes=CLASS_NAMES) -> dict:
    """Metrics of one set of predictions (scikit-learn names) of a task with ``classes`` (names, in
    the order of ``proba``'s columns).

    Returns a dict:

    - ``classes``: the task's class names (list);
    - ``n``; ``balanced_accuracy``; ``accuracy``; ``matthews_corrcoef`` (multiclass MCC);
    - ``precision``, ``recall``, ``f1``: macro averages over the classes where they are defined, and
      ``precision_<class>``, ``recall_<class>``, ``f1_<class>`` (``None`` where undefined: a class
      never predicted has no precision, a class absent from ``y_true`` no recall);
    - ``roc_auc_<class>``: one-vs-rest ROC AUC (``None`` when the class or its complement is absent
      from ``y_true``); ``roc_auc_macro``: mean of the defined per-class AUCs (``None`` if none);
    - ``brier_score``: multiclass Brier score, mean over participants of the summed squared
      difference between ``proba`` and the one-hot truth (0 best, 2 worst; scikit-learn's
      ``brier_score_loss`` with all the task's labels);
    - ``expected_calibration_error``: see :func:`expected_calibration_error`;
    - ``confusion_matrix``: n_classes x n_classes list, rows true, columns predicted, classes in order.

    Raises
    ------
    ValueError
        ``proba`` does not have shape (n, len(classes)).
    """
    import numpy as np
    from sklearn.metrics import (accuracy_score, balanced_accuracy_score, brier_score_loss, confusion_matrix,
                                 matthews_corrcoef, precision_recall_fscore_support, roc_auc_score)

    classes = tuple(classes)
    y_true, proba = _arrays(y_true, proba, len(classes))
    y_pred = proba.argmax(axis=1)
    labels = list(range(len(classes)))
    with warnings.catch_warnings():  # a predicted class absent from y_true is expected with small folds
        warnings.simplefilter("ignore")
        result = {
            "classes": list(classes),
            "n": int(len(y_true)),
            "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
            "accuracy": float(accuracy_score(y_true, y_pred)),
            "matthews_corrcoef": float(matthews_corrcoef(y_true, y_pred)),
        }
        per_class = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=np.nan)
        for name, values in zip(("precision", "recall", "f1"), per_class[:3]):
            defined = values[~np.isnan(values)]
            result[name] = float(defined.mean()) if defined.size else None
            for code, cls in enumerate(classes):
                result[f"{name}_{cls}"] = _none_if_nan(values[code])
        aucs = []
        for code, cls in enumerate(classes):
            positive = y_true == code
            auc = float(roc_auc_score(positive, proba[:, code])) if positive.any() and (~positive).any() else None
            if auc is not None:
                aucs.append(auc)
            result[f"roc_auc_{cls}"] = auc
        result["roc_auc_macro"] = float(np.mean(aucs)) if aucs else None
        result["brier_score"] = float(brier_score_loss(y_true, proba, labels=labels))
    result["expected_calibration_error"] = expected_calibration_error(y_true, proba)
    result["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return result


def permutation_pvalue(y_true, proba, *, n_permutations: int = DEFAULT_PERMUTATIONS, seed: int = 0,
                       metric: str = PERMUTATION_METRIC, classes=None) -> dict:
    """Permutation p-value of fixed out-of-fold predictions.

    The true labels are permuted ``n_permutations`` times (``numpy.random.default_rng(seed)``)
    against the unchanged predictions, and ``metric`` recomputed. The p-value is
    ``(1 + #{permuted >= observed}) / (1 + n_permutations)`` (Phipson & Smyth 2010), so it is never 0.

    This tests whether the predictions carry information about the labels (H0: predictions and
    labels independent). The models are not retrained per permutation (as in Ojala & Garriga 2010,
    test 1), which would be too expensive for deep models; the test therefore does not account for
    the variability of training itself.

    ``classes``: the task's class names (needed only for a per-class ``metric``; default
    :data:`CLASS_NAMES`). Returns ``{"metric", "observed", "p_value", "n_permutations", "seed"}``.
    """
    import numpy as np

    from sklearn.metrics import balanced_accuracy_score

    y_true, proba = _arrays(y_true, proba)
    classes = tuple(classes or CLASS_NAMES)
    if metric == "balanced_accuracy":  # the default: one scikit-learn call per permutation
        y_pred = proba.argmax(axis=1)

        def statistic(y):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return float(balanced_accuracy_score(y, y_pred))
    else:
        def statistic(y):
            return classification_metrics(y, proba, classes)[metric]
    observed = statistic(y_true)
    if observed is None:
        return {"metric": metric, "observed": None, "p_value": None, "n_permutations": int(n_permutations), "seed": int(seed)}
    rng = np.random.default_rng(seed)
    exceed = 0
    for _ in range(n_permutations):
        value = statistic(rng.permutation(y_true))
        exceed += value is not None and value >= observed - 1e-12
    return {"metric": metric, "observed": observed, "p_value": (1 + exceed) / (1 + n_permutations),
            "n_permutations": int(n_permutations), "seed": int(seed)}


def metrics_rows(model: str, fold: str, metrics: dict, ci: dict | None = None) -> list[dict]:
    """Long-format rows (``model``, ``fold``, ``metric``, ``value``, ``ci_low``, ``ci_high``).

    ``metrics`` is a :func:`classification_metrics` dict, ``ci`` an optional :func:`bidsad.learn.bootstrap.bootstrap_ci`
    dict. Confusion-matrix cells become ``confusion_true-<class>_pred-<class>`` (classes of
    ``metrics["classes"]``, else :data:`CLASS_NAMES`); undefined values and missing intervals are ``n/a``.
    """
    ci = ci or {}

    def row(metric, value):
        bounds = ci.get(metric, {})
        return {"model": model, "fold": fold, "metric": metric, "value": "n/a" if value is None else value,
                "ci_low": "n/a" if bounds.get("ci_low") is None else bounds["ci_low"],
                "ci_high": "n/a" if bounds.get("ci_high") is None else bounds["ci_high"]}

    rows = []
    classes = metrics.get("classes", CLASS_NAMES)
    for key, value in metrics.items():
        if key == "classes":
            continue
        if key == "confusion_matrix":
            for i, true in enumerate(classes):
                for j, pred in enumerate(classes):
                    rows.append(row(f"confusion_true-{true}_pred-{pred}", value[i][j]))
        else:
            rows.append(row(key, value))
    return rows


def evaluate_predictions(predictions, *, n_bootstrap: int = DEFAULT_BOOTSTRAP,
                         n_permutations: int = DEFAULT_PERMUTATIONS, seed: int = 0) -> dict:
    """Pooled evaluation of one model's out-of-fold predictions (a ``predictions.tsv`` DataFrame; the
    task's classes are its ``probability_<class>`` columns, :func:`prediction_classes`).

    Returns ``{"pooled": metrics, "ci": bootstrap_ci, "permutation": permutation_pvalue,
    "reliability": reliability_curve, "n_participants": n}``; ``bootstrap_ci``: :func:`bidsad.learn.bootstrap.bootstrap_ci`.
    """
    from bidsad.learn.bootstrap import bootstrap_ci

    classes = prediction_classes(predictions)
    y = predictions["label"].to_numpy(int)
    proba = predictions[probability_columns(classes)].to_numpy(float)
    return {
        "pooled": classification_metrics(y, proba, classes),
        "ci": bootstrap_ci(y, proba, n_resamples=n_bootstrap, seed=seed, classes=classes),
        "permutation": permutation_pvalue(y, proba, n_permutations=n_permutations, seed=seed, classes=classes),
        "reliability": reliability_curve(y, proba),
        "n_participants": int(len(y)),
    }


def average_repeats(predictions):
    """One out-of-fold prediction per participant (per sample in the paper protocol): the class
    probabilities averaged over repeats (every repeat's model never saw that participant) and, in the slice
    protocol, over the participant's slices; argmax.

    ``predictions``: a ``predictions.tsv`` DataFrame (``participant_id``, optional ``copy``, ``slice`` and
    ``repeat``, ``diagnosis``, ``label``, one ``probability_<class>`` column per class); returned unchanged
    without repeats and slices, else one row per participant (and copy) with ``predicted_label`` /
    ``predicted_diagnosis`` recomputed.
    """
    keys = ["participant_id"] + (["copy"] if "copy" in predictions else [])
    if "slice" not in predictions and ("repeat" not in predictions or predictions["repeat"].nunique() == 1):
        return predictions
    classes = prediction_classes(predictions)
    probabilities = probability_columns(classes)
    first = predictions.groupby(keys, sort=False)[["diagnosis", "label"]].first()
    mean = predictions.groupby(keys, sort=False)[probabilities].mean()
    out = first.join(mean).reset_index()
    out["predicted_label"] = out[probabilities].to_numpy().argmax(axis=1)
    out["predicted_diagnosis"] = [classes[c] for c in out["predicted_label"]]
    return out


def evaluate_pooled(name: str, fold_predictions: list, out_file, learning, seed: int):
    """Pool one model's (or baseline's) out-of-fold predictions, write them to ``out_file`` (TSV, atomically),
    and evaluate them once per participant (:func:`average_repeats`, then :func:`evaluate_predictions` with
    ``learning.n_bootstrap`` / ``n_permutations`` of a :class:`bidsad.config.Learning`, and ``seed``).

    Returns ``(pooled, evaluation, rows)``: the pooled predictions (DataFrame, as written), the evaluation dict
    and its ``metrics.tsv`` rows (pooled metrics with CIs, then the permutation p-value, ``n/a`` when it could
    not be computed).
    """
    import pandas as pd

    from bidsad.utils import atomic_write_text

    pooled = pd.concat(fold_predictions, ignore_index=True)
    atomic_write_text(out_file, pooled.to_csv(sep="\t", index=False))
    participants = average_repeats(pooled)
    # said before it starts: the permutation test takes a few seconds (~3 s for 1000 permutations on 2 cores)
    LOGGER.info("%s: pooled evaluation of %d participants: bootstrap confidence intervals (%d resamples) and "
                "permutation test (%d permutations)", name, len(participants), learning.n_bootstrap,
                learning.n_permutations)
    evaluation = evaluate_predictions(participants, n_bootstrap=learning.n_bootstrap,
                                      n_permutations=learning.n_permutations, seed=seed)
    rows = metrics_rows(name, "pooled", evaluation["pooled"], evaluation["ci"])
    p_value = evaluation["permutation"]["p_value"]
    rows.append({"model": name, "fold": "pooled", "metric": "permutation_p_value",
                 "value": "n/a" if p_value is None else p_value, "ci_low": "n/a", "ci_high": "n/a"})
    return pooled, evaluation, rows
