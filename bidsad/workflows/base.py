"""Top-level participant workflow: one sub-workflow per participant, run together by nipype."""

from __future__ import annotations

from pathlib import Path

from bidsad import __version__
from bidsad.bids import ParticipantInputs, bids_uri, relpath
from bidsad.config import GRID_FOV_MM, PRESETS, Config


def workflow_name() -> str:
    """Name of the top workflow (version-specific, so that a new version does not reuse old caches)."""
    return "bidsad_" + __version__.replace(".", "_") + "_wf"


def init_bidsad_wf(config: Config, participants: list[ParticipantInputs]):
    """Build the participant-level workflow for every participant with a usable T1w.

    Each participant's nodes write crash files to ``<work_dir>/crash/sub-<label>/`` so that a failure
    can be attributed to its participant after the run.
    """
    from nipype.pipeline import engine as pe

    workflow = pe.Workflow(name=workflow_name(), base_dir=config.execution.work_dir)
    for part in participants:
        if part.t1w is None:
            continue
        sub_wf = init_single_subject_wf(config, part)
        workflow.add_nodes([sub_wf])
    return workflow


def crash_dir(config: Config, label: str) -> Path:
    """Where nipype writes crash files of participant ``label``."""
    return Path(config.execution.work_dir) / "crash" / f"sub-{label}"


def init_single_subject_wf(config: Config, part: ParticipantInputs):
    """Conform the T1w and each resting-state BOLD run and store them as model tensors of the preset.

    T1w: NIfTI scaling -> float32 -> RAS+ -> finite -> preset MRI grid -> ``features/`` tensor.
    BOLD (every usable ``task-rest`` run): the same to the preset's fMRI grid and frame count.
    """
    from nipype.pipeline import engine as pe

    from bidsad.interfaces.images import ConformImage
    from bidsad.interfaces.tensors import ModelTensor
    from bidsad.workflows.outputs import init_ds_tensor_wf

    bids_dir = Path(config.execution.bids_dir)
    out_dir = config.execution.out_dir
    preset_name = config.features.preset
    preset = PRESETS[preset_name]
    workflow = pe.Workflow(name=f"single_subject_{part.label}_wf")

    conform_t1w = pe.Node(
        ConformImage(in_file=str(part.t1w), ndim=3, kind="T1w", display_name=relpath(part.t1w, bids_dir)),
        name="conform_t1w",
    )
    t1w_tensor = pe.Node(
        ModelTensor(shape=preset["mri_shape"], fov_mm=GRID_FOV_MM,
                    meta={"preset": preset_name, "Modality": "T1w", "Sources": [bids_uri(part.t1w, bids_dir)]}),
        name="t1w_tensor",
    )
    ds_t1w = init_ds_tensor_wf(out_dir=out_dir, source_file=str(part.t1w), suffix="T1w",
                               preset=preset_name, name="ds_t1w_tensor_wf")
    workflow.connect([
        (conform_t1w, t1w_tensor, [("out_file", "in_file"), ("warnings", "warnings")]),
        (t1w_tensor, ds_t1w, [("out_file", "inputnode.tensor"), ("meta", "inputnode.meta")]),
    ])

    for index, run in enumerate(part.bold):
        conform_bold = pe.Node(
            ConformImage(in_file=str(run.path), ndim=4, kind="BOLD", display_name=relpath(run.path, bids_dir)),
            name=f"conform_bold_{index}",
        )
        bold_tensor = pe.Node(
            ModelTensor(
                shape=preset["bold_shape"], fov_mm=GRID_FOV_MM, frames=preset["frames"],
                meta={"preset": preset_name, "Modality": "bold", "RepetitionTime": run.repetition_time,
                      "Sources": [bids_uri(run.path, bids_dir)]},
            ),
            name=f"bold_tensor_{index}",
        )
        ds_bold = init_ds_tensor_wf(out_dir=out_dir, source_file=str(run.path), suffix="bold",
                                    preset=preset_name, name=f"ds_bold_tensor_{index}_wf")
        workflow.connect([
            (conform_bold, bold_tensor, [("out_file", "in_file"), ("warnings", "warnings")]),
            (bold_tensor, ds_bold, [("out_file", "inputnode.tensor"), ("meta", "inputnode.meta")]),
        ])
    # nipype merges only node-level config over the top workflow's: set the crash folder per node
    for node in workflow._get_all_nodes():
        node.config = {"execution": {"crashdump_dir": str(crash_dir(config, part.label))}}
    return workflow
