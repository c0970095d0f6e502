"""nipype plugin selection: ``--plugin`` / ``--plugin-args``, their configuration and their use."""

from __future__ import annotations

import os
import stat

import pytest

from bidsad.cli.argtypes import _plugin_arg
from bidsad.cli.parser import parse_args
from bidsad.participant import nipype_plugin
from bidsad.config import NIPYPE_PLUGINS, Config

from .conftest import DEMO, run_bidsad


def _config(tmp_path, *extra) -> Config:
    return parse_args([str(DEMO), str(tmp_path / "out"), "participant", "-w", str(tmp_path / "work"), *extra])


@pytest.mark.parametrize(("text", "pair"), [
    ("n_procs=4", ("n_procs", 4)),
    ("memory_gb=16.5", ("memory_gb", 16.5)),
    ("raise_insufficient=false", ("raise_insufficient", False)),
    ("sbatch_args=--mem=8G --time=02:00:00", ("sbatch_args", "--mem=8G --time=02:00:00")),
    ("template=", ("template", "")),
])
def test_plugin_arg_values(text, pair):
    assert _plugin_arg(text) == pair


def test_default_plugins_follow_nprocs(tmp_path):
    assert nipype_plugin(_config(tmp_path, "--nprocs", "1")) == ("Linear", {})
    plugin, args = nipype_plugin(_config(tmp_path, "--nprocs", "3", "--mem", "6G"))
    assert plugin == "MultiProc" and args == {"n_procs": 3, "raise_insufficient": False, "memory_gb": 6.0}


def test_plugin_args_override_defaults(tmp_path):
    config = _config(tmp_path, "--nprocs", "3", "--plugin", "MultiProc", "--plugin-args", "n_procs=2",
                     "raise_insufficient=true")
    assert nipype_plugin(config) == ("MultiProc", {"n_procs": 2, "raise_insufficient": True})


def test_slurm_plugin_and_args(tmp_path):
    config = _config(tmp_path, "--nipype-plugin", "SLURM", "--plugin-args",
                     "sbatch_args=--mem=8G --time=02:00:00", "max_jobs=50")
    assert config.nipype.plugin == "SLURM"
    # cluster plugins get no MultiProc defaults: only what the user gave
    assert nipype_plugin(config) == ("SLURM", {"sbatch_args": "--mem=8G --time=02:00:00", "max_jobs": 50})


@pytest.mark.parametrize("name", NIPYPE_PLUGINS)
def test_every_choice_is_a_nipype_plugin(name):
    """nipype resolves ``Workflow.run(plugin=name)`` to ``nipype.pipeline.plugins.<name>Plugin``."""
    from nipype.pipeline import plugins
    from nipype.pipeline.plugins.base import PluginBase

    assert issubclass(getattr(plugins, f"{name}Plugin"), PluginBase)


def test_bad_plugin_args_exit_2(tmp_path):
    proc = run_bidsad(DEMO, tmp_path / "out", "participant", "--plugin-args", "n_procs:4", check_rc=2)
    assert "--plugin-args: 'n_procs:4' is not KEY=VALUE" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_bidsad(DEMO, tmp_path / "out", "participant", "--plugin", "Condor", check_rc=2)
    assert "--plugin" in proc.stderr and "Condor" in proc.stderr


def test_plugin_saved_and_reloaded(tmp_path):
    config = _config(tmp_path, "--plugin", "SGE", "--plugin-args", "qsub_args=-l h_vmem=8G", "max_jobs=3")
    path = config.save(tmp_path / "config.toml")
    again = parse_args([str(DEMO), str(tmp_path / "out"), "participant", "--config-file", str(path)])
    assert again.nipype.plugin == "SGE" and again.nipype.plugin_args == {"qsub_args": "-l h_vmem=8G", "max_jobs": 3}
    # the command line adds to (and overrides) the file's plugin_args
    merged = parse_args([str(DEMO), str(tmp_path / "out"), "participant", "--config-file", str(path),
                         "--plugin-args", "max_jobs=7"])
    assert merged.nipype.plugin_args == {"qsub_args": "-l h_vmem=8G", "max_jobs": 7}


def test_unknown_plugin_in_config_file_exit_2(capsys, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[nipype]\nplugin = "Torque"\n')
    with pytest.raises(SystemExit) as exc:
        parse_args([str(DEMO), str(tmp_path / "out"), "participant", "--config-file", str(path)])
    assert exc.value.code == 2 and "unknown nipype plugin 'Torque'" in capsys.readouterr().err


FAKE_SBATCH = """#!/usr/bin/env bash
# Stand-in for SLURM's sbatch: runs the job script at once, here, and answers like sbatch.
# nipype calls: sbatch [sbatch_args] -o OUT -e ERR -J NAME SCRIPT
echo "$*" >> "{log}"
script="${{@: -1}}"
id=$(( $(wc -l < "{log}") ))
bash "$script" > "$(dirname "$script")/slurm-$id.out" 2>&1
echo "Submitted batch job $id"
"""


@pytest.mark.slow  # about 2 min: one Python process per node (run with -m slow)
@pytest.mark.integration
def test_participant_level_through_slurm_plugin(tmp_path, monkeypatch):
    """The SLURM plugin really submits every node through ``sbatch`` with the user's arguments.

    A stand-in ``sbatch`` (runs each job script at once) and ``squeue`` (no job pending) replace SLURM.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "sbatch.log"
    (bin_dir / "sbatch").write_text(FAKE_SBATCH.format(log=log))
    (bin_dir / "squeue").write_text("#!/usr/bin/env bash\nexit 0\n")
    for tool in ("sbatch", "squeue"):
        (bin_dir / tool).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("LOGNAME", os.environ.get("LOGNAME", "bidsad"))  # nipype names SLURM jobs with it
    out = tmp_path / "out"
    run_bidsad(DEMO, out, "participant", "--participant-label", "04", "--preset", "small",
               "--anat-registration", "affine", "-w", tmp_path / "work", "--plugin", "SLURM",
               "--plugin-args", "sbatch_args=--mem=2G --time=00:10:00", check_rc=0)
    submissions = log.read_text().splitlines()
    assert len(submissions) >= 2  # one job per workflow node
    assert all(line.startswith("--mem=2G --time=00:10:00 ") for line in submissions)
    assert (out / "sub-04/features/sub-04_res-small_desc-model_T1w.npy").is_file()
    assert (out / "sub-04.html").is_file()
