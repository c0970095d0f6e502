"""Command line: arguments, validators and exit codes (no workflow is run)."""

from __future__ import annotations

import json

import pytest

from bidsad import __version__
from bidsad.cli.argtypes import _participant_label, _to_gb
from bidsad.cli.parser import parse_args
from bidsad.config import RECIPES, Config, recipe_summary

from .conftest import run_bidsad


def _usage_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


def test_version_prints_version():
    proc = run_bidsad("--version", check_rc=0)
    assert proc.stdout.strip() == f"bidsad {__version__}"


def test_nonexistent_bids_dir_exits_2_naming_it(tmp_path):
    proc = run_bidsad("/nonexistent", tmp_path / "out", "participant", check_rc=2)
    assert "bids_dir" in proc.stderr and "/nonexistent" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_not_a_bids_root(capsys, tmp_path):
    err = _usage_error(capsys, [str(tmp_path), str(tmp_path / "out"), "participant"])
    assert "dataset_description.json" in err


@pytest.mark.parametrize("out", [".", "sub-01", "code/bidsad", "derivatives"])
def test_out_dir_inside_bids_dir_refused(capsys, demo_dir, out):
    err = _usage_error(capsys, [str(demo_dir), str(demo_dir / out), "participant"])
    assert "out_dir" in err and "never writes among the raw data" in err and "derivatives/bidsad" in err


def test_out_dir_under_derivatives_allowed(demo_dir, tmp_path):
    """BIDS's place for outputs (BR-06): <bids_dir>/derivatives/<name> is accepted (nothing is created by parsing)."""
    out = demo_dir.resolve() / "derivatives" / "bidsad"
    config = parse_args([str(demo_dir), str(out), "participant", "-w", str(tmp_path / "w")])
    assert config.execution.out_dir == str(out)
    assert not (demo_dir / "derivatives").exists()


def test_work_dir_inside_bids_dir_refused(capsys, demo_dir, tmp_path):
    err = _usage_error(capsys, [str(demo_dir), str(tmp_path / "out"), "participant", "-w", str(demo_dir / "work")])
    assert "--work-dir" in err


def test_sibling_with_common_prefix_is_not_inside(demo_dir, tmp_path):
    sibling = demo_dir.parent / (demo_dir.name + "-derivatives")
    config = parse_args([str(demo_dir), str(sibling), "participant", "-w", str(tmp_path / "w")])
    assert config.execution.out_dir == str(sibling.resolve())


@pytest.mark.parametrize(("given", "label"), [("01", "01"), ("sub-01", "01"), ("sub-sub-01", "sub-01"),
                                               ("subject01", "subject01"), ("bus-01", "bus-01")])
def test_participant_label_removes_one_exact_prefix(given, label):
    assert _participant_label(given) == label


def test_participant_labels_deduplicated(demo_dir, tmp_path):
    config = parse_args([str(demo_dir), str(tmp_path / "o"), "participant", "-w", str(tmp_path / "w"),
                         "--participant-label", "sub-01", "01", "02"])
    assert config.execution.participant_label == ["01", "02"]


def test_empty_label_refused(capsys, demo_dir, tmp_path):
    err = _usage_error(capsys, [str(demo_dir), str(tmp_path / "o"), "participant", "--participant-label", "sub-"])
    assert "--participant-label" in err


@pytest.mark.parametrize(("text", "gb"), [("8", 8.0), ("8G", 8.0), ("8gb", 8.0), ("8000M", 8.0), ("1.5T", 1500.0)])
def test_mem_units(text, gb):
    assert _to_gb(text) == pytest.approx(gb)


@pytest.mark.parametrize("text", ["lots", "8X", "-3G", "0"])
def test_mem_bad_values_exit_2(capsys, demo_dir, tmp_path, text):
    err = _usage_error(capsys, [str(demo_dir), str(tmp_path / "o"), "participant", f"--mem={text}"])
    assert "--mem" in err


@pytest.mark.parametrize("args", [["--models", "resnet"], ["--preset", "huge"], ["--epochs", "0"],
                                  ["--folds", "two"], ["--nprocs", "-1"]])
def test_bad_group_options_exit_2(capsys, demo_dir, tmp_path, args):
    err = _usage_error(capsys, [str(demo_dir), str(tmp_path / "o"), "group", *args])
    assert args[0] in err


