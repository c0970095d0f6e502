"""The participant-to-group contract has one home, :mod:`bidsad.derivatives`: every file the group level reads is
named by the writers and found by the readers through the same definition, and no module spells those names
itself."""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from pathlib import Path

import pytest

from bidsad import derivatives as contract
from bidsad.derivatives.naming import derivative_path

PACKAGE = Path(__file__).resolve().parents[1] / "bidsad"


def test_synthetic_writer_and_group_readers_agree(tmp_path):
    """synthetic.py (the second writer) names each file from the contract; the cohort reader and the baselines
    find exactly those files."""
    from bidsad.learn.baselines import find_inputs
    from bidsad.learn.cohort import build_cohort
    from bidsad.synthetic import SYNTHETIC_ATLAS, make_synthetic_derivatives

    bids, out = make_synthetic_derivatives(tmp_path, 3, preset="small", seed=1)
    cohort = build_cohort(out, bids, "small", "t1w")  # synthetic.py writes the T1w tensor only
    assert cohort["included"].all()
    found = find_inputs(out, list(cohort["participant_id"]))
    for row in cohort.itertuples():
        label = row.participant_id.removeprefix("sub-")
        t1w, bold = Path(f"sub-{label}_T1w.nii.gz"), Path(f"sub-{label}_task-rest_bold.nii.gz")
        expected = {
            "mri": derivative_path(out, t1w, **contract.MRI_TENSORS["t1w"].sink_args(res="small")),
            "bold": derivative_path(out, bold, **contract.BOLD_TENSOR.sink_args(res="small")),
            "gm": derivative_path(out, t1w, **contract.GM_MORPH.sink_args(atlas=SYNTHETIC_ATLAS)),
            "connectivity": derivative_path(out, bold, **contract.ROI_TIMESERIES.sink_args(atlas=SYNTHETIC_ATLAS)),
            "voxel": derivative_path(out, t1w, **contract.VOXEL_GM.sink_args()),
        }
        assert out / row.mri == expected["mri"] and out / row.bold == expected["bold"]
        for kind in ("gm", "connectivity", "voxel"):
            assert found[kind][row.participant_id] == expected[kind], kind
        sidecar = json.loads(expected["mri"].with_suffix(".json").read_text())
        assert sidecar[contract.PARAMETERS_HASH_KEY] == contract.parameters_hash(sidecar)
        assert contract.CONTENT_HASH_KEY in sidecar


def _sinks(workflow):
    """Every DerivativesDataSink node of a nipype workflow, nested workflows included."""
    from bidsad.interfaces.bids import DerivativesDataSink

    return [workflow.get_node(name) for name in workflow.list_node_names()
            if isinstance(workflow.get_node(name).interface, DerivativesDataSink)]


def _written(sinks, out_dir: Path) -> list[Path]:
    paths = []
    for node in sinks:
        extension = node.inputs.extension
        assert extension, f"{node.fullname}: a contract file's sink must name its extension"
        paths.append(node.interface.out_path(extension).relative_to(out_dir))
    return paths


def _read_by(output: contract.Output, paths: list[Path], label: str, preset: str, source: str = "") -> list[Path]:
    """The paths among ``paths`` that the group level's glob for ``output`` finds."""
    pattern = output.pattern(label, source, res=preset)
    return [p for p in paths if p.parent.name == output.datatype and fnmatch.fnmatch(p.name, pattern)]


@pytest.fixture(scope="module")
def workflow_outputs(tmp_path_factory):
    """File names the participant level's nipype writers would write for one participant (graphs only, nothing
    runs): the features workflow and the tensor sinks of the anatomical and fMRIPrep workflows."""
    from bidsad.workflows.features import init_features_wf
    from bidsad.workflows.outputs import init_ds_tensor_wf

    out = tmp_path_factory.mktemp("contract_out")
    t1w = "/raw/sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz"
    bolds = ["/raw/sub-01/ses-1/func/sub-01_ses-1_task-rest_run-1_bold.nii.gz"]
    sources = {path: f"bids:raw:{path[5:]}" for path in [t1w, *bolds]}
    features = init_features_wf(out_dir=str(out), t1w_source=t1w, bold_sources=bolds, preset="small",
                                sources=sources)
    anat_tensor = init_ds_tensor_wf(out_dir=str(out), source_file=t1w, output=contract.MRI_TENSORS["t1w"],
                                    preset="small", name="ds_t1w_tensor_wf")
    return out, _written(_sinks(features) + _sinks(anat_tensor), out)


