"""BIDS input and output bookkeeping: which participants and runs are usable and why,
participants.tsv and its diagnosis mapping, derivative names and dataset_description.json.
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from bidsad import __version__, messages

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


#: Tensor sidecar key of :func:`image_content_hash` of the participant's source T1w (the leakage checks' key).
CONTENT_HASH_KEY = "SourceContentHash"


def image_content_hash(path: Path) -> str:
    """``sha256:<hex>`` of an image's decoded voxel array: its shape, dtype (little-endian) and bytes.

    The array is nibabel's ``dataobj`` as stored (scaling applied), so a renamed, recompressed or
    re-headered copy of the same scan has the same hash, whatever its file name or gzip level; a
    resampled or re-typed copy does not. Raises nibabel's / the OS's errors for unreadable files.
    """
    import nibabel as nb
    import numpy as np

    return array_content_hash(np.asanyarray(nb.load(str(path)).dataobj))


def array_content_hash(data) -> str:
    """``sha256:<hex>`` of an array's shape, dtype (as little-endian) and bytes (C order)."""
    import hashlib

    import numpy as np

    data = np.asarray(data)
    data = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<"))
    digest = hashlib.sha256(f"{data.shape}|{data.dtype.str}|".encode())
    digest.update(data.tobytes())
    return f"sha256:{digest.hexdigest()}"


def bids_uri_path(uri: str, bids_dir: Path) -> Path | None:
    """The file of a ``bids:raw:<relative path>`` URI (:func:`bids_uri`) under ``bids_dir``, else ``None``."""
    prefix = "bids:raw:"
    return Path(bids_dir) / uri[len(prefix):] if isinstance(uri, str) and uri.startswith(prefix) else None