def test_bids_filter_file_checked(capsys, demo_dir, tmp_path):
    bad = tmp_path / "filter.json"
    bad.write_text("{not json")
    assert "--bids-filter-file" in _usage_error(capsys, [str(demo_dir), str(tmp_path / "o"), "participant",
                                                         "--bids-filter-file", str(bad)])
    bad.write_text(json.dumps({"dwi": {}}))
    assert "t1w" in _usage_error(capsys, [str(demo_dir), str(tmp_path / "o"), "participant",
                                          "--bids-filter-file", str(bad)])


def test_options_fill_config(demo_dir, tmp_path):
    config = parse_args([str(demo_dir), str(tmp_path / "o"), "group", "-w", str(tmp_path / "w"), "--models", "3dcnn",
                         "--preset", "small", "--epochs", "3", "--folds", "4", "--random-seed", "7", "--nprocs", "2",
                         "--mem", "4G", "-vv"])
    assert config.learning.models == ["3dcnn"]
    assert (config.features.preset, config.learning.epochs, config.learning.folds) == ("small", 3, 4)
    assert (config.seeds.random_seed, config.nipype.nprocs, config.nipype.mem_gb) == (7, 2, 4.0)
    assert config.execution.verbose == 2


def test_config_file_round_trip_and_override(demo_dir, tmp_path):
    config = Config()
    config.learning.epochs, config.seeds.random_seed, config.features.preset = 3, 11, "small"
    saved = config.save(tmp_path / "config.toml")
    assert Config.load(saved).to_dict() == config.to_dict()
    loaded = parse_args([str(demo_dir), str(tmp_path / "o"), "group", "-w", str(tmp_path / "w"),
                         "--config-file", str(saved), "--epochs", "5"])
    assert (loaded.learning.epochs, loaded.seeds.random_seed, loaded.features.preset) == (5, 11, "small")