@pytest.mark.parametrize("name, source", [
    ("MRI_TENSORS:t1w", ""), ("MRI_TENSORS:gm", ""), ("BOLD_TENSOR", ""), ("GM_MORPH", ""), ("VOLUMES_MORPH", ""),
    ("ROI_TIMESERIES", "task-rest"), ("RELMAT", ""), ("GM_PROBSEG_4MM", ""), ("VOXEL_GM", ""),
])
def test_workflow_writers_and_group_readers_agree(workflow_outputs, name, source):
    """Each group-level input is written by exactly one sink of the participant workflows, under the name the
    readers' glob (:meth:`bidsad.derivatives.Output.pattern`) finds."""
    _, written = workflow_outputs
    attribute, _, key = name.partition(":")
    output = getattr(contract, attribute)[key] if key else getattr(contract, attribute)
    found = _read_by(output, written, "01", "small", source)
    assert len(found) == 1, (name, found, written)


def test_cohort_reader_finds_the_workflow_tensors(workflow_outputs):
    """The cohort reader's glob (``features/*_<ending>``) finds the tensors the sinks name, one per kind."""
    out, written = workflow_outputs
    for output in (*contract.MRI_TENSORS.values(), contract.BOLD_TENSOR):
        glob = f"sub-01/*/{contract.FEATURES_DIR}/*_{output.ending(res='small')}"
        hits = [p for p in written if fnmatch.fnmatch(str(p), glob)]
        assert len(hits) == 1, output
    stale_glob = f"*/{contract.stale_tensor_glob('small')}"
    stale = [p for p in written if fnmatch.fnmatch(str(p.relative_to("sub-01")), stale_glob)]
    assert len(stale) == 3  # every tensor of the preset is replaced by a new run


def test_hashed_parameters_are_the_compared_parameters():
    """The ParametersHash (writer) covers exactly the fields the cohort reader compares."""
    from bidsad.interfaces.tensors import finish_meta

    meta = finish_meta({key: f"v-{key}" for key in contract.HASHED_PARAMETERS if key != "preset"} | {"preset": "small"},
                       {}, normalisation="n", interpolation="i", warnings=[])
    changed = finish_meta({**meta, "Warnings": ["other"], "bidsad_version": "0"}, {}, normalisation="n",
                          interpolation="i", warnings=["w"])
    assert changed[contract.PARAMETERS_HASH_KEY] == meta[contract.PARAMETERS_HASH_KEY]
    for key in contract.HASHED_PARAMETERS:
        other = {**meta, key: "different"}
        assert contract.parameters_hash(other) != meta[contract.PARAMETERS_HASH_KEY], key


#: Pieces of the contract's names that only bidsad/derivatives may spell in code (docstrings and the user
#: messages in messages.py may quote them).
NAME_FRAGMENTS = ("desc-model", "_morph.tsv", "desc-gm", "desc-volumes", "desc-modulated", "label-GM", "_relmat.tsv",
                  "res-{preset}", "features/*", "desc-saliency", "desc-meaninput")
NAME_PATTERNS = (re.compile(r"atlas-.*_timeseries"),)
SIDECAR_KEYS = {contract.PARAMETERS_HASH_KEY, contract.CONTENT_HASH_KEY, contract.FRAME_MASK_KEY,
                contract.PREPROCESSING_SOURCE_KEY}
#: Literals of the group/ layout: only the contract may spell them (``group`` alone is a common word, and
#: ``group.html`` is also the report's template name: both left out).
GROUP_FILES = {contract.COHORT_TSV, contract.COHORT_JSON, contract.SPLITS_TSV, contract.METRICS_JSON,
               contract.METRICS_TSV, contract.MODEL_CARD_JSON}
#: Modules that still spell group/ layout names; the group orchestrator takes them from the contract as it moves.
GROUP_LAYOUT_PENDING: set[str] = set()


def _code_strings(path: Path):
    """(line, text) of every string constant of a module that is not a docstring (f-string parts included)."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def test_no_contract_name_outside_derivatives():
    """Grep-style: no module but bidsad/derivatives spells a contract file name, glob, sidecar key or group file."""
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("derivatives/") or rel == "messages.py":
            continue
        for line, text in _code_strings(path):
            if " " in text:  # prose (help texts, descriptions): file names and globs have no spaces
                continue
            if (any(fragment in text for fragment in NAME_FRAGMENTS) or any(p.search(text) for p in NAME_PATTERNS)
                    or text in SIDECAR_KEYS or (text in GROUP_FILES and rel not in GROUP_LAYOUT_PENDING)):
                offences.append(f"bidsad/{rel}:{line}: {text!r}")
    assert not offences, "contract names spelled outside bidsad/derivatives:\n" + "\n".join(offences)