def core_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape without singleton dimensions beyond the third: (X,Y,Z,1) -> (X,Y,Z); (X,Y,Z,1,T) -> (X,Y,Z,T).

    The one rule by which T1w and BOLD dimensions are judged (here and in :mod:`bidsad.interfaces.images`).
    """
    return tuple(shape[:3]) + tuple(int(s) for s in shape[3:] if s != 1)


def file_problem(path: Path, root: Path) -> str | None:
    """Why the image file ``path`` cannot be read, in the user's words and with what to do, or ``None``.

    Checked in this order, reading the file once (gzip streams are decompressed to the end, so a CRC error
    anywhere is found; about 0.1 s per 10 MB):

    - a git-annex / DataLad symbolic link whose content is not present (``datalad get``);
    - another broken link, a missing file, no read permission;
    - an empty file; a ``.nii.gz`` that is not gzip-compressed; a gzip stream that ends early (truncated)
      or fails its checksum (corrupt);
    - a NIfTI header nibabel refuses (corrupt header); data shorter than the header announces (truncated).

    Header geometry (degenerate affine) is judged by :func:`image_header_problem`.
    """
    import gzip
    import os
    import zlib

    import nibabel as nb

    path = Path(path)
    rel = relpath(path, root)
    if path.is_symlink() and not path.exists():
        target = os.readlink(path)
        if ".git/annex/objects" in target or "/annex/objects/" in target:
            return messages.FILE_ANNEX_MISSING.format(file=rel)
        return messages.FILE_BROKEN_LINK.format(file=rel, target=target)
    if not path.exists():
        return messages.FILE_MISSING.format(file=rel)
    if not os.access(path, os.R_OK):
        return messages.FILE_NO_ACCESS.format(file=rel)
    size = path.stat().st_size
    if size == 0:
        return messages.FILE_EMPTY.format(file=rel)
    with open(path, "rb") as handle:
        magic = handle.read(2)
    compressed = magic == b"\x1f\x8b"
    if path.name.endswith(".gz") and not compressed:
        return messages.FILE_NOT_GZIP.format(file=rel)
    if path.name.endswith(".nii") and compressed:
        return messages.FILE_GZIP_AS_NII.format(file=rel)
    head, length = b"", 0
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as stream:
            while chunk := stream.read(1 << 22):
                if len(head) < 1 << 22:  # the header and its extensions
                    head += chunk[: (1 << 22) - len(head)]
                length += len(chunk)
    except EOFError:
        return messages.FILE_TRUNCATED_GZIP.format(file=rel, size=size)
    except (gzip.BadGzipFile, zlib.error, OSError) as err:
        return messages.FILE_CORRUPT_GZIP.format(file=rel, why=" ".join(str(err).split()) or type(err).__name__)
    try:
        klass = nb.Nifti2Header if head[:4] in (b"\x1c\x02\x00\x00", b"\x00\x00\x02\x1c") else nb.Nifti1Header
        header = klass.from_fileobj(__import__("io").BytesIO(head), check=True)
    except Exception as err:  # nibabel raises HeaderDataError, HeaderTypeError, ValueError ...
        return messages.FILE_CORRUPT_HEADER.format(file=rel, why=" ".join(str(err).split()) or type(err).__name__)
    expected = int(header.get_data_offset()) + math.prod(header.get_data_shape()) * header.get_data_dtype().itemsize
    if length < expected:
        return messages.FILE_TRUNCATED_DATA.format(file=rel, size=length, expected=expected)
    return None


def image_header_problem(path: Path, root: Path, kind: str, ndim: int) -> str | None:
    """Check that ``path`` is a readable NIfTI of ``ndim`` dimensions (singletons beyond the 3rd allowed)
    with a usable affine.

    Returns the message of the problem, or ``None`` when the image is usable. The file itself is judged
    by :func:`file_problem`; then the header: a degenerate affine (non-finite, or voxel axes that collapse,
    |det| of the 3x3 part < 1e-6) is refused. A BOLD image (``ndim=4``) may also be 3-D (one volume):
    :func:`bold_volumes` judges its length.
    """
    import nibabel as nb
    import numpy as np

    rel = relpath(path, root)
    problem = file_problem(path, root)
    if problem:
        return problem
    try:
        img = nb.load(str(path))
        shape = tuple(int(s) for s in img.shape)
    except Exception as err:  # nibabel raises many types for broken files
        return messages.IMAGE_UNREADABLE.format(file=rel, why=str(err) or type(err).__name__)
    core = core_shape(shape)
    if ndim == 3 and len(core) == 4:
        return messages.IMAGE_MULTIVOLUME.format(file=rel, n=core[3], shape=shape)
    if not (len(core) == ndim or (ndim == 4 and len(core) == 3)) or min(shape[:3], default=0) < 1:
        return messages.IMAGE_NDIM.format(file=rel, kind=kind, expected=ndim, shape=shape)
    for name, code in (("sform", int(img.header["sform_code"])), ("qform", int(img.header["qform_code"]))):
        affine = img.get_sform() if name == "sform" else img.get_qform()
        if code > 0 and (not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-6):
            return messages.AFFINE_DEGENERATE.format(file=rel, form=name, affine=np.round(affine[:3], 3).tolist())
    return None


def orientation_warning(path: Path, root: Path) -> str | None:
    """A warning when the image's orientation is a guess: both ``qform_code`` and ``sform_code`` are 0
    (nibabel then assumes the voxel axes are RAS with the pixdim spacing)."""
    import nibabel as nb

    header = nb.load(str(path)).header
    if int(header["qform_code"]) == 0 and int(header["sform_code"]) == 0:
        return messages.ORIENTATION_GUESSED.format(file=relpath(path, root))
    return None


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


def bold_volumes(shape: tuple[int, ...]) -> int:
    """Number of volumes of a BOLD image of ``shape`` (a 3-D image is one volume)."""
    core = core_shape(shape)
    return int(core[3]) if len(core) == 4 else 1


def header_repetition_time(header) -> float:
    """TR (s) from a NIfTI header's ``pixdim[4]`` converted with ``xyzt_units`` (msec /1000, usec /1e6).

    Returns 0.0 when the header has no time step. Unknown units are read as seconds (NIfTI default).
    """
    zooms = header.get_zooms()
    if len(zooms) < 4:
        return 0.0
    value = float(zooms[3])
    unit = header.get_xyzt_units()[1]
    value /= {"msec": 1e3, "usec": 1e6}.get(unit, 1.0)
    return value if math.isfinite(value) and value > 0 else 0.0


def repetition_time(metadata: dict, path: Path, root: Path, header_tr: float = 0.0) -> tuple[float, list[str]]:
    """RepetitionTime (s): the sidecar's (BIDS inheritance applied), else the NIfTI header's.

    ``header_tr`` is the header's time step in seconds (:func:`header_repetition_time`), 0 if none.

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
            lower = {f.lower(): f for f in found}
            hints = [f"sub-{lower[m.lower()]}" for m in missing if m.lower() in lower]
            hint = messages.LABELS_CASE_HINT.format(labels=", ".join(hints)) if hints else ""
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
        if column not in table.columns:
            raise InputError(message.format(file=name, columns=", ".join(table.columns)))
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


