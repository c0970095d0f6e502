"""BIDS input and output bookkeeping: which participants and runs are usable and why,
participants.tsv and its diagnosis mapping, derivative names and dataset_description.json.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from bidsad import __version__, messages

LOGGER = logging.getLogger("bidsad")

#: Label codes of the paper: cognitively normal 0, mild cognitive impairment 1, Alzheimer's disease 2.
CLASS_NAMES = ("CN", "MCI", "AD")
#: Accepted spellings of each diagnosis in participants.tsv (compared lower-case, stripped).
DIAGNOSIS_SYNONYMS = {
    "cn": 0, "nc": 0, "ncs": 0, "hc": 0, "control": 0, "normal": 0, "cognitively normal": 0,
    "mci": 1, "mild cognitive impairment": 1,
    "ad": 2, "alzheimer": 2, "alzheimer's disease": 2, "alzheimers disease": 2, "dementia": 2,
}
IMAGE_EXTENSIONS = [".nii", ".nii.gz"]
DEFAULT_QUERIES = {
    "t1w": {"datatype": "anat", "suffix": "T1w", "extension": IMAGE_EXTENSIONS},
    "bold": {"datatype": "func", "suffix": "bold", "task": "rest", "extension": IMAGE_EXTENSIONS},
}


class InputError(ValueError):
    """Bad input that concerns the whole run (exit status 2); the message names the file or argument."""


@dataclass
class BoldRun:
    """One usable resting-state BOLD run: ``path`` and its ``RepetitionTime`` (s)."""

    path: Path
    repetition_time: float
    n_volumes: int


@dataclass
class ParticipantInputs:
    """What the participant level will process for one participant, and why not the rest."""

    label: str
    t1w: Path | None = None
    bold: list[BoldRun] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def relpath(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when inside it (for messages), else the full path."""
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def bids_uri(path: Path, root: Path) -> str:
    """BIDS URI of an input file in the raw dataset (``bids:raw:sub-01/anat/sub-01_T1w.nii.gz``);
    ``raw`` is declared in the derivatives' ``DatasetLinks``."""
    return f"bids:raw:{relpath(path, root)}"


def image_header_problem(path: Path, root: Path, kind: str, ndim: int) -> str | None:
    """Check that ``path`` is a readable NIfTI of ``ndim`` dimensions (trailing singletons allowed).

    Returns the message of the problem, or ``None`` when the header is usable. Reads the header only.
    """
    import nibabel as nb

    rel = relpath(path, root)
    try:
        img = nb.load(str(path))
        shape = tuple(int(s) for s in img.shape)
    except Exception as err:  # nibabel raises many types for broken files
        return messages.IMAGE_UNREADABLE.format(file=rel, why=str(err) or type(err).__name__)
    core = list(shape)
    while len(core) > ndim and core[-1] == 1:
        core.pop()
    if ndim == 3 and len(core) == 4:
        return messages.IMAGE_MULTIVOLUME.format(file=rel, n=core[3], shape=shape)
    if len(core) != ndim or min(core) < 1:
        return messages.IMAGE_NDIM.format(file=rel, kind=kind, expected=ndim, shape=shape)
    return None


def repetition_time(metadata: dict, path: Path, root: Path) -> float:
    """RepetitionTime (s) from the sidecar metadata (with BIDS inheritance, as pybids merges it).

    Raises
    ------
    ValueError
        Missing, non-numeric, non-positive, or apparently in milliseconds (> 100); the message names
        the file.
    """
    rel = relpath(path, root)
    if "RepetitionTime" not in metadata:
        sidecar = rel.replace(".nii.gz", ".json").replace(".nii", ".json")
        raise ValueError(messages.TR_MISSING.format(file=rel, sidecar=sidecar))
    value = metadata["RepetitionTime"]
    try:
        tr = float(value)
    except (TypeError, ValueError):
        raise ValueError(messages.TR_BAD.format(file=rel, tr=value)) from None
    if not math.isfinite(tr) or tr <= 0:
        raise ValueError(messages.TR_BAD.format(file=rel, tr=value))
    if tr > 100:
        raise ValueError(messages.TR_MS.format(file=rel, tr=value))
    return tr


