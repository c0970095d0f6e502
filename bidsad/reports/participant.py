"""``sub-<label>.html``: summary, QC reportlets, outputs, methods, warnings and errors of one participant.

Built from the derivatives on disk (so ``--reports-only`` can rebuild it) and the errors and warnings
collected during the run. Every image under ``sub-<label>/figures/`` (the QC reportlets, whatever
workflow wrote them) is embedded as a data URI, so the report is one file that opens offline.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from bidsad import __version__, messages
from bidsad.bids import ParticipantInputs
from bidsad.derivatives import FRAME_MASK_KEY, SOURCES_KEY
from bidsad.derivatives.naming import bids_uri
from bidsad.utils import relpath

#: Reportlet file types embedded in the report, with their MIME types.
FIGURE_TYPES = {".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                ".gif": "image/gif"}
NOT_COMPUTED = "not computed"


def reportlets(out_dir: Path, label: str) -> list[dict]:
    """Every file of ``sub-<label>/figures/`` (sorted): ``{"path", "title", "uri"}``.

    ``uri`` is a base64 data URI for images (:data:`FIGURE_TYPES`), ``None`` for other files (listed
    only). ``title`` is the ``Description`` of a JSON sidecar with the same stem, else the file name.
    """
    root = Path(out_dir) / f"sub-{label}" / "figures"
    found = []
    for path in sorted(root.rglob("*")) if root.is_dir() else []:
        if not path.is_file() or path.name.startswith(".") or path.suffix == ".json":
            continue
        sidecar = path.with_name(path.name.split(".")[0] + ".json")
        title = path.name
        if sidecar.is_file():
            try:
                title = json.loads(sidecar.read_text()).get("Description", title)
            except ValueError:
                pass
        mime = FIGURE_TYPES.get(path.suffix.lower())
        uri = f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}" if mime else None
        found.append({"path": relpath(path, out_dir), "title": title, "uri": uri})
    return found


def bold_summary(run, bids_dir: Path, outputs: list[dict]) -> dict:
    """Summary of one BOLD run from the sidecars of the derivatives made from it.

    Returns ``{"path", "tr", "n_volumes", "kept", "dummy_scans", "mean_fd"}``: ``kept`` is the number of
    volumes in the model tensor (``frame_mask``); ``dummy_scans`` and ``mean_fd`` (mm) come from the
    sidecar keys ``NonSteadyStateVolumes`` and ``MeanFD`` when a workflow recorded them, else
    :data:`NOT_COMPUTED`.
    """
    uri = bids_uri(run.path, bids_dir)
    metas = [o["meta"] for o in outputs if uri in o["meta"].get(SOURCES_KEY, [])]
    summary = {"path": relpath(run.path, bids_dir), "tr": run.repetition_time, "n_volumes": run.n_volumes,
               "kept": NOT_COMPUTED, "dummy_scans": NOT_COMPUTED, "mean_fd": NOT_COMPUTED}
    for meta in metas:
        if FRAME_MASK_KEY in meta and summary["kept"] == NOT_COMPUTED:
            summary["kept"] = sum(bool(v) for v in meta[FRAME_MASK_KEY])
        if "NonSteadyStateVolumes" in meta and summary["dummy_scans"] == NOT_COMPUTED:
            value = meta["NonSteadyStateVolumes"]
            summary["dummy_scans"] = len(value) if isinstance(value, list) else value
        if meta.get("MeanFD") is not None and summary["mean_fd"] == NOT_COMPUTED:
            summary["mean_fd"] = f"{float(meta['MeanFD']):.3f} mm"
    return summary


def image_geometry(path: Path) -> tuple[list[int] | None, list[float] | None]:
    """``(shape, voxel size in mm)`` of a NIfTI file from its header only (no voxel data read; the spatial
    voxel size, without a 4-D image's repetition time); ``(None, None)`` for other files or an unreadable header."""
    if not path.name.endswith((".nii", ".nii.gz")):
        return None, None
    import nibabel as nb

    try:
        header = nb.load(path).header
    except Exception:  # noqa: BLE001 - a damaged output is listed with blank cells, the report still written
        return None, None
    return [int(n) for n in header.get_data_shape()], [float(z) for z in header.get_zooms()[:3]]


def participant_outputs(out_dir: Path, label: str) -> list[dict]:
    """Every derivative of participant ``label`` with its sidecar (sorted by path): ``{"path", "meta", "shape",
    "voxel_size"}``; shape and voxel size (mm) from the sidecar's ``shape`` and ``voxel_size_mm`` (model
    tensors) or the NIfTI header (:func:`image_geometry`), ``None`` when neither has them."""
    root = Path(out_dir) / f"sub-{label}"
    outputs = []
    for path in sorted(root.rglob("*")) if root.is_dir() else []:
        if path.is_file() and path.suffix != ".json" and not path.name.startswith("."):
            sidecar = path.with_name(path.name.split(".")[0] + ".json")
            meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
            shape, voxel = (meta.get("shape"), meta.get("voxel_size_mm"))
            if shape is None or voxel is None:
                header_shape, header_voxel = image_geometry(path)
                shape, voxel = shape or header_shape, voxel or header_voxel
            outputs.append({"path": relpath(path, out_dir), "meta": meta, "shape": shape, "voxel_size": voxel})
    return outputs


def write_participant_report(config, part: ParticipantInputs) -> Path:
    """Write ``<out_dir>/sub-<label>.html`` (atomically). A failure to report writes ``.err`` instead."""
    from bidsad.reports import render
    from bidsad.utils import atomic_write_text

    ex = config.execution
    out_dir, bids_dir = Path(ex.out_dir), Path(ex.bids_dir)
    target = out_dir / f"sub-{part.label}.html"
    try:
        outputs = participant_outputs(out_dir, part.label)
        warnings = list(part.warnings)
        for output in outputs:
            meta = output["meta"]
            warnings.extend(meta.get("Warnings", []))
            if meta.get("n_volumes") and meta.get("frames"):
                source = meta.get("Sources", ["?"])[0].removeprefix("bids:raw:")
                n, frames = meta["n_volumes"], meta["frames"]
                if n > frames:
                    warnings.append(messages.FRAMES_CROPPED.format(file=source, n=n, frames=frames, preset=meta["preset"]))
                elif n < frames:
                    warnings.append(messages.FRAMES_PADDED.format(file=source, n=n, pad=frames - n, frames=frames))
        from bidsad.reports.boilerplate import methods, to_html

        bold = [bold_summary(run, bids_dir, outputs) for run in part.bold]
        text = methods(out_dir, part.label)["participant"]  # this participant, not the cohort so far
        inputs = []
        if part.t1w is not None:
            inputs.append({"kind": "T1w", "path": relpath(part.t1w, bids_dir), "detail": ""})
        for run in part.bold:
            inputs.append({"kind": "BOLD", "path": relpath(run.path, bids_dir),
                           "detail": f"{run.n_volumes} volumes, RepetitionTime {run.repetition_time:g} s"})
        html = render(
            "participant.html", label=part.label, inputs=inputs, outputs=outputs, warnings=warnings,
            errors=part.errors, version=__version__, run_uuid=ex.run_uuid,
            preset=next((o["meta"]["preset"] for o in outputs if o["meta"].get("preset")), config.features.preset),
            bold=bold, reportlets=reportlets(out_dir, part.label), methods_html=to_html(text) if text else "",
            status="failed" if (part.errors or part.t1w is None) else "completed",
        )
        written = atomic_write_text(target, html)
        target.with_suffix(".err").unlink(missing_ok=True)  # an earlier failure's note is now stale
        return written
    except Exception as err:  # the report must never cost the outputs
        import traceback

        return atomic_write_text(target.with_suffix(".err"), f"report of sub-{part.label} failed: {err!r}\n\n"
                                 + traceback.format_exc())
