"""The cohort table: which participants the group level uses, from the derivatives and participants.tsv."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from bidsad import messages
from bidsad.bids import InputError, label_suggestions
from bidsad.derivatives import (BOLD_TENSOR, COHORT_JSON, COHORT_TSV, CONTENT_HASH_KEY, FEATURES_DIR, HASHED_PARAMETERS,
                                METRICS_JSON, MRI_TENSORS, PARAMETERS_HASH_KEY, SOURCES_KEY, Output)
from bidsad.phenotype import CLASS_NAMES, read_participants_tsv

LOGGER = logging.getLogger("bidsad")
COHORT_COLUMNS = ["participant_id", "diagnosis", "label", "mri", "bold", "included", "reason", "note", "source_hash"]


def _features(out_dir: Path, label: str, preset: str, tensor: Output) -> list[Path]:
    """Tensors ``tensor`` (:data:`bidsad.derivatives.MRI_TENSORS`, :data:`bidsad.derivatives.BOLD_TENSOR`) of
    ``preset`` of a participant, sorted (sessions and runs in order)."""
    return sorted((out_dir / f"sub-{label}").rglob(f"{FEATURES_DIR}/*_{tensor.ending(res=preset)}"))


def _sidecar(tensor: Path) -> dict:
    return json.loads(tensor.with_suffix(".json").read_text())


def _mismatch(meta: dict, reference: dict) -> list[str]:
    return [key for key in HASHED_PARAMETERS if meta.get(key) != reference.get(key)]


def build_cohort(out_dir: Path, bids_dir: Path, preset: str, mri_input: str = "t1w", *, labels_required: bool = True):
    """Join the participant-level features of ``preset`` with participants.tsv.

    Returns a DataFrame with :data:`COHORT_COLUMNS`: ``mri``/``bold`` are tensor paths relative to
    ``out_dir`` (empty when absent); ``mri`` is the tensor chosen by ``mri_input``
    (:data:`bidsad.derivatives.MRI_TENSORS`:
    the standardised T1w or the modulated grey matter); ``included`` is False with a ``reason`` for every
    participant that cannot be used (no diagnosis, no MRI features); ``source_hash`` is the content hash
    of the participant's source T1w (:func:`source_hash`; empty when unknown). With ``labels_required``
    False (applying trained models), a missing or unusable participants.tsv leaves every participant
    unlabelled instead of raising.

    Raises
    ------
    InputError
        No feature of the preset exists in ``out_dir``, participants.tsv is unusable, or tensors of one
        kind were made with different parameters (:data:`bidsad.derivatives.HASHED_PARAMETERS`; compared with the most
        common ``ParametersHash``): the message names each participant, tensor and parameter.
    """
    import pandas as pd

    out_dir, bids_dir = Path(out_dir), Path(bids_dir)
    try:
        table = read_participants_tsv(bids_dir)
    except InputError:
        if labels_required:
            raise
        table = pd.DataFrame(columns=["diagnosis", "label", "reason"])
    labels = sorted({p.name.removeprefix("sub-") for p in out_dir.glob("sub-*") if p.is_dir()} | set(table.index))
    rows = []
    for label in labels:
        mris, bolds = _features(out_dir, label, preset, MRI_TENSORS[mri_input]), _features(out_dir, label, preset, BOLD_TENSOR)
        mri, bold = (mris or [None])[0], (bolds or [None])[0]
        notes = [messages.EXTRA_BOLD.format(label=f"sub-{label}", n=len(found), used=found[0].name)
                 for found in (mris, bolds) if len(found) > 1]
        row = {"participant_id": f"sub-{label}", "diagnosis": "", "label": pd.NA,
               "mri": str(mri.relative_to(out_dir)) if mri else "",
               "bold": str(bold.relative_to(out_dir)) if bold else "", "included": True, "reason": "",
               "note": " ".join(notes), "source_hash": ""}
        t1w = mris if mri_input == "t1w" else _features(out_dir, label, preset, MRI_TENSORS["t1w"])
        if mri is not None and (t1w or mris):  # the T1w tensor's sidecar records the scan's hash
            row["source_hash"] = source_hash((t1w or mris)[0], bids_dir)
        if label not in table.index:
            row.update(included=False, reason=messages.EXCLUDED_NOT_IN_TSV)
        else:
            row["diagnosis"] = table.loc[label, "diagnosis"]
            if pd.isna(table.loc[label, "label"]):
                row.update(included=False, reason=table.loc[label, "reason"])
            else:
                row["label"] = int(table.loc[label, "label"])
        if row["included"] and mri is None:
            row.update(included=False, reason=messages.EXCLUDED_NO_T1W_FEATURES)
        rows.append(row)
    cohort = pd.DataFrame(rows, columns=COHORT_COLUMNS)
    cohort["label"] = cohort["label"].astype("Int64")
    if not (cohort["mri"] != "").any():
        import re

        tensors, wanted = f"sub-*/**/{FEATURES_DIR}/*_", MRI_TENSORS[mri_input]
        others = sorted({m.group(1) for p in out_dir.glob(f"{tensors}{wanted.tail()}{wanted.extension}")
                         if (m := re.search(r"_res-([a-zA-Z0-9]+)_", p.name))})
        found = messages.FEATURES_OTHER_PRESETS.format(presets=", ".join(others), first=others[0]) if others else ""
        if mri_input != "t1w" and not others and any(out_dir.glob(f"{tensors}{MRI_TENSORS['t1w'].ending(res=preset)}")):
            found = messages.FEATURES_NO_MRI_INPUT.format(mri_input=mri_input, ending=wanted.tail())
        raise InputError(messages.NO_FEATURES.format(preset=preset, out=out_dir, bids=bids_dir, found=found))

    mismatches = []
    for column in ("mri", "bold"):
        metas = {i: _sidecar(out_dir / cohort.at[i, column]) for i in cohort.index
                 if cohort.at[i, "included"] and cohort.at[i, column]}
        if not metas:
            continue
        hashes = pd.Series({i: m.get(PARAMETERS_HASH_KEY) for i, m in metas.items()})
        reference = metas[hashes[hashes == hashes.mode().iloc[0]].index[0]]
        for i, meta in metas.items():
            for key in _mismatch(meta, reference):
                mismatches.append(messages.MISMATCH_ITEM.format(
                    participant=cohort.at[i, "participant_id"], tensor=cohort.at[i, column], parameter=key,
                    value=json.dumps(meta.get(key)), expected=json.dumps(reference.get(key))))
    if mismatches:
        raise InputError(messages.PARAMETERS_MISMATCH.format(preset=preset, out=out_dir,
                                                             items="\n  ".join(mismatches)))
    return cohort


def source_hash(tensor: Path, bids_dir: Path | None = None) -> str:
    """Content hash of the source T1w of an MRI tensor (:func:`bidsad.derivatives.image_content_hash`).

    Read from the tensor sidecar's ``SourceContentHash``; sidecars of older bidsad versions lack it, and
    then the hash is computed from the sidecar's first ``Sources`` URI under ``bids_dir`` when that file
    exists. Returns ``""`` when neither is possible.
    """
    from bidsad.derivatives import image_content_hash
    from bidsad.derivatives.naming import bids_uri_path

    meta = _sidecar(Path(tensor))
    if meta.get(CONTENT_HASH_KEY):
        return str(meta[CONTENT_HASH_KEY])
    source = bids_uri_path((meta.get(SOURCES_KEY) or [None])[0], bids_dir) if bids_dir is not None else None
    try:
        return image_content_hash(source) if source is not None and source.is_file() else ""
    except Exception:  # an unreadable source: the check reports the participant as unchecked
        return ""


def check_duplicate_scans(cohort) -> list[str]:
    """Refuse one scan under two participant IDs among the included participants (a leak: the same brain
    could be in training and test).

    ``cohort``: a :func:`build_cohort` table. Compares ``source_hash``; returns a note listing included
    participants whose hash is unknown (not checked).

    Raises
    ------
    InputError
        Two or more participants share a content hash: the message names each group and its tensors.
    """
    included = cohort[cohort["included"].astype(bool)]
    known = included[included["source_hash"] != ""]
    groups = [rows for _, rows in known.groupby("source_hash") if rows["participant_id"].nunique() > 1]
    if groups:
        items = [" and ".join(f"{r.participant_id} ({r.mri})" for r in rows.itertuples()) for rows in groups]
        raise InputError(messages.DUPLICATE_SCANS.format(items="\n  ".join(items)))
    unknown = list(included.loc[included["source_hash"] == "", "participant_id"])
    return [messages.HASH_UNKNOWN.format(n=len(unknown), ids=", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else ""))] if unknown else []


def cohort_counts(cohort, classes=CLASS_NAMES) -> dict:
    """Counts of a cohort table (:data:`COHORT_COLUMNS`): ``{"used": {class: n}, "excluded": {reason: n},
    "mri_only": [participant_id, ...]}``. ``classes``: the task's class names, indexed by ``label`` (after
    :func:`select_classes`). ``mri_only`` lists the used participants without BOLD features: they enter the
    MRI models only, never the fusion models."""
    used = cohort[cohort["included"].astype(str).str.lower() == "true"]
    codes = pd_to_codes(used["label"])
    counts = {"used": {name: int(sum(code == k for code in codes)) for k, name in enumerate(classes)},
              "excluded": {}, "mri_only": sorted(used.loc[used["bold"].fillna("") == "", "participant_id"].tolist())}
    for reason in cohort.loc[cohort["included"].astype(str).str.lower() != "true", "reason"].fillna(""):
        reason = str(reason) or "no reason recorded"
        counts["excluded"][reason] = counts["excluded"].get(reason, 0) + 1
    return counts


def pd_to_codes(labels) -> list[int]:
    """Label codes of a column read back from cohort.tsv (``2``, ``2.0`` or ``"2"``) as integers."""
    return [int(float(value)) for value in labels if str(value) not in ("", "n/a", "<NA>", "nan")]


def write_cohort(group_dir: Path, cohort, classes=CLASS_NAMES) -> None:
    """``group/cohort.tsv`` and its sidecar ``cohort.json`` (column descriptions and :func:`cohort_counts`)."""
    from bidsad.utils import atomic_write_json, atomic_write_text

    atomic_write_text(Path(group_dir) / COHORT_TSV, cohort.to_csv(sep="\t", index=False, na_rep="n/a"))
    atomic_write_json(Path(group_dir) / COHORT_JSON, {
        "Counts": cohort_counts(cohort, classes),
        "included": {"Description": "whether the participant was used by the group level"},
        "reason": {"Description": "why a participant was not used"},
        "mri": {"Description": "MRI model tensor, relative to out_dir (empty: none)"},
        "bold": {"Description": "fMRI model tensor, relative to out_dir (empty: none; MRI models only)"},
    })


def select_participants(cohort, labels: list[str]):
    """``--participant-label`` at the group level: participants not listed stay in the table with
    ``included`` False and the reason :data:`bidsad.messages.EXCLUDED_NOT_SELECTED`.

    Raises :class:`InputError` when a listed label is not in the cohort (the message lists them).
    """
    wanted = {f"sub-{label}" for label in labels}
    missing = sorted(wanted - set(cohort["participant_id"]))
    if missing:
        ids = sorted(cohort["participant_id"])
        available = ", ".join(ids[:20]) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "") if ids else "none"
        hint = label_suggestions([m.removeprefix("sub-") for m in missing], [i.removeprefix("sub-") for i in ids])
        raise InputError(messages.GROUP_LABELS_MISSING.format(labels=", ".join(missing), available=available) + hint)
    cohort = cohort.copy()
    others = ~cohort["participant_id"].isin(wanted)
    cohort.loc[others & cohort["included"], "reason"] = messages.EXCLUDED_NOT_SELECTED
    cohort.loc[others, "included"] = False
    return cohort


def keep_earlier_group(group_dir: Path, overwrite: bool = False) -> Path | None:
    """Keep the results of an earlier group run: ``group/`` is moved to ``group-<date>/`` beside it (the date of
    its ``metrics.json``, else of the folder), unless ``overwrite`` (``--overwrite``), where it is left to be
    replaced. Either way a warning names the earlier models and where they are. Returns the new folder.
    """
    import time

    group_dir = Path(group_dir)
    previous = sorted(p.name.removeprefix("model-") for p in group_dir.glob("model-*"))
    if not group_dir.is_dir() or not any(group_dir.iterdir()):
        return None
    if overwrite:
        LOGGER.warning(messages.GROUP_REPLACED.format(models=", ".join(previous) or "none"))
        return None
    stamp_of = group_dir / METRICS_JSON if (group_dir / METRICS_JSON).exists() else group_dir
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(stamp_of.stat().st_mtime))
    kept = group_dir.with_name(f"group-{stamp}")
    suffix = 1
    while kept.exists():
        suffix += 1
        kept = group_dir.with_name(f"group-{stamp}-{suffix}")
    group_dir.rename(kept)
    LOGGER.warning(messages.GROUP_KEPT.format(models=", ".join(previous) or "none", kept=kept))
    return kept


def class_name(code: int) -> str:
    """Class name of a label code (0 CN, 1 MCI, 2 AD)."""
    return CLASS_NAMES[int(code)]


def select_classes(cohort, classes=None):
    """Restrict the cohort to the task's classes and re-code ``label`` as the index in the task.

    ``cohort``: a :func:`build_cohort` table (``label``: 0 CN, 1 MCI, 2 AD). ``classes``: names from
    :data:`bidsad.phenotype.CLASS_NAMES` (``--classes``, e.g. ``["CN", "AD"]``), or ``None``/empty for every
    class that has an included participant. The task keeps :data:`CLASS_NAMES` order. Included
    participants of another class become excluded with the reason :data:`bidsad.messages.EXCLUDED_CLASS`;
    ``label`` becomes the class's index in the task (0 .. n_classes - 1; empty for other classes), and
    ``diagnosis`` keeps the participants.tsv text.

    Returns ``(cohort, classes, notes)``: the new table (a copy), the task's classes (tuple of names) and
    warnings (a requested class nobody has).

    Raises
    ------
    InputError
        An unknown class name, or fewer than two classes with included participants.
    """
    import pandas as pd

    cohort = cohort.copy()
    requested = list(dict.fromkeys(classes or ()))
    unknown = [c for c in requested if c not in CLASS_NAMES]
    if unknown:
        raise InputError(messages.CLASSES_UNKNOWN.format(classes=", ".join(unknown), known=", ".join(CLASS_NAMES)))
    included = cohort["included"].astype(bool)
    codes = cohort["label"]
    present = [c for i, c in enumerate(CLASS_NAMES) if (included & (codes == i).fillna(False)).any()]
    task = [c for c in CLASS_NAMES if c in present and (not requested or c in requested)]
    notes = [messages.CLASS_ABSENT.format(cls=c) for c in requested if c not in present]
    if len(task) < 2:
        raise InputError(messages.CLASSES_TOO_FEW.format(task=", ".join(task) or "none",
                                                         present=", ".join(present) or "none"))
    chosen = [CLASS_NAMES.index(c) for c in task]
    other = included & ~codes.isin(chosen).fillna(False)
    cohort.loc[other, "included"] = False
    cohort.loc[other, "reason"] = messages.EXCLUDED_CLASS.format(task=" ".join(task))
    remap = {code: index for index, code in enumerate(chosen)}
    cohort["label"] = pd.array([pd.NA if pd.isna(c) else remap.get(int(c), pd.NA) for c in codes], dtype="Int64")
    return cohort, tuple(task), notes
