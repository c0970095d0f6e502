"""The demo's outputs pass the BIDS validator (bids-validator-deno wheel), reusing the session's demo run."""

from __future__ import annotations

import json
import re

import pytest

from bidsad.validator import run_bids_validator, summarise_validator_errors

pytestmark = pytest.mark.integration


def test_demo_outputs_pass_the_bids_validator(demo_run):
    out = demo_run["out"]
    errors = run_bids_validator(out)
    print(f"BIDS validator on the demo outputs: {len(errors)} error(s)")
    assert errors == [], summarise_validator_errors(errors, out)
    desc = json.loads((out / "dataset_description.json").read_text())
    labels = {m.group(1) for p in out.glob("sub-*/**/*_res-*") if (m := re.search(r"_res-([a-zA-Z0-9]+)_", p.name))}
    assert labels and labels <= set(desc["Resolution"])
    assert desc["SourceDatasets"][0]["URL"].startswith("file:///") and desc["SourceDatasets"][0]["URL"].endswith("bids-real-mini")
    participant_log = next((out / "logs").glob("participant-*.log")).read_text()
    done = re.findall(r"sub-(\d+) done, (\d+) of 6, elapsed", participant_log)
    assert sorted(label for label, _ in done) == ["01", "02", "03", "04", "05", "06"]
    assert sorted(int(k) for _, k in done) == [1, 2, 3, 4, 5, 6]
