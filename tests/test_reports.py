"""Reports and evaluation outputs: participant report contents, group outputs of the demo run,
saliency NIfTI, citation boilerplate of the run, and --reports-only."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bidsad.bids import BoldRun, ParticipantInputs
from bidsad.config import Config
from bidsad.derivatives import PRESETS

from .conftest import DEMO, run_bidsad


def _participant_setup(tmp_path, with_qc: bool):
    bids, out = tmp_path / "bids", tmp_path / "out"
    (bids / "sub-01" / "func").mkdir(parents=True)
    bold = bids / "sub-01" / "func" / "sub-01_task-rest_bold.nii.gz"
    bold.write_bytes(b"")
    features = out / "sub-01" / "features"
    features.mkdir(parents=True)
    meta = {"Modality": "bold", "Sources": ["bids:raw:sub-01/func/sub-01_task-rest_bold.nii.gz"], "preset": "small",
            "frames": 4, "n_volumes": 6, "frame_mask": [True] * 4, "shape": [4, 2, 2, 2]}
    if with_qc:
        meta.update(NonSteadyStateVolumes=[0, 1, 2], MeanFD=0.1234)
        figures = out / "sub-01" / "figures"
        figures.mkdir(parents=True)
        (figures / "sub-01_desc-brain_mask.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>')
        (figures / "sub-01_desc-brain_mask.json").write_text(json.dumps({"Description": "Brain mask over the T1w"}))
        from PIL import Image

        Image.new("RGB", (3, 3), (200, 10, 10)).save(figures / "sub-01_desc-carpet_bold.png")
        (figures / "notes.txt").write_text("x")
    (features / "sub-01_task-rest_res-small_desc-model_bold.json").write_text(json.dumps(meta))
    (features / "sub-01_task-rest_res-small_desc-model_bold.npy").write_bytes(b"")
    config = Config()
    config.execution.bids_dir, config.execution.out_dir = str(bids), str(out)
    config.features.preset = "small"
    return config, ParticipantInputs(label="01", t1w=None, bold=[BoldRun(bold, 2.0, 6)]), out


def test_participant_report_summary_and_reportlets(tmp_path):
    import base64

    from bidsad.reports.participant import write_participant_report

    config, part, out = _participant_setup(tmp_path, with_qc=True)
    html = write_participant_report(config, part).read_text()
    row = html.split("<th>mean FD</th>")[1].split("</tr>")[1]
    assert "<code>sub-01/func/sub-01_task-rest_bold.nii.gz</code>" in row
    cells = [c.split("</td>")[0] for c in row.split('class="num">')[1:]]
    assert cells == ["2", "6", "4", "3", "0.123 mm"]  # TR, volumes, kept, dummy scans, mean FD
    svg_uri = "data:image/svg+xml;base64," + base64.b64encode(
        (out / "sub-01/figures/sub-01_desc-brain_mask.svg").read_bytes()).decode()
    assert svg_uri in html and "Brain mask over the T1w" in html
    assert "data:image/png;base64,iVBOR" in html and "Not an image; see <code>sub-01/figures/notes.txt</code>" in html


def test_participant_report_says_not_computed(tmp_path):
    from bidsad.reports.participant import write_participant_report

    config, part, _ = _participant_setup(tmp_path, with_qc=False)
    html = write_participant_report(config, part).read_text()
    assert html.count("not computed") == 2 and "No QC reportlet" in html


def test_participant_report_failure_writes_err(tmp_path, monkeypatch):
    import bidsad.reports
    from bidsad.reports.participant import write_participant_report

    config, part, out = _participant_setup(tmp_path, with_qc=False)
    monkeypatch.setattr(bidsad.reports, "render", lambda *a, **k: 1 / 0)
    written = write_participant_report(config, part)
    assert written == out / "sub-01.err" and "ZeroDivisionError" in written.read_text()
    assert not (out / "sub-01.html").exists()
    assert (out / "sub-01/features/sub-01_task-rest_res-small_desc-model_bold.json").is_file()  # outputs kept
    monkeypatch.undo()
    assert write_participant_report(config, part) == out / "sub-01.html" and not written.exists()


def test_participant_report_outputs_table_has_nifti_shape_and_voxel_size(tmp_path):
    """Shape and voxel size of NIfTI outputs come from their headers (no voxel data read: a file cut after its
    header is listed too); a model tensor's come from its sidecar."""
    import nibabel as nb

    from bidsad.reports.participant import write_participant_report

    config, part, out = _participant_setup(tmp_path, with_qc=False)
    anat, func = out / "sub-01" / "anat", out / "sub-01" / "func"
    anat.mkdir()
    func.mkdir()
    t1w = nb.Nifti1Image(np.zeros((6, 7, 5), np.float32), np.diag([1.2, 1.0, 0.9, 1.0]))
    t1w.to_filename(anat / "sub-01_desc-preproc_T1w.nii.gz")
    bold = nb.Nifti1Image(np.zeros((4, 5, 3, 10), np.int16), np.diag([3.0, 3.0, 3.0, 1.0]))
    bold.header.set_zooms((3.0, 3.0, 3.0, 2.5))  # the TR is not a voxel size
    bold.to_filename(func / "sub-01_task-rest_desc-preproc_bold.nii")
    cut = func / "sub-01_task-rest_desc-preproc_bold.nii"
    cut.write_bytes(cut.read_bytes()[:352])  # header only: the data would not load
    html = " ".join(write_participant_report(config, part).read_text().split())

    def row(name):
        return html.split(f"<code>sub-01/{name}</code></td>")[1].split("</tr>")[0]

    assert row("anat/sub-01_desc-preproc_T1w.nii.gz").startswith("<td>6 x 7 x 5</td> <td>1.2 x 1.0 x 0.9</td>")
    assert row("func/sub-01_task-rest_desc-preproc_bold.nii").startswith("<td>4 x 5 x 3 x 10</td> <td>3.0 x 3.0 x 3.0</td>")
    assert row("features/sub-01_task-rest_res-small_desc-model_bold.npy").startswith("<td>4 x 2 x 2 x 2</td> <td></td>")


