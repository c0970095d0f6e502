"""Checks of input image files: readable, complete, usable header and geometry; shapes and TR from headers."""

from __future__ import annotations

import math
from pathlib import Path

from bidsad import messages
from bidsad.utils import relpath


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
