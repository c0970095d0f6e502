"""Group level on synthetic cohorts written directly as derivatives (preprocessing bypassed).

The 60-participant must-show checks are slow (minutes on 2 cores): ``python -m pytest -m slow``.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bidsad.synthetic import make_synthetic_derivatives
from tests.conftest import run_bidsad

#: Fast but honest training for synthetic cohorts on a CPU (the paper's 1e-5 needs far more epochs).
FAST = ["--preset", "small", "--folds", "3", "--learning-rate", "1e-3", "--batch-size", "4", "--no-validation",
        "--no-augmentation"]


def _pooled(out, metric="balanced_accuracy"):
    metrics = pd.read_csv(out / "group" / "metrics.tsv", sep="\t")
    pooled = metrics[(metrics.fold == "pooled") & (metrics.metric == metric)]
    return dict(zip(pooled.model, pooled.value.astype(float)))


def _assert_no_leakage(out):
    splits = pd.read_csv(out / "group" / "splits.tsv", sep="\t")
    for _, rows in splits.groupby(["cohort", "repeat", "fold"]):
        assert not set(rows[rows.role != "test"].participant_id) & set(rows[rows.role == "test"].participant_id)


@pytest.mark.slow
def test_sixty_participants_strong_effect_learned_and_shuffled_labels_are_not(tmp_path):
    bids, out = make_synthetic_derivatives(tmp_path / "effect", 60, preset="small", seed=0, effect=1.0)
    run_bidsad(bids, out, "group", *FAST, "--epochs", "12", "--models", "3dcnn", "3dcnn-lstm",
               "-w", tmp_path / "work", check_rc=0, timeout=3600)
    scores = _pooled(out)
    print("strong effect, pooled balanced accuracy:", scores)
    assert scores["3dcnn"] >= 0.90 and scores["3dcnn-lstm"] >= 0.90
    _assert_no_leakage(out)

    bids, out = make_synthetic_derivatives(tmp_path / "shuffled", 60, preset="small", seed=0, effect=1.0,
                                           shuffle_labels=True)
    run_bidsad(bids, out, "group", *FAST, "--epochs", "12", "--models", "3dcnn", "-w", tmp_path / "work2",
               check_rc=0, timeout=3600)
    shuffled, p_value = _pooled(out)["3dcnn"], _pooled(out, "permutation_p_value")["3dcnn"]
    print(f"shuffled labels, participant protocol: balanced accuracy {shuffled:.3f}, permutation p {p_value:.3f}")
    assert shuffled <= 0.5 and p_value > 0.05
    _assert_no_leakage(out)


@pytest.mark.slow
def test_paper_protocol_inflates_shuffled_label_scores_and_says_so(tmp_path):
    bids, out = make_synthetic_derivatives(tmp_path / "shuffled", 30, preset="small", seed=1, effect=1.0,
                                           shuffle_labels=True, with_bold=False)
    common = [*FAST, "--epochs", "12", "--models", "3dcnn"]
    run_bidsad(bids, out, "group", *common, "-w", tmp_path / "w1", check_rc=0, timeout=3600)
    honest = _pooled(out)["3dcnn"]
    proc = run_bidsad(bids, out, "group", *common, "--split-protocol", "paper", "-w", tmp_path / "w2",
                      check_rc=0, timeout=3600)
    inflated = _pooled(out)["3dcnn"]
    print(f"shuffled labels, 30 participants: participant protocol {honest:.3f}, paper protocol {inflated:.3f}")
    assert inflated >= honest + 0.25
    assert "LEAKS" in proc.stderr
    assert "LEAKS" in (out / "group" / "metrics.tsv").read_text()
    assert json.loads((out / "group" / "metrics.json").read_text())["leaks"] is True
    assert "LEAKS" in (out / "group" / "group.html").read_text()
    assert "LEAKS" in (out / "logs" / "CITATION.md").read_text()


@pytest.mark.slow
def test_2dcnn_on_slices_learns_and_the_slice_split_inflates_shuffled_label_scores(tmp_path):
    """The 2dcnn on its default slice block (MNI z -30..-5 mm; the synthetic "hippocampi" reach its top slices)
    learns the strong effect per participant; on shuffled labels the slice split scores far above the participant
    split (measured: 0.93; shuffled labels 0.28 with the participant split, 0.83 with the slice split)."""
    common = [*FAST, "--epochs", "12", "--models", "2dcnn"]
    bids, out = make_synthetic_derivatives(tmp_path / "effect", 60, preset="small", seed=0, effect=1.0, with_bold=False)
    run_bidsad(bids, out, "group", *common, "-w", tmp_path / "w0", check_rc=0, timeout=3600)
    learned = _pooled(out)["2dcnn"]
    _assert_no_leakage(out)
    bids, out = make_synthetic_derivatives(tmp_path / "shuffled", 60, preset="small", seed=0, effect=1.0,
                                           shuffle_labels=True, with_bold=False)
    run_bidsad(bids, out, "group", *common, "-w", tmp_path / "w1", check_rc=0, timeout=3600)
    honest = _pooled(out)["2dcnn"]
    run_bidsad(bids, out, "group", *common, "--split-protocol", "slice", "-w", tmp_path / "w2", check_rc=0,
               timeout=3600)
    inflated = _pooled(out)["2dcnn"]
    print(f"2dcnn: effect {learned:.3f}; shuffled labels: participant split {honest:.3f}, slice split {inflated:.3f}")
    assert learned >= 0.90 and honest <= 0.5 and inflated >= honest + 0.3


def test_synthetic_derivatives_follow_the_participant_level_names(tmp_path):
    from bidsad.learn.cohort import build_cohort

    bids, out = make_synthetic_derivatives(tmp_path, 6, preset="small", seed=0)
    cohort = build_cohort(out, bids, "small")
    assert cohort.included.all() and list(cohort.label) == [0, 1, 2, 0, 1, 2]
    assert cohort.mri[0] == "sub-001/features/sub-001_res-small_desc-model_T1w.npy"
    assert cohort.bold[0] == "sub-001/features/sub-001_task-rest_res-small_desc-model_bold.npy"
    assert (out / "sub-001/anat/sub-001_atlas-synthetic_desc-gm_morph.tsv").is_file()
    series = pd.read_csv(out / "sub-001/func/sub-001_task-rest_space-MNI152NLin2009aSym_atlas-synthetic_timeseries.tsv",
                         sep="\t")
    assert series.shape == (60, 12) and series.columns[0] == "roi-001"
    shuffled = make_synthetic_derivatives(tmp_path / "s", 6, preset="small", seed=0, shuffle_labels=True)[0]
    assert sorted(pd.read_csv(shuffled / "participants.tsv", sep="\t").diagnosis) == ["AD", "AD", "CN", "CN", "MCI", "MCI"]


@pytest.mark.slow  # kept out of the default suite (15 min budget on 2 cores); run with -m slow
@pytest.mark.integration
def test_repeated_folds_and_baselines_in_every_output(tmp_path, quick_config):
    bids, out = make_synthetic_derivatives(tmp_path / "c", 9, preset="small", seed=0)
    run_bidsad(bids, out, "group", "--preset", "small", "--models", "3dcnn-gap", "--epochs", "1", "--folds", "3",
               "--repeats", "2", "--no-augmentation", "--config-file", quick_config, "-w", tmp_path / "w", check_rc=0)
    group = out / "group"
    splits = pd.read_csv(group / "splits.tsv", sep="\t")
    assert set(splits.repeat) == {1, 2} and set(splits.fold) == {1, 2, 3}
    _assert_no_leakage(out)
    assert (group / "model-3dcnn-gap" / "repeat-2_fold-3" / "model.keras").is_file()
    predictions = pd.read_csv(group / "model-3dcnn-gap" / "predictions.tsv", sep="\t")
    assert len(predictions) == 18 and sorted(predictions.groupby("repeat").size()) == [9, 9]
    summary = json.loads((group / "metrics.json").read_text())
    assert summary["repeats"] == 2 and summary["deterministic"] is False and summary["leaks"] is False
    assert set(summary["baselines"]) == {"gm-svm", "gm-logreg", "connectivity-svm", "connectivity-logreg", "voxel-svm", "volumes-logreg",
                                         "age-sex-logreg"}
    assert summary["models"]["3dcnn-gap"]["n_participants"] == 9  # probabilities averaged over repeats
    scores = _pooled(out)
    assert {"3dcnn-gap", "gm-logreg", "connectivity-logreg"} <= set(scores)
    baseline = pd.read_csv(group / "baseline-gm-logreg" / "predictions.tsv", sep="\t")
    assert len(baseline) == 18
    html = (group / "group.html").read_text()
    assert "connectivity-svm" in html and "(baseline)" in html and "LEAKS" not in html
    assert (group / "figures" / "learning.svg").is_file() and (group / "figures" / "roc.svg").is_file()
    citation = (out / "logs" / "CITATION.md").read_text()
    assert "tangent-space" in citation and "repeated 2 times" in citation


@pytest.mark.slow  # over a minute on 2 cores: kept out of the default suite (15 min budget); run with -m slow
@pytest.mark.integration
def test_paper_protocol_is_flagged_in_every_output(tmp_path, quick_config):
    bids, out = make_synthetic_derivatives(tmp_path / "c", 6, preset="small", seed=0, with_bold=False)
    proc = run_bidsad(bids, out, "group", "--preset", "small", "--models", "3dcnn-gap", "--epochs", "1", "--folds", "2",
                      "--split-protocol", "paper", "--config-file", quick_config, "-w", tmp_path / "w", check_rc=0)
    assert proc.stderr.count("LEAKS") >= 2 and "Leakage check bypassed" in proc.stderr
    group = out / "group"
    splits = pd.read_csv(group / "splits.tsv", sep="\t")
    assert len(splits[splits.fold == 1]) == 66 and splits["copy"].max() == 10
    assert "LEAKS" in (group / "metrics.tsv").read_text()
    summary = json.loads((group / "metrics.json").read_text())
    assert summary["leaks"] is True and "LEAKS" in summary["paper_protocol_warning"]
    assert "LEAKS" in (group / "group.html").read_text()
    assert "LEAKS" in (out / "logs" / "CITATION.md").read_text()
    predictions = pd.read_csv(group / "model-3dcnn-gap" / "predictions.tsv", sep="\t")
    assert len(predictions) == 66 and "copy" in predictions


@pytest.mark.slow  # over a minute on 2 cores: kept out of the default suite (15 min budget); run with -m slow
def test_cohort_table_says_which_models_each_participant_entered(tmp_path, quick_config):
    import shutil

    bids, out = make_synthetic_derivatives(tmp_path / "c", 9, preset="small", seed=0)
    for label in ("001", "002", "003"):  # MRI only: no BOLD tensor
        for path in (out / f"sub-{label}" / "features").glob("*_bold.*"):
            path.unlink()
        shutil.rmtree(out / f"sub-{label}" / "func")
    run_bidsad(bids, out, "group", "--preset", "small", "--models", "3dcnn-gap", "3dlstm-gap", "--epochs", "1",
               "--folds", "2", "--no-augmentation", "--no-validation", "--config-file", quick_config,
               "-w", tmp_path / "w", check_rc=0)
    cohort = pd.read_csv(out / "group" / "cohort.tsv", sep="\t", keep_default_na=False).set_index("participant_id")
    assert cohort.loc["sub-001", "models"] == "3dcnn-gap" and cohort.loc["sub-004", "models"] == "3dcnn-gap 3dlstm-gap"
    assert len(pd.read_csv(out / "group" / "model-3dcnn-gap" / "predictions.tsv", sep="\t")) == 9
    assert len(pd.read_csv(out / "group" / "model-3dlstm-gap" / "predictions.tsv", sep="\t")) == 6
    assert "3dlstm-gap" in (out / "group" / "group.html").read_text()


@pytest.mark.slow  # over a minute on 2 cores: kept out of the default suite (15 min budget); run with -m slow
@pytest.mark.integration
@pytest.mark.parametrize("source", [[], ["--from-disk", "3", "--augmentation"]])
def test_gpu_check_script_runs_on_a_cpu_with_small(source):
    """The GPU check runs on a CPU at the small preset: on random tensors in memory, and streaming participants from
    disk through the group level's loader with the on-device augmentation (what a user's run does)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--small", "--samples", "4", "--epochs", "1",
                           "--xla", "off", "--cudnn", "off", *source], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].startswith("B4 3dcnn-lstm small sizes, 4 samples, float32") and "s/epoch" in lines[-1]
    assert ("3 participants streamed from disk" in lines[1]) == bool(source) and ("on the device" in lines[1]) == bool(source)


