"""Datasink workflows: every participant-level derivative goes through one DerivativesDataSink."""

from __future__ import annotations


def init_ds_tensor_wf(*, out_dir: str, source_file: str, suffix: str, preset: str, name: str,
                      label: str | None = None):
    """Store a model-input tensor and its sidecar in ``sub-<l>/[ses-<s>/]features/``.

    Output name: ``<source entities>_res-<preset>[_label-<label>]_desc-model_<suffix>.npy`` (+ ``.json``),
    e.g. ``..._res-small_desc-model_T1w.npy`` or ``..._res-small_label-GM_desc-model_probseg.npy``.

    Inputs ``inputnode.tensor`` (``.npy``) and ``inputnode.meta`` (dict); output ``outputnode.out_file``.
    """
    from nipype.interfaces import utility as niu
    from nipype.pipeline import engine as pe

    from bidsad.interfaces.bids import DerivativesDataSink

    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=["tensor", "meta"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["out_file"]), name="outputnode")
    ds = pe.Node(
        DerivativesDataSink(base_directory=out_dir, source_file=source_file, datatype="features",
                            suffix=suffix, res=preset, desc="model", extension=".npy", **({"label": label} if label else {})),
        name="ds_tensor", run_without_submitting=True,
    )
    workflow.connect([
        (inputnode, ds, [("tensor", "in_file"), ("meta", "meta_dict")]),
        (ds, outputnode, [("out_file", "out_file")]),
    ])
    return workflow