def test_group_report_lists_each_test_participant_once_per_fold():
    """The slice protocol's splits.tsv has a test row per (participant, slice): the report's test participants
    per fold name each participant once; with repeats, each repeat's folds are listed apart."""
    from bidsad.learn.splits import plan_splits
    from bidsad.reports.group import _test_sets

    ids = [f"sub-{i:02d}" for i in range(12)]
    included = pd.DataFrame({"participant_id": ids, "label": [0, 2] * 6, "mri": ["x"] * 12, "bold": [""] * 12})
    leaky, _ = plan_splits(included, [("mri",)], folds=3, seed=0, protocol="slice", slices=[10, 12, 13])
    sets = _test_sets(leaky)
    assert list(sets) == [("mri", 1), ("mri", 2), ("mri", 3)]
    for (_, fold), listed in sets.items():
        tested = leaky[(leaky.fold == fold) & (leaky.role == "test")].participant_id
        assert len(listed) == len(set(listed)) == tested.nunique() and set(listed) == set(tested)
    assert sum(map(len, sets.values())) < len(leaky[leaky.role == "test"])  # rows were repeated per slice
    repeated, _ = plan_splits(included, [("mri",)], folds=3, seed=0, repeats=2)
    sets = _test_sets(repeated)
    assert list(sets) == [("mri", f"{k} (repeat {r})") for r in (1, 2) for k in (1, 2, 3)]
    assert all(len(v) == 4 for v in sets.values())  # 12 participants, 3 folds, once per repeat


