"""BIDS input selection: which participants and runs are usable and why, and their sidecars (read with the
BIDS inheritance principle). Output naming is :mod:`bidsad.derivatives`; participants.tsv is
:mod:`bidsad.phenotype`; file and header checks are :mod:`bidsad.image_checks`; the BIDS validator is
:mod:`bidsad.validator`.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from bidsad import messages
from bidsad.image_checks import (bold_volumes, core_shape, file_problem, header_repetition_time, image_header_problem,
                                 orientation_warning)
from bidsad.utils import relpath

LOGGER = logging.getLogger("bidsad")

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
    mem_gb: float = 0.0


@dataclass
class ParticipantInputs:
    """What the participant level will process for one participant, and why not the rest."""

    label: str
    t1w: Path | None = None
    bold: list[BoldRun] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def read_sidecar(path: Path, root: Path) -> dict:
    """Read one JSON sidecar: UTF-8 (a byte-order mark is accepted), a JSON object.

    The one place where bidsad reads JSON of the input dataset (pybids' own reader stops the whole
    index at the first sidecar that is not UTF-8 or has a BOM).

    Raises
    ------
    ValueError
        Not UTF-8, not valid JSON (line and column given) or not an object; the message names the file
        relative to ``root``.
    """
    rel = relpath(path, root)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(messages.JSON_NOT_UTF8.format(file=rel, position=err.start)) from None
    except OSError as err:
        raise ValueError(messages.JSON_UNREADABLE.format(file=rel, why=err.strerror or err)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(messages.JSON_INVALID.format(file=rel, why=err.msg, line=err.lineno, col=err.colno)) from None
    if not isinstance(data, dict):
        raise ValueError(messages.JSON_NOT_OBJECT.format(file=rel))
    return data


def sidecar_metadata(path: Path, root: Path) -> tuple[dict, list[Path]]:
    """Metadata of the image ``path`` with the BIDS inheritance principle.

    Every ``.json`` file in ``root`` and the folders down to the image's own, whose suffix is the image's
    and whose entities are a subset of the image's, applies; nearer (deeper) files override farther
    ones, e.g. ``task-rest_bold.json`` (root) < ``sub-01/sub-01_task-rest_bold.json`` <
    ``sub-01/func/sub-01_task-rest_bold.json``. Dot files are never read.

    Returns ``(metadata, sidecars)``: the merged dict and the files used, farthest first.

    Raises
    ------
    ValueError
        A sidecar that applies cannot be read (see :func:`read_sidecar`).
    """
    from bids.layout import parse_file_entities

    path, root = Path(path), Path(root)
    entities = parse_file_entities(str(path))
    suffix = entities.pop("suffix", None)
    entities.pop("extension", None)
    folders = [root] + [root / Path(*path.relative_to(root).parts[:i])
                        for i in range(1, len(path.relative_to(root).parts))]
    merged, used = {}, []
    for folder in folders:
        level = []
        for candidate in sorted(folder.glob("*.json")):
            if candidate.name.startswith("."):
                continue
            found = parse_file_entities(str(candidate))
            if found.pop("suffix", None) != suffix:
                continue
            found.pop("extension", None)
            if all(entities.get(key) == value for key, value in found.items()):
                level.append((len(found), candidate))
        for _, candidate in sorted(level):  # more specific files of one folder override general ones
            merged.update(read_sidecar(candidate, root))
            used.append(candidate)
    return merged, used


def repetition_time(metadata: dict, path: Path, root: Path, header_tr: float = 0.0) -> tuple[float, list[str]]:
    """RepetitionTime (s): the sidecar's (BIDS inheritance applied), else the NIfTI header's.

    ``header_tr`` is the header's time step in seconds (:func:`bidsad.image_checks.header_repetition_time`), 0 if none.

    Returns ``(tr, warnings)``: a warning when the header's TR is used, or when it differs from the
    sidecar's by more than 1 % (the sidecar's is used, as BIDS says).

    Raises
    ------
    ValueError
        Missing in both, non-numeric, non-positive, or apparently in milliseconds (> 100); the message
        names the file.
    """
    rel = relpath(path, root)
    if "RepetitionTime" not in metadata:
        if header_tr > 100:
            raise ValueError(messages.TR_MS.format(file=rel, tr=header_tr))
        if header_tr > 0:
            return header_tr, [messages.TR_FROM_HEADER.format(file=rel, tr=header_tr)]
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
    warnings = []
    if header_tr > 0 and abs(header_tr - tr) > 0.01 * tr:
        warnings.append(messages.TR_DISAGREE.format(file=rel, tr=value, header=header_tr))
    return tr, warnings


#: Memory (bytes per voxel of the whole series) that conforming a BOLD run takes at its peak: the stored
#: values (up to 4 bytes) and the float32 copy, plus masks (measured: 5.1 for int16 input, see
#: tests/test_bugcases.py::test_br25_conform_holds_no_float64_copy_of_a_4d_series).
BOLD_BYTES_PER_VOXEL = 9

#: Fewest volumes a BOLD run needs to be used (shorter runs are skipped with a warning naming the file).
MIN_BOLD_VOLUMES = 10

#: pybids ignore patterns (paths relative to bids_dir, starting with '/'): raw data live only in
#: sub-*/ folders, so every other top-level folder (derivatives/, sourcedata/, code/, __MACOSX/, an
#: earlier run's outputs ...) is skipped; pybids itself always skips dot files and folders.
INDEX_IGNORE = [r"^/(?!sub-)[^/]+/", r"/__MACOSX(/|$)"]


def _t1w_order(path: str):
    """Sort key of the documented T1w choice: earliest session, no ``acq`` before any, lowest run."""
    from bids.layout import parse_file_entities

    ents = parse_file_entities(path)
    run = ents.get("run")
    return (str(ents.get("session", "")), "acquisition" in ents, str(ents.get("acquisition", "")),
            int(run) if str(run or "").isdigit() else -1, path)


def _nested_datasets(bids_dir: Path) -> list[Path]:
    """Folders inside sub-* that hold their own dataset_description.json (nested datasets)."""
    return sorted(p.parent for p in bids_dir.glob("sub-*/**/dataset_description.json"))


def label_suggestions(missing, found) -> str:
    """:data:`bidsad.messages.LABELS_CASE_HINT` naming the labels of ``found`` that equal one of ``missing`` (labels
    without ``sub-``) ignoring case, also after a leading ``sub-`` in another case (``SUB-01`` -> ``sub-01``); ``""``
    when none does. Labels are case-sensitive: a near match is only suggested, never used."""
    lower = {f.lower(): f for f in found}
    keys = [next((k for k in (m.lower(), m.lower().removeprefix("sub-")) if k in lower), None) for m in missing]
    hints = list(dict.fromkeys(f"sub-{lower[k]}" for k in keys if k))
    return messages.LABELS_CASE_HINT.format(labels=", ".join(hints)) if hints else ""


def collect_participants(
    bids_dir: Path,
    labels: list[str] | None = None,
    bids_filters: dict | None = None,
    validate: bool = True,
    min_volumes: int = MIN_BOLD_VOLUMES,
    mem_gb: float | None = None,
) -> list[ParticipantInputs]:
    """Index ``bids_dir`` with pybids and decide, per participant, the inputs that will be used.

    The one place that decides which participants and runs are usable, and says why:

    - only ``sub-*`` folders are raw data (see :data:`INDEX_IGNORE`); dot files (``.DS_Store``,
      AppleDouble ``._*``) and ``__MACOSX/`` are ignored at any depth;
    - T1w: with several, the first by :func:`_t1w_order` (earliest session, no ``acq``, lowest run);
      one 3-D volume required (trailing singleton dimensions allowed, several volumes refused);
    - BOLD (``task-rest``): metadata by :func:`sidecar_metadata` (BIDS inheritance), TR by
      :func:`repetition_time` (sidecar, else header); a ``(X,Y,Z,1,T)`` image counts as 4-D; runs with
      fewer than ``min_volumes`` volumes are skipped with a warning; a run whose estimated memory
      (:data:`BOLD_BYTES_PER_VOXEL`) exceeds ``mem_gb`` (``--mem``) is refused with an error that says so,
      rather than being killed by the system.

    Returns one :class:`ParticipantInputs` per participant (sorted by label); a participant with
    an unusable T1w has ``errors`` and ``t1w=None``. Unusable BOLD runs are dropped with an error
    message; a participant without BOLD gets a warning (MRI features only).

    Raises
    ------
    InputError
        pybids cannot index the dataset, no participant exists, requested labels are absent, or a
        JSON file at the dataset root (which applies to every participant) cannot be read.
    """
    import re

    import nibabel as nb
    from bids import BIDSLayout, BIDSLayoutIndexer

    bids_dir = Path(bids_dir)
    ignore = [re.compile(pattern) for pattern in INDEX_IGNORE] + _nested_datasets(bids_dir)
    try:
        indexer = BIDSLayoutIndexer(validate=validate, index_metadata=False, ignore=ignore)
        layout = BIDSLayout(str(bids_dir), validate=validate, indexer=indexer)
    except Exception as err:
        raise InputError(messages.VALIDATION_FAILED.format(bids=bids_dir, why=err)) from err
    for sidecar in sorted(bids_dir.glob("*.json")):  # root sidecars apply to everyone: a dataset error
        if not sidecar.name.startswith("."):
            try:
                read_sidecar(sidecar, bids_dir)
            except ValueError as err:
                raise InputError(str(err)) from None
    found = sorted(layout.get_subjects())
    if labels:
        missing = [lab for lab in labels if lab not in found]
        if missing:
            hint = label_suggestions(missing, found)
            raise InputError(
                messages.LABELS_MISSING.format(
                    labels=", ".join(f"sub-{m}" for m in missing), bids=bids_dir, found=", ".join(found) or "none"
                ) + hint
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
        t1ws = sorted(layout.get(subject=label, return_type="filename", **queries["t1w"]), key=_t1w_order)
        if not t1ws:
            part.errors.append(messages.T1W_MISSING_FILTERED.format(label=label, query=filters["t1w"])
                               if filters.get("t1w") else messages.T1W_MISSING.format(label=label))
        else:
            if len(t1ws) > 1:
                part.warnings.append(messages.T1W_SEVERAL.format(
                    label=label, n=len(t1ws), used=relpath(t1ws[0], bids_dir),
                    others=", ".join(relpath(t, bids_dir) for t in t1ws[1:])))
            problem = image_header_problem(Path(t1ws[0]), bids_dir, "T1w", 3)
            if problem:
                part.errors.append(problem)
            else:
                part.t1w = Path(t1ws[0])
                guessed = orientation_warning(part.t1w, bids_dir)
                if guessed:
                    part.warnings.append(guessed)
        for bold in sorted(layout.get(subject=label, return_type="filename", **queries["bold"])):
            bold = Path(bold)
            unreadable = file_problem(bold, bids_dir)
            if unreadable:  # the participant keeps its MRI outputs
                part.warnings.append(messages.BOLD_UNUSABLE.format(why=unreadable, label=label))
                continue
            problem = image_header_problem(bold, bids_dir, "BOLD", 4)
            if problem:
                part.errors.append(problem)
                continue
            guessed = orientation_warning(bold, bids_dir)
            if guessed:
                part.warnings.append(guessed)
            header = nb.load(str(bold)).header
            n_volumes = bold_volumes(header.get_data_shape())
            if n_volumes < min_volumes:
                part.warnings.append(messages.BOLD_TOO_SHORT.format(file=relpath(bold, bids_dir), n=n_volumes,
                                                                    minimum=min_volumes))
                continue
            try:
                metadata, _ = sidecar_metadata(bold, bids_dir)
                tr, tr_warnings = repetition_time(metadata, bold, bids_dir, header_repetition_time(header))
            except ValueError as err:
                part.errors.append(str(err))
                continue
            need = math.prod(core_shape(header.get_data_shape())) * BOLD_BYTES_PER_VOXEL / 1e9
            if mem_gb and need > mem_gb:
                part.errors.append(messages.BOLD_MEMORY.format(file=relpath(bold, bids_dir), need=need, mem=mem_gb))
                continue
            part.warnings.extend(tr_warnings)
            part.bold.append(BoldRun(bold, tr, n_volumes, round(need, 3)))
        if not part.bold and part.t1w is not None:
            part.warnings.append(messages.BOLD_MISSING.format(label=label))
        participants.append(part)
    if not layout.get(return_type="filename", **queries["bold"]):  # a T1w-only dataset: said once, not per person
        for part in participants:
            part.warnings = [w for w in part.warnings if w != messages.BOLD_MISSING.format(label=part.label)]
        LOGGER.info(messages.DATASET_T1W_ONLY.format(bids=bids_dir))
    return participants