@pytest.mark.slow  # about a minute on 2 cores: kept out of the default suite; run with -m slow
@pytest.mark.integration
def test_slice_protocol_is_flagged_in_every_output_and_scored_per_participant(tmp_path, quick_config):
    bids, out = make_synthetic_derivatives(tmp_path / "c", 6, preset="small", seed=0, with_bold=False)
    proc = run_bidsad(bids, out, "group", "--preset", "small", "--models", "2dcnn", "--epochs", "1", "--folds", "2",
                      "--split-protocol", "slice", "--no-validation", "--config-file", quick_config,
                      "-w", tmp_path / "w", check_rc=0)
    assert proc.stderr.count("LEAKS") >= 2 and "Leakage check bypassed (--split-protocol slice)" in proc.stderr
    group = out / "group"
    splits = pd.read_csv(group / "splits.tsv", sep="\t")
    assert sorted(set(splits["slice"])) == [10, 12, 13, 14, 15, 17] and len(splits[splits.fold == 1]) == 36
    metrics = pd.read_csv(group / "metrics.tsv", sep="\t")
    assert metrics["split_protocol"].str.contains("LEAKS").all()
    assert metrics[(metrics.fold == "pooled") & (metrics.metric == "n")].value.astype(int).tolist() == [6]
    summary = json.loads((group / "metrics.json").read_text())
    assert summary["leaks"] is True and "'slice'" in summary["paper_protocol_warning"] and summary["baselines"] == {}
    assert summary["models"]["2dcnn"]["n_participants"] == 6  # slices averaged back per participant
    html = (group / "group.html").read_text()
    assert "Split protocol <code>slice</code>" in html
    tested = html.split("<th>test participants</th></tr>")[1].split("</table>")[0].split("</tr>")[:-1]
    for row, (_, rows) in zip(tested, splits[splits.role == "test"].groupby("fold"), strict=True):
        listed = row.rsplit("<td>", 1)[1].removesuffix("</td>").split(", ")  # each participant once, not per slice
        assert sorted(listed) == sorted(set(rows.participant_id))
    assert "LEAKS" in (out / "logs" / "CITATION.md").read_text()
    predictions = pd.read_csv(group / "model-2dcnn" / "predictions.tsv", sep="\t")
    assert len(predictions) == 36 and set(predictions.groupby("participant_id").size()) == {6}
