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


def _omp_nthreads(config: Config) -> int:
    """Threads per process: ``--omp-nthreads``, else min(8, nprocs)."""
    import os

    nprocs = config.nipype.nprocs or os.cpu_count() or 1
    return config.nipype.omp_nthreads or max(1, min(8, nprocs))


def init_single_subject_wf(config: Config, part: ParticipantInputs):
    """Preprocess the T1w (:func:`bidsad.workflows.anat.init_anat_preproc_wf`) and conform each
    resting-state BOLD run; store model tensors of the preset.

    T1w: see the anatomical workflow (derivatives in ``anat/``, tensor in ``features/``, QC in ``figures/``).
    BOLD (every usable ``task-rest`` run): conformed (NIfTI scaling, float32, RAS+, finite) and resampled
    to the preset's fMRI grid and frame count.
    """
    from nipype.pipeline import engine as pe

    from bidsad.interfaces.images import ConformImage
    from bidsad.interfaces.tensors import ModelTensor
    from bidsad.workflows.anat import init_anat_preproc_wf
    from bidsad.workflows.outputs import init_ds_tensor_wf

    bids_dir = Path(config.execution.bids_dir)
    out_dir = config.execution.out_dir
    preset_name = config.features.preset
    preset = PRESETS[preset_name]
    workflow = pe.Workflow(name=f"single_subject_{part.label}_wf")

    anat_wf = init_anat_preproc_wf(
        t1w=part.t1w, bids_dir=bids_dir, out_dir=out_dir, preset=preset_name,
        registration=config.preprocessing.anat_registration, omp_nthreads=_omp_nthreads(config),
        seed=config.seeds.random_seed,
    )
    workflow.add_nodes([anat_wf])

    for index, run in enumerate(part.bold):
        conform_bold = pe.Node(
            ConformImage(in_file=str(run.path), ndim=4, kind="BOLD", display_name=relpath(run.path, bids_dir),
                         repetition_time=run.repetition_time),
            name=f"conform_bold_{index}", mem_gb=max(run.mem_gb, 0.1),
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
