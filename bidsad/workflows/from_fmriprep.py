"""fMRIPrep derivatives in place of bidsad's preprocessing (``--derivatives fmriprep=PATH``).

Each workflow here offers the same outputnode fields as the preprocessing it replaces, so that the
features workflow (:func:`bidsad.workflows.features.init_features_wf`) is the same for both sources.
"""

from __future__ import annotations

from pathlib import Path


def init_fmriprep_anat_wf(*, inputs, t1w_source: str, out_dir: str, preset: str, sources: list[str],
                          name: str = "fmriprep_anat_wf"):
    """MRI model tensor and template-space tissue maps from fMRIPrep's anatomical outputs.

    ``inputs``: :class:`bidsad.fmriprep_inputs.FmriprepInputs`. The native ``desc-preproc_T1w`` is z-scored inside
    fMRIPrep's brain mask (:class:`bidsad.interfaces.intensity.StandardiseIntensity`) and resampled once
    through fMRIPrep's T1w -> template transform onto the model grid (the same
    :class:`bidsad.interfaces.tensors.MriTensor` as bidsad's own T1w); the native tissue maps are resampled
    once onto the 2 mm template grid. ``sources``: BIDS URIs of the fMRIPrep files used.

    outputnode: ``probseg`` (native CSF, GM, WM), ``probseg_std`` (2 mm template grid), ``t1w_mask``,
    ``t1w2mni_xfm``, ``mni2t1w_xfm``, ``tensor``.
    """
    from nipype.interfaces import utility as niu
    from nipype.pipeline import engine as pe

    from bidsad.derivatives import MRI_TENSORS, PREPROCESSING_SOURCE_KEY, PRESETS, SOURCES_KEY
    from bidsad.interfaces.intensity import StandardiseIntensity
    from bidsad.interfaces.registration import ApplyTransforms
    from bidsad.interfaces.tensors import MriTensor
    from bidsad.workflows.outputs import init_ds_tensor_wf

    workflow = pe.Workflow(name=name)
    outputnode = pe.Node(niu.IdentityInterface(fields=["probseg", "probseg_std", "t1w_mask", "t1w2mni_xfm",
                                                       "mni2t1w_xfm", "tensor"]), name="outputnode")
    outputnode.inputs.probseg = [str(p) for p in inputs.probseg]
    outputnode.inputs.t1w_mask = str(inputs.t1w_mask)
    outputnode.inputs.t1w2mni_xfm = str(inputs.t1w2mni_xfm)
    outputnode.inputs.mni2t1w_xfm = str(inputs.mni2t1w_xfm)
    std = pe.Node(StandardiseIntensity(in_file=str(inputs.t1w_preproc), mask_file=str(inputs.t1w_mask)),
                  name="standardise")
    meta = {"preset": preset, "Modality": "T1w", SOURCES_KEY: sources, PREPROCESSING_SOURCE_KEY: "fmriprep",
            "SourceSpace": inputs.space}
    tensor = pe.Node(MriTensor(shape=PRESETS[preset]["mri_shape"], mask_file=str(inputs.t1w_mask),
                               transform=str(inputs.t1w2mni_xfm), meta=meta), name="t1w_tensor")
    if Path(t1w_source).is_file():  # the raw T1w's content hash (duplicate-scan check)
        tensor.inputs.source_file = t1w_source
    ds_tensor = init_ds_tensor_wf(out_dir=out_dir, source_file=t1w_source, output=MRI_TENSORS["t1w"], preset=preset,
                                  name="ds_t1w_tensor_wf")
    reference = pe.Node(niu.Function(function=_template_2mm, output_names=["out_file"]), name="template_2mm")
    fwd = [str(inputs.t1w2mni_xfm)]
    probs_mni = pe.MapNode(ApplyTransforms(transforms=fwd), iterfield=["in_file"], name="probseg_to_mni")
    probs_mni.inputs.in_file = [str(p) for p in inputs.probseg]
    workflow.connect([
        (std, tensor, [("out_file", "in_file")]),
        (tensor, ds_tensor, [("out_file", "inputnode.tensor"), ("meta", "inputnode.meta")]),
        (tensor, outputnode, [("out_file", "tensor")]),
        (reference, probs_mni, [("out_file", "reference")]),
        (probs_mni, outputnode, [("out_file", "probseg_std")]),
    ])
    return workflow


def _template_2mm():
    """nilearn's 2 mm MNI152NLin2009aSym template written in the node's folder."""
    import os

    from bidsad.interfaces.registration import template_file

    return str(template_file(os.getcwd(), "T1w", 2))


def init_fmriprep_bold_wf(*, run, repetition_time: float, preset: str, name: str):
    """The functional workflow's outputnode (``bold_std``, ``bold_mask_std``, ``bold_model``, ``confounds``,
    ``repetition_time``, ``dummy_scans``) from one fMRIPrep run (:class:`bidsad.fmriprep_inputs.FmriprepBold`):
    fMRIPrep's flagged non-steady-state volumes removed, the run resampled onto the fMRI model grid."""
    from nipype.interfaces import utility as niu
    from nipype.pipeline import engine as pe

    from bidsad.derivatives import PRESETS
    from bidsad.interfaces.fmriprep_bold import PrepareFmriprepBold
    from bidsad.workflows.features import BOLD_FIELDS

    workflow = pe.Workflow(name=name)
    prep = pe.Node(PrepareFmriprepBold(bold_file=str(run.bold), mask_file=str(run.mask), confounds=str(run.confounds),
                                       bold_shape=PRESETS[preset]["bold_shape"], repetition_time=repetition_time),
                   name="prepare_bold")
    outputnode = pe.Node(niu.IdentityInterface(fields=BOLD_FIELDS), name="outputnode")
    workflow.connect([(prep, outputnode, [(f, f) for f in BOLD_FIELDS])])
    return workflow