def collect_participants(
    bids_dir: Path,
    labels: list[str] | None = None,
    bids_filters: dict | None = None,
    validate: bool = True,
) -> list[ParticipantInputs]:
    """Index ``bids_dir`` with pybids and decide, per participant, the inputs that will be used.

    Returns one :class:`ParticipantInputs` per participant (sorted by label); a participant with
    an unusable T1w has ``errors`` and ``t1w=None``. Unusable BOLD runs are dropped with an error
    message; a participant without BOLD gets a warning (MRI features only).

    Raises
    ------
    InputError
        pybids cannot index the dataset, no participant exists, or requested labels are absent.
    """
    from bids import BIDSLayout

    bids_dir = Path(bids_dir)
    try:
        layout = BIDSLayout(str(bids_dir), validate=validate)
    except Exception as err:
        raise InputError(messages.VALIDATION_FAILED.format(bids=bids_dir, why=err)) from err
    found = sorted(layout.get_subjects())
    if labels:
        missing = [lab for lab in labels if lab not in found]
        if missing:
            raise InputError(
                messages.LABELS_MISSING.format(
                    labels=", ".join(f"sub-{m}" for m in missing), bids=bids_dir, found=", ".join(found) or "none"
                )
            )
        found = [lab for lab in found if lab in labels]
    if not found:
        raise InputError(messages.NO_PARTICIPANTS.format(bids=bids_dir))

    filters = bids_filters or {}
    queries = {key: {**DEFAULT_QUERIES[key], **filters.get(key, {})} for key in DEFAULT_QUERIES}
    for key, query in queries.items():
        try:
            layout.get(return_type="filename", **query)
        except (ValueError, TypeError) as err:
            raise InputError(messages.FILTER_QUERY_BAD.format(key=key, why=err)) from err
    participants = []
    for label in found:
        part = ParticipantInputs(label)
        t1ws = sorted(layout.get(subject=label, return_type="filename", **queries["t1w"]))
        if not t1ws:
            part.errors.append(messages.T1W_MISSING_FILTERED.format(label=label, query=filters["t1w"])
                               if filters.get("t1w") else messages.T1W_MISSING.format(label=label))
        else:
            if len(t1ws) > 1:
                part.warnings.append(
                    messages.T1W_SEVERAL.format(label=label, n=len(t1ws), used=relpath(t1ws[0], bids_dir))
                )
            problem = image_header_problem(Path(t1ws[0]), bids_dir, "T1w", 3)
            if problem:
                part.errors.append(problem)
            else:
                part.t1w = Path(t1ws[0])
        for bold in sorted(layout.get(subject=label, return_type="filename", **queries["bold"])):
            problem = image_header_problem(Path(bold), bids_dir, "BOLD", 4)
            if problem is None:
                try:
                    tr = repetition_time(layout.get_metadata(bold), Path(bold), bids_dir)
                except ValueError as err:
                    problem = str(err)
            if problem:
                part.errors.append(problem)
                continue
            import nibabel as nb

            part.bold.append(BoldRun(Path(bold), tr, int(nb.load(bold).shape[3])))
        if not part.bold and part.t1w is not None:
            part.warnings.append(messages.BOLD_MISSING.format(label=label))
        participants.append(part)
    return participants


def read_participants_tsv(bids_dir: Path):
    """Read ``participants.tsv`` and map ``diagnosis`` to the paper's codes (CN 0, MCI 1, AD 2).

    Returns a DataFrame indexed by label (without ``sub-``) with columns ``diagnosis`` (the raw
    text), ``label`` (Int64 code or <NA>) and ``reason`` (why the code is missing, else empty).

    Raises
    ------
    InputError
        The file is missing, lacks a ``participant_id`` or ``diagnosis`` column, or lists a
        participant twice.
    """
    import pandas as pd

    path = Path(bids_dir) / "participants.tsv"
    if not path.is_file():
        raise InputError(messages.NO_PARTICIPANTS_TSV.format(bids=bids_dir))
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    table.columns = [c.strip() for c in table.columns]
    for column, message in (("participant_id", messages.NO_ID_COLUMN), ("diagnosis", messages.NO_DIAGNOSIS_COLUMN)):
        if column not in table.columns:
            raise InputError(message.format(file="participants.tsv", columns=", ".join(table.columns)))
    table["participant_id"] = table["participant_id"].str.strip().str.removeprefix("sub-")
    duplicated = sorted(set(table.loc[table["participant_id"].duplicated(), "participant_id"]))
    if duplicated:
        raise InputError(messages.DUPLICATE_IDS.format(file="participants.tsv",
                                                       labels=", ".join(f"sub-{d}" for d in duplicated)))
    codes, reasons = [], []
    for raw in table["diagnosis"]:
        text = raw.strip()
        if text.lower() in {"", "n/a", "na", "nan"}:
            codes.append(pd.NA)
            reasons.append(messages.EXCLUDED_NO_DIAGNOSIS)
        elif text.lower() in DIAGNOSIS_SYNONYMS:
            codes.append(DIAGNOSIS_SYNONYMS[text.lower()])
            reasons.append("")
        else:
            codes.append(pd.NA)
            reasons.append(messages.EXCLUDED_BAD_DIAGNOSIS.format(value=text))
    table["label"] = pd.array(codes, dtype="Int64")
    table["reason"] = reasons
    return table.set_index("participant_id")[["diagnosis", "label", "reason"]]


