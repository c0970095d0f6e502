"""Group level on a T1w-only cohort (issue 17): no fusion or connectivity advice that cannot apply, counts per
class and per reason, --participant-label honoured, and an earlier group/ kept by a second run."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bidsad.synthetic import make_synthetic_derivatives

from .conftest import run_bidsad

# two group-level runs (TensorFlow import and training): minutes; deselected by default, run with -m slow
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_t1w_only_group_runs_keep_results_and_honour_labels(tmp_path):
    bids, out = make_synthetic_derivatives(tmp_path / "c", 8, preset="small", seed=0, with_bold=False)
    tsv = bids / "participants.tsv"
    table = pd.read_csv(tsv, sep="\t", dtype=str)
    table.loc[table["participant_id"] == "sub-008", "diagnosis"] = "SMC"  # not a class: excluded, with its reason
    table["diagnosis"] = table["diagnosis"].replace("CN", " Healthy Control ")  # a synonym, padded
    table.to_csv(tsv, sep="\t", index=False)
    quick = tmp_path / "quick.toml"
    quick.write_text("[learning]\nn_bootstrap = 10\nn_permutations = 5\n")
    common = ["--preset", "small", "--epochs", "1", "--folds", "2", "--no-augmentation", "--no-validation",
              "--config-file", quick, "-w", tmp_path / "w"]
    first = run_bidsad(bids, out, "group", "--models", "3dcnn-gap", "3dcnn-lstm", *common, check_rc=0)
    assert "cannot be split" not in first.stderr and "rerun the participant level" not in first.stderr
    assert "model 3dcnn-lstm: no participant has bold features" in first.stderr
    html = (out / "group/group.html").read_text()
    assert "cannot be split" not in html and "rerun the participant level" not in html
    counts = json.loads((out / "group/cohort.json").read_text())["Counts"]
    cohort = pd.read_csv(out / "group/cohort.tsv", sep="\t", keep_default_na=False).set_index("participant_id")
    print(counts)
    assert sum(counts["used"].values()) == int(cohort["included"].sum()) == 7 and counts["used"]["CN"] == 3
    assert list(counts["excluded"].values()) == [1] and "'SMC'" in next(iter(counts["excluded"]))
    assert counts["mri_only"] == [f"sub-00{i}" for i in range(1, 8)]
    assert "Not used, per reason: diagnosis &#39;SMC&#39;" in html or "Not used, per reason: diagnosis 'SMC'" in html
    assert "MRI only (no usable BOLD" in html
    # a second run with another model and a subset: the first run's results are kept, not destroyed
    second = run_bidsad(bids, out, "group", "--models", "3dcnn-gap", "--participant-label", *[f"00{i}" for i in range(1, 7)],
                        *common, check_rc=0)
    (kept,) = out.glob("group-*")
    assert f"is kept as {kept}" in second.stderr and (kept / "model-3dcnn-gap/predictions.tsv").is_file()
    cohort = pd.read_csv(out / "group/cohort.tsv", sep="\t", keep_default_na=False).set_index("participant_id")
    assert cohort.loc["sub-007", "reason"] == "not selected by --participant-label" and cohort["included"].sum() == 6
    assert len(pd.read_csv(out / "group/model-3dcnn-gap/predictions.tsv", sep="\t")) == 6