#: Entities that bidsad's derivatives add and the BIDS schema's entity table lacks, with the entity they
#: come before: transforms (``from``/``to``/``mode``, as fMRIPrep names them) and BEP017's ``stat``.
EXTRA_ENTITIES = {"from": "space", "to": "space", "mode": "space", "stat": None}


@functools.lru_cache(maxsize=1)
def entity_order() -> tuple[str, ...]:
    """Short entity names (``sub``, ``ses``, ``task`` ...) in the order of the BIDS schema's entity table
    (bidsschematools, as pybids ships it), with :data:`EXTRA_ENTITIES` inserted."""
    import bidsschematools.schema

    schema = bidsschematools.schema.load_schema()
    order = [schema.objects.entities[name]["name"] for name in schema.rules.entities]
    for key, before in EXTRA_ENTITIES.items():
        order.insert(order.index(before) if before in order else len(order), key)
    return tuple(order)


def source_entities(source: Path) -> dict[str, str]:
    """Every ``key-value`` entity of a BIDS file name, in file-name order (``sub-01_dir-AP_bold.nii.gz``
    -> ``{"sub": "01", "dir": "AP"}``); the suffix and extension are dropped."""
    name = Path(source).name.split(".")[0]
    return dict(part.split("-", 1) for part in name.split("_")[:-1] if "-" in part)


def derivative_path(out_dir: Path, source: Path, *, datatype: str, suffix: str, extension: str, **entities) -> Path:
    """BIDS-Derivatives path for an output of ``source``: every entity of the source file name is kept
    (``sub ses task acq ce rec dir run echo part ...``), so runs that differ in any entity get distinct
    outputs.

    ``entities`` adds derivative entities (``from``, ``to``, ``mode``, ``space``, ``atlas``, ``res``,
    ``label``, ``desc``, ``stat`` ...; ``None`` values are omitted) and overrides a source entity of the
    same name. Names follow :func:`entity_order` (BIDS schema order); entities it does not know come last.
    """
    src = source_entities(source)
    merged = {**src, **{key: value for key, value in entities.items() if value not in (None, "")}}
    order = entity_order()
    rank = {key: index for index, key in enumerate(order)}
    keys = sorted(merged, key=lambda key: rank.get(key, len(order)))
    name = "_".join(f"{key}-{merged[key]}" for key in keys) + f"_{suffix}{extension}"
    folder = Path(out_dir) / f"sub-{src['sub']}"
    if src.get("ses"):
        folder /= f"ses-{src['ses']}"
    return folder / datatype / name


