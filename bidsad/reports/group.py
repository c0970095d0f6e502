"""``group/group.html``: one offline file (figures embedded) built from the group outputs on disk.

Everything is read back from ``out_dir/group`` (``metrics.json``, ``cohort.tsv``, ``splits.tsv``,
``model-<name>/predictions.tsv``, ``model-<name>/[repeat-<r>_]fold-<k>/history.tsv``, ``model-<name>/saliency/``),
so the report can be rebuilt without training (``--reports-only``). Figures are also saved as SVG
under ``group/figures/``. Baselines (``metrics.json["baselines"]``, same structure as ``"models"``,
predictions in ``group/baseline-<name>/predictions.tsv``) are shown beside the models.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

from bidsad import __version__, messages
from bidsad.derivatives import (COHORT_TSV, GROUP_DIR, GROUP_FIGURES_DIR, GROUP_HTML, HISTORY_TSV, METRICS_JSON,
                                MODEL_CARD_JSON, PREDICTIONS_TSV, SALIENCY_DIR, SALIENCY_MAP, SALIENCY_MEAN_INPUT, SPLITS_TSV,
                                model_dir)
from bidsad.phenotype import CLASS_NAMES

LOGGER = logging.getLogger("bidsad")
#: Pooled metrics of the results table: (key, heading, has a bootstrap CI).
TABLE_METRICS = (("balanced_accuracy", "balanced accuracy"), ("roc_auc_macro", "macro ROC AUC"),
                 ("matthews_corrcoef", "MCC"), ("f1", "macro F1"), ("brier_score", "Brier score"),
                 ("expected_calibration_error", "ECE"))


def diagnosis_description(bids_dir: Path | None) -> str:
    """The ``diagnosis`` description of participants.json, if any (e.g. a placeholder-label notice)."""
    if bids_dir is None:
        return ""
    path = Path(bids_dir) / "participants.json"
    try:
        return str(json.loads(path.read_text()).get("diagnosis", {}).get("Description", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def data_uri(svg: str) -> str:
    """An SVG document as a ``data:image/svg+xml;base64`` URI (loads nothing from outside the page)."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _read_tsv(path: Path):
    import pandas as pd

    return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)


def _figures(group_dir: Path, summary: dict) -> list[dict]:
    """Render every figure (saved under ``group/figures/``); return ``[{"id", "title", "caption", "uri"}]``."""
    import numpy as np

    from bidsad.learn.evaluate import average_repeats
    from bidsad.reports import figures
    from bidsad.utils import atomic_write_text

    models, baselines = summary.get("models", {}), summary.get("baselines", {})
    predictions, histories = {}, {}
    for kind, names in (("model", models), ("baseline", baselines)):
        for name in names:
            path = model_dir(group_dir, name, kind) / PREDICTIONS_TSV
            if path.is_file():
                # one prediction per participant: probabilities averaged over --repeats, as the pooled metrics
                predictions[name if kind == "model" else f"{name} (baseline)"] = average_repeats(_read_tsv(path))
    for name in models:
        for path in sorted(model_dir(group_dir, name).glob(f"*fold-*/{HISTORY_TSV}")):  # repeat-<r>_fold-<k> too
            histories.setdefault(name, {})[path.parent.name.removeprefix("fold-")] = _read_tsv(path)
    specs = [
        ("models", f"Models{' and baselines' if baselines else ''} with 95% confidence intervals",
         "Pooled out-of-fold value (marker) and participant-bootstrap 95% CI (bars); dashed line: chance.",
         lambda: figures.model_comparison(models, baselines)),
        ("roc", "ROC curves (one-vs-rest, pooled over folds)", "Per class, one line per model; AUC in the legend.",
         lambda: figures.roc_curves(predictions)),
        ("confusion", "Confusion matrices (pooled)", "Rows: true diagnosis; columns: predicted.",
         lambda: figures.confusion_matrices({**models, **{f"{k} (baseline)": v for k, v in baselines.items()}})),
        ("reliability", "Reliability diagram", "Accuracy against confidence in 10 equal-width bins (marker area: "
         "participants in the bin); ECE: expected calibration error.", lambda: figures.reliability_diagram(models)),
        ("learning", "Learning curves", "Training loss and accuracy per epoch and fold (validation curves, dashed, "
         "only where a validation split existed).", lambda: figures.learning_curves(histories)),
    ]
    for name in models:
        folder = model_dir(group_dir, name) / SALIENCY_DIR
        maps = sorted(folder.glob(f"*{SALIENCY_MAP}.nii.gz"))
        if maps:
            import nibabel as nb

            def saliency(name=name, maps=maps):
                data, background = {}, {}
                for path in maps:
                    label = path.name.split("label-")[1].split("_")[0]
                    data[label] = np.asanyarray(nb.load(path).dataobj)
                    mean_input = path.with_name(path.name.replace(SALIENCY_MAP, SALIENCY_MEAN_INPUT))
                    if mean_input.is_file():
                        background[label] = np.asanyarray(nb.load(mean_input).dataobj)
                return figures.saliency_figure(data, background, title=name)

            space = json.loads(maps[0].with_name(maps[0].name.replace(".nii.gz", ".json")).read_text()).get("Space", "")
            specs.append((f"saliency-{name}", f"Saliency of the MRI input: {name}",
                          f"Mean gradient saliency per true diagnosis (slices through the peak), over the mean MRI "
                          f"input; NIfTI maps in group/model-{name}/saliency/ (space: {space}).", saliency))
    out = []
    for key, title, caption, make in specs:
        try:
            svg = make()
        except Exception as err:  # one broken figure must not cost the report
            LOGGER.warning("figure %s failed: %s", key, err)
            out.append({"id": key, "title": title, "caption": messages.FIGURE_FAILED.format(why=err), "uri": None})
            continue
        if svg:
            atomic_write_text(group_dir / GROUP_FIGURES_DIR / f"{key}.svg", svg)
            out.append({"id": key, "title": title, "caption": caption, "uri": data_uri(svg)})
    figures_dir = group_dir / GROUP_FIGURES_DIR
    for stale in set(figures_dir.glob("*.svg")) - {figures_dir / f"{f['id']}.svg" for f in out if f["uri"]}:
        stale.unlink()  # figures of an earlier run (other models)
    return out


