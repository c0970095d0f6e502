"""One run-wide configuration: documented sections, TOML save and load, seeding.

The command line fills a :class:`Config`; ``--config-file`` supplies defaults that the command
line overrides. Every run saves the configuration it used to ``<out_dir>/logs/`` so that a run
can be repeated exactly (``bidsad ... --config-file <that file>``).
"""

from __future__ import annotations

import dataclasses
import tomllib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from bidsad import __version__
from bidsad.derivatives import PRESETS

DEFAULT_SEED = 0

#: nipype execution plugins that ``--plugin`` accepts (``nipype.pipeline.plugins.<name>Plugin``).
#: Linear and MultiProc run on this machine; SLURM and SGE submit every node as a cluster job.
NIPYPE_PLUGINS = ("Linear", "MultiProc", "SLURM", "SGE")


@dataclass
class Execution:
    """Where the run reads and writes, and what it selects."""

    bids_dir: str | None = None
    """Root of the input BIDS dataset (never written to)."""
    out_dir: str | None = None
    """Root of the BIDS-Derivatives output dataset."""
    analysis_level: str = "participant"
    """``participant`` (preprocessing and features) or ``group`` (training and evaluation)."""
    work_dir: str | None = None
    """nipype's working directory (intermediate results; reused on rerun)."""
    participant_label: list[str] | None = None
    """Participant labels without the ``sub-`` prefix; ``None`` selects every participant."""
    bids_filters: dict | None = None
    """pybids queries that override the defaults for ``t1w`` and ``bold`` (``--bids-filter-file``)."""
    derivatives: dict | None = None
    """Preprocessed inputs by pipeline name (``--derivatives NAME=PATH``); ``{"fmriprep": PATH}`` makes the
    participant level use fMRIPrep's outputs instead of its own preprocessing (see :mod:`bidsad.fmriprep_inputs`)."""
    skip_bids_validation: bool = False
    """Skip the BIDS validator at start (``bids-validator-deno``) and pybids' validation of file names."""
    verbose: int = 0
    """Verbosity: 0 warnings only, 1 info, 2 debug."""
    overwrite: bool = False
    """Group level: replace ``group/`` of an earlier run instead of keeping it as ``group-<date>/``."""
    reports_only: bool = False
    """Rebuild the reports and citation boilerplate from existing outputs; run no workflow, train nothing."""
    apply_models: str | None = None
    """Group level: the ``group/`` folder of an earlier group run (``--apply-models``) whose models predict this
    dataset's participants instead of training new ones (:mod:`bidsad.group.apply`)."""
    run_uuid: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S_") + uuid.uuid4().hex[:8])
    """Identifier of this run (timestamp and random suffix)."""
    version: str = __version__
    """bidsad version that wrote this configuration."""


@dataclass
class Nipype:
    """Resources for the participant level's nipype execution."""

    nprocs: int = 0
    """Maximum number of processes (0: all CPUs). MultiProc is used when more than one."""
    omp_nthreads: int = 0
    """Maximum threads per process (0: min(8, nprocs))."""
    mem_gb: float | None = None
    """Upper bound of memory for the scheduler, in GB (``--mem``); ``None``: not limited."""
    plugin: str | None = None
    """nipype execution plugin (``--plugin``), one of :data:`NIPYPE_PLUGINS`; ``None``: Linear when
    ``nprocs`` is 1, otherwise MultiProc."""
    plugin_args: dict | None = None
    """Arguments for the plugin (``--plugin-args KEY=VALUE``), e.g. ``{"sbatch_args": "--mem=8G"}`` for
    SLURM or ``{"n_procs": 4}`` for MultiProc; they override bidsad's defaults (``n_procs``,
    ``memory_gb``, ``raise_insufficient``)."""


#: Values of ``--denoise`` (see :mod:`bidsad.interfaces.confounds`).
DENOISE_STRATEGIES = ("none", "basic")
#: Values of ``--split-protocol`` (see :mod:`bidsad.learn.splits`) and ``--class-weight``.
SPLIT_PROTOCOLS = ("participant", "paper", "slice")
CLASS_WEIGHTS = ("none", "balanced")

#: Default MNI z positions (mm) of the ``2dcnn``'s axial slices (``--slices-mm``): every 5 mm through the medial
#: temporal lobes (hippocampi and amygdalae, about z = -30 to -5 mm in MNI152).
AXIAL_SLICES_MM = (-30.0, -25.0, -20.0, -15.0, -10.0, -5.0)