@pytest.mark.integration
def test_group_metrics_with_intervals(demo_run):
    group = demo_run["out"] / "group"
    metrics = pd.read_csv(group / "metrics.tsv", sep="\t", keep_default_na=False)
    assert list(metrics.columns) == ["model", "fold", "metric", "value", "ci_low", "ci_high"]
    pooled = metrics[metrics.fold == "pooled"].set_index(["model", "metric"])
    for model in ("3dcnn", "3dcnn-lstm"):
        for metric in ("balanced_accuracy", "matthews_corrcoef", "f1", "brier_score", "expected_calibration_error"):
            low, high = float(pooled.loc[(model, metric), "ci_low"]), float(pooled.loc[(model, metric), "ci_high"])
            assert low <= high, (model, metric)
        assert 0 <= float(pooled.loc[(model, "balanced_accuracy"), "ci_low"]) <= 1
        p = float(pooled.loc[(model, "permutation_p_value"), "value"])
        assert 1 / 1001 <= p <= 1
    summary = json.loads((group / "metrics.json").read_text())
    assert summary["n_bootstrap"] == 1000 and summary["n_permutations"] == 1000
    for model, result in summary["models"].items():
        assert sum(b["count"] for b in result["reliability"]) == result["pooled"]["n"] == result["n_participants"]
        assert result["permutation"]["n_permutations"] == 1000 and result["permutation"]["seed"] == 0
        assert result["ci"]["balanced_accuracy"]["n_resamples"] == 1000
    assert {p.name for p in (group / "figures").glob("*.svg")} >= {"models.svg", "roc.svg", "confusion.svg",
                                                                  "reliability.svg", "learning.svg", "saliency-3dcnn.svg"}


@pytest.mark.integration
def test_saliency_nifti(demo_run):
    import nibabel as nb

    out = demo_run["out"]
    folder = out / "group" / "model-3dcnn" / "saliency"
    maps = sorted(folder.glob("space-MNI152NLin2009aSym_label-*_desc-saliency_map.nii.gz"))
    cohort = pd.read_csv(out / "group" / "cohort.tsv", sep="\t")
    assert len(maps) == cohort["label"].nunique()
    affines = np.array([json.loads((out / p).with_suffix(".json").read_text())["grid_affine"] for p in cohort["mri"]])
    total = 0
    for path in maps:
        img = nb.load(path)
        data = img.get_fdata()
        assert data.shape == PRESETS["small"]["mri_shape"] and np.isfinite(data).all()
        assert data.min() >= 0 and 0 < data.max() <= 1
        assert np.allclose(img.affine, affines.mean(axis=0), atol=1e-3)
        meta = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
        assert meta["Model"] == "3dcnn" and meta["GridAffinesConsistent"]  # every MRI tensor is on the MNI model grid
        total += meta["NumberOfParticipants"]
    assert total == len(cohort)


@pytest.mark.integration
def test_citation_of_the_demo_run(demo_run):
    text = (demo_run["out"] / "logs" / "CITATION.md").read_text()
    assert "trained for 2 epoch(s)" in text and "3DCNN-LSTM" in text and "3DCNN (" in text
    assert "`small`" in text and "Nipype" in text and "@kujur2026multimodal" in text
    group_html = (demo_run["out"] / "group" / "group.html").read_text()
    assert "trained for 2 epoch(s)" in group_html and "Model card" in group_html and "Research use only" in group_html


@pytest.mark.slow  # over a minute on 2 cores: kept out of the default suite (15 min budget); run with -m slow
@pytest.mark.integration
def test_reports_only_and_methods_follow_the_run(demo_run, tmp_path):
    import shutil

    out, work = tmp_path / "out", tmp_path / "work"
    shutil.copytree(demo_run["out"], out)
    models = {p: p.stat().st_mtime_ns for p in out.glob("group/model-*/fold-*/model.keras")}
    for path in [out / "group/group.html", out / "sub-01.html", *out.glob("logs/CITATION.*")]:
        path.unlink()
    # --epochs on a reports-only call changes nothing: the text describes the run that trained
    run_bidsad(DEMO, out, "group", "--preset", "small", "--reports-only", "--epochs", "9", "-w", work, check_rc=0)
    run_bidsad(DEMO, out, "participant", "--preset", "small", "--reports-only", "-w", work, check_rc=0)
    assert (out / "sub-01.html").is_file() and "the first 16 are used" in (out / "sub-01.html").read_text()
    assert "trained for 2 epoch(s)" in (out / "group/group.html").read_text()
    assert "trained for 2 epoch(s)" in (out / "logs/CITATION.md").read_text()
    assert {p: p.stat().st_mtime_ns for p in out.glob("group/model-*/fold-*/model.keras")} == models

    # a new group run with other epochs and models: the methods text follows
    config = tmp_path / "fast.toml"
    config.write_text("[learning]\nn_bootstrap = 20\nn_permutations = 20\n")
    run_bidsad(DEMO, out, "group", "--preset", "small", "--models", "2dcnn", "--epochs", "3", "--config-file", config,
               "-w", work, check_rc=0)
    text = (out / "logs/CITATION.md").read_text()
    assert "trained for 3 epoch(s)" in text and "2DCNN" in text and "3DCNN-LSTM" not in text
    assert "over 20 bootstrap" in text and "2DCNN" in (out / "group/group.html").read_text()
    figures = {p.name for p in (out / "group/figures").glob("*.svg")}
    assert "saliency-2dcnn.svg" in figures and "saliency-3dcnn.svg" not in figures  # earlier run's figures removed