def test_config_file_unknown_setting(capsys, demo_dir, tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[learning]\nepochz = 3\n")
    err = _usage_error(capsys, [str(demo_dir), str(tmp_path / "o"), "group", "--config-file", str(path)])
    assert "epochz" in err and "--config-file" in err


def test_reports_only_flag_is_never_taken_from_a_saved_configuration(tmp_path, demo_dir):
    config = parse_args([str(demo_dir), str(tmp_path / "out"), "group", "--reports-only"])
    assert config.execution.reports_only is True
    saved = config.save(tmp_path / "saved.toml")
    again = parse_args([str(demo_dir), str(tmp_path / "out"), "group", "--config-file", str(saved)])
    assert again.execution.reports_only is False


def test_folds_below_two_refused(capsys, demo_dir, tmp_path):
    assert "--folds" in _usage_error(capsys, [str(demo_dir), str(tmp_path / "o"), "group", "--folds", "1"])


@pytest.mark.parametrize("which", ["out_dir", "work_dir"])
def test_existing_file_as_output_folder_refused(capsys, demo_dir, tmp_path, which):
    existing = tmp_path / "a_file"
    existing.write_text("x")
    argv = [str(demo_dir), str(existing if which == "out_dir" else tmp_path / "o"), "participant"]
    if which == "work_dir":
        argv += ["-w", str(existing)]
    err = _usage_error(capsys, argv)
    assert "exists and is not a directory" in err and ("out_dir" in err if which == "out_dir" else "--work-dir" in err)


@pytest.mark.parametrize(("text", "words"), [
    ("[learning]\nepochs = -3\n", "[learning] epochs = -3: must be an integer >= 1"),
    ("[learning]\nepochs = \"ten\"\n", "[learning] epochs = 'ten'"),
    ("[learning]\nmodels = [\"nope\"]\n", "[learning] models = ['nope']: must be a list from 3dcnn-lstm"),
    ("[features]\npreset = \"huge\"\n", "[features] preset = 'huge'"),
    ("[learning]\nfolds = 1\n", "[learning] folds = 1"),
    ("[augmentation]\nrotation_deg = -5\n", "[augmentation] rotation_deg = -5: must be a number >= 0"),
    ("[augmentation]\nintensity_scale = [1.1, 0.9]\n", "[augmentation] intensity_scale = [1.1, 0.9]"),
    ("[augmentation]\nshift_voxels = 2\n", "unknown setting 'shift_voxels' in section [augmentation]"),
])
def test_config_file_values_checked(capsys, demo_dir, tmp_path, text, words):
    path = tmp_path / "c.toml"
    path.write_text(text)
    err = _usage_error(capsys, [str(demo_dir), str(tmp_path / "o"), "group", "--config-file", str(path)])
    assert words in err and str(path) in err


def test_help_shows_each_default_once():
    proc = run_bidsad("--help", check_rc=0)
    assert "(default: None)" not in proc.stdout and "--participant-label" in proc.stdout


def test_training_options(demo_dir, tmp_path):
    config = parse_args([str(demo_dir), str(tmp_path / "o"), "group", "-w", str(tmp_path / "w"), "--learning-rate",
                         "3e-4", "--batch-size", "4", "--patience", "2", "--no-augmentation", "--no-validation"])
    learning = config.learning
    assert (learning.learning_rate, learning.batch_size, learning.patience) == (3e-4, 4, 2)
    assert learning.augment is False and learning.validation is False
    defaults = parse_args([str(demo_dir), str(tmp_path / "o"), "group", "-w", str(tmp_path / "w")]).learning
    assert defaults.augment is False and defaults.validation is True and defaults.learning_rate == 3e-4
    assert parse_args([str(demo_dir), str(tmp_path / "o"), "group", "--augmentation"]).learning.augment is True
    assert parse_args([str(demo_dir), str(tmp_path / "o"), "group", "--recipe", "paper"]).learning.augment is True


def test_recipe_sets_every_setting_and_single_flags_override(capsys, demo_dir, tmp_path):
    argv = [str(demo_dir), str(tmp_path / "o"), "group", "-w", str(tmp_path / "w")]
    assert parse_args(argv).learning.recipe == "bidsad"
    paper = parse_args([*argv, "--recipe", "paper"]).learning
    assert paper.recipe == "paper"
    assert {k: getattr(paper, k) for k in RECIPES["paper"]} == RECIPES["paper"]
    mixed = parse_args([*argv, "--recipe", "paper", "--epochs", "7", "--lr-schedule", "cosine",
                        "--mri-downsample", "3"]).learning
    assert (mixed.epochs, mixed.lr_schedule, mixed.mri_downsample, mixed.learning_rate) == (7, "cosine", 3, 1e-5)
    assert recipe_summary(mixed)["overrides"] == {"epochs": 7, "lr_schedule": "cosine", "mri_downsample": 3}
    for bad in (["--recipe", "fast"], ["--lr-schedule", "step"], ["--mri-downsample", "0"]):
        assert bad[0] in _usage_error(capsys, [*argv, *bad])
    path = tmp_path / "c.toml"
    path.write_text('[learning]\nrecipe = "quick"\n')
    assert "[learning] recipe = 'quick'" in _usage_error(capsys, [*argv, "--config-file", str(path)])


@pytest.mark.parametrize("value", ["0", "-1e-3", "fast", "inf"])
def test_learning_rate_must_be_positive(capsys, demo_dir, tmp_path, value):
    assert "--learning-rate" in _usage_error(capsys, [str(demo_dir), str(tmp_path / "o"), "group",
                                                      f"--learning-rate={value}"])


def test_anat_registration_option(capsys, demo_dir, tmp_path):
    base = [str(demo_dir), str(tmp_path / "out"), "participant"]
    assert parse_args(base).preprocessing.anat_registration == "syn"
    assert parse_args([*base, "--anat-registration", "affine"]).preprocessing.anat_registration == "affine"
    err = _usage_error(capsys, [*base, "--anat-registration", "rigid"])
    assert "--anat-registration" in err and "rigid" in err
    toml = tmp_path / "c.toml"
    toml.write_text('[preprocessing]\nanat_registration = "bspline"\n')
    assert "--anat-registration: unknown value 'bspline'" in _usage_error(capsys, [*base, "--config-file", str(toml)])


@pytest.mark.parametrize(("value", "expected"), [
    ("fmriprep", "NAME=PATH"), ("freesurfer=/x", "NAME=PATH"), ("fmriprep=", "NAME=PATH"),
    ("fmriprep=/nonexistent/fmriprep", "/nonexistent/fmriprep"),
])
def test_derivatives_usage_errors_name_the_argument(capsys, demo_dir, tmp_path, value, expected):
    err = _usage_error(capsys, [str(demo_dir), str(tmp_path / "out"), "participant", "--derivatives", value])
    assert "--derivatives" in err and expected in err


def test_derivatives_needs_a_dataset_root(capsys, demo_dir, tmp_path):
    (tmp_path / "fmriprep").mkdir()
    err = _usage_error(capsys, [str(demo_dir), str(tmp_path / "out"), "participant", "--derivatives",
                                f"fmriprep={tmp_path / 'fmriprep'}"])
    assert "--derivatives fmriprep=" in err and "dataset_description.json" in err
    (tmp_path / "fmriprep" / "dataset_description.json").write_text("{}")
    config = parse_args([str(demo_dir), str(tmp_path / "out"), "participant", "--derivatives",
                         f"FMRIPREP={tmp_path / 'fmriprep'}"])
    assert config.execution.derivatives == {"fmriprep": str((tmp_path / "fmriprep").resolve())}


def test_split_protocol_repeats_class_weight_and_determinism(capsys, demo_dir, tmp_path):
    argv = [str(demo_dir), str(tmp_path / "o"), "group", "-w", str(tmp_path / "w")]
    defaults = parse_args(argv).learning
    assert (defaults.split_protocol, defaults.repeats, defaults.class_weight, defaults.deterministic) == (
        "participant", 1, "balanced", False)  # never the paper protocol by default
    config = parse_args([*argv, "--split-protocol", "paper", "--repeats", "3", "--class-weight", "none",
                         "--deterministic"])
    learning = config.learning
    assert (learning.split_protocol, learning.repeats, learning.class_weight, learning.deterministic) == (
        "paper", 3, "none", True)
    saved = config.save(tmp_path / "config.toml")
    assert Config.load(saved).to_dict() == config.to_dict()
    for bad in (["--repeats", "0"], ["--split-protocol", "slices"], ["--class-weight", "auto"]):
        assert bad[0] in _usage_error(capsys, [*argv, *bad])
    path = tmp_path / "c.toml"
    path.write_text("[learning]\nsplit_protocol = \"samples\"\n")
    assert "[learning] split_protocol = 'samples'" in _usage_error(capsys, [*argv, "--config-file", str(path)])


def test_slice_protocol_is_for_the_2dcnn_only_and_its_slices_are_options(capsys, demo_dir, tmp_path):
    base = [str(demo_dir), str(tmp_path / "o"), "group", "-w", str(tmp_path / "w")]
    config = parse_args([*base, "--models", "2dcnn", "--split-protocol", "slice", "--slices-mm", "-20", "-10.5"])
    assert (config.learning.split_protocol, config.learning.slices_mm) == ("slice", [-20.0, -10.5])
    assert parse_args(base).learning.slices_mm == [-30.0, -25.0, -20.0, -15.0, -10.0, -5.0]
    err = _usage_error(capsys, [*base, "--models", "2dcnn", "3dcnn", "--split-protocol", "slice"])
    assert "--models 2dcnn only" in err and "2dcnn 3dcnn" in err
    saved = tmp_path / "c.toml"
    saved.write_text("[learning]\nslices_mm = []\n")
    assert "slices_mm" in _usage_error(capsys, [*base, "--config-file", str(saved)])


@pytest.mark.parametrize(("level", "extra", "named"), [
    ("participant", ["--models", "3dcnn"], "--models is a group-level option"),
    ("participant", ["--epochs", "3"], "--epochs is a group-level option"),
    ("participant", ["--no-augmentation"], "--augmentation/--no-augmentation is a group-level option"),
    ("participant", ["--overwrite"], "--overwrite is a group-level option"),
    ("participant", ["--apply-models", "/nonexistent"], "--apply-models is a group-level option"),
    ("group", ["--denoise", "basic"], "--denoise is a participant-level option"),
    ("group", ["--plugin", "Linear"], "--plugin is a participant-level option"),
])
def test_options_of_the_other_level_refused(capsys, demo_dir, tmp_path, level, extra, named):
    argv = [str(demo_dir), str(tmp_path / "o"), level, "-w", str(tmp_path / "w")]
    err = _usage_error(capsys, [*argv, *extra])
    assert named in err and f"does nothing at the {level} level" in err
    assert f"remove it from this {level}-level command" in err


def test_shared_options_accepted_at_both_levels(demo_dir, tmp_path):
    shared = ["--preset", "small", "--random-seed", "3", "--nprocs", "2", "--participant-label", "01"]
    for level in ("participant", "group"):
        config = parse_args([str(demo_dir), str(tmp_path / "o"), level, "-w", str(tmp_path / "w"), *shared])
        assert (config.features.preset, config.seeds.random_seed, config.execution.participant_label) == (
            "small", 3, ["01"])
