"""Process-wide state (environment, log handlers, nipype's configuration) is restored after a run, so bidsad
can be called twice in one process."""

from __future__ import annotations

import importlib
import logging
import os
import tempfile

import pytest

from bidsad import runtime
from bidsad.cli.run import main

from .conftest import DEMO

NIPYPE_LOGGERS = ("nipype.workflow", "nipype.interface", "nipype.utils")


def _state() -> dict:
    """Everything a run may change: environment, bidsad's logger, nipype's configuration and loggers."""
    from nipype import config as ncfg

    bidsad = logging.getLogger("bidsad")
    return {"env": dict(os.environ), "handlers": list(bidsad.handlers), "level": bidsad.level,
            "propagate": bidsad.propagate,
            "nipype": {s: dict(ncfg._config.items(s, raw=True)) for s in ncfg._config.sections()},
            "nipype_levels": {name: logging.getLogger(name).level for name in NIPYPE_LOGGERS}}


@pytest.fixture
def unwritable_home(tmp_path, monkeypatch):
    """HOME below a regular file (cannot exist), temporary files under ``tmp_path``, no cache variables set."""
    importlib.import_module("nipype")  # with the real HOME (nipype makes its config folder when imported)

    (tmp_path / "file").write_text("")
    monkeypatch.setenv("HOME", str(tmp_path / "file" / "home"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for variable in runtime.CACHE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    return tmp_path


def test_context_managers_restore_everything_twice(unwritable_home):
    from nipype import config as ncfg

    from bidsad.config import Config
    from bidsad.participant import nipype_settings

    config = Config()
    config.execution.work_dir = str(unwritable_home / "work")
    before = _state()
    for attempt in range(2):
        log = unwritable_home / f"run-{attempt}.log"
        with runtime.cache_dirs() as base, runtime.logging_to_stderr(2), runtime.logging_to_file(log), \
                runtime.nipype_config(nipype_settings(config)), runtime.environment({"OMP_NUM_THREADS": "3"}):
            assert base == unwritable_home / f"bidsad-{os.getuid()}"
            assert os.environ["KERAS_HOME"] == str(base / "keras") and os.environ["OMP_NUM_THREADS"] == "3"
            assert os.environ["NIPYPE_NO_ET"] == "1"
            assert ncfg.get("execution", "crashdump_dir") == str(unwritable_home / "work" / "crash")
            assert logging.getLogger("nipype.workflow").level == logging.CRITICAL  # quiet without -v
            logging.getLogger("bidsad").info("attempt %d", attempt)
        assert log.read_text(encoding="utf-8").endswith(f"attempt {attempt}\n")
        assert _state() == before


def test_main_twice_restores_everything(unwritable_home, monkeypatch, capsys):
    """A participant level with no participants (exit 0) and a group --reports-only without outputs (exit 2),
    each twice in this process: nothing of the first call is left for the second or after."""
    import bidsad.participant

    monkeypatch.setattr(bidsad.participant, "_collect", lambda config: [])
    before = _state()
    for attempt in range(2):
        out, work = unwritable_home / f"out-{attempt}", unwritable_home / f"work-{attempt}"
        with pytest.raises(SystemExit) as exc:
            main([str(DEMO), str(out), "participant", "-w", str(work), "--nprocs", "1", "--omp-nthreads", "2",
                  "--mem", "4", "-v"])
        assert exc.value.code == 0
        assert list((out / "logs").glob("participant-*.log")) and list((out / "logs").glob("summary-participant-*"))
        assert list((out / "logs").glob("config-participant-*.toml"))
        assert _state() == before
        with pytest.raises(SystemExit) as exc:
            main([str(DEMO), str(out), "group", "--reports-only"])
        assert exc.value.code == 2 and "no group outputs in" in capsys.readouterr().err
        assert _state() == before


def test_group_level_writes_its_log_to_out_dir_logs(tmp_path, monkeypatch):
    """The group level's log lines go to out_dir/logs/group-<run>.log as well as stderr; --reports-only writes none."""
    import bidsad.group.cross_validation

    def fake_group_level(config):
        logging.getLogger("bidsad").info("group level: task CN vs AD")
        logging.getLogger("bidsad").warning("model 3dcnn: fold 2 failed")
        return 0

    monkeypatch.setattr(bidsad.group.cross_validation, "run_group_level", fake_group_level)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SystemExit) as exc:
        main([str(DEMO), str(out), "group", "-w", str(tmp_path / "w")])
    assert exc.value.code == 0
    (log,) = (out / "logs").glob("group-*.log")
    (config,) = (out / "logs").glob("config-group-*.toml")
    assert log.stem.removeprefix("group-") == config.stem.removeprefix("config-group-")  # the run's id
    lines = log.read_text(encoding="utf-8").splitlines()
    assert [line.split(" bidsad ", 1)[1] for line in lines] == [
        "INFO: group level: task CN vs AD", "WARNING: model 3dcnn: fold 2 failed"]
    assert not logging.getLogger("bidsad").handlers  # the file handler is removed after the run


def test_out_dir_that_cannot_be_created_is_a_usage_error(tmp_path, capsys):
    """An out_dir that cannot be made (here under a file) exits 2 with a message naming it, not a traceback."""
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exc:
        main([str(DEMO), str(blocker / "out"), "participant", "--skip-bids-validation", "-w", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"cannot write {blocker / 'out'}" in err and "Traceback" not in err
