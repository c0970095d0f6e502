"""Derivative names keep every source entity: runs that differ only in ``dir-`` or ``echo-`` never share
an output (issue 17). Checked on the participant workflow as built (no run): every datasink's target."""

from __future__ import annotations

from pathlib import Path

import pytest

from bidsad.bids import collect_participants
from bidsad.derivatives.naming import derivative_path

from . import bugcase_data as bd


def planned_outputs(workflow) -> list[Path]:
    """The file every DerivativesDataSink of ``workflow`` will write (its name, from its inputs)."""
    from nipype.interfaces.base import isdefined

    from bidsad.interfaces.bids import DerivativesDataSink

    paths = []
    for node in workflow._get_all_nodes():
        if not isinstance(node.interface, DerivativesDataSink):
            continue
        inputs = node.interface.inputs
        entities = {key.rstrip("_"): getattr(inputs, key) for key in
                    ("from_", "to", "mode", "space", "atlas", "res", "label", "desc", "stat")
                    if isdefined(getattr(inputs, key))}
        extension = inputs.extension if isdefined(inputs.extension) else f".{node.name}"
        paths.append(derivative_path(Path(inputs.base_directory), Path(inputs.source_file),
                                     datatype=inputs.datatype, suffix=inputs.suffix, extension=extension, **entities))
    return paths


@pytest.mark.parametrize(("entity", "values"), [("dir", ("AP", "PA")), ("echo", ("1", "2"))])
def test_runs_differing_in_one_entity_get_distinct_outputs(tmp_path, entity, values):
    from bidsad.cli.parser import parse_args
    from bidsad.workflows.base import init_bidsad_wf

    bids = bd.make_dataset(tmp_path / "bids", subjects=("01",), bold=False)
    series, affine = bd.bold_data(n_vols=12)
    for value in values:
        name = f"sub-01_task-rest_{entity}-{value}_bold"
        bd.save(series, affine, bids / f"sub-01/func/{name}.nii.gz", tr=2.0)
        bd.write_json(bids / f"sub-01/func/{name}.json", {"RepetitionTime": 2.0, "TaskName": "rest"})
    (part,) = collect_participants(bids)
    assert [run.path.name for run in part.bold] == [f"sub-01_task-rest_{entity}-{v}_bold.nii.gz" for v in values]
    config = parse_args([str(bids), str(tmp_path / "out"), "participant", "-w", str(tmp_path / "w"), "--preset", "small"])
    outputs = planned_outputs(init_bidsad_wf(config, [part]))
    func = [p for p in outputs if f"_{entity}-" in p.name]
    assert len(outputs) == len(set(outputs)), sorted(p.name for p in outputs)
    for value in values:  # each run has its own preprocessed BOLD, confounds, tensor and connectivity
        names = [p.name for p in func if f"_{entity}-{value}_" in p.name]
        assert any("_desc-preproc_bold." in n for n in names), names
        assert any(n.endswith("_desc-model_bold.npy") for n in names), names
        assert any("_stat-pearsoncorrelation_relmat" in n for n in names), names
    assert len(func) % 2 == 0 and len(func) >= 6


def test_derivative_path_follows_bids_entity_order(tmp_path):
    src = Path("/b/sub-01/ses-2/func/sub-01_ses-2_task-rest_acq-mb_ce-gad_rec-x_dir-AP_run-03_echo-2_part-mag_bold.nii.gz")
    path = derivative_path(tmp_path, src, datatype="func", suffix="bold", extension=".nii.gz",
                           space="MNI152NLin2009aSym", res="3", desc="preproc")
    assert path == tmp_path / ("sub-01/ses-2/func/sub-01_ses-2_task-rest_acq-mb_ce-gad_rec-x_dir-AP_run-03_echo-2_"
                               "part-mag_space-MNI152NLin2009aSym_res-3_desc-preproc_bold.nii.gz")
    relmat = derivative_path(tmp_path, src, datatype="func", suffix="relmat", extension=".tsv", atlas="power2011",
                             stat="pearsoncorrelation")
    assert relmat.name.endswith("_part-mag_atlas-power2011_stat-pearsoncorrelation_relmat.tsv")


def test_dataset_description_updated_when_the_version_changes(tmp_path, caplog):
    import json
    import logging

    from bidsad import __version__
    from bidsad.derivatives.description import BIDSIGNORE, write_dataset_description

    bids = bd.make_dataset(tmp_path / "bids", subjects=("01",), bold=False)
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "x", "BIDSVersion": "1.8.0", "DatasetDOI": "10.1/abc"}))
    out = tmp_path / "out"
    out.mkdir()
    (out / "dataset_description.json").write_text(json.dumps({
        "Name": "my outputs", "BIDSVersion": "1.10.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "bidsad", "Version": "0.0.1"}], "DatasetLinks": {"raw": "/old"}}))
    (out / ".bidsignore").write_text("*/features/\nmy_notes/\n")
    (out / "sub-01/anat").mkdir(parents=True)
    (out / "sub-01/anat/sub-01_space-MNI152NLin2009aSym_res-1p5_desc-preproc_T1w.nii.gz").write_bytes(b"")
    logger = logging.getLogger("bidsad")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="bidsad"):
            write_dataset_description(out, bids)
    finally:
        logger.removeHandler(caplog.handler)
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["GeneratedBy"] == [{"Name": "bidsad", "Version": __version__}] and desc["Name"] == "my outputs"
    assert desc["SourceDatasets"] == [{"URL": bids.resolve().as_uri(), "DOI": "10.1/abc"}]
    assert desc["DatasetLinks"] == {"raw": str(bids.resolve())}
    assert desc["Resolution"]["2"].startswith("2 mm isotropic") and desc["Resolution"]["1p5"] == "bidsad grid '1p5'"
    assert f"holds outputs of bidsad 0.0.1; this run is bidsad {__version__}" in caplog.text
    ignore = (out / ".bidsignore").read_text().splitlines()
    assert ignore[: len(BIDSIGNORE.splitlines())] == BIDSIGNORE.splitlines() and "my_notes/" in ignore
    assert "**/features" in ignore and "*_xfm.h5" in ignore and "*_timeseries.tsv" in ignore
    caplog.clear()
    write_dataset_description(out, bids)  # same version: no warning, nothing rewritten
    assert "holds outputs of bidsad" not in caplog.text
