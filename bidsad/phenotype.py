"""participants.tsv: the one reader, and the diagnosis vocabulary mapped to the paper's classes."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from bidsad import messages
from bidsad.bids import InputError, read_sidecar

LOGGER = logging.getLogger("bidsad")

#: Label codes of the paper: cognitively normal 0, mild cognitive impairment 1, Alzheimer's disease 2.
CLASS_NAMES = ("CN", "MCI", "AD")
#: Accepted spellings of each diagnosis in participants.tsv, after :func:`normalise_diagnosis` (lower case,
#: one space between words, typographic apostrophes and ``_``/``-`` read as plain ones, plurals of the
#: listed words accepted). Documented in the README ("Diagnosis vocabulary"). ``dementia`` is read as AD:
#: datasets of other dementias must recode their diagnoses.
DIAGNOSIS_SYNONYMS = {
    # cognitively normal
    "cn": 0, "nc": 0, "ncs": 0, "hc": 0, "nl": 0, "normal": 0, "control": 0, "healthy": 0, "healthy control": 0,
    "normal control": 0, "cognitively normal": 0, "cognitively unimpaired": 0, "cu": 0, "healthy older adult": 0,
    "elderly control": 0, "cdr 0": 0,
    # mild cognitive impairment (early, late, amnestic, non-amnestic, due to AD)
    "mci": 1, "emci": 1, "lmci": 1, "amci": 1, "namci": 1, "early mci": 1, "late mci": 1, "amnestic mci": 1,
    "mild cognitive impairment": 1, "mci due to ad": 1, "prodromal ad": 1, "cdr 0.5": 1,
    # Alzheimer's disease dementia
    "ad": 2, "alzheimer": 2, "alzheimers": 2, "alzheimer's": 2, "alzheimer's disease": 2, "alzheimers disease": 2,
    "alzheimer disease": 2, "ad dementia": 2, "dementia": 2, "dat": 2, "probable ad": 2, "possible ad": 2,
    "dementia of the alzheimer's type": 2, "alzheimer's dementia": 2, "alzheimer dementia": 2,
}


def normalise_diagnosis(text: str) -> str:
    """The spelling under which a participants.tsv diagnosis is looked up in :data:`DIAGNOSIS_SYNONYMS`:
    lower case, quotes around it removed, typographic apostrophes as ``'``, ``_`` and ``-`` as spaces,
    whitespace collapsed (``" Alzheimer’s_Disease "`` -> ``"alzheimer's disease"``)."""
    import re

    text = str(text).strip().strip("\"").strip().lower()
    text = re.sub(r"[\u2018\u2019\u02bc`\u00b4]", "'", text)
    return " ".join(re.sub(r"[_\-]+", " ", text).split())


def diagnosis_code(text: str) -> int | None:
    """Class code (CN 0, MCI 1, AD 2) of a diagnosis as written, or ``None`` when unknown; a plural of a
    known spelling (``controls``, ``healthy controls``) is accepted."""
    key = normalise_diagnosis(text)
    for candidate in (key, key[:-1] if key.endswith("s") else key):
        if candidate in DIAGNOSIS_SYNONYMS:
            return DIAGNOSIS_SYNONYMS[candidate]
    return None


#: Cell values of participants.tsv read as missing (compared after stripping, case-insensitive).
MISSING_VALUES = {"", "n/a", "na", "nan", "none", "null"}


def read_participants_tsv(bids_dir: Path):
    """Read ``participants.tsv`` and map ``diagnosis`` to the paper's codes (CN 0, MCI 1, AD 2).

    The one reader of participants.tsv. Tolerates what public datasets ship: UTF-8 with or without BOM,
    CRLF or CR line endings, cells padded with spaces, ``n/a``/``NA``/``N/A``/``nan``/empty as missing,
    ids with or without ``sub-`` (numbers are never re-padded), a repeated column (the first is used),
    extra columns (ignored), one row per session (``session_id`` column: the earliest session's row is
    used, as for the T1w), repeated rows (identical ones merged; conflicting diagnoses exclude the
    participant). Every such fix is a warning, logged and kept in ``table.attrs["warnings"]``; ids
    that match no ``sub-*`` folder and folders without a row are listed too.

    Returns a DataFrame indexed by label (without ``sub-``) with columns ``diagnosis`` (the raw
    text), ``label`` (Int64 code or <NA>) and ``reason`` (why the code is missing, else empty).

    Raises
    ------
    InputError
        The file is missing or not UTF-8, or lacks a ``participant_id`` or ``diagnosis`` column.
    """
    import io

    import pandas as pd

    name = "participants.tsv"
    path = Path(bids_dir) / name
    if not path.is_file():
        raise InputError(messages.NO_PARTICIPANTS_TSV.format(bids=bids_dir))
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(messages.TSV_NOT_UTF8.format(file=name, position=err.start)) from None
    lines = [line for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if line.strip()]
    if not lines:
        raise InputError(messages.NO_ID_COLUMN.format(file=name, columns="none"))
    header = [c.strip() for c in lines[0].split("\t")]
    warnings = []
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        warnings.append(messages.TSV_REPEATED_COLUMN.format(file=name, columns=", ".join(repeated)))
    table = pd.read_csv(io.StringIO("\n".join(lines[1:])), sep="\t", header=None, dtype=str,
                        keep_default_na=False, names=range(len(header)), index_col=False)
    table = table[[header.index(c) for c in dict.fromkeys(header)]]  # the first of repeated columns
    table.columns = list(dict.fromkeys(header))
    table = table.apply(lambda col: col.fillna("").str.strip())
    for column, message in (("participant_id", messages.NO_ID_COLUMN), ("diagnosis", messages.NO_DIAGNOSIS_COLUMN)):
        if column not in table.columns:  # 'Diagnosis', 'Participant ID': named, as the column meant
            near = [c for c in table.columns if re.sub(r"[\s-]+", "_", c.lower()) == column]
            hint = messages.COLUMN_NAME_HINT.format(found=near[0], expected=column) if near else ""
            raise InputError(message.format(file=name, columns=", ".join(table.columns)) + hint)
    table = table[table["participant_id"].str.lower().map(lambda v: v not in MISSING_VALUES)]
    table["participant_id"] = table["participant_id"].str.removeprefix("sub-")
    if "session_id" in table.columns and table["participant_id"].duplicated().any():
        table = table.sort_values("session_id", kind="stable")
        warnings.append(messages.TSV_SESSIONS.format(file=name))
        table = table.drop_duplicates("participant_id", keep="first")
    conflicting = []
    for label, rows in table.groupby("participant_id", sort=False):
        if len(rows) > 1 and rows["diagnosis"].str.lower().nunique() > 1:
            conflicting.append(label)
    if conflicting:
        warnings.append(messages.TSV_CONFLICT.format(file=name, labels=", ".join(f"sub-{c}" for c in conflicting)))
    table = table.drop_duplicates("participant_id", keep="first")
    folders = {p.name.removeprefix("sub-") for p in Path(bids_dir).glob("sub-*") if p.is_dir()}
    unmatched = [f"sub-{x}" for x in table["participant_id"] if x not in folders]
    if unmatched and folders:
        warnings.append(messages.TSV_UNMATCHED.format(file=name, labels=", ".join(unmatched)))
    unlisted = sorted(folders - set(table["participant_id"]))
    if unlisted:
        warnings.append(messages.TSV_UNLISTED.format(file=name, labels=", ".join(f"sub-{x}" for x in unlisted)))
    levels = _diagnosis_levels(Path(bids_dir), warnings)
    codes, reasons = [], []
    for label, raw in zip(table["participant_id"], table["diagnosis"]):
        text = raw.strip()
        meaning = levels.get(text, text)
        code = diagnosis_code(text)  # the value as written first ("CN" whose Levels describe it)
        if code is None:
            code = diagnosis_code(meaning)  # numeric codes through Levels
        if label in conflicting:
            codes.append(pd.NA)
            reasons.append(messages.EXCLUDED_CONFLICT)
        elif text.lower() in MISSING_VALUES:
            codes.append(pd.NA)
            reasons.append(messages.EXCLUDED_NO_DIAGNOSIS)
        elif code is not None:
            codes.append(code)
            reasons.append("")
        else:
            codes.append(pd.NA)
            numeric = text.replace(".", "", 1).isdigit() and text not in levels
            template = messages.EXCLUDED_NUMERIC_DIAGNOSIS if numeric else messages.EXCLUDED_BAD_DIAGNOSIS
            reasons.append(template.format(value=text if meaning == text else f"{text} ({meaning})"))
    table["label"] = pd.array(codes, dtype="Int64")
    table["reason"] = reasons
    result = table.set_index("participant_id")[["diagnosis", "label", "reason"]]
    result.attrs["warnings"] = warnings
    for warning in warnings:
        LOGGER.warning(warning)
    return result


def _diagnosis_levels(bids_dir: Path, warnings: list[str]) -> dict[str, str]:
    """``Levels`` of the ``diagnosis`` column in participants.json (code -> meaning, e.g. ``{"0": "CN"}``),
    or ``{}``; an unreadable participants.json is a warning."""
    path = Path(bids_dir) / "participants.json"
    if not path.is_file():
        return {}
    try:
        levels = read_sidecar(path, bids_dir).get("diagnosis", {}).get("Levels", {})
    except (ValueError, AttributeError) as err:
        warnings.append(str(err))
        return {}
    if not isinstance(levels, dict):
        return {}
    return {str(k).strip(): (v if isinstance(v, str) else str(v.get("Description", v.get("TermURL", "")))
                             if isinstance(v, dict) else str(v)) for k, v in levels.items()}