#: Values of ``--lr-schedule`` (see :func:`bidsad.learn.train.make_optimizer`).
LR_SCHEDULES = ("constant", "cosine")

#: Training recipes (``--recipe``): the :class:`Learning` settings each one sets (flags given with it override
#: single settings). ``paper``: Kujur & Monfared (2026) as published (Adam 1e-5, 20 epochs, batch 2, Dropout
#: 0.1, no class weights, no early stopping, the models unchanged). ``bidsad`` (the default): chosen by
#: measurement on OASIS-1 CN vs AD (docs/methods.md, "Training recipe"): class-balanced loss, a larger learning rate
#: with cosine decay, early stopping with the best weights restored, dropout 0.5 on a coarser MRI grid, and no
#: on-the-fly augmentation (no measured gain there, 3.5x the time per epoch; ``--augmentation`` turns it on).
RECIPES: dict[str, dict] = {
    "bidsad": {"learning_rate": 3e-4, "lr_schedule": "cosine", "epochs": 40, "batch_size": 4, "class_weight": "balanced",
               "validation": True, "patience": 10, "dropout": 0.5, "l2": 0.0, "batch_norm": False, "mri_downsample": 2,
               "augment": False},
    "paper": {"learning_rate": 1e-5, "lr_schedule": "constant", "epochs": 20, "batch_size": 2, "class_weight": "none",
              "validation": False, "patience": 5, "dropout": 0.1, "l2": 0.0, "batch_norm": False, "mri_downsample": 1,
              "augment": True},
}

#: Model registry names (``--models``; built by :mod:`bidsad.learn.models`), with the input modalities each needs.
_BASE_MODALITIES: dict[str, tuple[str, ...]] = {
    "3dcnn-lstm": ("mri", "bold"),
    "3dcnn-gru": ("mri", "bold"),
    "3dlstm": ("bold",),
    "3dgru": ("bold",),
    "3dcnn": ("mri",),
    "2dcnn": ("mri",),
}
#: ``<name>-gap``: global average pooling instead of Flatten before the dense/recurrent layers
#: (far fewer weights; not in the paper).
MODALITIES: dict[str, tuple[str, ...]] = {
    **_BASE_MODALITIES,
    **{f"{name}-gap": mods for name, mods in _BASE_MODALITIES.items() if name != "2dcnn"},
}
MODEL_NAMES: tuple[str, ...] = tuple(MODALITIES)

#: Values of ``--mri-input``: which participant-level MRI tensor the group level feeds to the models.
MRI_INPUTS = ("t1w", "gm")

#: Values of ``--anat-registration``.
ANAT_REGISTRATIONS = ("affine", "syn")


@dataclass
class Preprocessing:
    """Participant-level preprocessing choices."""

    anat_registration: str = "syn"
    """Registration of the T1w to ``MNI152NLin2009aSym`` (antspyx): ``affine`` (12 parameters) or ``syn``
    (affine followed by symmetric normalisation, a nonlinear warp; the default)."""
    denoise: str = "none"
    """Cleaning of the BOLD model input (``--denoise``): ``none`` or ``basic`` (linear detrending,
    0.01-0.08 Hz band-pass, regression of six motion parameters, white matter and CSF; nilearn)."""


@dataclass
class Features:
    """Model-input tensors made at the participant level."""

    preset: str = "paper"
    """Grid preset (see :data:`PRESETS`)."""
    mri_input: str = "t1w"
    """MRI model input of the group level (``--mri-input``, :data:`MRI_INPUTS`): ``t1w`` (the standardised
    T1w tensor, ``*_res-<preset>_desc-model_T1w.npy``) or ``gm`` (Jacobian-modulated grey matter,
    ``*_res-<preset>_label-GM_desc-model_probseg.npy``); both on the same grid and made by every participant run."""


