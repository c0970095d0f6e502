"""Participant features: BOLD model tensor, ROI time series, connectivity, grey-matter features."""

from __future__ import annotations

#: Fields of the anatomical input node (the anatomical workflow's outputnode).
ANAT_FIELDS = ["probseg", "probseg_std", "t1w_mask", "t1w2mni_xfm", "mni2t1w_xfm"]
FRACTION_OF_TIV = "volume_ml divided by the total intracranial volume (TIV) of the same T1w (unitless)"
#: Fields of each run's input node (the functional workflow's outputnode; the layers and the participant-to-group
#: contract are described in docs/architecture.md and :mod:`bidsad.derivatives`).
BOLD_FIELDS = ["bold_std", "bold_mask_std", "bold_model", "confounds", "repetition_time", "dummy_scans"]
#: Optional fields of each run's input node: ``denoise`` (dict recorded as the tensor's ``Denoise``) and
#: ``warnings`` (list of str recorded in the tensor sidecar).
OPTIONAL_BOLD_FIELDS = ["denoise", "warnings"]


def init_features_wf(*, out_dir: str, t1w_source: str, bold_sources: list[str], preset: str,
                     sources: dict, source: str = "bidsad", bold_interpolation: str | None = None,
                     registration: str = "syn", name: str = "features_wf"):
    """Features of one participant from its preprocessed images.

    Anatomical (``inputnode``: ``probseg`` native CSF/GM/WM maps, ``probseg_std`` the same in
    ``MNI152NLin2009aSym`` at 2 mm, ``t1w_mask`` the native brain mask, ``t1w2mni_xfm`` and ``mni2t1w_xfm``;
    all from :mod:`bidsad.interfaces.morphometry`):

    File names are those of :mod:`bidsad.derivatives` (the contract with the group level):

    - ``anat/<t1w entities>_space-MNI152NLin2009aSym_res-4_label-GM_probseg.nii.gz``: GM probability at
      4 mm (2x2x2 block mean of the 2 mm map);
    - ``anat/<t1w entities>_space-MNI152NLin2009aSym_res-{2,4}_label-GM_desc-modulated_probseg.nii.gz``:
      Jacobian-modulated GM (ml of native GM per ml of template; the 4 mm map is the 2x2x2 block mean of the
      2 mm one) and ``features/<t1w entities>_res-<preset>_label-GM_desc-model_probseg.npy``, the same on
      the MRI model grid (a model input, ``--mri-input gm``). ``registration`` (``syn``, ``affine`` or
      ``fmriprep``) names what the Jacobian holds in the sidecars (:data:`JACOBIAN_SOURCE`);
    - ``anat/<t1w entities>_atlas-gmkmeans100_desc-gm_morph.tsv``: native GM volume (ml) per region of the
      shipped parcellation (:mod:`bidsad.atlases`) and as a fraction of the total intracranial volume;
    - ``anat/<t1w entities>_desc-volumes_morph.tsv``: native TIV, CSF, GM, WM and approximate
      medial-temporal GM volumes (ml and fractions of TIV).

    Per BOLD run ``i`` (``bold_inputnode_<i>`` with :data:`BOLD_FIELDS`; ``bold_sources[i]`` its raw file):

    - ``features/<bold entities>_res-<preset>_desc-model_bold.npy`` (+ JSON): the fMRI model tensor from
      ``bold_model`` (:func:`bidsad.interfaces.tensors.make_bold_tensor`);
    - ``func/<bold entities>_space-MNI152NLin2009aSym_atlas-power2011_timeseries.tsv`` and
      ``..._atlas-power2011_stat-pearsoncorrelation_relmat.tsv`` from ``bold_std``
      (:mod:`bidsad.interfaces.connectivity`).

    ``sources`` maps each source file (``t1w_source`` and each of ``bold_sources``) to its BIDS URI;
    ``source`` (``bidsad`` or ``fmriprep``) is recorded as ``PreprocessingSource`` in every sidecar.
    ``bold_interpolation`` overrides the BOLD tensor's recorded interpolation (fMRIPrep input).
    """
    from nipype.interfaces import utility as niu
    from nipype.pipeline import engine as pe

    from bidsad.atlases import ATLAS_INFO, PARCELLATION, ROI_ATLAS
    from bidsad.derivatives import (BOLD_TENSOR, GM_MORPH, GM_PROBSEG_4MM, PREPROCESSING_SOURCE_KEY, PRESETS, RELMAT,
                                    ROI_TIMESERIES, SOURCES_KEY, TEMPLATE_SPACE)
    from bidsad.interfaces.connectivity import RoiConnectivity
    from bidsad.interfaces.morphometry import GM_4MM_METHOD, REGIONAL_METHOD, GmProbability4mm, RegionalGmVolumes
    from bidsad.interfaces.tensors import BoldTensor
    from bidsad.workflows.outputs import ds_node, init_ds_tensor_wf, merge_sidecar

    grid = PRESETS[preset]
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=ANAT_FIELDS), name="inputnode")

    def provenance(source_file):
        return {SOURCES_KEY: [sources[source_file]], PREPROCESSING_SOURCE_KEY: source}

    def sink(node_name, source_file, meta, **kwargs):
        return ds_node(node_name, out_dir=out_dir, source_file=source_file,
                       meta=merge_sidecar(provenance(source_file), meta), **kwargs)

    pick_gm = pe.Node(niu.Select(index=1), name="select_gm", run_without_submitting=True)
    pick_gm_std = pe.Node(niu.Select(index=1), name="select_gm_std", run_without_submitting=True)
    gm4 = pe.Node(GmProbability4mm(), name="gm_res4")
    regional = pe.Node(RegionalGmVolumes(), name="regional_gm")
    ds_gm4 = sink("ds_gm_res4", t1w_source, {"Method": GM_4MM_METHOD, "Space": TEMPLATE_SPACE},
                  **GM_PROBSEG_4MM.sink_args())
    ds_morph = sink("ds_gm_morph", t1w_source, {"Atlas": PARCELLATION, "AtlasDescription": ATLAS_INFO[PARCELLATION],
                                                "License": ATLAS_INFO[PARCELLATION]["License"], "Method": REGIONAL_METHOD,
                                                "Columns": {"index": "region label in the parcellation",
                                                            "name": "region name",
                                                            "volume_ml": "native-space grey-matter volume (ml)",
                                                            "fraction_of_tiv": FRACTION_OF_TIV}},
                    **GM_MORPH.sink_args(atlas=PARCELLATION))
    workflow.connect([
        (inputnode, pick_gm, [("probseg", "inlist")]),
        (inputnode, pick_gm_std, [("probseg_std", "inlist")]),
        (pick_gm_std, gm4, [("out", "in_file")]),
        (pick_gm, regional, [("out", "gm_file")]),
        (inputnode, regional, [("mni2t1w_xfm", "transform")]),
        (gm4, ds_gm4, [("out_file", "in_file")]),
        (regional, ds_morph, [("out_file", "in_file")]),
    ])
    _connect_atrophy(workflow, inputnode, regional, sink, t1w_source=t1w_source, preset=preset, grid=grid,
                     provenance=provenance(t1w_source), registration=registration, out_dir=out_dir)

    for index, bold_source in enumerate(bold_sources):
        run_in = pe.Node(niu.IdentityInterface(fields=BOLD_FIELDS + OPTIONAL_BOLD_FIELDS),
                         name=f"bold_inputnode_{index}")
        extra = merge_sidecar({"preset": preset, "Modality": "bold"}, provenance(bold_source))
        tensor = pe.Node(BoldTensor(shape=grid["bold_shape"], frames=grid["frames"], meta=extra), name=f"bold_tensor_{index}")
        if bold_interpolation:
            tensor.inputs.interpolation = bold_interpolation
        meta = pe.Node(niu.Function(function=_tensor_meta, input_names=["meta", "repetition_time", "dummy_scans", "denoise"],
                                    output_names=["meta"]), name=f"bold_tensor_meta_{index}",
                       run_without_submitting=True)
        ds_tensor = init_ds_tensor_wf(out_dir=out_dir, source_file=bold_source, output=BOLD_TENSOR, preset=preset,
                                      name=f"ds_bold_tensor_{index}_wf")
        roi = pe.Node(RoiConnectivity(atlas=ROI_ATLAS), name=f"roi_connectivity_{index}")
        roi_meta = pe.Node(niu.Function(function=_with_sources, input_names=["meta", "extra"], output_names=["meta"]),
                           name=f"roi_meta_{index}", run_without_submitting=True)
        roi_meta.inputs.extra = provenance(bold_source)
        rel_meta = pe.Node(niu.Function(function=_with_sources, input_names=["meta", "extra"], output_names=["meta"]),
                           name=f"relmat_meta_{index}", run_without_submitting=True)
        rel_meta.inputs.extra = roi_meta.inputs.extra
        ds_ts = ds_node(f"ds_timeseries_{index}", out_dir=out_dir, source_file=bold_source,
                        **ROI_TIMESERIES.sink_args(atlas=ROI_ATLAS))
        ds_rel = ds_node(f"ds_relmat_{index}", out_dir=out_dir, source_file=bold_source,
                         **RELMAT.sink_args(atlas=ROI_ATLAS))
        workflow.connect([
            (run_in, tensor, [("bold_model", "in_file"), ("bold_mask_std", "mask_file"), ("warnings", "warnings")]),
            (tensor, meta, [("meta", "meta")]),
            (run_in, meta, [("repetition_time", "repetition_time"), ("dummy_scans", "dummy_scans"),
                            ("denoise", "denoise")]),
            (tensor, ds_tensor, [("out_file", "inputnode.tensor")]),
            (meta, ds_tensor, [("meta", "inputnode.meta")]),
            (run_in, roi, [("bold_std", "bold_file"), ("bold_mask_std", "mask_file"), ("confounds", "confounds"),
                           ("repetition_time", "repetition_time")]),
            (roi, roi_meta, [("timeseries_meta", "meta")]),
            (roi, rel_meta, [("relmat_meta", "meta")]),
            (roi, ds_ts, [("timeseries", "in_file")]),
            (roi_meta, ds_ts, [("meta", "meta_dict")]),
            (roi, ds_rel, [("relmat", "in_file")]),
            (rel_meta, ds_rel, [("meta", "meta_dict")]),
        ])
    return workflow