def derivative_path(out_dir: Path, source: Path, *, datatype: str, suffix: str, extension: str, **entities) -> Path:
    """BIDS-Derivatives path for an output of ``source`` (its sub/ses/task/run entities kept).

    ``entities`` adds ``from``, ``to``, ``mode`` (transforms), ``space``, ``atlas``, ``res``, ``label``,
    ``desc``, ``meas`` in BIDS (and BEP017 connectivity) order; ``None`` values are omitted.
    """
    from bids.layout import parse_file_entities

    src = parse_file_entities(str(source))
    order = [("sub", src.get("subject")), ("ses", src.get("session")), ("task", src.get("task")),
             ("acq", src.get("acquisition")), ("run", src.get("run")), ("from", entities.get("from")),
             ("to", entities.get("to")), ("mode", entities.get("mode")), ("space", entities.get("space")),
             ("atlas", entities.get("atlas")), ("res", entities.get("res")), ("label", entities.get("label")),
             ("desc", entities.get("desc")), ("meas", entities.get("meas"))]
    name = "_".join(f"{key}-{value}" for key, value in order if value not in (None, "")) + f"_{suffix}{extension}"
    folder = Path(out_dir) / f"sub-{src['subject']}"
    if src.get("session"):
        folder /= f"ses-{src['session']}"
    return folder / datatype / name


#: Our files that the BIDS validator does not know (written to ``out_dir/.bidsignore``): reports, model
#: tensors, figures, logs, group results, and the connectivity / morphometry files of BEP017-style names.
BIDSIGNORE = "\n".join(["*.html", "*/features/", "*/figures/", "logs/", "group/", ".bidsad.lock",
                         "*_relmat.tsv", "*_relmat.json", "*_morph.tsv", "*_morph.json",
                         "*_atlas-*_timeseries.tsv", "*_atlas-*_timeseries.json", ""])


def write_dataset_description(out_dir: Path, bids_dir: Path, links: dict | None = None) -> Path:
    """Create ``dataset_description.json`` and ``.bidsignore`` in ``out_dir`` under a file lock.

    ``DatasetLinks`` maps ``raw`` to ``bids_dir`` (the target of the ``bids:raw:`` URIs in ``Sources``) and
    each of ``links`` (name -> path, e.g. ``fmriprep`` for ``--derivatives``) to its path.

    Safe when many participant jobs (e.g. a SLURM array) share one ``out_dir``: the first writes,
    the others find it.
    """
    from bidsad.utils import atomic_write_json, atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".bidsad.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        desc = out_dir / "dataset_description.json"
        if not desc.exists():
            atomic_write_json(
                desc,
                {
                    "Name": "bidsad derivatives",
                    "BIDSVersion": "1.10.0",
                    "DatasetType": "derivative",
                    "GeneratedBy": [{"Name": "bidsad", "Version": __version__}],
                    "DatasetLinks": {"raw": str(Path(bids_dir).resolve()),
                                     **{k: str(Path(v).resolve()) for k, v in (links or {}).items()}},
                },
            )
        ignore = out_dir / ".bidsignore"
        if not ignore.exists():
            atomic_write_text(ignore, BIDSIGNORE)
    return desc


def read_json(path: Path) -> dict:
    """Read a JSON file into a dict."""
    return json.loads(Path(path).read_text())
