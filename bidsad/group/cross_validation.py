"""The group level's training run (:func:`run_group_level`): cohort -> participant-level splits -> per model,
per fold training (:func:`bidsad.learn.train.train_fold`) -> pooled evaluation -> baselines -> ``metrics.tsv`` /
``metrics.json`` -> model card -> ``group.html`` -> citation boilerplate."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from bidsad import messages
from bidsad.derivatives import GROUP_DIR, GROUP_HTML, METRICS_JSON, PREDICTIONS_TSV, SPLITS_TSV, model_dir

LOGGER = logging.getLogger("bidsad")


@dataclass
class _Run:
    """One group run as it goes: its inputs, plan (cohort, task classes, models, splits) and results so far."""

    config: object
    cohort: object
    included: object
    classes: tuple
    models: list
    splits: object
    warnings: list
    results: dict = field(default_factory=dict)
    metric_rows: list = field(default_factory=list)
    status: int = 0

    @property
    def out_dir(self) -> Path:
        return Path(self.config.execution.out_dir)

    @property
    def group_dir(self) -> Path:
        return self.out_dir / GROUP_DIR

    @property
    def leaks(self) -> bool:
        """The split protocol leaks on purpose (``paper``, ``slice``: comparison only)."""
        return self.config.learning.split_protocol != "participant"

    def warn(self, message: str) -> None:
        """Log a warning and keep it for ``metrics.json`` and the report."""
        self.warnings.append(message)
        LOGGER.warning(message)


def run_group_level(config) -> int:
    """Run the group level; return the exit status (1 when a model failed or the report could not be written,
    else 0). Process-wide settings are those of :func:`bidsad.group.runtime.group_runtime`, restored on return.

    Raises
    ------
    InputError
        No usable features, an unusable participants.tsv, or no cohort that can be split.
    """
    from bidsad.group.runtime import group_runtime

    with group_runtime(config) as (strategy, device):
        LOGGER.info("group level: training on %s; deterministic ops %s", device,
                    "on" if config.learning.deterministic else "off")
        run = _plan(config)
        for model_name in run.models:
            _train_model(run, model_name, strategy)
        summary = _write_metrics(run, device)
        return _finish(run, summary)


def _cohort(config, group_dir: Path):
    """The cohort table (cohort.tsv's rows), the task's classes and the notes about them; keeps or removes an
    earlier ``group/`` (``--overwrite``)."""
    import shutil

    from bidsad.learn.cohort import (build_cohort, check_duplicate_scans, keep_earlier_group, select_classes,
                                     select_participants)

    ex = config.execution
    cohort = build_cohort(Path(ex.out_dir), Path(ex.bids_dir), config.features.preset, config.features.mri_input)
    if ex.participant_label:  # --participant-label at the group level: the others are listed, not used
        cohort = select_participants(cohort, ex.participant_label)
    cohort, classes, class_notes = select_classes(cohort, config.learning.classes)
    class_notes += check_duplicate_scans(cohort)  # refuses one scan under two IDs (InputError)
    LOGGER.info("group level: task %s", " vs ".join(classes))
    keep_earlier_group(group_dir, overwrite=ex.overwrite)
    shutil.rmtree(group_dir, ignore_errors=True)  # group/ always describes one run
    return cohort, classes, class_notes


def _plan(config) -> _Run:
    """Cohort and splits of the run; writes ``cohort.tsv`` and ``splits.tsv`` and logs the warnings so far.

    Raises
    ------
    InputError
        No sub-cohort can be split (the reasons joined).
    """
    import pandas as pd

    from bidsad.bids import InputError
    from bidsad.config import MODALITIES
    from bidsad.learn.cohort import write_cohort
    from bidsad.learn.splits import add_validation, cohort_name, plan_splits
    from bidsad.utils import atomic_write_text

    learning, seed = config.learning, config.seeds.random_seed
    group_dir = Path(config.execution.out_dir) / GROUP_DIR
    cohort, classes, class_notes = _cohort(config, group_dir)
    included = cohort[cohort["included"]].reset_index(drop=True)
    models = list(dict.fromkeys(learning.models))
    slices = (0,)
    if learning.split_protocol == "slice":  # the 2dcnn's slices (voxel indices) become the samples
        from bidsad.derivatives import mri_axial_slices
        from bidsad.learn.data import tensor_shapes

        shape = tensor_shapes(Path(config.execution.out_dir), included[included["mri"] != ""].iloc[0], ("mri",))
        slices = mri_axial_slices(shape["mri"][:3], learning.slices_mm)
    splits, warnings = plan_splits(included, [MODALITIES[m] for m in models], learning.folds, seed,
                                   learning.repeats, learning.split_protocol, classes, slices)
    members = {name: set(part["participant_id"]) for name, part in splits.groupby("cohort")}
    cohort["models"] = [" ".join(m for m in models if pid in members.get(cohort_name(MODALITIES[m]), ()))
                        for pid in cohort["participant_id"]]  # who went where (fusion models: MRI and BOLD)
    write_cohort(group_dir, cohort, classes)
    if splits.empty:
        raise InputError("; ".join(warnings))
    if learning.validation:
        labels = dict(zip(included["participant_id"], included["label"].astype(int)))
        parts = []
        for name, part in splits.groupby("cohort", sort=False):
            part, notes = add_validation(part, labels, seed)
            parts.append(part)
            warnings += [messages.SPLIT_COHORT.format(modalities=name, warning=note) for note in notes]
        splits = pd.concat(parts, ignore_index=True)
    warnings += class_notes
    if len(included) < 30:
        warnings.append(messages.SMALL_N.format(n=len(included)))
    for warning in warnings:
        LOGGER.warning(warning)
    atomic_write_text(group_dir / SPLITS_TSV, splits.to_csv(sep="\t", index=False))
    return _Run(config=config, cohort=cohort, included=included, classes=classes, models=models, splits=splits,
                warnings=warnings)


def _train_fold(run: _Run, fold, saliency, strategy):
    """Check the fold for leakage, train it; return its predictions, or ``None`` when it failed (warned, status 1).

    Raises
    ------
    LeakageError
        A test participant is among the fold's training or validation participants (participant protocol).
    """
    from bidsad.learn.splits import check_no_leakage
    from bidsad.learn.train import train_fold

    work_dir = run.config.execution.work_dir
    trained_on = list(fold.train["participant_id"]) + list(fold.validation["participant_id"])
    if run.leaks:
        overlap = set(trained_on) & set(fold.test["participant_id"])
        if overlap:
            protocol = run.config.learning.split_protocol
            what = "copies" if protocol == "paper" else "slices"
            run.warn(messages.LEAKAGE_BYPASSED.format(protocol=protocol, fold=fold.label.removeprefix("fold "), what=what,
                                                      n=len(overlap)))
    else:
        check_no_leakage(trained_on, fold.test["participant_id"], fold.label.removeprefix("fold "))
    LOGGER.info("model %s, %s: training on %d, testing on %d %s", fold.model, fold.label, len(fold.train),
                len(fold.test), "samples" if run.leaks else "participants")
    try:
        return train_fold(run.config, run.out_dir, fold, run.group_dir / f"model-{fold.model}" / fold.tag,
                          saliency=None if run.leaks else saliency, strategy=strategy, classes=run.classes,
                          state_dir=Path(work_dir) / "bidsad_group" / f"model-{fold.model}" / fold.tag if work_dir else None)
    except Exception as err:  # one model's failure must not lose the others
        LOGGER.exception("model %s, %s failed", fold.model, fold.label)
        run.warn(f"model {fold.model}, {fold.label} failed: {err}")
        run.status = 1
        return None


def _train_model(run: _Run, model_name: str, strategy) -> None:
    """Every fold of one model, its pooled evaluation and saliency maps; results and metric rows go to ``run``."""
    from bidsad.config import MODALITIES
    from bidsad.learn.evaluate import (average_repeats, classification_metrics, evaluate_pooled, metrics_rows,
                                       probability_columns)
    from bidsad.learn.folds import model_folds
    from bidsad.learn.saliency import SaliencyAccumulator
    from bidsad.learn.splits import cohort_name

    config, included = run.config, run.included
    modalities = MODALITIES[model_name]
    usable = included[(included[list(modalities)] != "").all(axis=1)]
    model_splits = run.splits[run.splits["cohort"] == cohort_name(modalities)]
    if model_splits.empty:
        absent = [m for m in modalities if (included[m] == "").all()]
        if absent:  # the dataset has none of its inputs (e.g. T1w only): said, not a warning
            LOGGER.info(messages.MODEL_NO_INPUTS.format(model=model_name, modalities=", ".join(absent)))
            return
        run.warn(messages.MODEL_SKIPPED.format(model=model_name, why=f"its {cohort_name(modalities)} cohort cannot be split"))
        return
    fold_predictions, saliency = [], SaliencyAccumulator(run.classes)
    for fold in model_folds(model_name, model_splits, usable, config.seeds.random_seed, config.learning.repeats):
        predictions = _train_fold(run, fold, saliency, strategy)
        if predictions is None:
            continue
        fold_predictions.append(predictions)
        predictions = average_repeats(predictions)  # slice protocol: per participant
        fold_metrics = classification_metrics(predictions["label"], predictions[probability_columns(run.classes)],
                                              run.classes)
        run.metric_rows += metrics_rows(model_name, fold.tag.removeprefix("fold-"), fold_metrics)
        run.results.setdefault(model_name, {"folds": {}})["folds"][fold.tag.removeprefix("fold-")] = fold_metrics
    if not fold_predictions:
        return
    pooled, evaluation, pooled_rows = evaluate_pooled(model_name, fold_predictions,
                                                      model_dir(run.group_dir, model_name) / PREDICTIONS_TSV,
                                                      config.learning, config.seeds.random_seed)
    run.metric_rows += pooled_rows
    run.results[model_name].update(evaluation)
    for failure in saliency.failures:
        run.warn(failure)
    if saliency:
        _write_saliency(run, model_name, saliency, usable[usable["participant_id"].isin(pooled["participant_id"])])


def _write_saliency(run: _Run, model_name: str, saliency, used) -> None:
    """Write a model's saliency maps; a failure is a warning, never the loss of the model's results."""
    from bidsad.learn.saliency import write_saliency

    try:
        write_saliency(saliency, run.out_dir, used["mri"], run.group_dir / f"model-{model_name}" / "saliency", model_name)
    except Exception as err:  # a saliency failure must not lose the model's results
        LOGGER.debug("saliency maps of model %s failed", model_name, exc_info=True)
        run.warn(messages.SALIENCY_FAILED.format(model=model_name, why=err))


def _write_metrics(run: _Run, device: str) -> dict:
    """Run the baselines (a failure is a warning), write ``metrics.tsv`` and ``metrics.json``; return the summary."""
    from bidsad.group.summary import run_summary, write_metrics_table
    from bidsad.utils import atomic_write_json

    baseline_results, baseline_rows = {}, []
    try:
        from bidsad.learn.baselines import BASELINES, run_baselines

        if run.config.learning.split_protocol == "slice":  # its folds split slices: no participant-level folds
            LOGGER.info(messages.BASELINES_SLICE_PROTOCOL)
        else:
            LOGGER.info("baselines: fitting %d classical models (%s) on the same participant-level folds, each "
                        "evaluated as the models are", len(BASELINES), ", ".join(BASELINES))
            baseline_results, baseline_rows, notes = run_baselines(run.out_dir, run.included, run.splits, run.config,
                                                                   run.classes)
            for note in notes:
                run.warn(note)
    except Exception as err:  # baselines are a comparison, never a reason to lose the models
        LOGGER.exception("baselines failed")
        run.warn(f"baselines failed: {err}")
    write_metrics_table(run.group_dir, run.metric_rows + baseline_rows, run.config.learning.split_protocol)
    summary = run_summary(run.config, results=run.results, baselines=baseline_results, classes=run.classes,
                          splits=run.splits, device=device, warnings=run.warnings,
                          labels=dict(zip(run.included["participant_id"], run.included["label"].astype(int))))
    atomic_write_json(run.group_dir / METRICS_JSON, summary)
    return summary


def _finish(run: _Run, summary: dict) -> int:
    """Model card, group report and citation boilerplate; return the run's exit status (1 without a report)."""
    from bidsad.reports.boilerplate import write_boilerplate_or_warn
    from bidsad.reports.group import write_group_report
    from bidsad.utils import atomic_write_text

    group_dir = run.group_dir
    try:  # what --apply-models needs: training participants and their scans, tensor parameters, fold models
        from bidsad.learn.apply import write_model_card

        write_model_card(run.out_dir, run.cohort, run.classes, run.config, summary)
    except Exception as err:  # never costs the results already written
        LOGGER.exception("model card failed")
        run.warn(messages.MODEL_CARD_FAILED.format(why=err))
    try:
        report = write_group_report(run.out_dir, Path(run.config.execution.bids_dir))
    except Exception as err:  # the report must never cost the results already written
        import traceback

        LOGGER.error(messages.REPORT_FAILED.format(report=group_dir / GROUP_HTML, why=err, details=group_dir / "group.err"))
        atomic_write_text(group_dir / "group.err", f"group report failed: {err!r}\n\n{traceback.format_exc()}")
        return 1
    (group_dir / "group.err").unlink(missing_ok=True)
    write_boilerplate_or_warn(run.out_dir)
    LOGGER.info(messages.GROUP_DONE.format(report=report))
    if run.leaks:
        from bidsad.learn.splits import LEAK_WARNINGS

        LOGGER.warning(LEAK_WARNINGS[run.config.learning.split_protocol])
    return run.status