#: Files of ours that the BIDS validator does not know (written to ``out_dir/.bidsignore``): reports, model
#: tensors, figures, logs, group results, transforms (``.h5``), the connectivity / morphometry / ROI files of
#: BEP017-style names and the confounds.
BIDSIGNORE = "\n".join(["*.html", "**/features", "**/figures", "logs", "group", "group-*", ".bidsad.lock",
                         "*_xfm.h5", "*_xfm.json", "*_relmat.tsv", "*_relmat.json", "*_morph.tsv", "*_morph.json",
                         "*_timeseries.tsv", "*_timeseries.json", ""])

#: Meaning of every ``res-`` label bidsad writes (``Resolution`` of dataset_description.json). Numbers are
#: isotropic grids of the MNI152NLin2009aSym template in mm; names are model-input presets (``--preset``).
RESOLUTIONS = {
    "2": "2 mm isotropic grid of MNI152NLin2009aSym (nilearn's template grid)",
    "3": "3 mm isotropic grid of MNI152NLin2009aSym",
    "4": "4 mm isotropic grid of MNI152NLin2009aSym",
    "small": "model-input grids of the 'small' preset (see the tensor's JSON sidecar)",
    "paper": "model-input grids of the 'paper' preset (MRI 128x128x176, fMRI 216 x 64x64x32)",
}


def _resolutions(out_dir: Path) -> dict[str, str]:
    """:data:`RESOLUTIONS` plus any other ``res-`` label found in ``out_dir``'s participant folders."""
    import re

    found = dict(RESOLUTIONS)
    for path in Path(out_dir).glob("sub-*/**/*_res-*"):
        match = re.search(r"_res-([a-zA-Z0-9]+)_", path.name)
        if match and match.group(1) not in found:
            label = match.group(1)
            found[label] = f"{label} mm isotropic grid" if label.isdigit() else f"bidsad grid '{label}'"
    return found


