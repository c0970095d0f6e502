"""Top-level participant workflow: one sub-workflow per participant, run together by nipype."""

from __future__ import annotations

from pathlib import Path

from bidsad import __version__
from bidsad.bids import ParticipantInputs
from bidsad.config import Config
from bidsad.derivatives.naming import bids_uri
from bidsad.utils import relpath


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
        if sub_wf is not None:
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
    """Preprocess the T1w (:func:`bidsad.workflows.anat.init_anat_preproc_wf`) and every resting-state
    BOLD run (:func:`bidsad.workflows.func.init_func_preproc_wf`); store model tensors of the preset.

    T1w: see the anatomical workflow (derivatives in ``anat/``, tensor in ``features/``, QC in ``figures/``).
    BOLD (every usable ``task-rest`` run): the functional workflow (MNI, one interpolation,
    non-steady-state volumes removed). Features (:func:`bidsad.workflows.features.init_features_wf`):
    grey-matter maps and volumes, and per run the fMRI tensor from ``bold_model``, ROI time series and
    connectivity.

    With ``--derivatives fmriprep=PATH`` the preprocessing is fMRIPrep's
    (:mod:`bidsad.workflows.from_fmriprep`); returns ``None`` (errors in ``part.errors``) when the
    participant's fMRIPrep outputs are incomplete.
    """
    from nipype.pipeline import engine as pe

    from bidsad.interfaces.resample import MODEL_INTERPOLATION
    from bidsad.workflows.anat import init_anat_preproc_wf
    from bidsad.workflows.features import ANAT_FIELDS, BOLD_FIELDS, OPTIONAL_BOLD_FIELDS, init_features_wf
    from bidsad.workflows.func import init_func_preproc_wf

    bids_dir = Path(config.execution.bids_dir)
    out_dir = config.execution.out_dir
    preset_name = config.features.preset
    fmriprep_dir = (config.execution.derivatives or {}).get("fmriprep")
    if fmriprep_dir:
        workflow = _fmriprep_subject_wf(config, part, Path(fmriprep_dir))
        return _set_crash_dir(workflow, config, part.label) if workflow is not None else None
    workflow = pe.Workflow(name=f"single_subject_{part.label}_wf")

    anat_wf = init_anat_preproc_wf(
        t1w=part.t1w, bids_dir=bids_dir, out_dir=out_dir, preset=preset_name,
        registration=config.preprocessing.anat_registration, omp_nthreads=_omp_nthreads(config),
        seed=config.seeds.random_seed,
    )
    sources = {str(path): bids_uri(path, bids_dir) for path in [part.t1w, *(run.path for run in part.bold)]}
    features_wf = init_features_wf(out_dir=out_dir, t1w_source=str(part.t1w),
                                   bold_sources=[str(run.path) for run in part.bold], preset=preset_name,
                                   sources=sources, bold_interpolation=MODEL_INTERPOLATION,
                                   registration=config.preprocessing.anat_registration)
    workflow.connect([(anat_wf, features_wf, [(f"outputnode.{f}", f"inputnode.{f}") for f in ANAT_FIELDS])])

    for index, run in enumerate(part.bold):
        func_wf = init_func_preproc_wf(
            run=run, bids_dir=bids_dir, out_dir=out_dir, preset=preset_name,
            denoise=config.preprocessing.denoise, omp_nthreads=_omp_nthreads(config),
            seed=config.seeds.random_seed, name=f"func_preproc_{index}_wf",
        )
        workflow.connect([
            (anat_wf, func_wf, [("outputnode.t1w_preproc", "inputnode.t1w_preproc"),
                                ("outputnode.t1w_mask", "inputnode.t1w_mask"),
                                ("outputnode.t1w2mni_xfm", "inputnode.t1w2mni_xfm"),
                                ("outputnode.probseg", "inputnode.probseg")]),
            (func_wf, features_wf, [(f"outputnode.{field}", f"bold_inputnode_{index}.{field}")
                                    for field in BOLD_FIELDS + OPTIONAL_BOLD_FIELDS]),
        ])
    return _set_crash_dir(workflow, config, part.label)


def _set_crash_dir(workflow, config: Config, label: str):
    """nipype merges only node-level config over the top workflow's: set the crash folder per node."""
    for node in workflow._get_all_nodes():
        node.config = {"execution": {"crashdump_dir": str(crash_dir(config, label))}}
    return workflow


def _fmriprep_subject_wf(config: Config, part: ParticipantInputs, fmriprep_dir: Path):
    """Participant workflow on fMRIPrep's outputs: model tensors and features, no preprocessing."""
    from nipype.pipeline import engine as pe

    from bidsad.fmriprep_inputs import collect_fmriprep
    from bidsad.interfaces.tensors import FMRIPREP_BOLD_INTERPOLATION
    from bidsad.workflows.features import ANAT_FIELDS, BOLD_FIELDS, init_features_wf
    from bidsad.workflows.from_fmriprep import init_fmriprep_anat_wf, init_fmriprep_bold_wf

    bids_dir = Path(config.execution.bids_dir)
    found = collect_fmriprep(fmriprep_dir, part, bids_dir)
    if found is None:
        return None
    preset = config.features.preset
    out_dir = config.execution.out_dir

    def uri(path):
        return f"bids:fmriprep:{relpath(path, fmriprep_dir)}"

    anat_sources = [uri(p) for p in (found.t1w_preproc, found.t1w_mask, found.t1w2mni_xfm)]
    workflow = pe.Workflow(name=f"single_subject_{part.label}_wf")
    anat_wf = init_fmriprep_anat_wf(inputs=found, t1w_source=str(part.t1w), out_dir=out_dir, preset=preset,
                                    sources=anat_sources)
    sources = {str(part.t1w): uri(found.probseg[1])}
    sources.update({str(run.source): uri(run.bold) for run in found.bold})
    features_wf = init_features_wf(out_dir=out_dir, t1w_source=str(part.t1w),
                                   bold_sources=[str(run.source) for run in found.bold], preset=preset,
                                   sources=sources, source="fmriprep", bold_interpolation=FMRIPREP_BOLD_INTERPOLATION,
                                   registration="fmriprep")
    workflow.connect([(anat_wf, features_wf, [(f"outputnode.{f}", f"inputnode.{f}") for f in ANAT_FIELDS])])
    trs = {str(run.path): run.repetition_time for run in part.bold}
    for index, run in enumerate(found.bold):
        bold_wf = init_fmriprep_bold_wf(run=run, repetition_time=trs[str(run.source)], preset=preset,
                                        name=f"fmriprep_bold_{index}_wf")
        workflow.connect([(bold_wf, features_wf, [(f"outputnode.{f}", f"bold_inputnode_{index}.{f}")
                                                  for f in BOLD_FIELDS])])
    return workflow
