"""Percentile bootstrap confidence intervals of the classification metrics, all resamples at once.

:func:`bidsad.learn.evaluate.classification_metrics` (scikit-learn) spends ~30 ms per call on input validation,
so 1000 resamples took ~30 s per model and baseline. :func:`resample_metrics` computes the same values for a whole
batch of resamples from their confusion matrices and ranks (numpy, scipy.stats.rankdata); ``tests/test_evaluate.py``
checks them against scikit-learn on random resamples with absent and never-predicted classes.
"""

from __future__ import annotations

from bidsad.phenotype import CLASS_NAMES


def resample_metrics(y_true, proba, index, classes=CLASS_NAMES, n_bins: int | None = None) -> dict:
    """The metrics of :func:`bidsad.learn.evaluate.ci_metrics` for each resample ``index[b]``.

    ``y_true``: (n,) int class codes; ``proba``: (n, K) float probabilities, columns in the order of ``classes``
    (K names); ``index``: (B, n) int rows of each resample; ``n_bins``: calibration bins (default
    :data:`bidsad.learn.evaluate.CALIBRATION_BINS`). Returns ``{metric: (B,) float}`` (``roc_auc_<class>``,
    ``precision`` ...), ``nan`` where a resample leaves the metric undefined (scikit-learn's ``zero_division``
    and one-vs-rest AUC rules: a class absent from the resample has no recall and no AUC).
    """
    import numpy as np
    from scipy.stats import rankdata

    from bidsad.learn.evaluate import CALIBRATION_BINS, confidence_bins

    n_bins = CALIBRATION_BINS if n_bins is None else n_bins

    B, n = index.shape
    K = proba.shape[1]
    y, p = y_true[index], proba[index]  # (B, n), (B, n, K)
    pred = p.argmax(axis=2)
    cm = np.bincount((np.arange(B)[:, None] * K * K + y * K + pred).ravel(), minlength=B * K * K).reshape(B, K, K)
    tp, support, predicted = np.diagonal(cm, axis1=1, axis2=2), cm.sum(axis=2), cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall, precision = tp / support, tp / predicted
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), np.nan)
        correct = tp.sum(axis=1)
        cov_tp = correct * n - (support * predicted).sum(axis=1)
        cov_pp, cov_tt = n * n - (predicted ** 2).sum(axis=1), n * n - (support ** 2).sum(axis=1)
        mcc = np.where(cov_pp * cov_tt == 0, 0.0, cov_tp / np.sqrt(cov_pp * cov_tt))
        out = {"balanced_accuracy": np.nanmean(recall, axis=1), "accuracy": correct / n, "matthews_corrcoef": mcc}
        for name, values in (("precision", precision), ("recall", recall), ("f1", f1)):
            out[name] = np.nanmean(values, axis=1)
        aucs = []
        for k in range(K):
            positive = y == k
            n_pos = positive.sum(axis=1)
            ranks = rankdata(p[:, :, k], axis=1)
            u = (ranks * positive).sum(axis=1) - n_pos * (n_pos + 1) / 2
            aucs.append(np.where((n_pos > 0) & (n_pos < n), u / (n_pos * (n - n_pos)), np.nan))
            out[f"roc_auc_{classes[k]}"] = aucs[-1]
        stacked = np.stack(aucs, axis=1)
        out["roc_auc_macro"] = np.where(np.isnan(stacked).all(axis=1), np.nan, np.nansum(stacked, axis=1)
                                        / np.maximum((~np.isnan(stacked)).sum(axis=1), 1))
    # scikit-learn's brier_score_loss: summed over the classes, over the positive class only with two
    out["brier_score"] = ((p - np.eye(K)[y]) ** 2).sum(axis=2).mean(axis=1) / (2 if K == 2 else 1)
    confidence = proba.max(axis=1)
    bins = confidence_bins(confidence, n_bins)[1][index]
    gap = ((proba.argmax(axis=1) == y_true) - confidence)[index]
    sums = np.bincount((np.arange(B)[:, None] * n_bins + bins).ravel(), weights=gap.ravel(), minlength=B * n_bins)
    out["expected_calibration_error"] = np.abs(sums.reshape(B, n_bins)).sum(axis=1) / n
    return out


def bootstrap_ci(y_true, proba, *, n_resamples: int = 1000, seed: int = 0,
                 metrics=None, level: float = 0.95, classes=CLASS_NAMES) -> dict:
    """Percentile bootstrap confidence intervals, resampling participants with replacement.

    Each of ``n_resamples`` resamples draws ``n`` participants (rows of ``y_true``: (n,) int codes, ``proba``:
    (n, len(classes)) float) with replacement (``numpy.random.default_rng(seed)``) and recomputes the metrics
    (:func:`resample_metrics`, equal to :func:`bidsad.learn.evaluate.classification_metrics`); the interval is the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled values (Efron & Tibshirani 1993).
    Resamples where a metric is undefined (e.g. a class drawn zero times for its AUC) are left out for that
    metric. ``metrics`` default: :func:`bidsad.learn.evaluate.ci_metrics` of ``classes``.

    Returns ``{metric: {"ci_low", "ci_high", "n_resamples"}}``; bounds are ``None`` when fewer than two resamples
    defined the metric. Raises ``ValueError`` when ``proba`` does not have shape (n, len(classes)).
    """
    import numpy as np

    from bidsad.learn.evaluate import _arrays, ci_metrics

    classes = tuple(classes)
    y_true, proba = _arrays(y_true, proba, len(classes))
    metrics = ci_metrics(classes) if metrics is None else metrics
    index = np.random.default_rng(seed).integers(0, len(y_true), (n_resamples, len(y_true)))
    values = resample_metrics(y_true, proba, index, classes)
    alpha = (1 - level) / 2
    out = {}
    for m in metrics:
        defined = values[m][~np.isnan(values[m])]
        low, high = np.quantile(defined, [alpha, 1 - alpha]) if len(defined) >= 2 else (None, None)
        out[m] = {"ci_low": None if low is None else float(low), "ci_high": None if high is None else float(high),
                  "n_resamples": int(len(defined))}
    return out
