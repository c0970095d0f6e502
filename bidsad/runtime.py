"""The process-wide state a run changes, set in one place and restored when the run ends.

Each is a context manager, so that bidsad can be called twice in one process (tests, notebooks, a
workflow manager) without the first call's environment variables, log handlers or nipype configuration
leaking into the second:

- :func:`environment`: environment variables (library caches, thread counts, library log levels, seeds);
- :func:`cache_dirs`: library caches moved to a writable folder when HOME is not writable;
- :func:`logging_to_stderr` and :func:`logging_to_file`: bidsad's log handlers;
- :func:`nipype_config`: nipype's global configuration and its loggers' levels.

Also the exit statuses of a run. Heavy libraries (nipype) are imported inside the functions.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

LOGGER = logging.getLogger("bidsad")
#: Exit statuses: 0 ok, 1 a participant or model failed, 2 usage (bad arguments or inputs of the whole run).
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: Exit status after Ctrl-C (SIGINT), the shell's convention 128 + 2.
EXIT_INTERRUPTED = 130
LOG_FORMAT = "%(asctime)s bidsad %(levelname)s: %(message)s"

#: Environment variables of the caches that libraries write under HOME, and their folder names.
CACHE_VARIABLES = {"MPLCONFIGDIR": "matplotlib", "KERAS_HOME": "keras", "NIPYPE_CONFIG_DIR": "nipype",
                   "XDG_CACHE_HOME": "cache"}


@contextlib.contextmanager
def environment(values: Mapping[str, str] | None = None, *, only_unset: bool = False) -> Iterator[None]:
    """Set ``values`` (name -> text) in ``os.environ`` for the block; afterwards the whole environment is
    as before, including variables set or removed by anything inside the block.

    With ``only_unset``, variables that are already set (even to ``""``) keep their value.
    """
    before = dict(os.environ)
    try:
        for name, value in (values or {}).items():
            if not (only_unset and name in os.environ):
                os.environ[name] = str(value)
        yield
    finally:
        for name in set(os.environ) - set(before):
            del os.environ[name]
        for name, value in before.items():
            if os.environ.get(name) != value:
                os.environ[name] = value


def set_cache_dirs() -> Path | None:
    """Point library caches at a writable folder when HOME is not writable; return that folder.

    Containers run bidsad under any UID (``docker run -u``, Singularity/Apptainer) and often with a
    read-only or missing HOME (``docker run --read-only``); matplotlib, Keras and nipype would then warn or
    fail. The folder is ``<tmp>/bidsad-<uid>`` (``TMPDIR`` respected), or a fresh private one if that is
    not ours. Variables already set (see :data:`CACHE_VARIABLES`) are kept. Caches built in advance (the
    container image's matplotlib font list) are copied from the folder named by ``BIDSAD_CACHE_SEED``.
    The variables stay set: use :func:`cache_dirs` to restore them.
    """
    import shutil
    import tempfile

    home = Path(os.path.expanduser("~"))
    if home.is_dir() and os.access(home, os.W_OK | os.X_OK):
        return None
    base = Path(tempfile.gettempdir()) / f"bidsad-{os.getuid()}"
    try:
        base.mkdir(mode=0o700, exist_ok=True)
        usable = base.stat().st_uid == os.getuid() and os.access(base, os.W_OK | os.X_OK)
    except OSError:
        usable = False
    if not usable:
        base = Path(tempfile.mkdtemp(prefix="bidsad-"))
    for variable, name in CACHE_VARIABLES.items():
        if not os.environ.get(variable):
            (base / name).mkdir(exist_ok=True)
            os.environ[variable] = str(base / name)
    seed = os.environ.get("BIDSAD_CACHE_SEED")
    if seed and Path(seed).is_dir():
        shutil.copytree(seed, base, dirs_exist_ok=True)
    return base


@contextlib.contextmanager
def cache_dirs() -> Iterator[Path | None]:
    """:func:`set_cache_dirs` for the block (yields its folder, or ``None``); the environment is restored after."""
    with environment():
        yield set_cache_dirs()


@contextlib.contextmanager
def logging_to_stderr(verbose: int) -> Iterator[None]:
    """bidsad's messages on stderr for the block (progress always; debug with -vv); other libraries stay quiet.

    Adds a handler to the ``bidsad`` logger when it has none (and stops propagation to the root logger);
    the handler, level and propagation are restored after. Quietens TensorFlow's C++ logs and nipype's
    update check (``TF_CPP_MIN_LOG_LEVEL``, ``NIPYPE_NO_ET``) unless set, restored after too.
    """
    added, level, propagate = None, LOGGER.level, LOGGER.propagate
    if not LOGGER.handlers:
        added = logging.StreamHandler()
        added.setFormatter(logging.Formatter(LOG_FORMAT, "%H:%M:%S"))
        LOGGER.addHandler(added)
        LOGGER.propagate = False
    LOGGER.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    try:
        # NIPYPE_NO_ET: no network check for nipype updates
        with environment({"TF_CPP_MIN_LOG_LEVEL": "2", "NIPYPE_NO_ET": "1"}, only_unset=True):
            yield
    finally:
        if added is not None:
            LOGGER.removeHandler(added)
            added.close()
        LOGGER.setLevel(level)
        LOGGER.propagate = propagate


@contextlib.contextmanager
def logging_to_file(path: Path) -> Iterator[Path]:
    """Copy bidsad's log messages to ``path`` (UTF-8 whatever the locale; folders made) for the block;
    yields ``path``. The handler is removed and the file closed after."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    LOGGER.addHandler(handler)
    try:
        yield path
    finally:
        LOGGER.removeHandler(handler)
        handler.close()


#: nipype's loggers whose levels :func:`nipype_config` sets (through ``nipype.logging.update_logging``).
NIPYPE_LOGGERS = ("nipype.workflow", "nipype.interface", "nipype.utils")


@contextlib.contextmanager
def nipype_config(settings: Mapping[str, Mapping[str, object]]) -> Iterator[None]:
    """nipype's global configuration updated with ``settings`` (section -> option -> value, as
    ``nipype.config.update_config``; its sections ``execution``, ``logging`` and ``check``) and its loggers'
    levels updated from it, for the block; both restored after.
    """
    from nipype import config as ncfg
    from nipype import logging as nlogging

    before = {section: {option: ncfg.get(section, option) for option in options}
              for section, options in settings.items()}
    levels = {name: logging.getLogger(name).level for name in NIPYPE_LOGGERS}
    ncfg.update_config(settings)
    nlogging.update_logging(ncfg)
    try:
        yield
    finally:
        for section, options in before.items():
            for option, value in options.items():
                if value is None:  # an option nipype did not have: removed again (nipype has no public remove)
                    if ncfg.has_option(section, option):
                        ncfg._config.remove_option(section, option)
                else:
                    ncfg.set(section, option, value)
        nlogging.update_logging(ncfg)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
