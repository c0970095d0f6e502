"""The BIDS-App command line: ``bidsad bids_dir out_dir {participant,group} [options]``.

:func:`parse_args` parses, runs every post-parse check (exit status 2 with a message naming the
argument on any usage error) and returns a filled :class:`bidsad.config.Config`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bidsad import __version__, messages
from bidsad.cli.argtypes import (
    DERIVATIVES_NAMES,
    Noted,
    _derivatives,
    _int_at_least,
    _label_note,
    _mb_to_gb,
    _memory_note,
    _participant_label,
    _plugin_arg,
    _positive_float,
    _to_gb,
)
from bidsad.config import (
    ANAT_REGISTRATIONS,
    CLASS_WEIGHTS,
    DENOISE_STRATEGIES,
    LR_SCHEDULES,
    MRI_INPUTS,
    NIPYPE_PLUGINS,
    RECIPES,
    SPLIT_PROTOCOLS,
    Config,
    apply_recipe,
)
from bidsad.derivatives import PRESETS

#: INFO notes of the last :func:`parse_args` (a bare ``--mem`` number, a ``sub-`` prefix removed), collected
#: after parsing; the entry point logs them once logging is set up.
NOTES: list[tuple[int, str]] = []


def _build_parser() -> argparse.ArgumentParser:
    """Build the argument parser (argument groups as in other BIDS-Apps)."""
    from bidsad.config import MODEL_NAMES
    from bidsad.phenotype import CLASS_NAMES

    parser = argparse.ArgumentParser(
        prog="bidsad",
        description=(
            "bidsad: preprocess T1w and resting-state BOLD (participant level) and train and evaluate "
            "AD / MCI / CN fusion classifiers with participant-level cross-validation (group level). "
            "For research use only."
        ),
    )
    parser.add_argument("bids_dir", type=Path, help="root of the input BIDS dataset (read only)")
    parser.add_argument("out_dir", type=Path, help="root of the output BIDS-Derivatives dataset")
    parser.add_argument(
        "analysis_level",
        choices=["participant", "group"],
        help="participant: preprocessing and model features per participant; "
        "group: training and evaluation over all participants",
    )
    parser.add_argument("--version", action="version", version=f"bidsad {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more output (-v info, -vv debug)")

    g_bids = parser.add_argument_group("Selecting data")
    g_bids.add_argument(
        "--participant-label",
        "--participant_label",
        nargs="+",
        action=Noted, convert=_participant_label, note=_label_note,
        metavar="LABEL",
        help="participants to process, with or without the 'sub-' prefix (default: all)",
    )
    filters = g_bids.add_argument(
        "--bids-filter-file",
        type=Path,
        metavar="FILE",
        help="JSON file of pybids queries overriding the defaults for 't1w' and 'bold'",
    )
    derivatives = g_bids.add_argument(
        "--derivatives",
        nargs="+",
        type=_derivatives,
        metavar="NAME=PATH",
        help="use existing preprocessing instead of bidsad's: fmriprep=PATH takes fMRIPrep's desc-preproc T1w, "
        "brain mask, tissue maps, transforms, MNI152NLin2009cAsym or MNI152NLin6Asym BOLD and confounds",
    )
    g_bids.add_argument(
        "--skip-bids-validation", "--skip_bids_validation", action="store_true",
        help="do not run the BIDS validator on bids_dir at start (its errors stop the run otherwise) nor check "
        "file names when indexing; unusable files are still reported by name",
    )

    g_perf = parser.add_argument_group("Resources")
    # fMRIPrep / MRIQC spellings are aliases: --nthreads, --n_cpus, --n-cpus, --omp_nthreads, --mem_mb
    g_perf.add_argument("--nprocs", "--n-cpus", "--n_cpus", "--nthreads", type=_int_at_least(0),
                        help="maximum processes (default 0: all CPUs); fMRIPrep's --nthreads and --n_cpus are accepted")
    g_perf.add_argument("--omp-nthreads", "--omp_nthreads", type=_int_at_least(0),
                        help="maximum threads per process (default 0: automatic)")
    g_perf.add_argument("--mem", "--mem-gb", "--mem_gb", action=Noted, convert=_to_gb, note=_memory_note("gb"),
                        metavar="MEM", dest="mem",
                        help="memory limit; a bare number is GB (16 = 16 GB), units accepted: 16GB, 16G, 16000MB, "
                        "16000M, 1T. Values above 64x this machine's memory are refused as unit mistakes")
    g_perf.add_argument("--mem-mb", "--mem_mb", action=Noted, convert=_mb_to_gb, note=_memory_note("mb"),
                        metavar="MB", dest="mem",
                        help="memory limit, bare numbers in MB as fMRIPrep's --mem_mb (16000 = 16 GB)")
    plugin = g_perf.add_argument(
        "--plugin",
        "--nipype-plugin",
        choices=NIPYPE_PLUGINS,
        help="nipype execution plugin (default: Linear with --nprocs 1, otherwise MultiProc). SLURM and SGE "
        "submit every node as a cluster job and need bidsad installed natively on the compute nodes",
    )
    plugin_args = g_perf.add_argument(
        "--plugin-args",
        nargs="+",
        type=_plugin_arg,
        metavar="KEY=VALUE",
        help="arguments for the nipype plugin, overriding bidsad's defaults; values are read as JSON when "
        "possible. E.g. MultiProc: n_procs=4 memory_gb=16; SLURM: 'sbatch_args=--mem=8G --time=02:00:00' max_jobs=50",
    )
    g_perf.add_argument("-w", "--work-dir", type=Path, help="working directory (default: ./work; reused on rerun)")

    g_conf = parser.add_argument_group("Configuration")
    g_conf.add_argument("--config-file", type=Path, metavar="FILE", help="TOML configuration (as saved in out_dir/logs); command-line options override it")
    g_conf.add_argument("--random-seed", type=_int_at_least(0), help="master random seed (default 0)")
    g_conf.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="model-input grids: 'paper' (MRI 128x128x176, fMRI 216 x 64x64x32) or 'small' "
        "(trains on a 2-core CPU in minutes); default: paper",
    )

    overwrite = g_conf.add_argument(
        "--overwrite", action="store_true",
        help="group level: replace group/ of an earlier run (default: it is kept as group-<date>/ beside the new one)",
    )
    g_conf.add_argument(
        "--reports-only",
        action="store_true",
        help="rebuild the reports of the chosen level (sub-<label>.html or group/group.html) and logs/CITATION.* "
        "from existing outputs; runs no workflow and trains nothing",
    )

    g_prep = parser.add_argument_group("Preprocessing")
    g_prep.add_argument(
        "--anat-registration",
        choices=ANAT_REGISTRATIONS,
        help="T1w to MNI152NLin2009aSym registration: 'affine' or 'syn' (affine then nonlinear SyN; default)",
    )
    g_prep.add_argument(
        "--denoise",
        choices=DENOISE_STRATEGIES,
        help="cleaning of the BOLD used for features: 'none' (default) or 'basic' (detrend, 0.01-0.08 Hz band-pass, "
        "regression of 6 motion parameters + white matter + CSF; skipped with a warning for runs too short)",
    )

    g_group = parser.add_argument_group("Group level")
    g_group.add_argument("--models", nargs="+", choices=MODEL_NAMES, metavar="MODEL", help=f"models to train: {', '.join(MODEL_NAMES)} (default: 3dcnn-lstm 3dcnn)")
    g_group.add_argument("--classes", nargs="+", choices=CLASS_NAMES, metavar="CLASS",
                         help=f"the task's classes, two or more of {' '.join(CLASS_NAMES)} (e.g. --classes CN AD; default: "
                         "every class with participants); participants of other classes are excluded")
    g_group.add_argument("--apply-models", type=Path, metavar="GROUP_DIR",
                         help="apply the trained models of an earlier group run (its <out_dir>/group folder) to every "
                         "participant of this out_dir instead of training: class probabilities per participant and a "
                         "model card; training participants (by ID or identical T1w) are refused")
    g_group.add_argument(
        "--recipe", choices=tuple(RECIPES),
        help="training recipe: 'bidsad' (default; class-balanced loss, Adam 3e-4 with cosine decay, up to 40 epochs "
        "with early stopping on an inner validation split, MRI input averaged to a 2x coarser grid) or 'paper' "
        "(Adam 1e-5, 20 epochs, batch 2, no class weights, no early stopping, the paper's models unchanged). "
        "Options below override single settings of the recipe")
    g_group.add_argument("--epochs", type=_int_at_least(1), help="maximum training epochs per fold (bidsad: 40; paper: 20)")
    g_group.add_argument("--folds", type=_int_at_least(2), help="participant-level cross-validation folds (default: 5)")
    g_group.add_argument("--repeats", type=_int_at_least(1),
                         help="repeat the participant-level k-fold this many times with new shuffles (default: 1)")
    g_group.add_argument(
        "--split-protocol", choices=SPLIT_PROTOCOLS,
        help="'participant' (default): split by participant, augment training participants only. 'paper': the "
        "paper's augment-then-split protocol, which LEAKS copies of test participants into training and inflates "
        "the scores; 'slice' (2dcnn only): the 2dcnn's axial slices split as samples, so slices of test participants "
        "are in training (LEAKS). Both for comparison only, flagged in every output")
    g_group.add_argument("--slices-mm", type=float, nargs="+", metavar="Z",
                         help="MNI z positions (mm) of the axial slices the 2dcnn reads, the nearest grid slice to each "
                         "(default: -30 -25 -20 -15 -10 -5, through the medial temporal lobes)")
    g_group.add_argument("--mri-input", choices=MRI_INPUTS,
                         help="MRI model input: 't1w' (standardised T1w; default) or 'gm' (Jacobian-modulated grey "
                         "matter from the same registration; both are made by every participant-level run)")
    g_group.add_argument("--class-weight", choices=CLASS_WEIGHTS,
                         help="loss weights per class: 'balanced' (bidsad; from each fold's training participants only) or 'none' (paper)")
    g_group.add_argument("--deterministic", action="store_true", default=None,
                         help="deterministic TensorFlow ops: bit-identical reruns with the same seed (slower on GPU)")
    g_group.add_argument("--learning-rate", type=_positive_float, help="initial Adam learning rate (bidsad: 3e-4; paper: 1e-5)")
    g_group.add_argument("--lr-schedule", choices=LR_SCHEDULES,
                         help="learning rate over the epochs: 'cosine' (bidsad; decays to 0 at --epochs) or 'constant' (paper)")
    g_group.add_argument("--batch-size", type=_int_at_least(1), help="participants per training batch (bidsad: 4; paper: 2)")
    g_group.add_argument("--mri-downsample", type=_int_at_least(1),
                         help="average the MRI input over k x k x k voxel blocks inside the models (bidsad: 2; paper: 1)")
    g_group.add_argument("--patience", type=_int_at_least(1),
                         help="early stopping on the inner validation split: epochs without improvement (bidsad: 10)")
    g_group.add_argument("--augmentation", dest="augment", action="store_true", default=None,
                         help="augment training participants on the fly (paper: yes; bidsad: no, it bought no accuracy "
                         "on OASIS-1 at 3.5x the time per epoch)")
    g_group.add_argument("--no-augmentation", dest="augment", action="store_false", default=None,
                         help="do not augment training participants on the fly")
    g_group.add_argument("--no-validation", dest="validation", action="store_false", default=None,
                         help="no inner validation split (and no early stopping): train on all training participants "
                         "(the paper recipe's choice)")
    # options of one level only: given at the other level they are refused (parse_args), not silently ignored
    for level, actions in (("participant", [filters, derivatives, plugin, plugin_args, *g_prep._group_actions]),
                           ("group", [overwrite, *g_group._group_actions])):
        for action in actions:
            action.level_only = level
    return parser


def _other_level_options(parser: argparse.ArgumentParser, opts: argparse.Namespace) -> list[tuple[str, str]]:
    """``(options, level)`` of each option given on the command line that belongs to the other analysis level
    (``action.level_only``); options sharing a destination are named together (``--augmentation/--no-augmentation``)."""
    given: dict[str, tuple[list[str], str]] = {}
    for action in parser._actions:
        level = getattr(action, "level_only", None)
        if level and level != opts.analysis_level and getattr(opts, action.dest) != action.default:
            given.setdefault(action.dest, ([], level))[0].append(action.option_strings[0])
    return [("/".join(names), level) for names, level in given.values()]


def _derivative_dataset(root: Path) -> str | None:
    """``None`` when ``root`` is raw data; for a derivatives dataset (``DatasetType`` 'derivative') the text
    naming its pipeline (``", made by fMRIPrep 23.2.0"``) or ``""``. An unreadable file counts as raw here
    (the input checks name it later)."""
    try:
        desc = json.loads((root / "dataset_description.json").read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return None
    if not isinstance(desc, dict) or str(desc.get("DatasetType", "")).strip().lower() != "derivative":
        return None
    made = [g for g in desc.get("GeneratedBy", desc.get("PipelineDescription", [])) or [] if isinstance(g, dict)]
    if isinstance(desc.get("PipelineDescription"), dict):
        made = [desc["PipelineDescription"]]
    names = " ".join(f"{g.get('Name', '')} {g.get('Version', '')}".strip() for g in made[:1])
    return f", made by {names}" if names else ""


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def parse_args(args: list[str] | None = None) -> Config:
    """Parse the command line, check it, and return the run's :class:`Config`.

    Exits with status 2 (``parser.error``) on any usage error, naming the argument.
    """
    parser = _build_parser()
    NOTES.clear()
    opts = parser.parse_args(args, namespace=argparse.Namespace(notes=[]))
    NOTES.extend(opts.notes)
    for option, level in _other_level_options(parser, opts):
        parser.error(messages.LEVEL_ONLY.format(option=option, level=level, other=opts.analysis_level))

    config = Config()
    if opts.config_file is not None:
        if not opts.config_file.is_file():
            parser.error(messages.PATH_MISSING.format(arg="--config-file", path=opts.config_file))
        try:
            config = Config.load(opts.config_file)
        except ValueError as err:
            parser.error(messages.CONFIG_BAD.format(why=err))
        config.execution.run_uuid = Config().execution.run_uuid

    bids_dir = opts.bids_dir.expanduser().absolute()
    if not bids_dir.exists():
        parser.error(messages.PATH_MISSING.format(arg="bids_dir", path=opts.bids_dir))
    if not bids_dir.is_dir():
        parser.error(messages.PATH_NOT_DIR.format(arg="bids_dir", path=opts.bids_dir))
    bids_dir = bids_dir.resolve()
    if not (bids_dir / "dataset_description.json").is_file():
        parser.error(messages.NOT_BIDS.format(path=bids_dir))
    derivative_by = _derivative_dataset(bids_dir)
    if derivative_by is not None:
        parser.error(messages.BIDS_IS_DERIVATIVE.format(path=bids_dir, by=derivative_by))

    out_dir = opts.out_dir.expanduser().resolve()
    # BIDS reserves <bids_dir>/derivatives/ for outputs (raw-data queries never look there); anywhere
    # else inside the dataset is refused: outputs there could be indexed as raw data
    if _is_within(out_dir, bids_dir) and not (bids_dir / "derivatives") in out_dir.parents:
        parser.error(messages.OUT_IS_BIDS.format(out=out_dir, bids=bids_dir))
    work_dir = (opts.work_dir or Path(config.execution.work_dir or "work")).expanduser().resolve()
    if _is_within(work_dir, bids_dir):
        parser.error(messages.WORK_IN_BIDS.format(work=work_dir, bids=bids_dir))
    for arg, path in (("out_dir", out_dir), ("-w/--work-dir", work_dir)):
        if path.exists() and not path.is_dir():
            parser.error(messages.EXISTS_NOT_DIR.format(arg=arg, path=path))

    bids_filters = config.execution.bids_filters
    if opts.bids_filter_file is not None:
        if not opts.bids_filter_file.is_file():
            parser.error(messages.PATH_MISSING.format(arg="--bids-filter-file", path=opts.bids_filter_file))
        try:
            bids_filters = json.loads(opts.bids_filter_file.read_text())
        except json.JSONDecodeError as err:
            parser.error(messages.FILTER_BAD.format(path=opts.bids_filter_file, why=f"not valid JSON ({err})"))
        if not isinstance(bids_filters, dict) or not set(bids_filters) <= {"t1w", "bold"} or not all(
            isinstance(v, dict) for v in bids_filters.values()
        ):
            parser.error(messages.FILTER_BAD.format(path=opts.bids_filter_file, why="keys must be 't1w' and/or 'bold', each an object"))

    derivatives = config.execution.derivatives
    if opts.derivatives:
        derivatives = {name: str(path) for name, path in opts.derivatives}
    for name, path in (derivatives or {}).items():
        if name not in DERIVATIVES_NAMES:
            parser.error(messages.DERIVATIVES_BAD.format(value=f"{name}={path}", names=", ".join(DERIVATIVES_NAMES)))
        root = Path(path).expanduser().absolute()
        if not root.is_dir():
            parser.error(messages.PATH_MISSING.format(arg=f"--derivatives {name}", path=path))
        if not (root / "dataset_description.json").is_file():
            parser.error(messages.DERIVATIVES_NOT_DATASET.format(name=name, path=path))
        derivatives[name] = str(root.resolve())

    ex = config.execution
    ex.derivatives = derivatives or None
    ex.bids_dir, ex.out_dir, ex.work_dir = str(bids_dir), str(out_dir), str(work_dir)
    ex.analysis_level = opts.analysis_level
    ex.bids_filters = bids_filters
    ex.verbose = opts.verbose or ex.verbose
    ex.skip_bids_validation = opts.skip_bids_validation or ex.skip_bids_validation
    ex.reports_only = opts.reports_only  # never taken from a saved configuration
    ex.overwrite = opts.overwrite  # never taken from a saved configuration
    if opts.participant_label:
        ex.participant_label = list(dict.fromkeys(opts.participant_label))
    if opts.recipe is not None:
        apply_recipe(config.learning, opts.recipe)
    for section, name, value in [
        (config.nipype, "nprocs", opts.nprocs),
        (config.nipype, "omp_nthreads", opts.omp_nthreads),
        (config.nipype, "mem_gb", opts.mem),
        (config.nipype, "plugin", opts.plugin),
        (config.seeds, "random_seed", opts.random_seed),
        (config.features, "preset", opts.preset),
        (config.features, "mri_input", opts.mri_input),
        (config.preprocessing, "anat_registration", opts.anat_registration),
        (config.preprocessing, "denoise", opts.denoise),
        (config.learning, "models", opts.models),
        (config.learning, "classes", list(dict.fromkeys(opts.classes)) if opts.classes else None),
        (config.learning, "epochs", opts.epochs),
        (config.learning, "folds", opts.folds),
        (config.learning, "repeats", opts.repeats),
        (config.learning, "split_protocol", opts.split_protocol),
        (config.learning, "slices_mm", opts.slices_mm),
        (config.learning, "class_weight", opts.class_weight),
        (config.learning, "deterministic", opts.deterministic),
        (config.learning, "learning_rate", opts.learning_rate),
        (config.learning, "lr_schedule", opts.lr_schedule),
        (config.learning, "mri_downsample", opts.mri_downsample),
        (config.learning, "batch_size", opts.batch_size),
        (config.learning, "patience", opts.patience),
        (config.learning, "augment", opts.augment),
        (config.learning, "validation", opts.validation),
    ]:
        if value is not None:
            setattr(section, name, value)
    if opts.plugin_args:
        config.nipype.plugin_args = {**(config.nipype.plugin_args or {}), **dict(opts.plugin_args)}
    if config.nipype.plugin is not None and config.nipype.plugin not in NIPYPE_PLUGINS:
        parser.error(messages.PLUGIN_BAD.format(plugin=config.nipype.plugin, choices=", ".join(NIPYPE_PLUGINS)))
    if config.nipype.plugin_args is not None and not isinstance(config.nipype.plugin_args, dict):
        parser.error(messages.PLUGIN_ARGS_NOT_TABLE.format(value=config.nipype.plugin_args))
    ex.apply_models = None  # never taken from a saved configuration
    if opts.apply_models is not None:
        models = opts.apply_models.expanduser().resolve()
        if not models.is_dir():
            parser.error(messages.PATH_MISSING.format(arg="--apply-models", path=opts.apply_models))
        ex.apply_models = str(models)
    if opts.classes and len(set(opts.classes)) < 2:
        parser.error(messages.CLASSES_ONE.format(classes=" ".join(opts.classes)))
    if config.learning.split_protocol == "slice" and set(config.learning.models) != {"2dcnn"}:
        parser.error(messages.SPLIT_PROTOCOL_SLICE_MODELS.format(models=" ".join(config.learning.models)))
    if opts.config_file is not None:
        for section, name, value, why in config.problems():
            parser.error(messages.CONFIG_VALUE.format(path=opts.config_file, section=section, name=name,
                                                      value=value, why=why))
    if config.preprocessing.anat_registration not in ANAT_REGISTRATIONS:
        parser.error(messages.ANAT_REGISTRATION_BAD.format(value=config.preprocessing.anat_registration,
                                                           choices=", ".join(ANAT_REGISTRATIONS)))
    return config
