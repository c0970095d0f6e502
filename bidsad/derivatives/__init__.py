"""THE contract between the participant level and the group level: the one home of every name both sides use.

The participant level writes, and the group level (cohort, baselines, reports, apply) reads, only what is
named here:

- the template space and the model grids per preset (:data:`PRESETS`, :func:`resize_mri_volume_grid`,
  :func:`bold_model_grid`);
- every participant-level file the group level reads, as an :class:`Output` (datatype folder, entities,
  suffix, extension): the model tensors (:data:`MRI_TENSORS`, :data:`BOLD_TENSOR`; their sidecars hold the
  frame mask), the regional grey-matter tables (:data:`GM_MORPH`, :data:`VOLUMES_MORPH`), the ROI time series
  and connectivity (:data:`ROI_TIMESERIES`, :data:`RELMAT`), the modulated grey matter (:func:`modulated_gm`,
  :data:`VOXEL_GM`), the GM probability at 4 mm (:data:`GM_PROBSEG_4MM`) and the preprocessed images whose
  sidecars the methods text reads (:data:`PREPROC_T1W_STD`, :data:`PREPROC_BOLD`);
- the tensor sidecar keys (:data:`PARAMETERS_HASH_KEY`, :data:`CONTENT_HASH_KEY`, :data:`SOURCES_KEY`, ...)
  and the parameters the ``ParametersHash`` covers (:data:`HASHED_PARAMETERS`, :func:`parameters_hash`);
- the group/ layout (:data:`GROUP_DIR`, :data:`COHORT_TSV`, :data:`SPLITS_TSV`, :data:`METRICS_JSON` ...).

File names themselves are made by :func:`bidsad.derivatives.naming.derivative_path` (writers, through
:class:`bidsad.interfaces.bids.DerivativesDataSink`) from :meth:`Output.entities`; readers glob with
:meth:`Output.pattern`; ``tests/test_contract.py`` checks that both agree. ``dataset_description.json`` and
``.bidsignore`` are :mod:`bidsad.derivatives.description`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: The template space of every ``space-`` output: nilearn's ICBM 2009a nonlinear symmetric template.
TEMPLATE_SPACE = "MNI152NLin2009aSym"

#: Model-input grids. Spatial shapes are in RAS axis order (x, y, z), in voxels; ``frames`` in volumes.
#: ``paper``: the sizes of Kujur & Monfared (2026), MRI 128x128x176 and fMRI 216 frames of 64x64x32.
#: ``small``: a grid that trains on a 2-core CPU in minutes (demo, tests).
PRESETS: dict[str, dict] = {
    "paper": {"mri_shape": (128, 128, 176), "bold_shape": (64, 64, 32), "frames": 216},
    "small": {"mri_shape": (48, 56, 48), "bold_shape": (24, 28, 20), "frames": 16},
}
#: Field of view (mm, RAS x, y, z) of the fMRI model grid, centred on the MNI template box.
#: Sized to the MNI152 brain (about 150 x 190 x 160 mm) with a margin.
GRID_FOV_MM = (180.0, 216.0, 180.0)
#: Field of view (mm) and centre (mm) of the MRI model grid: nilearn's 1 mm MNI152NLin2009aSym template box.
TEMPLATE_FOV_MM = (197.0, 233.0, 189.0)
TEMPLATE_CENTER_MM = (0.0, -18.0, 22.0)


def grid_affine(center_mm, fov_mm, shape):
    """Affine (4x4 float64, RAS+, mm) of a grid of ``shape`` voxels spanning ``fov_mm`` centred at ``center_mm``."""
    import numpy as np

    voxel = np.asarray(fov_mm, float) / np.asarray(shape, float)
    affine = np.diag([*voxel, 1.0])
    # voxel centres span the FOV: first centre at center - fov/2 + voxel/2
    affine[:3, 3] = np.asarray(center_mm, float) - np.asarray(fov_mm, float) / 2 + voxel / 2
    return affine


def resize_mri_volume_grid(shape):
    """Affine (4x4, RAS+, mm) of the MRI model grid of ``shape`` voxels in ``MNI152NLin2009aSym``.

    The paper's ``resize_mri_volume`` resizes the whole MRI volume to 128x128x176; here the volume is
    the template's 1 mm box (:data:`TEMPLATE_FOV_MM`, edges from -98.5 to 98.5, -134.5 to 98.5 and
    -72.5 to 116.5 mm) and its edges map onto the grid's edges, so voxels are ``fov / shape`` mm.
    """
    return grid_affine(TEMPLATE_CENTER_MM, TEMPLATE_FOV_MM, shape)


def mri_axial_slices(shape, z_mm) -> list[int]:
    """Voxel indices (ints, ascending, each once) of the axial slices of the MRI model grid of ``shape``
    (:func:`resize_mri_volume_grid`) whose centres are nearest to the MNI z positions ``z_mm`` (mm); two positions
    nearer to one slice than to any other (a coarse grid) give that slice once.

    Raises
    ------
    ValueError
        ``z_mm`` is empty or holds a position outside the grid's field of view (-72.5 to 116.5 mm).
    """
    import numpy as np

    affine = resize_mri_volume_grid(shape)
    n_z, step, first = int(shape[2]), affine[2, 2], affine[2, 3]
    low, high = first - step / 2, first + (n_z - 0.5) * step
    z_mm = [float(z) for z in z_mm]
    if not z_mm or not all(low <= z <= high for z in z_mm):
        raise ValueError(f"axial slice positions {z_mm} mm: need one or more within the MRI grid's z range "
                         f"{low:g} to {high:g} mm")
    return sorted({int(min(n_z - 1, max(0, np.floor((z - first) / step + 0.5)))) for z in z_mm})


def bold_model_grid(shape):
    """Affine (4x4, RAS+, mm) of the fMRI model grid in ``MNI152NLin2009aSym``: :data:`GRID_FOV_MM`
    (180 x 216 x 180 mm) centred on the template box's centre, ``shape`` voxels (paper: 64x64x32 voxels of
    about 2.8 x 3.4 x 5.6 mm). The functional workflow's ``bold_model`` uses the same grid."""
    return grid_affine(TEMPLATE_CENTER_MM, GRID_FOV_MM, shape)


