"""Citation boilerplate: generated from the outputs that a run wrote; shipped templates; pandoc optional."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path


from bidsad.reports.boilerplate import boilerplate_dir, cited_keys, methods, read_bib, to_html, write_boilerplate

ROOT = Path(__file__).parents[1]


def _group_out(root: Path, epochs: int, models: list[str], seed: int = 0) -> Path:
    """A minimal out_dir holding group/metrics.json as the group level writes it."""
    (root / "group").mkdir(parents=True)
    (root / "group" / "metrics.json").write_text(json.dumps({
        "epochs": epochs, "learning_rate": 1e-5, "batch_size": 2, "dropout": 0.1, "random_seed": seed, "folds": 5,
        "preset": "small", "n_bootstrap": 1000, "n_permutations": 1000, "models_requested": models,
        "models": {m: {"n_participants": 12} for m in models},
        "versions": {"bidsad": "0.1.0", "tensorflow": "2.99.0", "keras": "3.0.0", "scikit-learn": "1.9.1"},
    }))
    return root


def test_methods_follow_epochs_and_models(tmp_path):
    first = methods(_group_out(tmp_path / "a", 2, ["3dcnn"]))["group"]
    second = methods(_group_out(tmp_path / "b", 7, ["3dcnn-lstm", "2dcnn"], seed=3))["group"]
    assert "trained for 2 epoch(s)" in first and "trained for 7 epoch(s)" in second
    assert "3DCNN (" in first and "3DCNN-LSTM" not in first
    assert "3DCNN-LSTM" in second and "2DCNN" in second and "3DCNN (" not in second
    assert "axial slices of the MRI volume nearest to MNI z = -30, -25, -20, -15, -10, -5 mm" in second
    assert "random seed 3" in second and "TensorFlow 2.99.0" in second  # versions of the run, not of today
    assert "12 participant(s)" in first and "5-fold" in first


def test_citation_files_cite_what_ran(tmp_path, monkeypatch):
    out = _group_out(tmp_path / "out", 4, ["3dcnn-lstm"])
    features = out / "sub-01" / "features"
    features.mkdir(parents=True)
    (features / "sub-01_res-small_desc-model_T1w.json").write_text(json.dumps({
        "Modality": "T1w", "preset": "small", "shape": [48, 56, 48], "voxel_size_mm": [3.75, 3.857, 3.75]}))
    monkeypatch.setenv("PATH", "/nonexistent")  # no pandoc
    written = write_boilerplate(out)
    assert [p.name for p in written] == ["CITATION.md", "CITATION.bib"]
    text = (out / "logs" / "CITATION.md").read_text()
    bib = (out / "logs" / "CITATION.bib").read_text()
    assert "trained for 4 epoch(s)" in text and "48 x 56 x 48" in text
    for key in ("kujur2026multimodal", "gorgolewski2011nipype", "abraham2014nilearn", "abadi2016tensorflow",
                "pedregosa2011scikit", "chollet2015keras"):
        assert f"@{key}" in text and f"{{{key}," in bib
    assert "fonov2009unbiased" not in bib  # no template was used: not cited
    assert bib.count("\n@") + bib.startswith("@") == len(cited_keys(text))

    # a derivative in MNI space: the template (Fonov et al. 2009, 2011) and ANTs are cited
    (out / "sub-01" / "anat").mkdir()
    (out / "sub-01" / "anat" / "sub-01_space-MNI152NLin2009aSym_res-2_desc-preproc_T1w.nii.gz").write_bytes(b"")
    write_boilerplate(out)
    text = (out / "logs" / "CITATION.md").read_text()
    bib = (out / "logs" / "CITATION.bib").read_text()
    assert "MNI152NLin2009aSym" in text and "antspyx" in text
    for key in ("fonov2009unbiased", "fonov2011unbiased", "avants2008symmetric", "tustison2021antsx"):
        assert f"{{{key}," in bib


def test_citation_html_when_pandoc_exists(tmp_path, monkeypatch):
    """With a pandoc on PATH, CITATION.html is written from its output (the arguments are checked)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "pandoc"
    fake.write_text('#!/bin/sh\ncase "$*" in *--citeproc*--bibliography*CITATION.bib*CITATION.md*) '
                    'echo "<html>formatted</html>";; *) exit 3;; esac\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    out = _group_out(tmp_path / "out", 2, ["3dcnn"])
    write_boilerplate(out)
    assert (out / "logs" / "CITATION.html").read_text().strip() == "<html>formatted</html>"


def test_every_template_key_is_in_the_bib():
    from bidsad.reports.boilerplate import ATLASES, TEMPLATES

    bib = read_bib()
    for template in ("participant.md", "group.md"):
        keys = [k for k in cited_keys((boilerplate_dir() / template).read_text()) if "{" not in k]
        assert keys and set(keys) <= set(bib), template
    assert {k for t in TEMPLATES.values() for k in t["cite"]} | {a[1] for a in ATLASES.values()} <= set(bib)


def test_html_citations():
    html = to_html("A [@kujur2026multimodal] and `x` [@pedregosa2011scikit; @fonov2009unbiased].\n\nB <c>")
    assert "(Kujur &amp; Monfared 2026)" in html and "(Pedregosa et al. 2011; Fonov et al. 2009)" in html
    assert "<code>x</code>" in html and "&lt;c&gt;" in html and html.count("<p>") == 2


def test_boilerplate_shipped_in_wheel_and_found_when_installed(tmp_path):
    """pyproject ships boilerplate/ as bidsad/boilerplate; an installed layout finds it there."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]["boilerplate"] == "bidsad/boilerplate"
    site = tmp_path / "site"
    shutil.copytree(ROOT / "bidsad", site / "bidsad", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "boilerplate", site / "bidsad" / "boilerplate")
    code = "from bidsad.reports.boilerplate import boilerplate_dir; print(boilerplate_dir())"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": str(site)}, check=True).stdout.strip()
    assert Path(found) == site / "bidsad" / "boilerplate"
    assert boilerplate_dir() == ROOT / "boilerplate"  # source checkout


def test_cross_validation_text_per_sub_cohort():
    from bidsad.reports.boilerplate import _cross_validation

    assert _cross_validation(5) == "5-fold cross-validation"
    assert _cross_validation({"mri": 3, "mri+bold": 3}).startswith("3-fold cross-validation, done separately")
    assert "`mri`: 5 folds; `mri+bold`: 3 folds" in _cross_validation({"mri": 5, "mri+bold": 3})


def test_methods_name_the_recipe_and_its_settings(tmp_path):
    from bidsad.config import Config, apply_recipe, recipe_summary

    out = _group_out(tmp_path / "a", 40, ["3dcnn"])
    summary = json.loads((out / "group" / "metrics.json").read_text())
    learning = Config().learning
    learning.l2, learning.batch_norm = 1e-3, True
    summary.update(recipe=recipe_summary(learning), inner_validation=True, class_weight="balanced")
    (out / "group" / "metrics.json").write_text(json.dumps(summary))
    text = " ".join(methods(out)["group"].split())
    assert "trained for 40 epoch(s) per fold at most with the training recipe `bidsad` (bidsad's default; changed: l2 0.001, batch_norm True)" in text
    assert "cosine schedule [@loshchilov2017sgdr]" in text and "an L2 penalty of 0.001" in text
    assert "averaged over 2x2x2 voxel blocks" in text and "[@ioffe2015batch]" in text
    assert "also weighting the validation loss" in text
    apply_recipe(learning, "paper")
    summary.update(recipe=recipe_summary(learning), inner_validation=False, class_weight="none")
    (out / "group" / "metrics.json").write_text(json.dumps(summary))
    text = " ".join(methods(out)["group"].split())
    assert "training recipe `paper` (the paper's settings):" in text and "cosine" not in text and "voxel blocks" not in text


def test_methods_state_the_augmentation_ranges(tmp_path):
    import dataclasses

    from bidsad.config import Augmentation

    out = _group_out(tmp_path / "a", 20, ["3dcnn-lstm"])
    summary = json.loads((out / "group" / "metrics.json").read_text())
    summary.update(augmentation=True, augmentation_parameters=dataclasses.asdict(Augmentation(rotation_deg=8.0)))
    (out / "group" / "metrics.json").write_text(json.dumps(summary))
    text = " ".join(methods(out)["group"].split())
    assert "random rigid rotations (up to 8.0 degrees about each axis, in millimetre space), shifts (up to 5.0 mm)" in text
    assert "temporal shifts (up to 2 volumes, padded with masked empty volumes)" in text
    summary.update(augmentation=False)
    (out / "group" / "metrics.json").write_text(json.dumps(summary))
    assert "No data augmentation was used." in methods(out)["group"]


def _participant_out(out, label: str, bold_runs: int, func_sidecars: bool = False):
    """Derivative sidecars of one participant as the participant level writes them (T1w tensor, optional BOLD)."""
    from bidsad.interfaces import motion
    from bidsad.interfaces.registration import COREG_METHOD

    features = out / f"sub-{label}" / "features"
    features.mkdir(parents=True)
    (features / f"sub-{label}_res-small_desc-model_T1w.json").write_text(json.dumps({
        "Modality": "T1w", "preset": "small", "shape": [48, 56, 48], "voxel_size_mm": [3.75, 3.857, 3.75]}))
    for run in range(1, bold_runs + 1):
        (features / f"sub-{label}_task-rest_run-{run}_res-small_desc-model_bold.json").write_text(json.dumps({
            "Modality": "bold", "preset": "small", "shape": [4, 2, 2, 2], "frames": 4, "RepetitionTime": 2.0}))
        if func_sidecars:
            func = out / f"sub-{label}" / "func"
            func.mkdir(exist_ok=True)
            (func / f"sub-{label}_task-rest_run-{run}_desc-preproc_bold.json").write_text(json.dumps({
                "NonSteadyStateMethod": motion.NONSTEADY_METHOD, "MotionCorrection": motion.MOTION_METHOD,
                "Coregistration": COREG_METHOD, "Interpolation": "linear", "NonSteadyStateVolumes": 1}))
        (features / f"sub-{label}_task-rest_run-{run}_space-MNI152NLin2009aSym_atlas-power2011_timeseries.tsv").write_text("1\n")
    anat = out / f"sub-{label}" / "anat"
    anat.mkdir(exist_ok=True)
    (anat / f"sub-{label}_space-MNI152NLin2009aSym_res-2_desc-preproc_T1w.json").write_text(json.dumps({
        "Registration": "antspyx registration (affine, then SyN)"}))
    return out


def test_every_reference_of_the_rendered_text_is_cited_and_in_the_bib(tmp_path, monkeypatch):
    """The rendered text, with the method texts that sidecars carry (motion correction: Friston et al. 1995,
    Baker & Matthews 2004), cites every reference it names by key, and CITATION.bib holds each key. (The check
    on the templates alone missed those two: they came from a sidecar as plain author-year text.)"""
    import re

    out = _participant_out(_group_out(tmp_path / "out", 4, ["3dcnn-lstm"]), "01", bold_runs=1, func_sidecars=True)
    monkeypatch.setenv("PATH", "/nonexistent")  # no pandoc
    write_boilerplate(out)
    text = (out / "logs" / "CITATION.md").read_text()
    bib = read_bib(out / "logs" / "CITATION.bib")
    assert "Head motion was estimated by" in text
    assert "SPM's realign [@friston1995spatial], in its inverse-compositional form [@baker2004lucas])" in text
    assert not re.findall(r"[A-Z][a-z]+ (?:et al\.|& [A-Z][a-z]+) (?:19|20)\d\d", text)  # no uncited mention
    assert cited_keys(text) == list(bib) and {"friston1995spatial", "baker2004lucas"} <= set(bib)
    assert bib["friston1995spatial"]["title"] == "Spatial registration and normalization of images"
    assert bib["baker2004lucas"]["title"] == "Lucas-Kanade 20 years on: a unifying framework"
    # a BIDS-App cites the BIDS Apps paper (Gorgolewski et al. 2017), the data format the BIDS paper (2016)
    assert "a BIDS-App [@gorgolewski2017bidsapps]" in text and "Data Structure [@gorgolewski2016bids]" in text
    assert bib["gorgolewski2017bidsapps"]["year"] == "2017"
    # the bidsad entry carries the versions that ran (the run's metrics.json says 0.1.0) and the run's year
    entry = bib["bidsad"]["text"]
    assert re.search(r"version = \{\S+, 0\.1\.0\}", entry) and re.search(r"year = \{20\d\d\}", entry)


def test_versions_list_scipy_torch_and_deepbet():
    from importlib.metadata import version

    from bidsad.reports.boilerplate import current_versions

    versions = current_versions()
    for name in ("scipy", "torch", "deepbet"):
        assert versions[name] == version(name)


def test_participant_text_describes_one_participant(tmp_path):
    """A participant's text (its report) describes that participant's own T1w and BOLD runs, whatever else is in
    out_dir; the whole out_dir's text (CITATION.md) counts the cohort."""
    out = tmp_path / "out"
    for label, runs in (("01", 2), ("02", 1), ("03", 1), ("04", 0)):
        _participant_out(out, label, runs)
    one = " ".join(methods(out, "04")["participant"].split())
    assert "For participant `sub-04`, the T1-weighted image was processed (no resting-state BOLD run)." in one
    assert "participant(s)" not in one
    two = " ".join(methods(out, "01")["participant"].split())
    assert "For participant `sub-01`, the T1-weighted image and 2 resting-state BOLD run(s) (repetition time 2 s) were processed." in two
    assert "antspyx registration (affine, then SyN)" in two  # the anatomical text (an atlas name once hid it)
    cohort = " ".join(methods(out)["participant"].split())
    assert "`sub-" not in cohort and "antspyx registration (affine, then SyN)" in cohort
    assert "4 participant(s) had a T1-weighted image processed, and 3 of them at least one resting-state BOLD run" in cohort
