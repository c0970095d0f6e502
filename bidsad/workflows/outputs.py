"""Output writing of the participant-level workflows (fMRIPrep's ``init_ds_*_wf`` pattern): every derivative goes
through one :class:`bidsad.interfaces.bids.DerivativesDataSink`, made here, and every sidecar through
:func:`merge_sidecar`. File names of the group level's inputs come from :mod:`bidsad.derivatives`."""

from __future__ import annotations


def merge_sidecar(*parts, **fields) -> dict:
    """The one merge of sidecar metadata: the dicts of ``parts`` in order (later keys override earlier
    ones; ``None`` parts skipped), then ``fields``. Returns a new dict; the inputs are not changed.

    Self-contained (imports nothing) so that nipype ``Function`` nodes can call it by import."""
    meta = {}
    for part in parts:
        meta.update(part or {})
    meta.update(fields)
    return meta


def ds_node(name: str, *, out_dir: str, source_file: str, meta: dict | None = None, **sink_args):
    """A :class:`bidsad.interfaces.bids.DerivativesDataSink` node named ``name`` that stores ``in_file`` under
    the BIDS-Derivatives name of ``source_file`` (``sink_args``: ``datatype``, ``suffix``, entities,
    ``extension``, ``skull_stripped``; e.g. ``**GM_MORPH.sink_args(atlas=...)``) with sidecar ``meta``
    (or a ``meta_dict`` connected later). Runs in the main process (``run_without_submitting``)."""
    from nipype.pipeline import engine as pe

    from bidsad.interfaces.bids import DerivativesDataSink

    if meta is not None:
        sink_args["meta_dict"] = meta
    return pe.Node(DerivativesDataSink(base_directory=out_dir, source_file=source_file, **sink_args), name=name,
                   run_without_submitting=True)


def init_ds_tensor_wf(*, out_dir: str, source_file: str, output, preset: str, name: str):
    """Store a model-input tensor and its sidecar in ``sub-<l>/[ses-<s>/]features/``.

    ``output``: the tensor's :class:`bidsad.derivatives.Output` (:data:`bidsad.derivatives.MRI_TENSORS`
    or :data:`bidsad.derivatives.BOLD_TENSOR`). Output name: ``<source entities>_res-<preset>[_label-<label>]
    _desc-model_<suffix>.npy`` (+ ``.json``), e.g. ``..._res-small_desc-model_T1w.npy`` or
    ``..._res-small_label-GM_desc-model_probseg.npy``.

    Inputs ``inputnode.tensor`` (``.npy``) and ``inputnode.meta`` (dict); output ``outputnode.out_file``.
    """
    from nipype.interfaces import utility as niu
    from nipype.pipeline import engine as pe

    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=["tensor", "meta"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["out_file"]), name="outputnode")
    ds = ds_node("ds_tensor", out_dir=out_dir, source_file=source_file, **output.sink_args(res=preset))
    workflow.connect([
        (inputnode, ds, [("tensor", "in_file"), ("meta", "meta_dict")]),
        (ds, outputnode, [("out_file", "out_file")]),
    ])
    return workflow
