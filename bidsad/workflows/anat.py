"""Anatomical preprocessing: conform, N4, brain extraction, MNI normalisation, tissues, model tensor, QC."""

from __future__ import annotations

from pathlib import Path


def init_anat_preproc_wf(*, t1w: Path, bids_dir: Path, out_dir: str, preset: str, registration: str = "syn",
                         omp_nthreads: int = 1, seed: int = 0, name: str = "anat_preproc_wf"):
    """Preprocess one T1w and write its derivatives, model tensor and reportlets.

    Steps (each image resampled once, from the conformed native T1w):

    1. conform (:func:`bidsad.interfaces.images.conform_image`): NIfTI scaling, float32, RAS+ without
       resampling, non-finite voxels -> 0, one affine; a multi-volume T1w is refused;
    2. N4 bias-field correction (antspyx);
    3. brain extraction (deepbet; inputs skull-stripped at the source keep their own mask);
    4. CSF/GM/WM probability maps (antspyx Atropos);
    5. standardisation: z-score inside the brain mask;
    6. registration to ``MNI152NLin2009aSym`` (nilearn's template, 2 mm): ``registration`` is
       ``affine`` or ``syn`` (affine then SyN); forward and inverse transforms written as ``.h5``;
    7. resampling to the 2 mm template grid (T1w, mask, tissue maps) and onto the preset's model grid
       (the paper's ``resize_mri_volume`` of the template box) for the MRI tensor;
    8. reportlets in ``figures/``.

    Parameters
    ----------
    t1w : the participant's T1w (one file; see ``collect_participants`` for the choice among several).
    bids_dir, out_dir : dataset roots; ``preset``: model grid (:data:`bidsad.derivatives.PRESETS`).
    omp_nthreads : threads for deepbet (torch); ``seed``: antsRegistration's random sampling.

    Returns a nipype workflow; its ``outputnode`` has ``t1w_preproc`` (N4, native), ``t1w_mask``,
    ``t1w_std`` (standardised, native), ``t1w2mni_xfm`` / ``mni2t1w_xfm`` (``.h5``), ``probseg`` (CSF,
    GM, WM, native), ``probseg_std`` (the same in ``MNI152NLin2009aSym`` at 2 mm) and ``tensor``, for downstream workflows (e.g. BOLD to T1w registration).
    """
    from nipype.interfaces import utility as niu
    from nipype.pipeline import engine as pe

    from bidsad.derivatives import MRI_TENSORS, PRESETS, TEMPLATE_SPACE
    from bidsad.derivatives.naming import bids_uri
    from bidsad.interfaces import brainmask, intensity, segmentation
    from bidsad.interfaces.images import ConformImage
    from bidsad.interfaces.registration import ApplyTransforms, RegisterToTemplate
    from bidsad.interfaces.reportlets import Reportlet
    from bidsad.interfaces.tensors import MriTensor
    from bidsad.utils import relpath
    from bidsad.workflows.outputs import ds_node, init_ds_tensor_wf, merge_sidecar

    shape = PRESETS[preset]["mri_shape"]
    source = str(t1w)
    sources = [bids_uri(t1w, bids_dir)]
    reg_text = {"affine": "antspyx registration (affine, Mattes MI, centre-of-mass initialisation)",
                "syn": "antspyx registration (affine, then SyN; Mattes MI, centre-of-mass initialisation)"}
    workflow = pe.Workflow(name=name)
    outputnode = pe.Node(niu.IdentityInterface(fields=["t1w_preproc", "t1w_mask", "t1w_std", "t1w2mni_xfm",
                                                       "mni2t1w_xfm", "probseg", "probseg_std", "tensor"]),
                         name="outputnode")

    conform = pe.Node(ConformImage(in_file=source, ndim=3, kind="T1w", display_name=relpath(t1w, bids_dir)),
                      name="conform_t1w")
    n4 = pe.Node(intensity.N4BiasCorrection(), name="n4", mem_gb=1.0)
    bet = pe.Node(brainmask.BrainExtraction(display_name=relpath(t1w, bids_dir), nthreads=omp_nthreads),
                  name="brain_extraction", mem_gb=3.0, n_procs=omp_nthreads)
    seg = pe.Node(segmentation.TissueSegmentation(), name="tissues", mem_gb=1.0)
    std = pe.Node(intensity.StandardiseIntensity(), name="standardise")
    reg = pe.Node(RegisterToTemplate(method=registration, seed=seed), name="register", mem_gb=2.0)
    warnings = pe.Node(niu.Merge(2, ravel_inputs=True), name="warnings", run_without_submitting=True)
    listify = pe.Node(niu.Merge(1), name="fwd_list", run_without_submitting=True)
    t1w_mni = pe.Node(ApplyTransforms(), name="t1w_to_mni")
    mask_mni = pe.Node(ApplyTransforms(threshold=0.5), name="mask_to_mni")
    probs_mni = pe.MapNode(ApplyTransforms(), iterfield=["in_file"], name="probseg_to_mni")
    tensor = pe.Node(MriTensor(shape=shape, meta={"preset": preset, "Modality": "T1w", "Sources": sources},
                               source_file=source), name="t1w_tensor")
    ds_tensor = init_ds_tensor_wf(out_dir=out_dir, source_file=source, output=MRI_TENSORS["t1w"], preset=preset,
                                  name="ds_t1w_tensor_wf")

    workflow.connect([
        (conform, n4, [("out_file", "in_file")]),
        (n4, bet, [("out_file", "in_file")]),
        (n4, seg, [("out_file", "in_file")]),
        (bet, seg, [("out_mask", "mask_file")]),
        (n4, std, [("out_file", "in_file")]),
        (bet, std, [("out_mask", "mask_file")]),
        (n4, reg, [("out_file", "in_file")]),
        (bet, reg, [("out_mask", "mask_file")]),
        (conform, warnings, [("warnings", "in1")]),
        (bet, warnings, [("warnings", "in2")]),
        (reg, listify, [("forward", "in1")]),
        (std, t1w_mni, [("out_file", "in_file")]),
        (bet, mask_mni, [("out_mask", "in_file")]),
        (seg, probs_mni, [("probseg", "in_file")]),
        (reg, t1w_mni, [("reference", "reference")]),
        (reg, mask_mni, [("reference", "reference")]),
        (reg, probs_mni, [("reference", "reference")]),
        (listify, t1w_mni, [("out", "transforms")]),
        (listify, mask_mni, [("out", "transforms")]),
        (listify, probs_mni, [("out", "transforms")]),
        (std, tensor, [("out_file", "in_file")]),
        (bet, tensor, [("out_mask", "mask_file")]),
        (reg, tensor, [("forward", "transform")]),
        (warnings, tensor, [("out", "warnings")]),
        (tensor, ds_tensor, [("out_file", "inputnode.tensor"), ("meta", "inputnode.meta")]),
        (n4, outputnode, [("out_file", "t1w_preproc")]),
        (bet, outputnode, [("out_mask", "t1w_mask")]),
        (std, outputnode, [("out_file", "t1w_std")]),
        (reg, outputnode, [("forward", "t1w2mni_xfm"), ("inverse", "mni2t1w_xfm")]),
        (seg, outputnode, [("probseg", "probseg")]),
        (probs_mni, outputnode, [("out_file", "probseg_std")]),
        (tensor, outputnode, [("out_file", "tensor")]),
    ])

    def sink(node_name, meta=None, **kwargs):
        return ds_node(node_name, out_dir=out_dir, source_file=source, meta=merge_sidecar({"Sources": sources}, meta),
                       **kwargs)

    mni = {"space": TEMPLATE_SPACE, "res": "2"}
    ds_preproc = sink("ds_t1w_preproc", datatype="anat", suffix="T1w", desc="preproc",
                      meta={"BiasCorrection": intensity.N4_METHOD})
    ds_mask = sink("ds_t1w_mask", datatype="anat", suffix="mask", desc="brain",
                   meta={"Type": "Brain", "Method": brainmask.METHOD})
    ds_mni = sink("ds_t1w_mni", datatype="anat", suffix="T1w", desc="preproc", **mni, skull_stripped=True,
                  meta={"Standardisation": intensity.STANDARDISATION, "Registration": reg_text[registration],
                        "Interpolation": "linear (antspyx), one resampling from the native T1w"})
    ds_mask_mni = sink("ds_mask_mni", datatype="anat", suffix="mask", desc="brain", **mni,
                       meta={"Type": "Brain", "Method": brainmask.METHOD,
                             "Interpolation": "linear (antspyx), thresholded at 0.5"})
    ds_fwd = sink("ds_t1w2mni_xfm", datatype="anat", suffix="xfm", from_="T1w", to=TEMPLATE_SPACE, mode="image",
                  extension=".h5", meta={"Method": reg_text[registration], "Format": "ITK composite transform (HDF5)"})
    ds_inv = sink("ds_mni2t1w_xfm", datatype="anat", suffix="xfm", from_=TEMPLATE_SPACE, to="T1w", mode="image",
                  extension=".h5", meta={"Method": reg_text[registration], "Format": "ITK composite transform (HDF5)"})
    workflow.connect([
        (n4, ds_preproc, [("out_file", "in_file")]),
        (bet, ds_preproc, [("skull_stripped", "skull_stripped")]),
        (bet, ds_mask, [("out_mask", "in_file"), ("skull_stripped", "skull_stripped")]),
        (t1w_mni, ds_mni, [("out_file", "in_file")]),
        (mask_mni, ds_mask_mni, [("out_file", "in_file")]),
        (reg, ds_fwd, [("forward", "in_file")]),
        (reg, ds_inv, [("inverse", "in_file")]),
    ])
    for index, label in enumerate(segmentation.TISSUES):
        pick = pe.Node(niu.Select(index=index), name=f"select_{label.lower()}", run_without_submitting=True)
        pick_mni = pe.Node(niu.Select(index=index), name=f"select_{label.lower()}_mni", run_without_submitting=True)
        ds_native = sink(f"ds_{label.lower()}_probseg", datatype="anat", suffix="probseg", label=label,
                         meta={"Method": segmentation.METHOD})
        ds_in_mni = sink(f"ds_{label.lower()}_probseg_mni", datatype="anat", suffix="probseg", label=label, **mni,
                         meta={"Method": segmentation.METHOD, "Interpolation": "linear (antspyx)"})
        workflow.connect([
            (seg, pick, [("probseg", "inlist")]), (pick, ds_native, [("out", "in_file")]),
            (probs_mni, pick_mni, [("out_file", "inlist")]), (pick_mni, ds_in_mni, [("out", "in_file")]),
        ])

    # reportlets
    plot_mask = pe.Node(Reportlet(kind="brainmask"), name="plot_brainmask")
    plot_norm = pe.Node(Reportlet(kind="normalisation"), name="plot_normalisation")
    plot_seg = pe.Node(Reportlet(kind="segmentation"), name="plot_segmentation")
    ds_plot_mask = sink("ds_plot_brainmask", datatype="figures", suffix="mask", desc="brain", extension=".svg")
    ds_plot_norm = sink("ds_plot_normalisation", datatype="figures", suffix="T1w", space=TEMPLATE_SPACE,
                        extension=".svg")
    ds_plot_seg = sink("ds_plot_segmentation", datatype="figures", suffix="dseg", extension=".svg")
    workflow.connect([
        (n4, plot_mask, [("out_file", "background")]),
        (bet, plot_mask, [("out_mask", "overlays")]),
        (t1w_mni, plot_norm, [("out_file", "background")]),
        (n4, plot_seg, [("out_file", "background")]),
        (seg, plot_seg, [("probseg", "overlays")]),
        (plot_mask, ds_plot_mask, [("out_file", "in_file")]),
        (plot_norm, ds_plot_norm, [("out_file", "in_file")]),
        (plot_seg, ds_plot_seg, [("out_file", "in_file")]),
    ])
    return workflow
