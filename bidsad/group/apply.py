"""``group --apply-models DIR`` (:func:`run_apply`): the models of an earlier group run predict every participant
of this dataset's derivatives.

It reads the earlier run's model card, refuses new participants that are training participants (same ID, or
the same scan under another ID: the content hash) and tensors made with other parameters
(:mod:`bidsad.learn.apply`), then predicts every new participant with each model's ensemble: the class
probabilities of all its fold models (every fold and repeat) averaged. It writes ``group/predictions.tsv``
(+ ``.json`` sidecar), ``group/model_card.json`` (the training card plus what this application did) and
``group/group.html``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bidsad import messages
from bidsad.derivatives import GROUP_DIR, PREDICTIONS_JSON, PREDICTIONS_TSV

LOGGER = logging.getLogger("bidsad")


def run_apply(config) -> int:
    """``group --apply-models DIR``: predict every participant of ``out_dir``'s derivatives with the models of an
    earlier group run; return the exit status (0).

    Raises
    ------
    InputError
        See :func:`bidsad.learn.apply.read_model_card`, :func:`~bidsad.learn.apply.check_against_training`,
        :func:`~bidsad.learn.apply.check_parameters`; ``out_dir`` is the training run itself; or no participant
        has the models' inputs.
    """
    import shutil

    import pandas as pd

    from bidsad.bids import InputError
    from bidsad.learn.apply import check_against_training, check_parameters, read_model_card
    from bidsad.learn.cohort import build_cohort

    ex = config.execution
    out_dir, bids_dir = Path(ex.out_dir), Path(ex.bids_dir)
    source = Path(ex.apply_models).resolve()
    group_dir = out_dir / GROUP_DIR
    if group_dir.resolve() == source:
        raise InputError(messages.APPLY_SAME_RUN.format(path=source))
    card = read_model_card(source)
    preset = card["preset"]
    if preset != config.features.preset:
        LOGGER.info(messages.APPLY_PRESET.format(preset=preset))
    cohort = build_cohort(out_dir, bids_dir, preset, card.get("mri_input", "t1w"), labels_required=False)
    cohort = cohort[cohort["mri"] != ""].reset_index(drop=True)
    notes = check_against_training(cohort, card)
    used = sorted({m for model in card["models"].values() for m in model["modalities"]})
    check_parameters(out_dir, cohort, card, used)
    for note in notes:
        LOGGER.warning(note)
    if group_dir.exists():
        LOGGER.warning(messages.APPLY_REPLACES.format(group=group_dir))
        shutil.rmtree(group_dir)  # group/ always describes one run

    tables, evaluations = [], {}
    for name, model in card["models"].items():
        rows = cohort[(cohort[list(model["modalities"])] != "").all(axis=1)].reset_index(drop=True)
        if rows.empty:
            notes.append(messages.APPLY_NO_INPUTS.format(model=name, modalities=" + ".join(model["modalities"])))
            continue
        table, evaluation = _apply_model(config, source, card, name, rows)
        tables.append(table)
        if evaluation is not None:
            evaluations[name] = evaluation
    if not tables:
        raise InputError("; ".join(notes))
    return _write_outputs(config, source, card, pd.concat(tables, ignore_index=True), evaluations, notes)


def _apply_model(config, source: Path, card: dict, name: str, rows):
    """One model's ensemble predictions for ``rows`` (cohort rows with its inputs): ``(table, evaluation)``.

    ``table``: one row per participant (``participant_id``, ``model``, ``diagnosis``, ``label`` in the task's
    codes or NA, ``predicted_diagnosis``, ``probability_<class>``); ``evaluation``: metrics with bootstrap CIs on
    the participants whose diagnosis is one of the task's classes (``None`` unless two classes are present).
    """
    import pandas as pd

    from bidsad.phenotype import CLASS_NAMES
    from bidsad.learn.apply import ensemble_predict
    from bidsad.learn.bootstrap import bootstrap_ci
    from bidsad.learn.evaluate import classification_metrics, probability_columns

    model, classes = card["models"][name], tuple(card["task"]["classes"])
    task_codes = {c: index for index, c in enumerate(classes)}

    def task_label(code):
        return pd.NA if pd.isna(code) else task_codes.get(CLASS_NAMES[int(code)], pd.NA)

    LOGGER.info("applying %s (%d fold models) to %d participants", name, len(model["fold_models"]), len(rows))
    proba = ensemble_predict(source, model["fold_models"], Path(config.execution.out_dir), rows, model["modalities"],
                             config.learning.batch_size)
    table = pd.DataFrame({"participant_id": rows["participant_id"], "model": name,
                          "diagnosis": rows["diagnosis"].replace("", "n/a"),
                          "label": [task_label(c) for c in rows["label"]]})
    table["predicted_diagnosis"] = [classes[i] for i in proba.argmax(axis=1)]
    for i, column in enumerate(probability_columns(classes)):
        table[column] = proba[:, i].round(6)
    known = table["label"].notna().to_numpy()
    if not (known.sum() and len(set(table.loc[known, "label"])) > 1):
        return table, None
    y = table.loc[known, "label"].astype(int).to_numpy()
    metrics = classification_metrics(y, proba[known], classes)
    ci = bootstrap_ci(y, proba[known], n_resamples=config.learning.n_bootstrap, seed=config.seeds.random_seed,
                      classes=classes)
    return table, {"n": int(known.sum()), "metrics": metrics, "ci": ci,
                   "within_cross_validated_ci": _within(metrics, model["cross_validated"])}


def _write_outputs(config, source: Path, card: dict, predictions, evaluations: dict, notes: list) -> int:
    """Write ``predictions.tsv`` / ``.json``, the applied model card and ``group.html``; return 0."""
    from bidsad.derivatives import MODEL_CARD_JSON as MODEL_CARD
    from bidsad.learn.evaluate import probability_columns
    from bidsad.reports.group import write_apply_report
    from bidsad.utils import atomic_write_json, atomic_write_text
    from bidsad.versions import software_versions

    ex = config.execution
    out_dir, classes = Path(ex.out_dir), tuple(card["task"]["classes"])
    group_dir = out_dir / GROUP_DIR
    atomic_write_text(group_dir / PREDICTIONS_TSV, predictions.to_csv(sep="\t", index=False, na_rep="n/a"))
    atomic_write_json(group_dir / PREDICTIONS_JSON, {
        "Description": f"Class probabilities of the models of {source} (run {card.get('run_uuid')}), each the mean over "
                       "its fold models (every fold and repeat).",
        "participant_id": {"Description": "participant of this dataset"},
        "model": {"Description": "model name (registry of bidsad.learn.models)"},
        "diagnosis": {"Description": "diagnosis in this dataset's participants.tsv (n/a: none)"},
        "label": {"Description": f"index of the diagnosis in the task's classes {list(classes)} (n/a: not one of them)"},
        "predicted_diagnosis": {"Description": "class with the largest mean probability"},
        **{c: {"Description": f"mean predicted probability of {c.removeprefix('probability_')}", "Units": "probability"}
           for c in probability_columns(classes)},
        "Sources": [str(source / MODEL_CARD)], "ModelCard": str(source / MODEL_CARD)})
    applied = {**card, "application": {
        "run_uuid": ex.run_uuid, "models_from": str(source), "dataset": str(Path(ex.bids_dir)), "derivatives": str(out_dir),
        "n_participants": int(predictions["participant_id"].nunique()), "ensemble": "mean probability over fold models",
        "evaluation": evaluations, "notes": notes, "software_versions": software_versions()}}
    atomic_write_json(group_dir / MODEL_CARD, applied)
    report = write_apply_report(out_dir)
    LOGGER.info(messages.APPLY_DONE.format(report=report, n=applied["application"]["n_participants"]))
    return 0


def _within(metrics: dict, cross_validated: dict) -> dict:
    """Per card metric: whether the applied value lies inside the cross-validated 95% CI (``None`` if undefined)."""
    out = {}
    for key, reference in cross_validated.items():
        value, low, high = metrics.get(key), reference.get("ci_low"), reference.get("ci_high")
        out[key] = None if value is None or low is None or high is None else bool(low <= value <= high)
    return out
