"""Derivative names keep every source entity: runs that differ only in ``dir-`` or ``echo-`` never share
an output (issue 17). Checked on the participant workflow as built (no run): every datasink's target."""

from __future__ import annotations

from pathlib import Path

import pytest

from bidsad.bids import collect_participants, derivative_path

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