def _connect_atrophy(workflow, inputnode, regional, sink, *, t1w_source, preset, grid, provenance, registration,
                     out_dir):
    """Modulated GM (2 mm, 4 mm, model-grid tensor), tissue and medial-temporal volumes, TIV for ``regional``.

    ``grid``: the preset's grids (:data:`bidsad.derivatives.PRESETS`); ``provenance``: the T1w's ``Sources`` and
    ``PreprocessingSource`` sidecar fields."""
    from nipype.pipeline import engine as pe

    from bidsad.atlases import ATLAS_INFO, MTL_ATLAS
    from bidsad.derivatives import MRI_TENSORS, TEMPLATE_SPACE, VOLUMES_MORPH, modulated_gm
    from bidsad.interfaces.morphometry import (JACOBIAN_SOURCE, MODULATION_METHOD, VOLUMES_METHOD, ModulatedGm,
                                               TissueAndMtlVolumes)
    from bidsad.interfaces.tensors import GmTensor
    from bidsad.workflows.outputs import init_ds_tensor_wf, merge_sidecar

    jacobian = JACOBIAN_SOURCE[registration]
    modulated = pe.Node(ModulatedGm(), name="gm_modulated", mem_gb=1.0)
    volumes = pe.Node(TissueAndMtlVolumes(), name="tissue_mtl_volumes")
    tensor = pe.Node(GmTensor(shape=grid["mri_shape"], jacobian=jacobian,
                              meta=merge_sidecar({"preset": preset, "Modality": "GM"}, provenance)),
                     name="gm_tensor", mem_gb=1.0)
    ds_tensor = init_ds_tensor_wf(out_dir=out_dir, source_file=t1w_source, output=MRI_TENSORS["gm"],
                                  preset=preset, name="ds_gm_tensor_wf")
    meta = {"Method": MODULATION_METHOD, "Jacobian": jacobian, "Space": TEMPLATE_SPACE,
            "Units": "ml of native grey matter per ml of template space"}
    ds_mod = {res: sink(f"ds_gm_modulated_res{res}", t1w_source,
                        merge_sidecar(meta, {"Resampling": "2x2x2 block mean of the 2 mm map (keeps the integral)"}
                                      if res == "4" else None),
                        **modulated_gm(res).sink_args())
              for res in ("2", "4")}
    ds_volumes = sink("ds_volumes", t1w_source, {
        "Method": VOLUMES_METHOD, "Atlas": MTL_ATLAS, "AtlasDescription": ATLAS_INFO[MTL_ATLAS],
        "License": ATLAS_INFO[MTL_ATLAS]["License"],
        "Columns": {"name": "TIV (total intracranial volume), CSF, GM, WM (whole brain mask), then the approximate "
                            "medial-temporal regions <structure>_<left|right> (grey matter only)",
                    "volume_ml": "native-space volume (ml): the tissue, or the grey matter inside the region",
                    "fraction_of_tiv": FRACTION_OF_TIV,
                    "region_ml": "volume of the whole warped region in native space (ml, all tissues; n/a for "
                                 "the tissue rows)"}},
        **VOLUMES_MORPH.sink_args())
    workflow.connect([
        (inputnode, modulated, [("probseg", "probseg"), ("t1w2mni_xfm", "transform")]),
        (inputnode, tensor, [("probseg", "probseg"), ("t1w2mni_xfm", "transform")]),
        (inputnode, volumes, [("probseg", "probseg"), ("t1w_mask", "mask_file"), ("mni2t1w_xfm", "transform")]),
        (volumes, regional, [("tiv_ml", "tiv_ml")]),
        (modulated, ds_mod["2"], [("out_file", "in_file")]),
        (modulated, ds_mod["4"], [("out_4mm", "in_file")]),
        (volumes, ds_volumes, [("out_file", "in_file")]),
        (tensor, ds_tensor, [("out_file", "inputnode.tensor"), ("meta", "inputnode.meta")]),
    ])


def _tensor_meta(meta, repetition_time, dummy_scans, denoise=None):
    """Add the run's TR (s), removed non-steady-state volumes and denoising record to a tensor sidecar."""
    from bidsad.workflows.outputs import merge_sidecar

    return merge_sidecar(meta, {"RepetitionTime": float(repetition_time), "NonSteadyStateVolumes": int(dummy_scans)},
                         {"Denoise": dict(denoise)} if denoise else None)


def _with_sources(meta, extra):
    """``meta`` with the run's ``Sources`` and ``PreprocessingSource`` (``extra``)."""
    from bidsad.workflows.outputs import merge_sidecar

    return merge_sidecar(meta, extra)