def test_reports_only_without_group_outputs(tmp_path):
    proc = run_bidsad(DEMO, tmp_path / "out", "group", "--reports-only", "-w", tmp_path / "work", check_rc=2)
    assert "--reports-only: no group outputs" in proc.stderr and "Traceback" not in proc.stderr


def test_participant_reports_only_without_participant_outputs(tmp_path):
    """participant --reports-only on an out_dir without any participant's outputs refuses (it wrote six empty
    reports saying "completed"), naming the participants and the command to run first; nothing is written."""
    proc = run_bidsad(DEMO, tmp_path / "out", "participant", "--reports-only", "--participant-label", "01", "02",
                      "-w", tmp_path / "work", check_rc=2)
    assert "--reports-only: no participant-level outputs" in proc.stderr and "sub-01, sub-02" in proc.stderr
    assert "participant)." in proc.stderr and "Traceback" not in proc.stderr
    assert not list((tmp_path / "out").glob("sub-*.html"))


def test_interrupt_is_one_line_and_exit_130(monkeypatch, capsys):
    """Ctrl-C anywhere in a run: exit status 130 and one line saying how to resume, no traceback."""
    from bidsad.cli import run

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "_run", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        run.main(["x", "y", "participant"])
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.strip() == "bidsad: interrupted. Finished participants and folds are kept; run " \
        "the same command (same -w) to resume."


def test_group_report_shows_baselines_beside_models(tmp_path):
    """A baseline recorded in metrics.json appears in the results table and the side-by-side figure."""
    import base64

    from bidsad.learn.evaluate import evaluate_predictions
    from bidsad.reports.group import write_group_report

    group = tmp_path / "group"
    rng = np.random.default_rng(0)
    ids = [f"sub-{i:02d}" for i in range(12)]
    labels = np.repeat([0, 1, 2], 4)
    pd.DataFrame({"participant_id": ids, "diagnosis": np.array(["CN", "MCI", "AD"])[labels], "label": labels,
                  "mri": "x", "bold": "", "included": True, "reason": ""}).to_csv(tmp_path / "cohort.tsv", sep="\t", index=False)
    group.mkdir()
    (tmp_path / "cohort.tsv").rename(group / "cohort.tsv")
    pd.DataFrame({"participant_id": ids * 2, "fold": [1] * 12 + [2] * 12,
                  "role": ["test"] * 6 + ["train"] * 6 + ["train"] * 6 + ["test"] * 6}).to_csv(group / "splits.tsv", sep="\t", index=False)
    results = {}
    for kind, name in (("model", "3dcnn"), ("baseline", "svm")):
        proba = rng.dirichlet([1, 1, 1], 12)
        table = pd.DataFrame({"participant_id": ids, "label": labels, **{f"probability_{c}": proba[:, i] for i, c in enumerate(("CN", "MCI", "AD"))}})
        (group / f"{kind}-{name}").mkdir()
        table.to_csv(group / f"{kind}-{name}" / "predictions.tsv", sep="\t", index=False)
        results[name] = evaluate_predictions(table, n_bootstrap=30, n_permutations=30, seed=0)
    (group / "metrics.json").write_text(json.dumps({
        "models": {"3dcnn": results["3dcnn"],  # and one as written before CIs existed (rebuilt by --reports-only)
                   "old": {"pooled": {"n": 12, "balanced_accuracy": 0.25, "confusion_matrix": np.eye(3, dtype=int).tolist()}}},
        "baselines": {"svm": results["svm"]}, "preset": "small", "folds": 2,
        "random_seed": 0, "epochs": 3, "learning_rate": 1e-5, "batch_size": 2, "dropout": 0.1, "n_bootstrap": 30,
        "n_permutations": 30, "versions": {"bidsad": "0"}, "warnings": ["a warning"],
        "recipe": {"name": "bidsad", "hyperparameters": {"learning_rate": 1e-4, "mri_downsample": 2},
                   "overrides": {"mri_downsample": 2}}}))
    html = write_group_report(tmp_path).read_text()
    recipe_row = html.split("<th>training recipe</th>")[1].split("</tr>")[0]
    assert "<code>bidsad</code> (changed: mri_downsample 2)" in recipe_row and "learning_rate 0.0001" in recipe_row
    assert "<code>svm</code> (baseline)" in html and "a warning" in html and "not comparable" in html
    assert f"{results['3dcnn']['pooled']['balanced_accuracy']:.3f}" in html
    old_row = html.split("<code>old</code>")[1].split("</tr>")[0]
    assert "0.250" in old_row and old_row.count("n/a") == 6  # macro AUC, MCC, F1, Brier, ECE, p
    models_svg = (group / "figures" / "models.svg").read_text()
    assert "data:image/svg+xml;base64," + base64.b64encode(models_svg.encode()).decode() in html
    assert (group / "figures" / "roc.svg").is_file() and not (group / "figures" / "learning.svg").exists()
    assert "did not see in training" in html and "These numbers LEAK" not in html
    summary = json.loads((group / "metrics.json").read_text())  # a leaking protocol never claims unseen participants
    summary.update(leaks=True, split_protocol_name="slice", paper_protocol_warning="Split protocol 'slice': LEAKS")
    (group / "metrics.json").write_text(json.dumps(summary))
    html = write_group_report(tmp_path).read_text()
    assert "These numbers LEAK" in html and "<code>slice</code>" in html
    assert "did not see in training" not in html and "evaluates only participants unseen" not in html


