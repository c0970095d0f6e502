"""Citation boilerplate: methods text and references generated from the outputs that a run wrote.

The facts come from disk, never from the command line of the current call: the participant level's
from the tensor sidecars and derivative names under ``sub-*/``, the group level's from
``group/metrics.json`` (models, epochs, folds, seeds, versions of the run that trained). So
``--reports-only`` regenerates exactly the text of the run that produced the outputs.

Templates (jinja2 with pandoc Markdown citations ``[@key]``) and ``references.bib`` live in the
top-level ``boilerplate/`` folder of the source tree, shipped in the wheel as ``bidsad/boilerplate``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from bidsad import __version__
from bidsad.config import AXIAL_SLICES_MM
from bidsad.derivatives import (BOLD_TENSOR, GM_MORPH, GM_PROBSEG_4MM, GROUP_DIR, METRICS_JSON, MRI_TENSORS,
                                PREPROC_BOLD, PREPROC_T1W_STD, PREPROCESSING_SOURCE_KEY, ROI_TIMESERIES, TENSOR_SIDECARS,
                                SALIENCY_DIR, VOLUMES_MORPH, model_dir)
from bidsad.phenotype import CLASS_NAMES

#: Model names and descriptions used in the methods text (architectures of Kujur & Monfared 2026).
MODEL_TEXT = {
    "3dcnn-lstm": ("3DCNN-LSTM", "a 3D convolutional MRI branch fused with an fMRI branch of a time-distributed 3D "
                                 "CNN followed by three stacked LSTM layers of 32 units"),
    "3dcnn-gru": ("3DCNN-GRU", "as 3DCNN-LSTM with GRU layers"),
    "3dlstm": ("3DLSTM", "the fMRI branch alone: a time-distributed 3D CNN and three stacked LSTM layers of 32 units"),
    "3dgru": ("3DGRU", "the fMRI branch alone with GRU layers"),
    "3dcnn": ("3DCNN", "the 3D convolutional MRI branch alone"),
    "2dcnn": ("2DCNN", "a 2D CNN shared by the axial slices of the MRI volume nearest to MNI z = {slices} mm, the "
                       "participant's class probabilities being the mean of its slices'"),
}
MODEL_TEXT.update({
    f"{name}-gap": (f"{title}-GAP", f"{text}, with global average pooling instead of flattening (not in the paper)")
    for name, (title, text) in list(MODEL_TEXT.items()) if name != "2dcnn"
})
#: Templates (space labels) with their names and references.
TEMPLATES = {
    "MNI152NLin2009aSym": {"name": "ICBM 152 Nonlinear Symmetric 2009a (as distributed with Nilearn)",
                           "cite": ["fonov2009unbiased", "fonov2011unbiased"]},
    "MNI152NLin2009cAsym": {"name": "ICBM 152 Nonlinear Asymmetric 2009c", "cite": ["fonov2009unbiased", "fonov2011unbiased"]},
    "MNI152NLin6Asym": {"name": "FSL MNI152 Nonlinear 6th generation asymmetric", "cite": []},
}
#: Atlases recognised in ``atlas-<label>`` entities (label prefix, lower-case) with their references.
ATLASES = {"power": ("Power et al. (2011) 264-region", "power2011functional"),
           "dosenbach": ("Dosenbach et al. (2010) 160-region", "dosenbach2010prediction"),
           "seitzman": ("Seitzman et al. (2020) 300-region", "seitzman2020set")}
#: Author-year mentions in the method texts that sidecars record (``MotionCorrection``: SPM's realign and its
#: inverse-compositional form), with the keys under which the methods text cites them (:func:`cite_mentions`).
MENTIONS = {"Friston et al. 1995": "friston1995spatial", "Baker & Matthews 2004": "baker2004lucas"}


def boilerplate_dir() -> Path:
    """The folder of the boilerplate templates: ``bidsad/boilerplate`` in an installed wheel, else the
    top-level ``boilerplate/`` of a source checkout (editable install).

    Raises
    ------
    FileNotFoundError
        Neither exists (a broken installation).
    """
    from importlib.resources import files

    for candidate in (Path(str(files("bidsad"))) / "boilerplate", Path(__file__).resolve().parents[2] / "boilerplate"):
        if (candidate / "references.bib").is_file():
            return candidate
    raise FileNotFoundError("bidsad's boilerplate/ folder (references.bib and templates) is missing; reinstall bidsad")


def read_bib(path: Path | None = None) -> dict[str, dict]:
    """Entries of a BibTeX file written one field per line (as ``boilerplate/references.bib``).

    Returns ``{key: {"text": entry text, "author": str, "year": str, "title": str}}``.
    """
    text = Path(path or boilerplate_dir() / "references.bib").read_text()
    entries = {}
    for match in re.finditer(r"^@\w+\{([^,]+),\n(.*?)^\}\n?", text, flags=re.S | re.M):
        fields = dict(re.findall(r"^\s*(\w+)\s*=\s*\{(.*)\},?\s*$", match.group(2), flags=re.M))
        entries[match.group(1).strip()] = {"text": match.group(0).rstrip() + "\n", **{k: fields.get(k, "") for k in ("author", "year", "title")}}
    return entries


def cited_keys(text: str) -> list[str]:
    """Citation keys of ``[@a; @b]`` groups in ``text``, in order of first appearance."""
    keys = []
    for group in re.findall(r"\[(@[^\]]+)\]", text):
        keys += [k.strip().lstrip("@") for k in group.split(";")]
    return list(dict.fromkeys(keys))


def cite_mentions(text: str) -> str:
    """``text`` with each author-year mention of :data:`MENTIONS` made a citation, a comma before it dropped:
    ``"realign, Friston et al. 1995, in"`` -> ``"realign [@friston1995spatial], in"``."""
    for mention, key in MENTIONS.items():
        text = re.sub(r",?\s*" + re.escape(mention), f" [@{key}]", text)
    return text


def _short(entry: dict) -> str:
    authors = [a.strip() for a in entry.get("author", "").split(" and ") if a.strip()]
    if not authors:
        return entry.get("title", "?").split(":")[0]
    last = [a.strip("{}").split(",")[0] for a in authors]
    name = last[0] if len(last) == 1 else (f"{last[0]} & {last[1]}" if len(last) == 2 else f"{last[0]} et al.")
    return f"{name} {entry.get('year', '')}".strip()


def to_html(text: str, bib: dict | None = None) -> str:
    """Methods Markdown as HTML paragraphs (escaped), citations as ``(Author et al. year; ...)``."""
    from markupsafe import escape

    bib = bib if bib is not None else read_bib()

    def cite(match):
        keys = [k.strip().lstrip("@") for k in match.group(1).split(";")]
        return "(" + "; ".join(_short(bib[k]) if k in bib else k for k in keys) + ")"

    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    html = []
    for paragraph in paragraphs:
        paragraph = re.sub(r"\[(@[^\]]+)\]", cite, " ".join(paragraph.split()))
        paragraph = re.sub(r"`([^`]+)`", lambda m: f"\x00{m.group(1)}\x01", paragraph)
        html.append("<p>" + str(escape(paragraph)).replace("\x00", "<code>").replace("\x01", "</code>") + "</p>")
    return "\n".join(html)


def _render(template: str, **context) -> str:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(str(boilerplate_dir())), autoescape=False, trim_blocks=True,
                      lstrip_blocks=True, undefined=StrictUndefined, keep_trailing_newline=True)
    return env.get_template(template).render(**context).strip() + "\n"


def current_versions() -> dict:
    """Versions of the installed software cited in the boilerplate."""
    from bidsad.versions import software_versions

    return software_versions()


def _versions(recorded: dict | None = None) -> dict:
    versions = {**current_versions(), **(recorded or {})}
    versions.setdefault("tensorflow", versions.get("tensorflow-cpu", "unknown"))
    if versions.get("tensorflow-cpu") == versions["tensorflow"]:
        del versions["tensorflow-cpu"]
    return versions


def participant_facts(out_dir: Path, label: str | None = None) -> dict | None:
    """What the participant level did, read from the derivatives (``None`` when none exist): of every participant
    in ``out_dir``, or of participant ``label`` only (its report describes its own T1w and BOLD runs)."""
    out_dir = Path(out_dir)

    def glob(pattern: str):
        return out_dir.glob(pattern if label is None else pattern.replace("sub-*/", f"sub-{label}/", 1))

    sidecars = sorted(glob(TENSOR_SIDECARS))
    if not sidecars:
        return None
    metas = [json.loads(p.read_text()) for p in sidecars]
    mri = [m for m in metas if m.get("Modality") not in ("bold", "GM")]  # the T1w tensor (GM: modulated grey matter)
    bold = [m for m in metas if m.get("Modality") == "bold"]
    names = [p.name for p in glob("sub-*/**/*") if p.is_file()]
    spaces = sorted({m for n in names for m in re.findall(r"_space-([a-zA-Z0-9]+)", n)})
    atlases = []
    roi_names = [n for n in names if n.endswith(ROI_TIMESERIES.end)]
    for atlas in sorted({m for n in roi_names for m in re.findall(r"_atlas-([a-zA-Z0-9]+)", n)}):
        known = next((v for k, v in ATLASES.items() if atlas.lower().startswith(k)), None)
        atlases.append({"name": known[0] if known else atlas, "cite": known[1] if known else None})
    anat = None
    registered = sorted(glob(PREPROC_T1W_STD.sidecar_glob()))
    if registered:
        anat = {"registration": json.loads(registered[0].read_text()).get("Registration", "")}
    func = None
    preprocs = sorted(glob(PREPROC_BOLD.sidecar_glob()))
    if preprocs:
        runs = [json.loads(p.read_text()) for p in preprocs]
        denoise = [m.get("Denoise", {}) for m in bold]
        func = {k: runs[0].get(v, "") for k, v in (("nonsteady", "NonSteadyStateMethod"), ("motion", "MotionCorrection"),
                                                   ("coreg", "Coregistration"), ("interpolation", "Interpolation"))}
        func.update(n_runs=len(runs), n_dummies=sum(int(m.get("NonSteadyStateVolumes", 0)) for m in runs),
                    denoise=next((d.get("Method") for d in denoise if d.get("Applied")), None),
                    denoise_skipped=sum(1 for d in denoise if d.get("Strategy", "none") != "none" and not d.get("Applied")))
    first = (mri or metas)[0]
    roi_sidecars = sorted(glob(ROI_TIMESERIES.sidecar_glob()))
    features = {
        "denoise": json.loads(roi_sidecars[0].read_text()).get("Denoise", "") if roi_sidecars else "",
        "parcellations": sorted({m for n in names if n.endswith(GM_MORPH.end)
                                 for m in re.findall(r"_atlas-([a-zA-Z0-9]+)", n)}),
        "gm_4mm": any(n.endswith(f"_{GM_PROBSEG_4MM.ending()}") for n in names),
        "modulated": next((m.get("Normalisation", "").split("Jacobian: ")[-1] for m in metas if m.get("Modality") == "GM"), ""),
        "volumes": any(n.endswith(f"_{VOLUMES_MORPH.ending()}") for n in names),
        "fmriprep": any(m.get(PREPROCESSING_SOURCE_KEY) == "fmriprep" for m in metas),
        "source_space": sorted({m["SourceSpace"] for m in metas if m.get("SourceSpace")}),
    }
    return {
        "features": features,
        "func": func,
        "anat": anat,
        "bidsad_version": first.get("bidsad_version", __version__), "label": label,
        "n_participants": len({p.parts[len(out_dir.parts)] for p in sidecars if f"_{MRI_TENSORS['t1w'].suffix}" in p.name}),
        "n_bold": len({p.parts[len(out_dir.parts)] for p in sidecars if f"_{BOLD_TENSOR.suffix}" in p.name}),
        "n_bold_runs": sum(f"_{BOLD_TENSOR.suffix}" in p.name for p in sidecars),
        "has_t1w": any(m.get("Modality") != "bold" for m in metas),  # a T1w (or grey-matter) model tensor
        "repetition_times": sorted({f"{m['RepetitionTime']:g}" for m in bold if m.get("RepetitionTime")}),
        "preset": first.get("preset", "?"),
        "mri_shape": mri[0]["shape"] if mri else None,
        "mri_voxel": [round(v, 2) for v in mri[0]["voxel_size_mm"]] if mri and mri[0].get("voxel_size_mm") else None,
        "bold_shape": bold[0]["shape"][1:] if bold else None,
        "frames": bold[0].get("frames") if bold else None,
        "interpolation": first.get("Interpolation", ""),
        "normalisation": first.get("Normalisation", ""),
        "bold_voxel": [round(v, 2) for v in bold[0]["voxel_size_mm"]] if bold and bold[0].get("voxel_size_mm") else None,
        "bold_interpolation": bold[0].get("Interpolation", "") if bold else "",
        "bold_normalisation": bold[0].get("Normalisation", "") if bold else "",
        "bold_space": bold[0].get("Space", "") if bold else "",
        "spaces": spaces,
        "templates": {s: TEMPLATES.get(s, {"name": s, "cite": []}) for s in spaces},
        "atlases": atlases,
    }


def _cross_validation(folds) -> str:
    """``"5-fold cross-validation"``, or per sub-cohort when ``folds`` is ``{cohort: k}`` with several."""
    if isinstance(folds, dict):
        if len(set(folds.values())) == 1:
            return f"{next(iter(folds.values()))}-fold cross-validation, done separately on each sub-cohort a model needs"
        parts = "; ".join(f"`{c}`: {k} folds" for c, k in folds.items())
        return f"k-fold cross-validation, done separately on each sub-cohort a model needs ({parts})"
    return f"{folds}-fold cross-validation"


def fold_facts(summary: dict, names: list[str]) -> dict:
    """How the folds of a group run were made and which ran (``stratification``, ``validation``, ``early_stopping``,
    ``partial``: the models whose results pool fewer folds than planned), from ``metrics.json``."""
    from bidsad.config import MODALITIES
    from bidsad.learn.folds import folds_ran_text, stratification_text, validation_text
    from bidsad.learn.splits import cohort_name

    design = summary.get("fold_design")
    partial = []
    for name in names:
        planned = (design or {}).get(cohort_name(MODALITIES.get(name, ())), {}).get("n_folds")
        ran = folds_ran_text(summary["models"][name].get("folds") or {}, planned) if planned else None
        partial += [{"name": name, "ran": ran}] if ran else []
    used = sum(d["validation_folds"] for d in design.values()) if design else None
    return {"stratification": stratification_text(design), "partial": partial,
            "validation": validation_text(bool(summary.get("inner_validation")), design),
            "early_stopping": bool(summary.get("inner_validation")) and used != 0}


def group_facts(out_dir: Path) -> dict | None:
    """What the group level did, read from ``group/metrics.json`` (``None`` when it does not exist)."""
    path = Path(out_dir) / GROUP_DIR / METRICS_JSON
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    evaluated = list(summary.get("models", {}))
    names = [m for m in summary.get("models_requested", evaluated) if m in evaluated] or evaluated
    classes = summary.get("classes") or list(CLASS_NAMES)  # all three before --classes existed
    long_names = {"CN": "cognitively normal (CN)", "MCI": "mild cognitive impairment (MCI)", "AD": "Alzheimer's disease (AD)"}
    class_names = [long_names.get(c, c) for c in classes]
    slices = ", ".join(f"{z:g}" for z in summary.get("slices_mm") or AXIAL_SLICES_MM)
    return {
        **{k: summary.get(k) for k in ("epochs", "learning_rate", "batch_size", "dropout", "random_seed",
                                       "preset", "n_bootstrap", "n_permutations", "augmentation",
                                       "augmentation_parameters",
                                       "inner_validation", "patience", "repeats", "class_weight", "deterministic",
                                       "leaks", "paper_protocol_warning", "device", "mri_input",
                                       "split_protocol_name")},
        "baselines": {name: r.get("atlas", "") for name, r in summary.get("baselines", {}).items() if r.get("pooled")},
        "cross_validation": _cross_validation(summary.get("folds")),
        **fold_facts(summary, names),
        "classes": classes,
        "class_text": ", ".join(class_names[:-1]) + " and " + class_names[-1],
        "n_participants": max((r.get("n_participants", 0) for r in summary.get("models", {}).values()), default=0),
        "models": [{"name": m, "title": MODEL_TEXT.get(m, (m, ""))[0],
                    "description": MODEL_TEXT.get(m, ("", m))[1].replace("{slices}", slices)}
                   for m in names],
        "uses_bold": any("-lstm" in m or "-gru" in m or m.startswith(("3dlstm", "3dgru")) for m in names),
        "saliency": any((model_dir(Path(out_dir, GROUP_DIR), m) / SALIENCY_DIR).is_dir() for m in names),
        "versions": summary.get("versions", {}),
        "recipe": summary.get("recipe"),
    }


def methods(out_dir: Path, label: str | None = None) -> dict:
    """Methods Markdown of each level that left outputs in ``out_dir``; with ``label``, the participant level's
    text describes that participant only (as its report does).

    Returns ``{"participant": str | None, "group": str | None, "versions": dict, "bidsad_versions": list}``
    (``bidsad_versions``: the bidsad versions that wrote the outputs described).
    """
    p, g = participant_facts(out_dir, label), group_facts(out_dir)
    versions = _versions(g["versions"] if g else None)
    ran = [p["bidsad_version"]] if p else []
    ran += [g["versions"]["bidsad"]] if g and g["versions"].get("bidsad") else []
    return {
        "participant": cite_mentions(_render("participant.md", p=p, v=versions)) if p else None,
        "group": cite_mentions(_render("group.md", g=g, v=versions)) if g else None,
        "versions": versions, "bidsad_versions": list(dict.fromkeys(ran)) or [__version__],
    }


def _bidsad_entry(entry: str, versions: list[str], year: int) -> str:
    """The ``bidsad`` BibTeX entry with the ``version`` (the versions that ran) and ``year`` fields added."""
    fields = f"  version = {{{', '.join(versions)}}},\n  year = {{{year}}},\n"
    return entry.rstrip().removesuffix("}") + fields + "}\n"


def _run_year(out_dir: Path) -> int:
    """The year the described outputs were written (the newest of ``metrics.json`` and the tensor sidecars)."""
    from datetime import datetime

    paths = [*Path(out_dir).glob(TENSOR_SIDECARS), Path(out_dir) / GROUP_DIR / METRICS_JSON]
    times = [p.stat().st_mtime for p in paths if p.is_file()]
    return (datetime.fromtimestamp(max(times)) if times else datetime.now()).year


def write_boilerplate(out_dir: Path) -> list[Path]:
    """Write ``logs/CITATION.md`` and ``logs/CITATION.bib`` (and ``logs/CITATION.html`` when pandoc is
    installed) from the outputs in ``out_dir``; return the paths written.

    The ``.bib`` holds exactly the entries the text cites. A pandoc failure is logged and leaves no
    ``.html``; it never raises.
    """
    import logging
    import shutil
    import subprocess

    from bidsad.utils import atomic_write_bytes, atomic_write_text

    logs = Path(out_dir) / "logs"
    texts = methods(out_dir)
    versions = {k: v for k, v in sorted(texts["versions"].items()) if v and v != "unknown"}
    markdown = _render("citation.md", bidsad_version=__version__, participant=texts["participant"],
                       group=texts["group"], versions=versions)
    bib = read_bib()
    keys = cited_keys(markdown)
    missing = [k for k in keys if k not in bib]
    if missing:
        raise KeyError(f"boilerplate cites keys missing from references.bib: {', '.join(missing)}")
    entries = [_bidsad_entry(bib[k]["text"], texts["bidsad_versions"], _run_year(out_dir)) if k == "bidsad"
               else bib[k]["text"] for k in keys]
    written = [atomic_write_text(logs / "CITATION.md", markdown), atomic_write_text(logs / "CITATION.bib", "".join(entries))]
    pandoc = shutil.which("pandoc")
    if pandoc:
        try:
            proc = subprocess.run([pandoc, "--citeproc", "--bibliography", str(logs / "CITATION.bib"), "--standalone",
                                   "--metadata", "title=bidsad methods boilerplate",
                                   str(logs / "CITATION.md"), "-o", "-", "-t", "html"],
                                  capture_output=True, timeout=120, check=True)
            written.append(atomic_write_bytes(logs / "CITATION.html", proc.stdout))
        except (subprocess.SubprocessError, OSError) as err:
            logging.getLogger("bidsad").warning("pandoc could not write CITATION.html: %s", err)
    return written


def write_boilerplate_or_warn(out_dir: Path) -> list[Path]:
    """:func:`write_boilerplate` for the orchestrators: any failure is logged as a warning
    (:data:`bidsad.messages.BOILERPLATE_FAILED`) and nothing is returned, since the citation text must never cost
    a run whose outputs are written."""
    import logging

    from bidsad import messages

    try:
        return write_boilerplate(out_dir)
    except Exception as err:
        logging.getLogger("bidsad").warning(messages.BOILERPLATE_FAILED.format(why=err))
        return []
