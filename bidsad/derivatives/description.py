"""``dataset_description.json`` and ``.bidsignore`` of the derivatives folder (written under a file lock)."""

from __future__ import annotations

import fcntl
import json
import logging
from pathlib import Path

from bidsad import __version__, messages

LOGGER = logging.getLogger("bidsad")


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