def test_participant_report_methods_describe_that_participant(tmp_path):
    """The methods of sub-01's report describe sub-01's outputs, not the count of participants in out_dir so far."""
    from bidsad.reports.participant import write_participant_report

    config, part, out = _participant_setup(tmp_path, with_qc=False)
    for label in ("02", "03"):  # other participants' T1w outputs already there
        (out / f"sub-{label}" / "features").mkdir(parents=True)
        (out / f"sub-{label}" / "features" / f"sub-{label}_res-small_desc-model_T1w.json").write_text(
            json.dumps({"Modality": "T1w", "preset": "small", "shape": [2, 2, 2]}))
    html = " ".join(write_participant_report(config, part).read_text().split())
    assert "For participant <code>sub-01</code>, 1 resting-state BOLD run(s) were processed (no T1-weighted image)." in html
    assert "participant(s) had a T1-weighted image" not in html


def test_group_report_and_model_card_say_how_the_folds_were_made_and_which_ran(tmp_path):
    """Folds that could not be stratified (a class of one), with an inner validation split in one fold only, of which
    only folds 2 and 3 produced predictions: metrics.json, the model card, group.html and the methods say so (they
    said 'participant-level stratified k-fold', 'validation True' and 'folds = 5')."""
    from bidsad.group.summary import run_summary
    from bidsad.learn.apply import write_model_card
    from bidsad.learn.evaluate import evaluate_predictions
    from bidsad.learn.splits import add_validation, make_splits
    from bidsad.reports.group import write_group_report

    group = tmp_path / "group"
    ids, labels = [f"sub-{i:02d}" for i in range(1, 7)], [0, 0, 0, 1, 1, 2]  # one AD participant
    splits, _ = make_splits(ids, labels, folds=5, seed=0)
    splits, _ = add_validation(splits, dict(zip(ids, labels)), seed=0)
    splits.insert(0, "cohort", "mri")
    cohort = pd.DataFrame({"participant_id": ids, "diagnosis": np.array(["CN", "MCI", "AD"])[labels], "label": labels,
                           "mri": "", "bold": "", "included": True, "reason": "", "models": "3dcnn", "source_hash": ""})
    rng = np.random.default_rng(0)
    proba = rng.dirichlet([1, 1, 1], 6)
    table = pd.DataFrame({"participant_id": ids, "label": labels,
                          **{f"probability_{c}": proba[:, i] for i, c in enumerate(("CN", "MCI", "AD"))}})
    fold_metrics = {"n": 1, "balanced_accuracy": 0.5, "roc_auc_macro": None}
    results = {"3dcnn": {"folds": {"2": fold_metrics, "3": fold_metrics},
                         **evaluate_predictions(table, n_bootstrap=10, n_permutations=10, seed=0)}}
    config = Config()
    config.execution.out_dir = str(tmp_path)
    assert config.learning.validation and config.learning.folds == 5
    summary = run_summary(config, results=results, baselines={}, classes=["CN", "MCI", "AD"], splits=splits,
                          device="CPU", warnings=[], labels=dict(zip(ids, labels)))
    assert summary["fold_design"] == {"mri": {"folds": 5, "n_folds": 5, "validation_folds": 1, "stratified": False}}
    assert summary["split_protocol"] == "participant-level k-fold (not stratified: a class had a single participant)"
    group.mkdir()
    (group / "metrics.json").write_text(json.dumps(summary))
    cohort.to_csv(group / "cohort.tsv", sep="\t", index=False)
    splits.to_csv(group / "splits.tsv", sep="\t", index=False)
    for fold in (2, 3):
        (group / "model-3dcnn" / f"fold-{fold}").mkdir(parents=True)
        (group / "model-3dcnn" / f"fold-{fold}" / "model.keras").write_bytes(b"")
    card = json.loads(write_model_card(tmp_path, cohort, ["CN", "MCI", "AD"], config, summary).read_text())
    assert card["models"]["3dcnn"]["folds_run"] == ["2", "3"]
    assert card["models"]["3dcnn"]["folds_text"] == "folds 2 and 3 of 5"
    in_one = "held out in 1 of 5 folds (the others had a class with fewer than two training participants"
    assert card["inner_validation"].startswith(in_one)
    html = " ".join(write_group_report(tmp_path).read_text().split())
    assert "stratified k-fold" not in html and "validation True" not in html and "validation = True" not in html
    assert "folds = 5" not in html and "<code>3dcnn</code>: folds 2 and 3 of 5." in html
    assert "participant-level k-fold (not stratified: a class had a single participant) cross-validation" in html
    assert f"Inner validation split for early stopping: {in_one}" in html
    assert f"validation {in_one}" in html.split("<th>training recipe</th>")[1].split("</tr>")[0]
    assert f"Inner validation split (early stopping): {in_one}" in html  # the model card
    assert "only folds 2 and 3 of 5 produced predictions" in html
    methods = html.split('id="methods"')[1]
    assert f"(patience 10 epochs, best weights kept): {in_one}" in methods
    assert "not stratified: a class had a single participant" in methods
    assert "Of model <code>3dcnn</code>, only folds 2 and 3 of 5 produced predictions" in methods


def test_model_card_metrics_table_has_its_column_headings():
    """The model card's cross-validated table names each metric column (the headings were empty: jinja's attr()
    does not read a dict key)."""
    from jinja2 import Environment, PackageLoader

    entry = {"value": 0.7, "ci_low": 0.6, "ci_high": 0.8}
    card = {"task": {"name": "CN vs AD", "classes": ["CN", "AD"]},
            "training_cohort": {"n": 2, "counts": {"CN": 1, "AD": 1}, "participants": []},
            "preset": "small", "recipe": {}, "random_seed": 0, "split_protocol": "participant-level k-fold",
            "models": {"3dcnn": {"modalities": ["mri"], "fold_models": [], "folds_text": "folds 1 and 2 of 2",
                                 "cross_validated": {"balanced_accuracy": entry, "roc_auc_macro": entry}}},
            "baselines": {}, "intended_use": "research", "limitations": "none", "software_versions": {}}
    env = Environment(loader=PackageLoader("bidsad", "reports/templates"), autoescape=True)
    html = env.from_string('{% from "model_card.html" import model_card %}{{ model_card(card) }}').render(card=card)
    assert "<th>model</th><th>balanced accuracy</th><th>roc auc macro</th></tr>" in html