def _source_datasets(bids_dir: Path) -> list[dict]:
    """``SourceDatasets`` of our outputs: the raw dataset by URL, with its DOI and version when it declares them."""
    entry = {"URL": Path(bids_dir).resolve().as_uri()}
    try:
        raw = json.loads((Path(bids_dir) / "dataset_description.json").read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        raw = {}
    if isinstance(raw, dict):
        if isinstance(raw.get("DatasetDOI"), str):
            entry["DOI"] = raw["DatasetDOI"]
        if isinstance(raw.get("DatasetVersion", raw.get("Version")), str):
            entry["Version"] = raw.get("DatasetVersion", raw.get("Version"))
    return [entry]


def write_dataset_description(out_dir: Path, bids_dir: Path, links: dict | None = None) -> Path:
    """Create or update ``dataset_description.json`` and ``.bidsignore`` in ``out_dir`` under a file lock.

    ``DatasetLinks`` maps ``raw`` to ``bids_dir`` (the target of the ``bids:raw:`` URIs in ``Sources``) and
    each of ``links`` (name -> path, e.g. ``fmriprep`` for ``--derivatives``) to its path;
    ``SourceDatasets`` names ``bids_dir``; ``Resolution`` explains every ``res-`` label (:func:`_resolutions`).
    When an earlier run of another bidsad version wrote ``out_dir``, ``GeneratedBy`` is updated to this
    version and a warning names both (outputs of the two versions may now be mixed). Fields others added
    are kept. ``.bidsignore`` is rewritten with :data:`BIDSIGNORE` plus any extra line already in it.

    Safe when many participant jobs (e.g. a SLURM array) share one ``out_dir``: the lock serialises them.
    Call it again at the end of a run to describe ``res-`` labels that only the outputs know.
    """
    from bidsad.utils import atomic_write_json, atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".bidsad.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = out_dir / "dataset_description.json"
        try:
            desc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            desc = {}
        desc = desc if isinstance(desc, dict) else {}
        earlier = [g.get("Version") for g in desc.get("GeneratedBy", []) if isinstance(g, dict) and g.get("Name") == "bidsad"]
        if earlier and earlier[0] != __version__:
            LOGGER.warning(messages.OUTPUTS_OTHER_VERSION.format(out=out_dir, old=earlier[0], new=__version__))
        new = {
            **desc,
            "Name": desc.get("Name", "bidsad derivatives"),
            "BIDSVersion": "1.10.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "bidsad", "Version": __version__}],
            "SourceDatasets": _source_datasets(bids_dir),
            "DatasetLinks": {**desc.get("DatasetLinks", {}), "raw": str(Path(bids_dir).resolve()),
                             **{k: str(Path(v).resolve()) for k, v in (links or {}).items()}},
            "Resolution": {**desc.get("Resolution", {}), **_resolutions(out_dir)},
        }
        if new != desc:
            atomic_write_json(path, new)
        ignore = out_dir / ".bidsignore"
        lines = BIDSIGNORE.splitlines()
        extra = [line for line in (ignore.read_text().splitlines() if ignore.exists() else []) if line not in lines]
        text = "\n".join(lines + extra) + "\n"
        if not ignore.exists() or ignore.read_text() != text:
            atomic_write_text(ignore, text)
    return path


def read_json(path: Path) -> dict:
    """Read a JSON file into a dict."""
    return json.loads(Path(path).read_text())


def bids_validator_command() -> list[str] | None:
    """Command of the BIDS validator (the ``bids-validator-deno`` wheel: its own runtime, works offline), or
    ``None`` when it is not installed. Looked up beside the running Python first, then on ``PATH``."""
    import shutil
    import sys

    beside = Path(sys.executable).parent / "bids-validator-deno"
    found = str(beside) if beside.is_file() else shutil.which("bids-validator-deno")
    return [found] if found else None


def run_bids_validator(dataset: Path, timeout: float = 600) -> list[dict]:
    """Run the BIDS validator on ``dataset`` and return its issues of severity ``error``.

    Each issue is the validator's JSON object (``code``, ``location``, ``severity``, ...), with the
    validator's explanation of the code added as ``message``. Method: ``bids-validator-deno --format json``
    (BIDS schema of the installed wheel; no network).

    Raises
    ------
    FileNotFoundError
        The validator is not installed (:func:`bids_validator_command` is ``None``).
    RuntimeError
        It did not finish within ``timeout`` s or gave no JSON (its stderr quoted).
    """
    import subprocess

    command = bids_validator_command()
    if command is None:
        raise FileNotFoundError("bids-validator-deno")
    try:
        proc = subprocess.run([*command, "--format", "json", str(dataset)], capture_output=True, text=True,
                              timeout=timeout, env={**__import__("os").environ, "NO_COLOR": "1"})
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"no answer within {timeout:.0f} s") from None
    except OSError as err:  # e.g. not executable for this UID (a container run with -u): the run goes on
        raise RuntimeError(f"could not start {command[0]}: {err.strerror or err}") from None
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise RuntimeError(proc.stderr.strip()[-500:] or f"exit status {proc.returncode}, no output") from None
    explained = report["issues"].get("codeMessages") or {}
    errors = [dict(issue) for issue in report["issues"]["issues"] if issue.get("severity") == "error"]
    for issue in errors:
        issue.setdefault("message", explained.get(issue.get("code"), ""))
    return errors


def summarise_validator_errors(errors: list[dict], root: Path, limit: int = 10) -> str:
    """One line per error code: the code, how many files, the first files (relative to ``root``), and the
    validator's explanation; at most ``limit`` codes."""
    from collections import defaultdict

    by_code = defaultdict(list)
    for issue in errors:
        by_code[issue.get("code", "?")].append(issue)
    lines = []
    for code, issues in sorted(by_code.items(), key=lambda item: -len(item[1]))[:limit]:
        where = sorted({str(i.get("location", "")).lstrip("/") for i in issues if i.get("location")})
        shown = ", ".join(where[:3]) + (f" and {len(where) - 3} more" if len(where) > 3 else "")
        why = " ".join(str(issues[0].get("message") or "").split())[:200]
        lines.append(f"  {code} ({len(issues)}x{': ' + shown if shown else ''}){' - ' + why if why else ''}")
    return "\n".join(lines)