def baseline_summary(baselines: dict) -> list[dict]:
    """One row per evaluated baseline for the report: ``name``, ``inputs``, ``classifier``, ``tuning`` and
    ``C`` (the values chosen over the folds with their counts, e.g. ``0.0001 (x12), 0.001 (x13)``)."""
    from collections import Counter

    rows = []
    for name, result in baselines.items():
        if not result.get("pooled"):
            continue
        chosen = Counter(h.get("C") for h in (result.get("hyperparameters") or {}).values())
        rows.append({"name": name, "inputs": result.get("inputs", ""), "classifier": result.get("classifier", ""),
                     "tuning": result.get("tuning", ""),
                     "C": ", ".join(f"{c:g} (x{n})" for c, n in sorted(chosen.items(), key=lambda kv: kv[0] or 0) if c is not None)})
    return rows


def _test_sets(splits) -> dict:
    """``{(cohort, fold): [participant IDs]}`` of the test roles in ``splits.tsv``, each participant once (the slice
    and paper protocols have one row per slice or copy); with repeats, the fold reads ``"<fold> (repeat <r>)"``."""
    test = splits[splits["role"] == "test"]
    repeats = "repeat" in test and test["repeat"].nunique() > 1
    sets = {}
    for key, rows in test.groupby(["cohort", "repeat", "fold"] if repeats else ["cohort", "fold"], sort=True):
        fold = f"{key[2]} (repeat {key[1]})" if repeats else key[1]
        sets[(key[0], fold)] = list(dict.fromkeys(rows["participant_id"]))
    return sets


def write_group_report(out_dir: Path, bids_dir: Path | None = None) -> Path:
    """Render ``<out_dir>/group/group.html`` (atomically) from the group outputs on disk; return its path.

    ``bids_dir`` (optional) supplies the participants.json description of the diagnosis column.

    Raises
    ------
    FileNotFoundError
        ``group/metrics.json`` does not exist (the group level has not run).
    """
    from bidsad.reports import render
    from bidsad.reports.boilerplate import fold_facts, methods, to_html
    from bidsad.utils import atomic_write_text

    out_dir = Path(out_dir)
    group_dir = out_dir / GROUP_DIR
    summary = json.loads((group_dir / METRICS_JSON).read_text())
    cohort = _read_tsv(group_dir / COHORT_TSV).fillna("")
    cohort["included"] = cohort["included"].astype(str).str.lower() == "true"
    splits = _read_tsv(group_dir / SPLITS_TSV)
    if "cohort" not in splits:  # written before splits were made per sub-cohort
        splits["cohort"] = "all"
    test_sets = _test_sets(splits)
    folds = {name: int(group["fold"].max()) for name, group in splits.groupby("cohort")}
    included = cohort[cohort["included"]]
    labels = included["label"].astype(str).str.replace(".0", "", regex=False)
    classes = summary.get("classes", CLASS_NAMES)  # the task's classes (all three before --classes existed)
    class_counts = {c: int((labels == str(code)).sum()) for code, c in enumerate(classes)}
    from bidsad.config import MODALITIES

    # counts per class and per exclusion reason, and who entered the MRI models only (issue 17)
    from bidsad.learn.cohort import cohort_counts

    counts = cohort_counts(cohort, classes)

    text = methods(out_dir)
    html = render(
        "group.html", version=__version__, summary=summary, results=summary.get("models", {}),
        baselines=summary.get("baselines", {}), classes=classes, table_metrics=TABLE_METRICS,
        baseline_rows=baseline_summary(summary.get("baselines", {})),
        card=json.loads((group_dir / MODEL_CARD_JSON).read_text()) if (group_dir / MODEL_CARD_JSON).is_file() else None,
        cohort=cohort, n_included=len(included), class_counts=class_counts, test_sets=test_sets, folds=folds,
        warnings=summary.get("warnings", []), paper_protocol=messages.PAPER_PROTOCOL,
        diagnosis_note=diagnosis_description(bids_dir), modalities=MODALITIES, figures=_figures(group_dir, summary),
        methods_html=to_html(text["group"]) if text["group"] else "", counts=counts,
        fold=fold_facts(summary, list(summary.get("models", {}))),  # stratified or not, validation, folds that ran
    )
    return atomic_write_text(group_dir / GROUP_HTML, html)


def write_apply_report(out_dir: Path) -> Path:
    """Render ``<out_dir>/group/group.html`` of an ``--apply-models`` run (atomically) from ``group/model_card.json``
    and ``group/predictions.tsv``; return its path."""
    from bidsad.reports import render
    from bidsad.utils import atomic_write_text

    group_dir = Path(out_dir) / GROUP_DIR
    card = json.loads((group_dir / MODEL_CARD_JSON).read_text())
    predictions = _read_tsv(group_dir / PREDICTIONS_TSV).fillna("n/a")
    html = render("apply.html", version=__version__, card=card, app=card["application"],
                  predictions=predictions.to_dict("records"))
    return atomic_write_text(group_dir / GROUP_HTML, html)
