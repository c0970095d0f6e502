"""Group-level figures (matplotlib, Agg backend), returned as SVG text for embedding and saving.

Every function returns a complete SVG document (``str``) or ``None`` when there is nothing to plot.
Rasters inside (saliency slices) are embedded in the SVG by matplotlib, so the files need nothing else.
"""

from __future__ import annotations

from bidsad.phenotype import CLASS_NAMES

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams.update({"svg.hashsalt": "bidsad", "font.size": 9, "svg.fonttype": "path"})
    return plt


def _svg(fig) -> str:
    import io

    plt = _plt()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return buffer.getvalue()


def roc_curves(predictions: dict) -> str | None:
    """One-vs-rest ROC curve per class (one panel each), one line per model.

    ``predictions``: ``{model: predictions DataFrame}`` with ``label`` and ``probability_<class>``; the
    task's classes (one panel each) are those of the probability columns. A two-class task gets one panel,
    the second class against the first (e.g. ``AD vs CN``). Classes absent (or without a complement) in a
    model's predictions are not drawn for it.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    from bidsad.learn.evaluate import prediction_classes

    if not predictions:
        return None
    classes = list(dict.fromkeys(c for table in predictions.values() for c in prediction_classes(table)))
    panels = classes[1:] if len(classes) == 2 else classes
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), squeeze=False)
    for ax, name in zip(axes[0], panels):
        for i, (model, table) in enumerate(predictions.items()):
            if f"probability_{name}" not in table:
                continue
            positive = table["label"].to_numpy(int) == prediction_classes(table).index(name)
            if positive.any() and (~positive).any():
                score = table[f"probability_{name}"].to_numpy(float)
                fpr, tpr, _ = roc_curve(positive, score)
                ax.plot(fpr, tpr, color=COLORS[i % len(COLORS)], label=f"{model} ({roc_auc_score(positive, score):.2f})")
        ax.plot([0, 1], [0, 1], color="#999", lw=0.8, ls="--")
        ax.set(title=f"{name} vs {classes[0] if len(classes) == 2 else 'rest'}", xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.02))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=7, title="model (AUC)", title_fontsize=7)
    return _svg(fig)


def confusion_matrices(results: dict) -> str | None:
    """Pooled confusion matrix per model (rows true, columns predicted; counts annotated), over the task's
    classes (``results[model]["pooled"]["classes"]``; :data:`CLASS_NAMES` for results that lack it)."""
    import numpy as np

    models = [m for m, r in results.items() if r.get("pooled")]
    if not models:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(models), figsize=(3.0 * len(models), 3.0), squeeze=False)
    for ax, model in zip(axes[0], models):
        matrix = np.asarray(results[model]["pooled"]["confusion_matrix"])
        ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(1, matrix.max()))
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > matrix.max() / 2 else "black")
        classes = results[model]["pooled"].get("classes", CLASS_NAMES)
        ticks = range(len(classes))
        ax.set(title=model, xticks=ticks, yticks=ticks, xticklabels=classes, yticklabels=classes,
               xlabel="predicted", ylabel="true")
    return _svg(fig)


def learning_curves(histories: dict) -> str | None:
    """Loss and accuracy per epoch per fold (one row of two panels per model).

    ``histories``: ``{model: {fold: history DataFrame}}`` with ``epoch``, ``loss``, ``accuracy`` and,
    when a validation split existed, ``val_loss`` and ``val_accuracy`` (drawn dashed).
    """
    models = [m for m, folds in histories.items() if folds]
    if not models:
        return None
    plt = _plt()
    fig, axes = plt.subplots(len(models), 2, figsize=(7.5, 2.6 * len(models)), squeeze=False)
    for row, model in zip(axes, models):
        for ax, metric in zip(row, ("loss", "accuracy")):
            for i, (fold, table) in enumerate(sorted(histories[model].items())):
                color = COLORS[i % len(COLORS)]
                if metric in table:
                    ax.plot(table["epoch"], table[metric], color=color, marker=".", label=f"fold {fold} train")
                if f"val_{metric}" in table:
                    ax.plot(table["epoch"], table[f"val_{metric}"], color=color, ls="--", label=f"fold {fold} validation")
            ax.set(title=f"{model}: {metric}", xlabel="epoch", ylabel=metric)
            ax.legend(fontsize=6)
    fig.tight_layout()
    return _svg(fig)


def reliability_diagram(results: dict) -> str | None:
    """Top-label reliability diagram: accuracy against mean confidence per bin, one line per model.

    Marker area grows with the bin's count; the diagonal is perfect calibration.
    """
    models = [m for m, r in results.items() if r.get("reliability")]
    if not models:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(3.6, 3.6))
    ax.plot([0, 1], [0, 1], color="#999", lw=0.8, ls="--", label="perfect calibration")
    for i, model in enumerate(models):
        bins = results[model]["reliability"]
        ece = results[model]["pooled"].get("expected_calibration_error")
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], color=COLORS[i % len(COLORS)], marker="o",
                label=f"{model} (ECE {ece:.2f})" if ece is not None else model)
        ax.scatter([b["confidence"] for b in bins], [b["accuracy"] for b in bins], s=[12 * b["count"] for b in bins],
                   color=COLORS[i % len(COLORS)], alpha=0.4)
    ax.set(xlabel="confidence (largest probability)", ylabel="accuracy", xlim=(0, 1), ylim=(-0.02, 1.02))
    ax.legend(fontsize=7, loc="upper left")
    return _svg(fig)


def model_comparison(results: dict, baselines: dict | None = None,
                     metrics=("balanced_accuracy", "roc_auc_macro", "matthews_corrcoef")) -> str | None:
    """Models and baselines side by side: pooled value and bootstrap 95% CI per metric (one panel each).

    ``results`` and ``baselines``: ``{name: {"pooled": metrics, "ci": {metric: {"ci_low", "ci_high"}}}}``;
    baselines are drawn as squares and labelled ``(baseline)``.
    """
    entries = [(m, r, False) for m, r in results.items() if r.get("pooled")]
    entries += [(m, r, True) for m, r in (baselines or {}).items() if r.get("pooled")]
    if not entries:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.0 * len(metrics), 0.5 * len(entries) + 1.2), squeeze=False, sharey=True)
    for ax, metric in zip(axes[0], metrics):
        for y, (name, result, baseline) in enumerate(entries):
            value = result["pooled"].get(metric)
            if value is None:
                continue
            ci = result.get("ci", {}).get(metric, {})
            low, high = ci.get("ci_low"), ci.get("ci_high")
            err = [[value - low], [high - value]] if low is not None and high is not None else None
            ax.errorbar([value], [y], xerr=err, fmt="s" if baseline else "o", color="#555" if baseline else COLORS[0], capsize=3)
        ax.axvline(0.5 if metric.startswith(("balanced", "roc")) else 0.0, color="#999", lw=0.8, ls="--")
        ax.set(title=metric, yticks=range(len(entries)),
               yticklabels=[f"{n} (baseline)" if b else n for n, _, b in entries], ylim=(-0.6, len(entries) - 0.4))
    fig.tight_layout()
    return _svg(fig)


def saliency_figure(maps: dict, backgrounds: dict, title: str = "") -> str | None:
    """Orthogonal slices (sagittal, coronal, axial) of each class's saliency through its centre of mass.

    ``maps`` and ``backgrounds``: ``{class: 3-D array (x, y, z) in RAS order}``; the saliency is drawn
    in colour over its background (the mean MRI input), only inside the background's non-zero voxels
    and above 20% of its maximum there.
    """
    import numpy as np
    from scipy import ndimage

    classes = [c for c in CLASS_NAMES if c in maps]
    if not classes:
        return None
    plt = _plt()
    fig, axes = plt.subplots(len(classes), 3, figsize=(7.5, 2.5 * len(classes)), squeeze=False)
    for row, name in zip(axes, classes):
        background = np.asarray(backgrounds.get(name, np.ones_like(maps[name])), dtype=float)
        data = np.where(background != 0, np.asarray(maps[name], dtype=float), 0.0)
        vmax = float(data.max()) or 1.0
        weights = np.where(data >= 0.2 * vmax, data, 0.0)
        peak = tuple(int(round(c)) for c in ndimage.center_of_mass(weights)) if weights.any() else tuple(s // 2 for s in data.shape)
        for ax, axis, label in zip(row, range(3), ("sagittal", "coronal", "axial")):
            take = [slice(None)] * 3
            take[axis] = peak[axis]
            overlay = np.ma.masked_less(data[tuple(take)], 0.2 * vmax)
            ax.imshow(background[tuple(take)].T, cmap="gray", origin="lower", interpolation="nearest")
            image = ax.imshow(overlay.T, cmap="hot", origin="lower", vmin=0, vmax=vmax, alpha=0.8, interpolation="nearest")
            ax.set_title(f"{name}: {label} (voxel {peak[axis]})", fontsize=8)
            ax.axis("off")
        fig.colorbar(image, ax=row.tolist(), shrink=0.7, label="saliency")
    if title:
        fig.suptitle(title)
    return _svg(fig)