def _read_by_bidsad(location: str, labels: list[str] | None = None) -> bool:
    """Whether a validator issue's location (``/sub-01/anat/...``, ``/participants.tsv``) is in what bidsad
    reads: the selected participants' ``sub-*`` folders (all when ``labels`` is ``None``) and files at the
    dataset root (see :data:`INDEX_IGNORE`)."""
    parts = [part for part in location.split("/") if part]
    if not parts or len(parts) == 1 and not location.endswith("/"):
        return True
    return parts[0].startswith("sub-") and (not labels or parts[0].removeprefix("sub-") in labels)


def _drop_bom_errors(bids_dir: Path, errors: list[dict]) -> list[dict]:
    """Validator errors without those caused only by a UTF-8 byte-order mark on a JSON sidecar, which bidsad
    reads (field case BR-05): ``INVALID_JSON_ENCODING`` on that file and ``SIDECAR_KEY_REQUIRED`` on the data
    file beside it (the validator cannot read its keys). Each tolerated file is named in a warning."""
    def has_bom(location: str) -> bool:
        path = bids_dir / location.lstrip("/")
        try:
            return path.suffix == ".json" and path.read_bytes()[:3] == b"\xef\xbb\xbf"
        except OSError:
            return False

    boms = {str(e.get("location", "")) for e in errors
            if e.get("code") == "INVALID_JSON_ENCODING" and has_bom(str(e.get("location", "")))}
    if not boms:
        return errors
    LOGGER.warning(messages.VALIDATOR_BOM.format(files=", ".join(sorted(b.lstrip("/") for b in boms))))
    stems = {b.removesuffix(".json") for b in boms}

    def caused_by_bom(error: dict) -> bool:
        location = str(error.get("location", ""))
        if error.get("code") == "INVALID_JSON_ENCODING":
            return location in boms
        return error.get("code") == "SIDECAR_KEY_REQUIRED" and location.removesuffix(".gz").rsplit(".", 1)[0] in stems

    return [e for e in errors if not caused_by_bom(e)]


def validate_input(bids_dir: Path, labels: list[str] | None = None) -> None:
    """BIDS validation of the input at start (as fMRIPrep does), with the validator wheel; with ``labels``
    (``--participant-label``) only those participants' errors count.

    Logs one line when the validator is missing or fails to run (the run goes on). Raises
    :class:`InputError` with a summary of the errors (:func:`summarise_validator_errors`) and the way on
    (fix them, or ``--skip-bids-validation``) when the dataset has errors in what bidsad reads (``sub-*``
    folders and root files; errors elsewhere, e.g. an earlier run's outputs in a top-level folder, are
    logged at INFO); warnings are ignored.
    """
    bids_dir = Path(bids_dir)
    try:
        errors = run_bids_validator(bids_dir)
    except FileNotFoundError:
        LOGGER.warning(messages.VALIDATOR_MISSING)
        return
    except RuntimeError as err:
        LOGGER.warning(messages.VALIDATOR_FAILED.format(why=err))
        return
    unread = [e for e in errors if not _read_by_bidsad(str(e.get("location", "")), labels)]
    if unread:  # e.g. an earlier run's outputs or a nested dataset at the top level: never read as raw data
        LOGGER.info(messages.VALIDATOR_IGNORED.format(
            n=len(unread), where=", ".join(sorted({str(e.get("location", "")).lstrip("/") for e in unread})[:5])))
    errors = [e for e in errors if e not in unread]
    errors = _drop_bom_errors(bids_dir, errors)
    if errors:
        raise InputError(messages.VALIDATOR_ERRORS.format(
            bids=bids_dir, n=len(errors), summary=summarise_validator_errors(errors, bids_dir)))
    LOGGER.info(messages.VALIDATOR_OK.format(bids=bids_dir))