@dataclass(frozen=True)
class Output:
    """One participant-level file of the contract.

    ``datatype`` is the folder under ``sub-<l>/[ses-<s>/]``; ``entities`` are the derivative entities as
    ``(key, value)`` pairs, a value of ``None`` being given per file (``res`` = the preset, ``atlas`` ...);
    the source file's own entities (``sub``, ``ses``, ``task``, ``run`` ...) come first in the name.
    """

    datatype: str
    suffix: str
    extension: str
    entities: tuple = ()

    def entities_for(self, **values) -> dict:
        """The derivative entities with the ``None`` ones filled from ``values`` (missing: left ``None``)."""
        return {key: values.get(key, value) if value is None else value for key, value in self.entities}

    def sink_args(self, **values) -> dict:
        """Keyword arguments of :func:`bidsad.derivatives.naming.derivative_path` and
        :class:`bidsad.interfaces.bids.DerivativesDataSink` for this file: ``datatype``, ``suffix``,
        ``extension`` and the entities (``values`` fill the open ones, e.g. ``res="small"``)."""
        return {"datatype": self.datatype, "suffix": self.suffix, "extension": self.extension,
                **{key: value for key, value in self.entities_for(**values).items() if value is not None}}

    def ending(self, **values) -> str:
        """The end of the file name after the source entities, in BIDS entity order, with ``*`` for open
        entities not in ``values`` (``atlas-*_desc-gm_morph.tsv``)."""
        from bidsad.derivatives.naming import entity_order

        order = entity_order()
        entities = self.entities_for(**values)
        keys = sorted(entities, key=lambda key: order.index(key) if key in order else len(order))
        return "_".join([f"{key}-{'*' if entities[key] is None else entities[key]}" for key in keys]
                        + [f"{self.suffix}{self.extension}"])

    @property
    def end(self) -> str:
        """``_<suffix><extension>`` (``_timeseries.tsv``): how every such file name ends."""
        return f"_{self.suffix}{self.extension}"

    def sidecar_glob(self) -> str:
        """Glob (under ``out_dir``) of the JSON sidecars of this file, every participant, session and run."""
        return f"sub-*/**/{self.datatype}/*_{self.ending()[: -len(self.extension)]}.json"

    def tail(self) -> str:
        """The fixed end of the name, without open entities or extension (``label-GM_desc-model_probseg``)."""
        return "_".join([f"{key}-{value}" for key, value in self.entities if value is not None] + [self.suffix])

    def pattern(self, label: str = "*", source: str = "", **values) -> str:
        """Glob of this file's name for participant ``label`` (``sub-<label>*_[<source>*_]<ending>``);
        ``source`` restricts a source entity (``task-rest``)."""
        return f"sub-{label}*_" + (f"{source}*_" if source else "") + self.ending(**values)

    def find(self, participant_dir: Path, source: str = "", **values) -> list[Path]:
        """This file of one participant (``out_dir/sub-<l>``), every session and run, sorted; only files
        in a ``datatype`` folder."""
        participant_dir = Path(participant_dir)
        label = participant_dir.name.removeprefix("sub-")
        return sorted(p for p in participant_dir.rglob(self.pattern(label, source, **values))
                      if p.parent.name == self.datatype)


