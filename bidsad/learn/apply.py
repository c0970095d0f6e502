"""Trained models beyond their cross-validation (library; the ``--apply-models`` run is
:mod:`bidsad.group.apply`): the model card a group run leaves, the checks before applying its saved fold
models to the participants of another dataset, and their ensemble predictions.

A training run writes ``group/model_card.json`` (:func:`write_model_card`): the task's classes, the training
participants (IDs, diagnoses and :data:`bidsad.derivatives.CONTENT_HASH_KEY` of their source T1w), the tensor
parameters they were made with, the recipe (every ``[learning]`` setting), preset, software versions, each
model's fold models and cross-validated metrics with their confidence intervals.

Before applying, :func:`read_model_card` reads it, :func:`check_against_training` refuses new participants that
are training participants (same ID, or the same scan under another ID: the content hash) and
:func:`check_parameters` tensors made with other parameters; :func:`ensemble_predict` gives each model's
ensemble prediction: the class probabilities of all its fold models (every fold and repeat) averaged.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from bidsad import messages
from bidsad.bids import InputError
from bidsad.derivatives import (CONTENT_HASH_KEY, FRAME_MASK_KEY, GROUP_DIR, MODEL_CARD_JSON, MODEL_FILE,
                                model_dir)

LOGGER = logging.getLogger("bidsad")
#: Version of the model card layout (readers refuse newer major versions).
MODEL_CARD_VERSION = "1.0"
#: Metrics carried in the card and compared after an application (pooled value and bootstrap 95% CI).
CARD_METRICS = ("balanced_accuracy", "roc_auc_macro", "matthews_corrcoef", "f1", "brier_score")
INTENDED_USE = ("Research on AD / MCI / CN classification from T1-weighted MRI and resting-state fMRI. Research use "
                "only: not for diagnosis or any clinical decision.")


def _reference_parameters(out_dir: Path, cohort, column: str) -> dict | None:
    """The tensor parameters (:data:`bidsad.derivatives.HASHED_PARAMETERS` and ``ParametersHash``) of the
    training participants' ``column`` tensors (the most common ``ParametersHash``), or ``None`` without any."""
    from collections import Counter

    from bidsad.derivatives import HASHED_PARAMETERS, PARAMETERS_HASH_KEY

    metas = [json.loads((Path(out_dir) / path).with_suffix(".json").read_text()) for path in cohort[column] if path]
    if not metas:
        return None
    common = Counter(m.get(PARAMETERS_HASH_KEY) for m in metas).most_common(1)[0][0]
    meta = next(m for m in metas if m.get(PARAMETERS_HASH_KEY) == common)
    return {key: meta.get(key) for key in (*HASHED_PARAMETERS, PARAMETERS_HASH_KEY)}


def write_model_card(out_dir: Path, cohort, classes, config, summary: dict) -> Path:
    """Write ``<out_dir>/group/model_card.json`` (atomically) after a training run; return its path.

    ``cohort``: the run's cohort table (with ``models``, the models each participant entered, and
    ``source_hash``); ``summary``: the run's ``metrics.json`` dict. The training participants are the
    included participants that entered at least one model (each fold model saw only its fold's training
    part of them; together the models saw all of them).
    """
    import dataclasses

    from bidsad.config import MODALITIES
    from bidsad.learn.folds import folds_ran_text, validation_text
    from bidsad.learn.splits import cohort_name
    from bidsad.utils import atomic_write_json

    design = summary.get("fold_design") or {}
    group_dir = Path(out_dir) / GROUP_DIR
    used = cohort[cohort["included"].astype(bool) & (cohort["models"].astype(str) != "")]
    counts = {c: int((used["label"].astype(int) == i).sum()) for i, c in enumerate(classes)}
    models = {}
    for name, result in summary.get("models", {}).items():
        folds = sorted(str(p.relative_to(group_dir)) for p in model_dir(group_dir, name).glob(f"*fold-*/{MODEL_FILE}"))
        if not folds or not result.get("pooled"):
            continue
        ci = result.get("ci", {})
        ran, planned = list(result.get("folds") or {}), design.get(cohort_name(MODALITIES[name]), {}).get("n_folds")
        models[name] = {
            "modalities": list(MODALITIES[name]), "fold_models": folds, "folds_run": ran,
            "folds_text": (folds_ran_text(ran, planned) or f"all {planned} folds") if planned else f"{len(ran)} folds",
            "cross_validated": {m: {"value": result["pooled"].get(m), "ci_low": ci.get(m, {}).get("ci_low"),
                                    "ci_high": ci.get(m, {}).get("ci_high")} for m in CARD_METRICS},
            "permutation_p_value": (result.get("permutation") or {}).get("p_value"),
            "n_participants": result.get("n_participants")}
    baselines = {name: {"cross_validated": {m: {"value": r["pooled"].get(m), "ci_low": r.get("ci", {}).get(m, {}).get("ci_low"),
                                                "ci_high": r.get("ci", {}).get(m, {}).get("ci_high")} for m in CARD_METRICS}}
                 for name, r in summary.get("baselines", {}).items() if r.get("pooled")}
    card = {
        "model_card_version": MODEL_CARD_VERSION, "run_uuid": summary.get("run_uuid"),
        "task": {"classes": list(classes), "name": " vs ".join(classes)},
        "training_cohort": {
            "n": int(len(used)), "counts": counts,
            "participants": [{"participant_id": r.participant_id, "diagnosis": r.diagnosis,
                              CONTENT_HASH_KEY: r.source_hash or None} for r in used.itertuples()]},
        "preset": config.features.preset, "mri_input": config.features.mri_input,
        "tensor_parameters": {column: _reference_parameters(out_dir, used, column) for column in ("mri", "bold")},
        "recipe": dataclasses.asdict(config.learning), "random_seed": config.seeds.random_seed,
        "split_protocol": summary.get("split_protocol"), "leaks": bool(summary.get("leaks")),
        "fold_design": design or None,
        "inner_validation": validation_text(config.learning.validation, design or None),
        "models": models, "baselines": baselines, "software_versions": summary.get("versions", {}),
        "intended_use": INTENDED_USE,
        "limitations": ("Cross-validated on one dataset; not validated on other sites, scanners or populations. "
                        "Diagnoses are taken as given in the training participants.tsv."),
    }
    return atomic_write_json(group_dir / MODEL_CARD_JSON, card)


