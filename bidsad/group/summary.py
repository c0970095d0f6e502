"""The group level's result files: ``group/metrics.tsv`` (long format) and ``group/metrics.json`` (the run's
summary: results, settings, versions, warnings). The reports, the model card and the citation boilerplate
read ``metrics.json``; its keys are defined here and only here (:func:`run_summary`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bidsad.derivatives import METRICS_TSV

#: Columns of ``metrics.tsv`` (in a leaking protocol a ``split_protocol`` column comes first).
METRICS_COLUMNS = ["model", "fold", "metric", "value", "ci_low", "ci_high"]
#: ``split_protocol`` column of ``metrics.tsv`` in the leaking protocols (comparison only).
LEAK_METRICS_FLAGS = {"paper": "paper (LEAKS: copies of test participants in training)",
                      "slice": "slice (LEAKS: slices of test participants in training)"}


def write_metrics_table(group_dir: Path, rows: list[dict], protocol: str = "participant") -> Path:
    """Write ``metrics.tsv`` (atomically) from :func:`bidsad.learn.evaluate.metrics_rows` rows; return its path.
    ``protocol``: the run's ``--split-protocol``; a leaking one adds the flag column (:data:`LEAK_METRICS_FLAGS`)."""
    import pandas as pd

    from bidsad.utils import atomic_write_text

    metrics = pd.DataFrame(rows, columns=METRICS_COLUMNS)
    if protocol in LEAK_METRICS_FLAGS:
        metrics.insert(0, "split_protocol", LEAK_METRICS_FLAGS[protocol])
    return atomic_write_text(Path(group_dir) / METRICS_TSV, metrics.to_csv(sep="\t", index=False))


def split_protocol(learning, design: dict | None = None) -> str:
    """How the folds were made, in words (``metrics.json["split_protocol"]``); ``design``: the folds as made
    (:func:`bidsad.learn.folds.fold_design`), which say whether they were stratified."""
    from bidsad.learn.folds import stratification_text

    strata = stratification_text(design)
    kfold = "stratified k-fold" if strata == "stratified by diagnosis" else f"k-fold ({strata})"
    if learning.split_protocol == "paper":
        return "paper: augment-then-split (LEAKS; comparison only)"
    if learning.split_protocol == "slice":
        return f"slice: the 2dcnn's axial slices split as samples, {kfold} (LEAKS; comparison only)"
    return f"participant-level {kfold}" + (f", repeated {learning.repeats} times" if learning.repeats > 1 else "")


def run_summary(config, *, results: dict, baselines: dict, classes, splits, device: str, warnings: list,
                labels: dict | None = None) -> dict:
    """The ``metrics.json`` dict of a run.

    ``results`` / ``baselines``: per model (baseline) ``{"folds": {tag: metrics}, **evaluation}`` (the folds
    that ran; :func:`bidsad.learn.evaluate.evaluate_pooled`); ``classes``: the task's class names; ``splits``: the
    ``splits.tsv`` table (``cohort``, ``repeat``, ``fold``, ``participant_id``, ``role``); ``device``:
    :func:`bidsad.group.runtime.compute_device`'s description; ``warnings``: every warning of the run (strings);
    ``labels``: participant_id -> class code of the included participants (whether the folds were stratified).
    """
    from bidsad.config import recipe_summary
    from bidsad.learn.folds import fold_design
    from bidsad.learn.splits import LEAK_WARNINGS
    from bidsad.versions import software_versions

    ex, learning = config.execution, config.learning
    design = fold_design(splits, labels)
    return {
        "models": results, "baselines": baselines, "preset": config.features.preset,
        "mri_input": config.features.mri_input,
        "classes": list(classes), "task": " vs ".join(classes),
        "folds": {c: int(f.max()) for c, f in splits.groupby("cohort")["fold"]}, "repeats": learning.repeats,
        "random_seed": config.seeds.random_seed, "epochs": learning.epochs, "learning_rate": learning.learning_rate,
        "batch_size": learning.batch_size, "split_protocol": split_protocol(learning, design),
        "fold_design": design,  # per sub-cohort: folds, stratified or not, folds with an inner validation split
        "split_protocol_name": learning.split_protocol,
        "leaks": learning.split_protocol in LEAK_WARNINGS,
        "paper_protocol_warning": LEAK_WARNINGS.get(learning.split_protocol),  # the leak warning (paper or slice)
        "slices_mm": list(learning.slices_mm),
        "augmentation": learning.augment,
        "augmentation_parameters": dataclasses.asdict(config.augmentation) if learning.augment else None,
        "inner_validation": learning.validation, "patience": learning.patience,
        "class_weight": learning.class_weight, "deterministic": learning.deterministic, "device": device,
        "versions": software_versions(), "warnings": warnings, "models_requested": list(dict.fromkeys(learning.models)),
        "dropout": learning.dropout, "n_bootstrap": learning.n_bootstrap, "n_permutations": learning.n_permutations,
        "run_uuid": ex.run_uuid, "recipe": recipe_summary(learning),
    }
