"""Functional preprocessing of one resting-state BOLD run: non-steady-state volumes, reference and mask,
head motion, coregistration to the T1w, one-shot resampling into MNI152NLin2009aSym, confounds, QC."""

from __future__ import annotations

from pathlib import Path


def bold_sidecar(base: dict, dummy_scans: int, extra: dict | None = None) -> dict:
    """Sidecar of a functional derivative: ``base`` plus ``NonSteadyStateVolumes`` (and ``extra``)."""
    from bidsad.workflows.outputs import merge_sidecar

    return merge_sidecar(base, {"NonSteadyStateVolumes": int(dummy_scans)}, extra)


def init_func_preproc_wf(*, run, bids_dir: Path, out_dir: str, preset: str, denoise: str = "none",
                         omp_nthreads: int = 1, seed: int = 0, name: str = "func_preproc_wf"):
    """Preprocess one ``task-rest`` BOLD run and write its derivatives and reportlets.

    Steps:

    1. conform (:func:`bidsad.interfaces.images.conform_image`: float32, RAS+, finite);
    2. non-steady-state volumes (:func:`bidsad.interfaces.motion.nonsteady_volumes`), BOLD reference
       (median of the first steady-state volumes) and its brain mask (nilearn ``compute_epi_mask``);
    3. head motion: every volume realigned rigidly to the reference (least squares), six parameters in
       fMRIPrep's convention (:mod:`bidsad.interfaces.motion`);
    4. coregistration of the brain-extracted reference to the brain-extracted T1w (antspyx rigid, Mattes
       mutual information);
    5. one interpolation per volume from the original into ``MNI152NLin2009aSym`` at 3 mm and onto the
       preset's model grid (:mod:`bidsad.interfaces.resample`), non-steady-state volumes removed;
    6. confounds (:mod:`bidsad.interfaces.confounds`, fMRIPrep's column names) and ``--denoise`` of the
       model-grid BOLD;
    7. reportlets: carpet plot with FD and DVARS, BOLD reference edges on the T1w, tSNR map.

    Parameters
    ----------
    run : :class:`bidsad.bids.BoldRun` (``path``, ``repetition_time`` in s, ``n_volumes``).
    bids_dir, out_dir : dataset roots; ``preset``: model grid (:data:`bidsad.derivatives.PRESETS`).
    denoise : ``none`` or ``basic`` (:data:`bidsad.interfaces.confounds.DENOISE_METHOD`).

    ``inputnode``: ``t1w_preproc``, ``t1w_mask``, ``t1w2mni_xfm``, ``probseg`` (the anatomical
    workflow's outputs). ``outputnode``: ``bold_std`` (float32 4-D, MNI 3 mm), ``bold_mask_std``
    (uint8 3-D), ``bold_model`` (float32 4-D, model grid in MNI, denoised when requested),
    ``confounds`` (TSV path), ``repetition_time`` (s), ``dummy_scans`` (int), ``denoise`` (the
    sidecar's ``Denoise`` record), ``warnings`` (list of str).
    """
    from nipype.interfaces import utility as niu
    from nipype.pipeline import engine as pe

    from bidsad.derivatives import PRESETS, TEMPLATE_SPACE, bold_model_grid
    from bidsad.derivatives.naming import bids_uri
    from bidsad.interfaces import confounds, motion, resample
    from bidsad.interfaces.images import ConformImage
    from bidsad.interfaces.registration import COREG_METHOD, CoregisterBold
    from bidsad.interfaces.reportlets import FUNC_KINDS, FuncReportlet
    from bidsad.utils import relpath
    from bidsad.workflows.outputs import ds_node

    source = str(run.path)
    display = relpath(run.path, bids_dir)
    tr = float(run.repetition_time)
    shape = tuple(PRESETS[preset]["bold_shape"])
    model_affine = bold_model_grid(shape)
    base_meta = {
        "Sources": [bids_uri(run.path, bids_dir)], "RepetitionTime": tr, "TaskName": "rest",
        "SkullStripped": False, "NonSteadyStateMethod": motion.NONSTEADY_METHOD,
        "MotionCorrection": motion.MOTION_METHOD, "Coregistration": COREG_METHOD,
    }

    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=["t1w_preproc", "t1w_mask", "t1w2mni_xfm", "probseg"]),
                        name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["bold_std", "bold_mask_std", "bold_model", "confounds",
                                                       "repetition_time", "dummy_scans", "denoise", "warnings"]),
                         name="outputnode")
    outputnode.inputs.repetition_time = tr

    conform = pe.Node(ConformImage(in_file=source, ndim=4, kind="BOLD", display_name=display,
                                   repetition_time=run.repetition_time),
                      name="conform_bold", mem_gb=max(run.mem_gb, 0.1))
    boldref = pe.Node(motion.BoldReference(), name="bold_reference")
    hmc = pe.Node(motion.HeadMotion(), name="head_motion")
    coreg = pe.Node(CoregisterBold(seed=seed), name="coregister", mem_gb=1.0)
    to_std = pe.Node(resample.BoldToStandard(model_shape=shape, model_affine=model_affine.tolist(),
                                             repetition_time=tr),
                     name="bold_to_std", mem_gb=2.0)
    confs = pe.Node(confounds.Confounds(), name="confounds")
    clean = pe.Node(confounds.DenoiseImage(repetition_time=tr, strategy=denoise, display_name=display),
                    name="denoise")
    warnings = pe.Node(niu.Merge(2, ravel_inputs=True), name="warnings", run_without_submitting=True)

    workflow.connect([
        (conform, boldref, [("out_file", "in_file")]),
        (conform, hmc, [("out_file", "in_file")]),
        (boldref, hmc, [("ref_file", "ref_file")]),
        (boldref, coreg, [("ref_file", "ref_file"), ("mask_file", "ref_mask")]),
        (inputnode, coreg, [("t1w_preproc", "t1w_file"), ("t1w_mask", "t1w_mask")]),
        (conform, to_std, [("out_file", "bold_file")]),
        (boldref, to_std, [("ref_file", "ref_file"), ("mask_file", "mask_file"), ("dummy_scans", "dummy_scans")]),
        (hmc, to_std, [("matrices", "matrices")]),
        (coreg, to_std, [("transform", "coreg")]),
        (inputnode, to_std, [("t1w2mni_xfm", "t1w2mni")]),
        (to_std, confs, [("bold_all", "bold_file"), ("mask_std", "mask_file")]),
        (hmc, confs, [("params", "params")]),
        (boldref, confs, [("dummy_scans", "dummy_scans")]),
        (inputnode, confs, [("probseg", "tissue_files"), ("t1w2mni_xfm", "t1w2mni")]),
        (to_std, clean, [("bold_model", "in_file")]),
        (confs, clean, [("out_file", "confounds")]),
        (boldref, clean, [("dummy_scans", "dummy_scans")]),
        (conform, warnings, [("warnings", "in1")]),
        (clean, warnings, [("warnings", "in2")]),
        (to_std, outputnode, [("bold_std", "bold_std"), ("mask_std", "bold_mask_std")]),
        (clean, outputnode, [("out_file", "bold_model"), ("record", "denoise")]),
        (confs, outputnode, [("out_file", "confounds")]),
        (boldref, outputnode, [("dummy_scans", "dummy_scans")]),
        (warnings, outputnode, [("out", "warnings")]),
    ])

    def sink(node_name, **kwargs):
        return ds_node(node_name, out_dir=out_dir, source_file=source, **kwargs)

    def sidecar(node_name, extra=None):
        node = pe.Node(niu.Function(input_names=["base", "dummy_scans", "extra"], output_names=["meta"],
                                    function=bold_sidecar), name=node_name, run_without_submitting=True)
        node.inputs.base = base_meta
        node.inputs.extra = extra or {}
        workflow.connect(boldref, "dummy_scans", node, "dummy_scans")
        return node

    std = {"space": TEMPLATE_SPACE, "res": "3"}
    meta_bold = sidecar("meta_bold_std", {"Interpolation": resample.INTERPOLATION})
    meta_mask = sidecar("meta_mask_std", {"Type": "Brain", "Method": "nilearn compute_epi_mask of the BOLD reference, "
                                          "resampled with the BOLD (linear, > 0.5)"})
    meta_conf = pe.Node(niu.Function(input_names=["base", "dummy_scans", "extra"], output_names=["meta"],
                                     function=bold_sidecar), name="meta_confounds", run_without_submitting=True)
    meta_conf.inputs.base = {k: base_meta[k] for k in ("Sources", "RepetitionTime", "NonSteadyStateMethod",
                                                       "MotionCorrection")}
    ds_bold = sink("ds_bold_std", datatype="func", suffix="bold", desc="preproc", **std)
    ds_mask = sink("ds_bold_mask_std", datatype="func", suffix="mask", desc="brain", **std)
    ds_conf = sink("ds_confounds", datatype="func", suffix="timeseries", desc="confounds", extension=".tsv")
    workflow.connect([
        (meta_bold, ds_bold, [("meta", "meta_dict")]), (to_std, ds_bold, [("bold_std", "in_file")]),
        (meta_mask, ds_mask, [("meta", "meta_dict")]), (to_std, ds_mask, [("mask_std", "in_file")]),
        (boldref, meta_conf, [("dummy_scans", "dummy_scans")]), (confs, meta_conf, [("meta", "extra")]),
        (meta_conf, ds_conf, [("meta", "meta_dict")]), (confs, ds_conf, [("out_file", "in_file")]),
    ])

    # reportlets
    plot_carpet = pe.Node(FuncReportlet(kind="carpet", repetition_time=tr), name="plot_carpet")
    plot_coreg = pe.Node(FuncReportlet(kind="coregistration"), name="plot_coregistration")
    plot_tsnr = pe.Node(FuncReportlet(kind="tsnr"), name="plot_tsnr")
    def figure(kind):
        return {"Description": f"{FUNC_KINDS[kind]} ({display})", "Sources": base_meta["Sources"]}

    ds_carpet = sink("ds_plot_carpet", datatype="figures", suffix="bold", desc="carpetplot", extension=".svg",
                     meta_dict=figure("carpet"))
    ds_coreg = sink("ds_plot_coreg", datatype="figures", suffix="bold", desc="coreg", extension=".svg",
                    meta_dict=figure("coregistration"))
    ds_tsnr = sink("ds_plot_tsnr", datatype="figures", suffix="bold", desc="tsnr", extension=".svg", **std,
                   meta_dict=figure("tsnr"))
    workflow.connect([
        (to_std, plot_carpet, [("bold_std", "bold"), ("mask_std", "mask")]),
        (confs, plot_carpet, [("out_file", "confounds")]),
        (boldref, plot_carpet, [("dummy_scans", "dummy_scans")]),
        (inputnode, plot_coreg, [("t1w_preproc", "background")]),
        (coreg, plot_coreg, [("ref_in_t1w", "overlay")]),
        (to_std, plot_tsnr, [("bold_std", "bold"), ("mask_std", "mask")]),
        (plot_carpet, ds_carpet, [("out_file", "in_file")]),
        (plot_coreg, ds_coreg, [("out_file", "in_file")]),
        (plot_tsnr, ds_tsnr, [("out_file", "in_file")]),
    ])
    return workflow