def read_model_card(group_dir: Path) -> dict:
    """The model card of an earlier training run's ``group`` folder.

    Raises
    ------
    InputError
        No ``model_card.json`` (not a group folder, or written by a bidsad without model cards), an unreadable
        one, a newer card layout, or no model in it.
    """
    path = Path(group_dir) / MODEL_CARD_JSON
    if not path.is_file():
        raise InputError(messages.APPLY_NO_CARD.format(path=group_dir))
    try:
        card = json.loads(path.read_text())
    except ValueError as err:
        raise InputError(messages.APPLY_BAD_CARD.format(path=path, why=err)) from None
    if str(card.get("model_card_version", "0")).split(".")[0] != MODEL_CARD_VERSION.split(".")[0]:
        raise InputError(messages.APPLY_BAD_CARD.format(path=path, why=f"layout version {card.get('model_card_version')}"))
    if not card.get("models"):
        raise InputError(messages.APPLY_BAD_CARD.format(path=path, why="it lists no trained model"))
    if card.get("leaks"):
        LOGGER.warning(messages.APPLY_LEAKY_CARD)
    return card


def check_against_training(cohort, card: dict) -> list[str]:
    """Refuse new participants that are training participants of the card's models.

    ``cohort``: the new participants (``participant_id``, ``source_hash``). Returns notes (participants whose
    content hash is unknown and so were checked by ID only).

    Raises
    ------
    InputError
        A new participant has the ID of a training participant, or the content hash of one (the same scan
        under another ID); the message names both.
    """
    training = card["training_cohort"]["participants"]
    by_id = {p["participant_id"] for p in training}
    by_hash = {}
    for p in training:
        if p.get(CONTENT_HASH_KEY):
            by_hash.setdefault(p[CONTENT_HASH_KEY], []).append(p["participant_id"])
    problems = []
    for row in cohort.itertuples():
        if row.participant_id in by_id:
            problems.append(messages.APPLY_SAME_ID.format(id=row.participant_id))
        if row.source_hash and row.source_hash in by_hash:
            problems.append(messages.APPLY_SAME_SCAN.format(id=row.participant_id, training=", ".join(by_hash[row.source_hash])))
    if problems:
        raise InputError(messages.APPLY_LEAK.format(run=card.get("run_uuid"), items="\n  ".join(problems)))
    unknown = list(cohort.loc[cohort["source_hash"] == "", "participant_id"])
    notes = [messages.HASH_UNKNOWN.format(n=len(unknown), ids=", ".join(unknown[:10]))] if unknown else []
    if not by_hash:
        notes.append(messages.APPLY_CARD_NO_HASHES)
    return notes


def check_parameters(out_dir: Path, cohort, card: dict, modalities) -> None:
    """Refuse tensors made with other parameters than the training tensors (as the cohort reader does).

    Raises
    ------
    InputError
        A participant's tensor differs from the card's ``tensor_parameters`` in a compared parameter
        (:data:`bidsad.derivatives.HASHED_PARAMETERS`); the message names each participant, tensor and parameter.
    """
    from bidsad.derivatives import HASHED_PARAMETERS

    items = []
    for column in modalities:
        reference = (card.get("tensor_parameters") or {}).get(column)
        if not reference:
            continue
        for row in cohort.itertuples():
            path = getattr(row, column)
            if not path:
                continue
            meta = json.loads((Path(out_dir) / path).with_suffix(".json").read_text())
            for key in HASHED_PARAMETERS:
                if meta.get(key) != reference.get(key):
                    items.append(messages.MISMATCH_ITEM.format(participant=row.participant_id, tensor=path, parameter=key,
                                                               value=json.dumps(meta.get(key)),
                                                               expected=json.dumps(reference.get(key))))
    if items:
        raise InputError(messages.APPLY_PARAMETERS.format(preset=card["preset"], items="\n  ".join(items)))


def ensemble_predict(group_dir: Path, fold_models, out_dir: Path, rows, modalities, batch_size: int):
    """Mean class probabilities of ``fold_models`` (paths relative to ``group_dir``) over ``rows``.

    Returns a float64 array (n_rows, n_classes). Models are loaded one at a time (memory: one model). A model
    without the ``frame_mask`` input (saved by an earlier bidsad) gets its other inputs only.
    """
    import keras
    import numpy as np

    import bidsad.learn.layers  # noqa: F401  (registers the custom layer for loading)
    from bidsad.learn.data import make_dataset

    total = None
    for relative in fold_models:
        model = keras.models.load_model(Path(group_dir) / relative)
        dataset = make_dataset(out_dir, rows, modalities, batch_size=batch_size, shuffle=False, seed=0, with_labels=False)
        names = {tensor.name for tensor in model.inputs}
        if FRAME_MASK_KEY not in names:  # a model saved before the recurrent layers took the frame mask
            dataset = dataset.map(lambda inputs: {k: v for k, v in inputs.items() if k in names})
        proba = model.predict(dataset, verbose=0).astype(np.float64)
        total = proba if total is None else total + proba
        keras.backend.clear_session()
    return total / len(fold_models)
