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


def _tensor_meta(base: dict, dummy_scans: int, extra: dict) -> dict:
    """BOLD tensor sidecar: the tensor's metadata plus ``NonSteadyStateVolumes`` and ``Denoise``."""
    return {**base, "NonSteadyStateVolumes": int(dummy_scans), "Denoise": dict(extra)}


def init_single_subject_wf(config: Config, part: ParticipantInputs):
    """Preprocess the T1w (:func:`bidsad.workflows.anat.init_anat_preproc_wf`) and every resting-state
    BOLD run (:func:`bidsad.workflows.func.init_func_preproc_wf`); store model tensors of the preset.

    T1w: see the anatomical workflow (derivatives in ``anat/``, tensor in ``features/``, QC in ``figures/``).
    BOLD (every usable ``task-rest`` run): the functional workflow's model-grid BOLD (MNI, one
    interpolation, non-steady-state volumes removed) made into the preset's fMRI tensor.
    """
    from nipype.pipeline import engine as pe

    from nipype.interfaces import utility as niu

    from bidsad.interfaces.tensors import ModelTensor
    from bidsad.workflows.anat import init_anat_preproc_wf
    from bidsad.workflows.func import init_func_preproc_wf
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
        func_wf = init_func_preproc_wf(
            run=run, bids_dir=bids_dir, out_dir=out_dir, preset=preset_name,
            denoise=config.preprocessing.denoise, omp_nthreads=_omp_nthreads(config),
            seed=config.seeds.random_seed, name=f"func_preproc_{index}_wf",
        )
        bold_tensor = pe.Node(
            ModelTensor(
                shape=preset["bold_shape"], fov_mm=GRID_FOV_MM, frames=preset["frames"],
                meta={"preset": preset_name, "Modality": "bold", "RepetitionTime": run.repetition_time,
                      "Sources": [bids_uri(run.path, bids_dir)]},
            ),
            name=f"bold_tensor_{index}",
        )
        tensor_meta = pe.Node(niu.Function(input_names=["base", "dummy_scans", "extra"], output_names=["meta"],
                                           function=_tensor_meta), name=f"bold_tensor_meta_{index}",
                              run_without_submitting=True)
        ds_bold = init_ds_tensor_wf(out_dir=out_dir, source_file=str(run.path), suffix="bold",
                                    preset=preset_name, name=f"ds_bold_tensor_{index}_wf")
        workflow.connect([
            (anat_wf, func_wf, [("outputnode.t1w_preproc", "inputnode.t1w_preproc"),
                                ("outputnode.t1w_mask", "inputnode.t1w_mask"),
                                ("outputnode.t1w2mni_xfm", "inputnode.t1w2mni_xfm"),
                                ("outputnode.probseg", "inputnode.probseg")]),
            (func_wf, bold_tensor, [("outputnode.bold_model", "in_file"), ("outputnode.warnings", "warnings")]),
            (bold_tensor, tensor_meta, [("meta", "base")]),
            (func_wf, tensor_meta, [("outputnode.dummy_scans", "dummy_scans"), ("outputnode.denoise", "extra")]),
            (bold_tensor, ds_bold, [("out_file", "inputnode.tensor")]),
            (tensor_meta, ds_bold, [("meta", "inputnode.meta")]),
        ])
    # nipype merges only node-level config over the top workflow's: set the crash folder per node
    for node in workflow._get_all_nodes():
        node.config = {"execution": {"crashdump_dir": str(crash_dir(config, part.label))}}
    return workflow