#: Folder of the model-input tensors (``sub-<l>/[ses-<s>/]features/``) and their ``desc-`` label.
FEATURES_DIR = "features"
MODEL_DESC = "model"
#: Glob (under ``out_dir``) of every model tensor's sidecar.
TENSOR_SIDECARS = f"sub-*/**/*_desc-{MODEL_DESC}_*.json"
#: The MRI model tensor by ``--mri-input`` (:data:`bidsad.config.MRI_INPUTS`): the standardised T1w or the
#: Jacobian-modulated grey matter, both on the MRI grid of the preset (``res-<preset>``).
MRI_TENSORS = {
    "t1w": Output(FEATURES_DIR, "T1w", ".npy", (("res", None), ("desc", MODEL_DESC))),
    "gm": Output(FEATURES_DIR, "probseg", ".npy", (("res", None), ("label", "GM"), ("desc", MODEL_DESC))),
}
#: The fMRI model tensor (frames, x, y, z); its sidecar holds the frame mask (:data:`FRAME_MASK_KEY`).
BOLD_TENSOR = Output(FEATURES_DIR, "bold", ".npy", (("res", None), ("desc", MODEL_DESC)))


def stale_tensor_glob(preset: str) -> str:
    """Glob (under ``sub-<l>``) of every model tensor of ``preset`` and its sidecar, any kind: what a new
    participant run replaces."""
    return f"{FEATURES_DIR}/*_res-{preset}_*desc-{MODEL_DESC}_*"


#: Native grey-matter volume (ml) per region of a parcellation (columns ``index``, ``name``, ``volume_ml``,
#: ``fraction_of_tiv``).
GM_MORPH = Output("anat", "morph", ".tsv", (("atlas", None), ("desc", "gm")))
#: TIV, tissue and medial-temporal volumes (ml).
VOLUMES_MORPH = Output("anat", "morph", ".tsv", (("desc", "volumes"),))
#: ROI time series (header = region names, one row per volume).
ROI_TIMESERIES = Output("func", "timeseries", ".tsv", (("space", TEMPLATE_SPACE), ("atlas", None)))
#: ROI-to-ROI Pearson correlation matrix.
RELMAT = Output("func", "relmat", ".tsv", (("space", TEMPLATE_SPACE), ("atlas", None), ("stat", "pearsoncorrelation")))
#: Grey-matter probability at 4 mm in the template space.
GM_PROBSEG_4MM = Output("anat", "probseg", ".nii.gz", (("space", TEMPLATE_SPACE), ("res", "4"), ("label", "GM")))
#: The preprocessed T1w in the template space (the methods text reads its sidecar's ``Registration``; the writer
#: adds ``res-``).
PREPROC_T1W_STD = Output("anat", "T1w", ".nii.gz", (("space", None), ("desc", "preproc")))
#: A preprocessed BOLD run (the methods text reads its sidecar; the writer adds ``space-`` and ``res-``).
PREPROC_BOLD = Output("func", "bold", ".nii.gz", (("desc", "preproc"),))


def modulated_gm(res: str) -> Output:
    """Jacobian-modulated grey matter in the template space at ``res`` mm (``"2"`` or ``"4"``)."""
    return Output("anat", "probseg", ".nii.gz", (("space", TEMPLATE_SPACE), ("res", res), ("label", "GM"),
                                                 ("desc", "modulated")))