@dataclass
class Learning:
    """Group-level training and evaluation. Defaults: bidsad's recipe (:data:`RECIPES`); ``recipe = "paper"``
    with the paper's values is Kujur & Monfared (2026)."""

    models: list[str] = field(default_factory=lambda: ["3dcnn-lstm", "3dcnn"])
    """Registry names of the models to train (:data:`MODEL_NAMES`; built by ``bidsad.learn.models``)."""
    recipe: str = "bidsad"
    """Name of the training recipe the settings below came from (:data:`RECIPES`; ``--recipe``). Settings
    changed after choosing it are recorded as overrides (:func:`recipe_summary`)."""
    classes: list[str] = field(default_factory=list)
    """The task's classes (``--classes``, e.g. ``["CN", "AD"]``); empty: every class with participants.
    Participants of other classes are excluded (cohort.tsv says why); models get one output per class."""
    epochs: int = RECIPES["bidsad"]["epochs"]
    """Maximum training epochs per fold (paper: 20)."""
    folds: int = 5
    """Number of participant-level cross-validation folds (reduced, with a warning, for small classes)."""
    repeats: int = 1
    """Repeats of the stratified k-fold, each with a new shuffle (seed ``random_seed + repeat - 1``);
    pooled metrics use each participant's probabilities averaged over repeats."""
    split_protocol: str = "participant"
    """``participant`` (default): split by participant, then augment training participants only.
    ``paper``: the paper's augment-then-split protocol, which LEAKS (copies of test participants in
    training); ``slice`` (``2dcnn`` only): the 2dcnn's axial slices split as samples, which LEAKS (slices of test
    participants in training). Both for comparison only, flagged in every output."""
    slices_mm: list[float] = field(default_factory=lambda: list(AXIAL_SLICES_MM))
    """MNI z positions (mm) of the axial slices the ``2dcnn`` reads (the nearest slice of the grid to each;
    :data:`AXIAL_SLICES_MM`)."""
    class_weight: str = RECIPES["bidsad"]["class_weight"]
    """``none`` or ``balanced`` (loss weights ``n / (k * n_class)`` from each fold's training participants only;
    the inner validation loss is weighted the same way)."""
    deterministic: bool = False
    """Deterministic TensorFlow ops (``enable_op_determinism``): bit-identical reruns, slower on GPU."""
    batch_size: int = RECIPES["bidsad"]["batch_size"]
    """Participants per training batch (paper: 2)."""
    learning_rate: float = RECIPES["bidsad"]["learning_rate"]
    """Initial Adam learning rate (paper: 1e-5)."""
    lr_schedule: str = RECIPES["bidsad"]["lr_schedule"]
    """``constant`` (paper) or ``cosine`` (cosine decay from ``learning_rate`` to 0 over ``epochs``)."""
    dropout: float = RECIPES["bidsad"]["dropout"]
    """Dropout rate before the output layer (paper: 0.1)."""
    l2: float = RECIPES["bidsad"]["l2"]
    """L2 penalty on every convolution and dense kernel (paper: 0)."""
    batch_norm: bool = RECIPES["bidsad"]["batch_norm"]
    """Batch normalisation after every convolution (paper: no)."""
    mri_downsample: int = RECIPES["bidsad"]["mri_downsample"]
    """The MRI input averaged over k x k x k voxel blocks inside the model (1 = the preset grid, as the paper)."""
    augment: bool = RECIPES["bidsad"]["augment"]
    """Augment training participants on the fly (``bidsad.learn.augment``; the paper augmented too,
    but before splitting). Never applied to validation or test participants."""
    validation: bool = RECIPES["bidsad"]["validation"]
    """Hold out an inner validation split of each fold's training participants for early stopping
    (paper: no; the paper trained every fold for 20 epochs)."""
    patience: int = RECIPES["bidsad"]["patience"]
    """Early stopping: epochs without a lower validation loss before training stops (best weights kept)."""
    n_bootstrap: int = 1000
    """Bootstrap resamples of participants for the 95% confidence intervals of the pooled metrics."""
    n_permutations: int = 1000
    """Label permutations for the permutation p-value of each model's out-of-fold predictions."""


