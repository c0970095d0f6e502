"""DerivativesDataSink: the one writer of participant-level derivatives (atomic, with sidecars)."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)


class _DSInputSpec(BaseInterfaceInputSpec):
    base_directory = traits.Directory(mandatory=True, desc="out_dir")
    source_file = File(mandatory=True, desc="input BIDS file whose entities name the output")
    in_file = File(exists=True, mandatory=True, desc="file to store")
    datatype = traits.Str(mandatory=True, desc="anat, func, features or figures")
    suffix = traits.Str(mandatory=True, desc="BIDS suffix (T1w, bold, ...)")
    extension = traits.Str(desc="extension (default: the in_file's)")
    space = traits.Str(desc="space- entity")
    atlas = traits.Str(desc="atlas- entity (ROI time series, connectivity, regional morphometry)")
    res = traits.Str(desc="res- entity")
    label = traits.Str(desc="label- entity (e.g. GM for a probseg)")
    desc = traits.Str(desc="desc- entity")
    stat = traits.Str(desc="stat- entity of a relationship matrix (BEP017, e.g. pearsoncorrelation)")
    from_ = traits.Str(desc="from- entity of a transform")
    to = traits.Str(desc="to- entity of a transform")
    mode = traits.Str(desc="mode- entity of a transform (image)")
    meta_dict = traits.Dict(desc="sidecar JSON content")
    skull_stripped = traits.Bool(desc="recorded as the sidecar's SkullStripped when given")


class _DSOutputSpec(TraitedSpec):
    out_file = File(desc="written derivative")
    out_meta = File(desc="written JSON sidecar")


class DerivativesDataSink(SimpleInterface):
    """Copy ``in_file`` to its BIDS-Derivatives name under ``base_directory`` and write its JSON
    sidecar; both through a temporary name and an atomic rename."""

    input_spec = _DSInputSpec
    output_spec = _DSOutputSpec
    always_run = True

    def out_path(self, extension: str) -> Path:
        """Where this sink writes (:func:`bidsad.derivatives.naming.derivative_path` of its inputs)."""
        from bidsad.derivatives.naming import derivative_path

        return derivative_path(Path(self.inputs.base_directory), Path(self.inputs.source_file),
                               datatype=self.inputs.datatype, suffix=self.inputs.suffix, extension=extension,
                               **self._entities())

    def _entities(self) -> dict:
        return {k.rstrip("_"): getattr(self.inputs, k) or None
                for k in ("from_", "to", "mode", "space", "atlas", "res", "label", "desc", "stat")}

    def _run_interface(self, runtime):
        from bidsad.utils import atomic_copy, atomic_write_json

        in_file = Path(self.inputs.in_file)
        extension = self.inputs.extension or "".join(in_file.suffixes[-2:] if in_file.name.endswith(".nii.gz") else in_file.suffixes[-1:])
        entities = self._entities()
        out = self.out_path(extension)
        if extension in (".nii", ".nii.gz") and _consistent_header(in_file) is not None:
            _consistent_header(in_file, write_to=out)
        else:
            atomic_copy(in_file, out)
        sidecar = out.with_name(out.name[: -len(extension)] + ".json")
        meta = dict(self.inputs.meta_dict or {})
        if entities.get("res"):  # BIDS requires the meaning of res- in the sidecar of every such file
            from bidsad.derivatives.description import RESOLUTIONS

            meta.setdefault("Resolution", RESOLUTIONS.get(entities["res"], f"bidsad grid '{entities['res']}'"))
        if isdefined(self.inputs.skull_stripped):
            meta["SkullStripped"] = bool(self.inputs.skull_stripped)
        atomic_write_json(sidecar, meta)
        self._results["out_file"] = str(out)
        self._results["out_meta"] = str(sidecar)
        return runtime


def _consistent_header(path: Path, write_to: Path | None = None):
    """One authoritative affine in a NIfTI output: ``None`` when qform and sform agree (within 1e-4 mm)
    and both codes are set; otherwise the image with nibabel's affine as both forms (codes at least 1),
    written atomically to ``write_to`` when given."""
    import nibabel as nb
    import numpy as np

    img = nb.load(str(path))
    header = img.header
    qcode, scode = int(header["qform_code"]), int(header["sform_code"])
    if qcode > 0 and scode > 0 and np.allclose(img.get_qform(), img.get_sform(), atol=1e-4):
        return None
    code = max(qcode, scode, 1)
    fixed = img.__class__(img.dataobj, img.affine, header)
    fixed.set_qform(img.affine, code=code)
    fixed.set_sform(img.affine, code=code)
    if write_to is not None:
        import gzip

        from bidsad.utils import atomic_write_bytes

        data = fixed.to_bytes()
        atomic_write_bytes(write_to, gzip.compress(data, compresslevel=6, mtime=0) if str(write_to).endswith(".gz") else data)
    return fixed
