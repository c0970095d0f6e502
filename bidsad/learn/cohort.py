"""The cohort table: which participants the group level uses, from the derivatives and participants.tsv."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from bidsad import messages
from bidsad.bids import CLASS_NAMES, InputError, read_participants_tsv

LOGGER = logging.getLogger("bidsad")
#: Sidecar fields that must agree between participants for their tensors to be used together.
COMPARED_PARAMETERS = ("preset", "shape", "dtype", "voxel_size_mm", "field_of_view_mm", "frames",
                       "Normalisation", "Interpolation")
COHORT_COLUMNS = ["participant_id", "diagnosis", "label", "mri", "bold", "included", "reason", "note"]


def _features(out_dir: Path, label: str, preset: str, suffix: str) -> list[Path]:
    """Tensors of ``suffix`` for a participant and preset, sorted (sessions and runs in order)."""
    return sorted((out_dir / f"sub-{label}").rglob(f"features/*_res-{preset}_desc-model_{suffix}.npy"))


def _sidecar(tensor: Path) -> dict:
    return json.loads(tensor.with_suffix(".json").read_text())


def _mismatch(meta: dict, reference: dict) -> list[str]:
    return [key for key in COMPARED_PARAMETERS if meta.get(key) != reference.get(key)]


def build_cohort(out_dir: Path, bids_dir: Path, preset: str):
    """Join the participant-level features of ``preset`` with participants.tsv.

    Returns a DataFrame with :data:`COHORT_COLUMNS`: ``mri``/``bold`` are tensor paths relative to
    ``out_dir`` (empty when absent); ``included`` is False with a ``reason`` for every participant
    that cannot be used (no diagnosis, no MRI features).

    Raises
    ------
    InputError
        No feature of the preset exists in ``out_dir``, participants.tsv is unusable, or tensors of one
        kind were made with different parameters (:data:`COMPARED_PARAMETERS`; compared with the most
        common ``ParametersHash``): the message names each participant, tensor and parameter.
    """
    import pandas as pd

    out_dir, bids_dir = Path(out_dir), Path(bids_dir)
    table = read_participants_tsv(bids_dir)
    labels = sorted({p.name.removeprefix("sub-") for p in out_dir.glob("sub-*") if p.is_dir()} | set(table.index))
    rows = []
    for label in labels:
        mris, bolds = _features(out_dir, label, preset, "T1w"), _features(out_dir, label, preset, "bold")
        mri, bold = (mris or [None])[0], (bolds or [None])[0]
        notes = [messages.EXTRA_BOLD.format(label=f"sub-{label}", n=len(found), used=found[0].name)
                 for found in (mris, bolds) if len(found) > 1]
        row = {"participant_id": f"sub-{label}", "diagnosis": "", "label": pd.NA,
               "mri": str(mri.relative_to(out_dir)) if mri else "",
               "bold": str(bold.relative_to(out_dir)) if bold else "", "included": True, "reason": "",
               "note": " ".join(notes)}
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

        others = sorted({m.group(1) for p in out_dir.glob("sub-*/**/features/*_desc-model_T1w.npy")
                         if (m := re.search(r"_res-([a-zA-Z0-9]+)_", p.name))})
        found = messages.FEATURES_OTHER_PRESETS.format(presets=", ".join(others), first=others[0]) if others else ""
        raise InputError(messages.NO_FEATURES.format(preset=preset, out=out_dir, bids=bids_dir, found=found))

    mismatches = []
    for column in ("mri", "bold"):
        metas = {i: _sidecar(out_dir / cohort.at[i, column]) for i in cohort.index
                 if cohort.at[i, "included"] and cohort.at[i, column]}
        if not metas:
            continue
        hashes = pd.Series({i: m.get("ParametersHash") for i, m in metas.items()})
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


def cohort_counts(cohort) -> dict:
    """Counts of a cohort table (:data:`COHORT_COLUMNS`): ``{"used": {class: n}, "excluded": {reason: n},
    "mri_only": [participant_id, ...]}``. ``mri_only`` lists the used participants without BOLD features:
    they enter the MRI models only, never the fusion models."""
    used = cohort[cohort["included"].astype(str).str.lower() == "true"]
    codes = pd_to_codes(used["label"])
    counts = {"used": {name: int(sum(code == k for code in codes)) for k, name in enumerate(CLASS_NAMES)},
              "excluded": {}, "mri_only": sorted(used.loc[used["bold"].fillna("") == "", "participant_id"].tolist())}
    for reason in cohort.loc[cohort["included"].astype(str).str.lower() != "true", "reason"].fillna(""):
        reason = str(reason) or "no reason recorded"
        counts["excluded"][reason] = counts["excluded"].get(reason, 0) + 1
    return counts


def pd_to_codes(labels) -> list[int]:
    """Label codes of a column read back from cohort.tsv (``2``, ``2.0`` or ``"2"``) as integers."""
    return [int(float(value)) for value in labels if str(value) not in ("", "n/a", "<NA>", "nan")]


def write_cohort(group_dir: Path, cohort) -> None:
    """``group/cohort.tsv`` and its sidecar ``cohort.json`` (column descriptions and :func:`cohort_counts`)."""
    from bidsad.utils import atomic_write_json, atomic_write_text

    atomic_write_text(Path(group_dir) / "cohort.tsv", cohort.to_csv(sep="\t", index=False, na_rep="n/a"))
    atomic_write_json(Path(group_dir) / "cohort.json", {
        "Counts": cohort_counts(cohort),
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
        raise InputError(messages.GROUP_LABELS_MISSING.format(labels=", ".join(missing)))
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
    stamp_of = group_dir / "metrics.json" if (group_dir / "metrics.json").exists() else group_dir
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