@dataclass
class Augmentation:
    """Ranges of the on-the-fly augmentation (``bidsad.learn.augment``; ours, the paper gives none). Geometry
    is in mm and degrees, rigid in physical space on the anisotropic model grids."""

    rotation_deg: float = 10.0
    """Rotation about each axis through the grid centre, uniform in +-this (degrees; MRI volume and fMRI run)."""
    shift_mm: float = 5.0
    """Translation along each axis, uniform in +-this (mm)."""
    intensity_scale: list[float] = field(default_factory=lambda: [0.9, 1.1])
    """Multiplicative intensity factor, uniform in [low, high]."""
    noise_std: float = 0.05
    """Standard deviation of additive Gaussian noise (units of the standardised intensity)."""
    temporal_shift_frames: int = 2
    """fMRI: the run moved in time by an integer uniform in +-this (frames), empty frames filling the gap."""
    motion_step_deg: float = 0.05
    """fMRI synthetic head motion, a random walk from frame to frame: standard deviation of each frame's rotation
    step about each axis (degrees)."""
    motion_step_mm: float = 0.1
    """Standard deviation of each frame's translation step along each axis (mm)."""


@dataclass
class Seeds:
    """Random seeds. One master seed drives everything."""

    random_seed: int = DEFAULT_SEED
    """Master seed (``--random-seed``): splits, weight initialisation, shuffling, augmentation."""


