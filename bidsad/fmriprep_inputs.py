"""fMRIPrep derivatives as participant-level input (``--derivatives fmriprep=PATH``), queried with pybids.

Files used (names from fMRIPrep's documentation, "Outputs of fMRIPrep"; ``[_ses-<s>]`` and the raw
run's entities kept):

- ``anat/sub-<l>[_ses-<s>]_desc-preproc_T1w.nii.gz`` and ``..._desc-brain_mask.nii.gz`` (native T1w space);
- ``anat/sub-<l>_label-{CSF,GM,WM}_probseg.nii.gz`` (native);
- ``anat/sub-<l>_from-T1w_to-<space>_mode-image_xfm.h5`` and ``..._from-<space>_to-T1w_mode-image_xfm.h5``;
- ``func/sub-<l>_task-rest[_run-<r>]_space-<space>[_res-<n>]_desc-preproc_bold.nii.gz``, its
  ``desc-brain_mask`` and ``func/sub-<l>_task-rest[_run-<r>]_desc-confounds_timeseries.tsv``,

with ``<space>`` ``MNI152NLin2009cAsym`` (preferred) or ``MNI152NLin6Asym``, any resolution. The
transforms and images in those spaces are used as if in ``MNI152NLin2009aSym`` (nilearn's template,
bidsad's space): all three are ICBM-152 nonlinear averages in the same MNI coordinates, differing by a
few mm; the sidecars record ``SourceSpace``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bidsad import messages

#: Template spaces accepted, in order of preference.
SPACES = ("MNI152NLin2009cAsym", "MNI152NLin6Asym")
TISSUES = ("CSF", "GM", "WM")


@dataclass
class FmriprepBold:
    """fMRIPrep outputs of one raw BOLD run (``source``: the raw file, naming our outputs)."""

    source: Path
    bold: Path
    mask: Path
    confounds: Path
    space: str


@dataclass
class FmriprepInputs:
    """fMRIPrep outputs of one participant."""

    t1w_preproc: Path
    t1w_mask: Path
    probseg: list[Path]
    t1w2mni_xfm: Path
    mni2t1w_xfm: Path
    space: str
    bold: list[FmriprepBold] = field(default_factory=list)


def _layout(path: Path):
    from bids import BIDSLayout

    return BIDSLayout(str(path), validate=False, config=["bids", "derivatives"])


def _one(files, prefer_res: bool = False):
    files = sorted(files, key=lambda f: f.path)
    if prefer_res and len(files) > 1:  # several resolutions: the finest (res-1 before res-2 ...)
        files = sorted(files, key=lambda f: (str(f.entities.get("res", "")), f.path))
    return Path(files[0].path) if files else None


def collect_fmriprep(path: Path, part, bids_dir: Path) -> FmriprepInputs | None:
    """Find the fMRIPrep outputs of participant ``part`` (:class:`bidsad.bids.ParticipantInputs`).

    Missing anatomical outputs add an error to ``part.errors`` (and return ``None``: the participant is
    skipped); a raw BOLD run without fMRIPrep outputs adds an error and is dropped from the result.
    """
    from bidsad.utils import relpath

    path = Path(path)
    layout = _layout(path)
    label = part.label
    nii = [".nii.gz", ".nii"]
    session = {}
    if part.t1w is not None:
        from bids.layout import parse_file_entities

        ses = parse_file_entities(str(part.t1w)).get("session")
        session = {"session": ses} if ses else {}
    base = {"subject": label, "datatype": "anat", **session}

    def anat(what, pattern, **query):
        found = _one(layout.get(**base, **query, extension=nii))
        if found is None:
            part.errors.append(messages.FMRIPREP_MISSING.format(label=label, path=path, what=what, pattern=pattern))
        return found

    t1w = anat("preprocessed T1w", f"sub-{label}_desc-preproc_T1w.nii.gz", desc="preproc", suffix="T1w", space=None)
    mask = anat("brain mask", f"sub-{label}_desc-brain_mask.nii.gz", desc="brain", suffix="mask", space=None)
    probseg = [anat(f"{t} probability map", f"sub-{label}_label-{t}_probseg.nii.gz", label=t, suffix="probseg",
                    space=None) for t in TISSUES]
    xfms = {Path(f.path).name: Path(f.path) for f in layout.get(subject=label, suffix="xfm", extension=".h5")}
    space = next((s for s in SPACES if any(f"_from-T1w_to-{s}_mode-image_" in n for n in xfms)), None)
    if space is None:
        part.errors.append(messages.FMRIPREP_MISSING.format(
            label=label, path=path, what="T1w to template transform",
            pattern=f"sub-{label}_from-T1w_to-{{{','.join(SPACES)}}}_mode-image_xfm.h5"))
        return None
    fwd = next(p for n, p in sorted(xfms.items()) if f"_from-T1w_to-{space}_mode-image_" in n)
    inv = next((p for n, p in sorted(xfms.items()) if f"_from-{space}_to-T1w_mode-image_" in n), None)
    if inv is None:
        part.errors.append(messages.FMRIPREP_MISSING.format(label=label, path=path, what="template to T1w transform",
                                                            pattern=f"sub-{label}_from-{space}_to-T1w_mode-image_xfm.h5"))
    if None in (t1w, mask, inv, *probseg):
        return None
    found = FmriprepInputs(t1w_preproc=t1w, t1w_mask=mask, probseg=probseg, t1w2mni_xfm=fwd, mni2t1w_xfm=inv,
                           space=space)
    for run in part.bold:
        from bids.layout import parse_file_entities

        ents = {k: v for k, v in parse_file_entities(str(run.path)).items()
                if k in ("subject", "session", "task", "acquisition", "run")}
        ents.setdefault("session", None)
        ents.setdefault("run", None)
        ents.setdefault("acquisition", None)
        rel = relpath(run.path, bids_dir)
        stem = run.path.name.split("_bold")[0]
        bold = mask_file = None
        for space_name in SPACES:
            bold = _one(layout.get(**ents, space=space_name, desc="preproc", suffix="bold", extension=nii),
                        prefer_res=True)
            if bold is not None:
                res = layout.get_file(str(bold)).entities.get("res")
                mask_file = _one(layout.get(**ents, space=space_name, desc="brain", suffix="mask", extension=nii,
                                            **({"res": res} if res else {})))
                break
        confounds = _one(layout.get(**ents, desc="confounds", suffix="timeseries", extension=".tsv"))
        missing = [(what, pattern) for what, value, pattern in [
            ("preprocessed BOLD", bold, f"{stem}_space-{{{','.join(SPACES)}}}[_res-<n>]_desc-preproc_bold.nii.gz"),
            ("BOLD brain mask", mask_file, f"{stem}_space-<space>[_res-<n>]_desc-brain_mask.nii.gz"),
            ("confounds", confounds, f"{stem}_desc-confounds_timeseries.tsv")] if value is None]
        for what, pattern in missing:
            part.errors.append(messages.FMRIPREP_BOLD_MISSING.format(label=label, path=path, what=what, run=rel,
                                                                     pattern=pattern))
        if not missing:
            found.bold.append(FmriprepBold(source=run.path, bold=bold, mask=mask_file, confounds=confounds,
                                           space=space_name))
    return found


def dummy_scans(confounds: Path) -> int:
    """Leading non-steady-state volumes flagged by fMRIPrep (``non_steady_state_outlier*`` columns)."""
    import pandas as pd

    table = pd.read_csv(confounds, sep="\t", na_values="n/a")
    cols = [c for c in table.columns if c.startswith("non_steady_state_outlier")]
    if not cols:
        return 0
    flagged = table[cols].fillna(0).to_numpy().any(axis=1)
    n = 0
    while n < len(flagged) and flagged[n]:
        n += 1
    return n
