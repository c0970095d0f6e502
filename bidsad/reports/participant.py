"""``sub-<label>.html``: inputs, outputs, warnings and errors of one participant."""

from __future__ import annotations

import json
from pathlib import Path

from bidsad import __version__, messages
from bidsad.bids import ParticipantInputs, relpath


def participant_outputs(out_dir: Path, label: str) -> list[dict]:
    """Every derivative of participant ``label`` with its sidecar (sorted by path)."""
    root = Path(out_dir) / f"sub-{label}"
    outputs = []
    for path in sorted(root.rglob("*")) if root.is_dir() else []:
        if path.is_file() and path.suffix != ".json" and not path.name.startswith("."):
            sidecar = path.with_name(path.name.split(".")[0] + ".json")
            meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
            outputs.append({"path": relpath(path, out_dir), "meta": meta})
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
                source = meta.get("Sources", ["?"])[0].removeprefix("bids::")
                n, frames = meta["n_volumes"], meta["frames"]
                if n > frames:
                    warnings.append(messages.FRAMES_CROPPED.format(file=source, n=n, frames=frames, preset=meta["preset"]))
                elif n < frames:
                    warnings.append(messages.FRAMES_PADDED.format(file=source, n=n, pad=frames - n, frames=frames))
        inputs = []
        if part.t1w is not None:
            inputs.append({"kind": "T1w", "path": relpath(part.t1w, bids_dir), "detail": ""})
        for run in part.bold:
            inputs.append({"kind": "BOLD", "path": relpath(run.path, bids_dir),
                           "detail": f"{run.n_volumes} volumes, RepetitionTime {run.repetition_time:g} s"})
        figures = [o["path"] for o in outputs if Path(o["path"]).parent.name == "figures"
                   and o["path"].endswith((".svg", ".png"))]
        html = render(
            "participant.html", label=part.label, inputs=inputs, outputs=outputs, warnings=warnings, figures=figures,
            errors=part.errors, version=__version__, preset=config.features.preset, run_uuid=ex.run_uuid,
            status="failed" if (part.errors or part.t1w is None) else "completed",
        )
        return atomic_write_text(target, html)
    except Exception as err:  # the report must never cost the outputs
        return atomic_write_text(target.with_suffix(".err"), f"report of sub-{part.label} failed: {err!r}\n")