#: The voxel-wise GM map of the ``voxel-svm`` baseline: the modulated grey matter at 4 mm.
VOXEL_GM = modulated_gm("4")

#: Tensor sidecar keys the group level reads.
PARAMETERS_HASH_KEY = "ParametersHash"
#: Tensor sidecar key of :func:`image_content_hash` of the participant's source T1w (the leakage checks' key).
CONTENT_HASH_KEY = "SourceContentHash"
#: BIDS URIs (``bids:raw:...``, :func:`bidsad.derivatives.naming.bids_uri`) of a derivative's source files.
SOURCES_KEY = "Sources"
#: ``bidsad`` or ``fmriprep``: whose preprocessing made the derivative.
PREPROCESSING_SOURCE_KEY = "PreprocessingSource"
#: Real frames (true) and padding (false) of an fMRI tensor.
FRAME_MASK_KEY = "frame_mask"
#: Sidecar fields that must agree between participants for their tensors to be used together; the
#: ``ParametersHash`` is over exactly these.
HASHED_PARAMETERS = ("preset", "shape", "dtype", "voxel_size_mm", "field_of_view_mm", "frames",
                     "Normalisation", "Interpolation")


def parameters_hash(meta: dict) -> str:
    """``ParametersHash`` of a tensor sidecar: :func:`bidsad.utils.params_hash` of its
    :data:`HASHED_PARAMETERS` (missing ones as ``None``)."""
    from bidsad.utils import params_hash

    return params_hash({key: meta.get(key) for key in HASHED_PARAMETERS})


def image_content_hash(path: Path) -> str:
    """``sha256:<hex>`` of an image's decoded voxel array: its shape, dtype (little-endian) and bytes.

    The array is nibabel's ``dataobj`` as stored (scaling applied), so a renamed, recompressed or
    re-headered copy of the same scan has the same hash, whatever its file name or gzip level; a
    resampled or re-typed copy does not. Raises nibabel's / the OS's errors for unreadable files.
    """
    import nibabel as nb
    import numpy as np

    return array_content_hash(np.asanyarray(nb.load(str(path)).dataobj))


def array_content_hash(data) -> str:
    """``sha256:<hex>`` of an array's shape, dtype (as little-endian) and bytes (C order)."""
    import hashlib

    import numpy as np

    data = np.asarray(data)
    data = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<"))
    digest = hashlib.sha256(f"{data.shape}|{data.dtype.str}|".encode())
    digest.update(data.tobytes())
    return f"sha256:{digest.hexdigest()}"


#: The group level's folder in ``out_dir`` and its files.
GROUP_DIR = "group"
COHORT_TSV = "cohort.tsv"
COHORT_JSON = "cohort.json"
SPLITS_TSV = "splits.tsv"
METRICS_JSON = "metrics.json"
METRICS_TSV = "metrics.tsv"
GROUP_HTML = "group.html"
GROUP_FIGURES_DIR = "figures"
MODEL_CARD_JSON = "model_card.json"
#: Per model and fold (``model-<name>/[repeat-<r>_]fold-<k>/``): the model, its history, its predictions;
#: per model, the pooled ``predictions.tsv``.
MODEL_FILE = "model.keras"
HISTORY_TSV = "history.tsv"
PREDICTIONS_TSV = "predictions.tsv"
#: Sidecar of an ``--apply-models`` run's ``group/predictions.tsv`` (its presence marks such a run).
PREDICTIONS_JSON = "predictions.json"


#: Per model: ``model-<name>/saliency/[space-<space>_]label-<class>_desc-saliency_map.nii.gz`` (mean gradient
#: saliency of a class) and, beside it, ``..._desc-meaninput_T1w.nii.gz`` (mean MRI input, the figure's background).
SALIENCY_DIR = "saliency"
SALIENCY_MAP = "desc-saliency_map"
SALIENCY_MEAN_INPUT = "desc-meaninput_T1w"


def model_dir(group_dir: Path, name: str, kind: str = "model") -> Path:
    """``group/model-<name>`` (``kind="baseline"``: ``group/baseline-<name>``)."""
    return Path(group_dir) / f"{kind}-{name}"
