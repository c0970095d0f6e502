"""Image conformance: the one place where inputs become float32, RAS, finite images."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from bidsad import messages
from bidsad.image_checks import core_shape, header_repetition_time


def _scaled_float32(img):
    """The image's values with NIfTI scaling applied, as float32, without a float64 copy of the whole array.

    nibabel's own scaling promotes to float64 (twice the float32 size, plus the result); here the stored
    values are cast once to float32 and scaled in place. ``scl_slope`` 0 or NaN means no scaling (nibabel
    applies the NIfTI rule when it reads the header).
    """
    import numpy as np

    proxy = img.dataobj
    if not _is_proxy(proxy):
        return np.asarray(proxy, dtype=np.float32)
    data = np.asarray(proxy.get_unscaled()).astype(np.float32)
    slope, inter = float(proxy.slope), float(proxy.inter)
    if slope != 1.0:
        data *= np.float32(slope)
    if inter != 0.0:
        data += np.float32(inter)
    return data


def _is_proxy(obj) -> bool:
    """Whether ``obj`` is a nibabel array proxy (data still on disk)."""
    import nibabel as nb

    return nb.is_proxy(obj) and hasattr(obj, "get_unscaled")


def bounding_box(mask, margin: int = 0) -> tuple[slice, slice, slice]:
    """Slices of the smallest box holding every non-zero voxel of the 3-D array ``mask``, grown by ``margin``
    voxels on each side and clipped to the array. Raises ``ValueError`` for an empty mask.

    Used to run the antspyx steps whose cost grows with the field of view (Atropos, registration) on the
    brain only, then paste the result back into the full grid.
    """
    import numpy as np

    nonzero = np.argwhere(np.asarray(mask) != 0)
    if not len(nonzero):
        raise ValueError("empty mask: no bounding box")
    low = np.maximum(nonzero.min(axis=0) - margin, 0)
    high = np.minimum(nonzero.max(axis=0) + margin + 1, np.shape(mask)[:3])
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high))


def conform_image(in_file: Path, out_file: Path, ndim: int, kind: str, display_name: str,
                  repetition_time: float | None = None) -> list[str]:
    """Conform an image: apply NIfTI scaling (``scl_slope`` 0 or NaN means none), float32 (never back to
    the stored integer type), drop singleton dimensions beyond the third (``(X,Y,Z,1)`` -> 3-D,
    ``(X,Y,Z,1,T)`` -> 4-D), reorient to RAS+ by axis permutation and flips only (nibabel
    ``as_closest_canonical``; obliquity stays in the affine), non-finite voxels -> 0.

    ``repetition_time`` (s), for 4-D images: written to ``pixdim[4]`` with time units ``sec`` (the
    sidecar's TR is authoritative; see :func:`bidsad.bids.repetition_time`).

    One authoritative affine: nibabel's (the sform when its code is set, else the qform) is written
    to both qform and sform; a warning says when the two disagreed by more than 0.01 mm.

    Parameters
    ----------
    in_file : input NIfTI; ``ndim`` the required dimensionality (3 for T1w, 4 for BOLD).
    display_name : the file's name in messages (relative to bids_dir).

    Returns the warnings (e.g. the count of non-finite voxels).

    Raises
    ------
    ValueError
        Unreadable data, wrong dimensionality (a multi-volume T1w has its own message) or no finite
        voxel; the message names ``display_name``.
    """
    import nibabel as nb
    import numpy as np

    try:
        img = nb.load(str(in_file))
        data = _scaled_float32(img)
    except Exception as err:  # truncated or corrupt files raise OSError, EOFError, zlib.error ...
        why = " ".join(str(err).split()) or type(err).__name__
        raise ValueError(messages.IMAGE_UNREADABLE.format(file=display_name, why=why)) from err
    data = data.reshape(core_shape(data.shape))
    if ndim == 3 and data.ndim == 4:
        raise ValueError(messages.IMAGE_MULTIVOLUME.format(file=display_name, n=data.shape[3], shape=img.shape))
    if data.ndim != ndim:
        raise ValueError(messages.IMAGE_NDIM.format(file=display_name, kind=kind, expected=ndim, shape=img.shape))
    warnings = []
    qform, qcode = img.get_qform(), int(img.header["qform_code"])
    sform, scode = img.get_sform(), int(img.header["sform_code"])
    if qcode > 0 and scode > 0:
        corners = np.array([[i, j, k, 1] for i in (0, data.shape[0]) for j in (0, data.shape[1]) for k in (0, data.shape[2])]).T
        diff = float(np.abs((qform - sform) @ corners).max())
        if diff > 0.01:
            warnings.append(messages.IMAGE_QFORM_SFORM.format(file=display_name, diff=diff))
    finite = np.isfinite(data)
    if not finite.any():
        raise ValueError(messages.IMAGE_ALL_NONFINITE.format(file=display_name))
    n_bad = int(data.size - finite.sum())
    if n_bad:
        data[~finite] = 0.0
        warnings.append(messages.IMAGE_NONFINITE.format(file=display_name, count=n_bad))
    header = img.header.copy()
    header.set_data_dtype(np.float32)
    out = nb.Nifti1Image(data, img.affine, header)
    out.header.set_slope_inter(1, 0)
    out.set_qform(img.affine, code=max(scode, qcode, 1))
    out.set_sform(img.affine, code=max(scode, qcode, 1))
    if data.ndim == 4:
        out.header.set_xyzt_units("mm", "sec")
        zooms = out.header.get_zooms()
        out.header.set_zooms(zooms[:3] + (float(repetition_time or header_repetition_time(img.header)),))
    out = nb.as_closest_canonical(out)
    nb.save(out, str(out_file))
    return warnings


class _ConformInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="input NIfTI image")
    ndim = traits.Enum(3, 4, mandatory=True, desc="required dimensionality")
    kind = traits.Str("image", usedefault=True, desc="name of the image kind in messages (T1w, BOLD)")
    display_name = traits.Str(desc="file name used in messages (relative to bids_dir)")
    repetition_time = traits.Float(desc="TR (s) written to pixdim[4] of a 4-D image")


class _ConformOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="float32 RAS+ image, finite")
    warnings = traits.List(traits.Str, desc="problems found and fixed")


class ConformImage(SimpleInterface):
    """nipype wrapper of :func:`conform_image`."""

    input_spec = _ConformInputSpec
    output_spec = _ConformOutputSpec

    def _run_interface(self, runtime):
        in_file = Path(self.inputs.in_file)
        out_file = Path(runtime.cwd) / in_file.name.replace(".nii.gz", "").replace(".nii", "")
        out_file = out_file.with_name(out_file.name + "_ras.nii.gz")
        self._results["warnings"] = conform_image(
            in_file, out_file, self.inputs.ndim, self.inputs.kind, self.inputs.display_name or in_file.name,
            self.inputs.repetition_time or None,
        )
        self._results["out_file"] = str(out_file)
        return runtime