@dataclass
class Config:
    """The whole run-wide configuration."""

    execution: Execution = field(default_factory=Execution)
    nipype: Nipype = field(default_factory=Nipype)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    features: Features = field(default_factory=Features)
    learning: Learning = field(default_factory=Learning)
    augmentation: Augmentation = field(default_factory=Augmentation)
    seeds: Seeds = field(default_factory=Seeds)

    def to_dict(self) -> dict:
        """Return the configuration as nested dicts of TOML-compatible values (``None`` dropped)."""

        def clean(value):
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items() if v is not None}
            if isinstance(value, (list, tuple)):
                return [clean(v) for v in value]
            return value

        return clean(dataclasses.asdict(self))

    def update(self, settings: dict, source: str = "settings") -> None:
        """Set fields from nested dicts ``{section: {name: value}}``.

        Raises
        ------
        ValueError
            An unknown section or field; the message names it and ``source``.
        """
        for section_name, values in settings.items():
            section = getattr(self, section_name, None)
            if section is None or not dataclasses.is_dataclass(section) or not isinstance(values, dict):
                raise ValueError(f"{source}: unknown configuration section [{section_name}]")
            known = {f.name for f in dataclasses.fields(section)}
            for name, value in values.items():
                if name not in known:
                    raise ValueError(f"{source}: unknown setting '{name}' in section [{section_name}]")
                setattr(section, name, value)

    def problems(self) -> list[tuple[str, str, object, str]]:
        """Values out of range or of the wrong type: ``(section, name, value, why)`` for each."""
        from bidsad.phenotype import CLASS_NAMES

        def integer(value, minimum):
            return isinstance(value, int) and not isinstance(value, bool) and value >= minimum

        checks = [
            ("nipype", "nprocs", integer(self.nipype.nprocs, 0), "an integer >= 0"),
            ("nipype", "omp_nthreads", integer(self.nipype.omp_nthreads, 0), "an integer >= 0"),
            ("nipype", "mem_gb", self.nipype.mem_gb is None or (isinstance(self.nipype.mem_gb, (int, float))
                                                                and self.nipype.mem_gb > 0), "a number of GB > 0"),
            ("preprocessing", "denoise", self.preprocessing.denoise in DENOISE_STRATEGIES,
             f"one of {', '.join(DENOISE_STRATEGIES)}"),
            ("features", "preset", self.features.preset in PRESETS, f"one of {', '.join(sorted(PRESETS))}"),
            ("features", "mri_input", self.features.mri_input in MRI_INPUTS, f"one of {', '.join(MRI_INPUTS)}"),
            ("learning", "models", isinstance(self.learning.models, list) and bool(self.learning.models)
             and all(m in MODEL_NAMES for m in self.learning.models), f"a list from {', '.join(MODEL_NAMES)}"),
            ("learning", "classes", isinstance(self.learning.classes, list) and all(c in CLASS_NAMES for c in self.learning.classes)
             and len(set(self.learning.classes)) != 1, f"an empty list or two or more of {', '.join(CLASS_NAMES)}"),
            ("learning", "epochs", integer(self.learning.epochs, 1), "an integer >= 1"),
            ("learning", "folds", integer(self.learning.folds, 2), "an integer >= 2"),
            ("learning", "batch_size", integer(self.learning.batch_size, 1), "an integer >= 1"),
            ("learning", "repeats", integer(self.learning.repeats, 1), "an integer >= 1"),
            ("learning", "split_protocol", self.learning.split_protocol in SPLIT_PROTOCOLS,
             f"one of {', '.join(SPLIT_PROTOCOLS)}"),
            ("learning", "slices_mm", isinstance(self.learning.slices_mm, list) and bool(self.learning.slices_mm)
             and all(isinstance(z, (int, float)) and not isinstance(z, bool) for z in self.learning.slices_mm),
             "a non-empty list of MNI z positions in mm"),
            ("learning", "class_weight", self.learning.class_weight in CLASS_WEIGHTS, f"one of {', '.join(CLASS_WEIGHTS)}"),
            ("learning", "deterministic", isinstance(self.learning.deterministic, bool), "true or false"),
            ("learning", "recipe", self.learning.recipe in RECIPES, f"one of {', '.join(RECIPES)}"),
            ("learning", "lr_schedule", self.learning.lr_schedule in LR_SCHEDULES, f"one of {', '.join(LR_SCHEDULES)}"),
            ("learning", "l2", isinstance(self.learning.l2, (int, float)) and self.learning.l2 >= 0, "a number >= 0"),
            ("learning", "batch_norm", isinstance(self.learning.batch_norm, bool), "true or false"),
            ("learning", "mri_downsample", integer(self.learning.mri_downsample, 1), "an integer >= 1"),
            ("learning", "patience", integer(self.learning.patience, 1), "an integer >= 1"),
            ("learning", "augment", isinstance(self.learning.augment, bool), "true or false"),
            ("learning", "validation", isinstance(self.learning.validation, bool), "true or false"),
            *[("augmentation", f.name, isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0, "a number >= 0")
              for f in dataclasses.fields(Augmentation) if not isinstance(v := getattr(self.augmentation, f.name), list)],
            ("augmentation", "intensity_scale", isinstance(self.augmentation.intensity_scale, list)
             and len(self.augmentation.intensity_scale) == 2 and 0 < self.augmentation.intensity_scale[0]
             <= self.augmentation.intensity_scale[1], "[low, high] with 0 < low <= high"),
            ("learning", "learning_rate", isinstance(self.learning.learning_rate, (int, float))
             and self.learning.learning_rate > 0, "a number > 0"),
            ("learning", "dropout", isinstance(self.learning.dropout, (int, float)) and 0 <= self.learning.dropout < 1,
             "a number in [0, 1)"),
            ("learning", "n_bootstrap", integer(self.learning.n_bootstrap, 1), "an integer >= 1"),
            ("learning", "n_permutations", integer(self.learning.n_permutations, 1), "an integer >= 1"),
            ("seeds", "random_seed", integer(self.seeds.random_seed, 0), "an integer >= 0"),
        ]
        return [(section, name, getattr(getattr(self, section), name), f"must be {why}")
                for section, name, ok, why in checks if not ok]

    def save(self, path: Path) -> Path:
        """Write the configuration as TOML (atomically) and return the path."""
        import tomli_w

        from bidsad.utils import atomic_write_text

        return atomic_write_text(Path(path), tomli_w.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: Path) -> "Config":
        """Read a TOML file written by :meth:`save` (or by hand).

        Raises
        ------
        ValueError
            The file is not valid TOML or names unknown settings.
        """
        try:
            settings = tomllib.loads(Path(path).read_text())
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path}: not valid TOML ({err})") from err
        config = cls()
        config.update(settings, source=str(path))
        return config


def apply_recipe(learning: Learning, name: str) -> None:
    """Set ``learning.recipe`` and every setting of the recipe ``name`` (:data:`RECIPES`).

    Raises
    ------
    KeyError
        ``name`` is not a recipe.
    """
    for key, value in RECIPES[name].items():
        setattr(learning, key, value)
    learning.recipe = name


def recipe_summary(learning: Learning) -> dict:
    """The recipe a run trained with: ``{"name", "hyperparameters", "overrides"}``, where ``hyperparameters``
    holds the value of every recipe setting (:data:`RECIPES`) used, and ``overrides`` those that differ from
    the named recipe (empty when it was used unchanged)."""
    used = {key: getattr(learning, key) for key in RECIPES["bidsad"]}
    named = RECIPES.get(learning.recipe, {})
    return {"name": learning.recipe, "hyperparameters": used,
            "overrides": {k: v for k, v in used.items() if named.get(k) != v}}

