"""``bidsad`` entry point: parse, dispatch by analysis level; exit 0 ok, 1 a participant or model failed, 2 usage.

The process-wide state a run sets (library caches, log handlers, environment variables) is restored when
:func:`main` returns (:mod:`bidsad.runtime`), so it can be called twice in one process.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

from bidsad import messages, runtime

LOGGER = logging.getLogger("bidsad")


def main(argv: list[str] | None = None) -> None:
    """Run bidsad and exit with its status (:data:`bidsad.runtime.EXIT_OK`, ``EXIT_FAILED``, ``EXIT_USAGE``)."""
    with runtime.environment():  # every variable the run sets (caches, threads, seeds) is restored after it
        try:
            status = _run(argv)
        except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback from inside nipype's scheduler
            print(messages.INTERRUPTED, file=sys.stderr)
            status = runtime.EXIT_INTERRUPTED
    sys.exit(status)


def _run(argv: list[str] | None) -> int:
    """Parse ``argv``, log the parser's notes, dispatch; return the exit status (``parse_args`` exits 2 itself)."""
    from bidsad.cli.parser import NOTES, parse_args

    runtime.set_cache_dirs()
    config = parse_args(argv)
    with runtime.logging_to_stderr(config.execution.verbose):
        for level, note in NOTES:
            LOGGER.log(level, note)
        return _dispatch(config)


def _dispatch(config) -> int:
    """Run the chosen level; map bad input of the whole run to exit status 2; save the run's configuration.

    The group level's log goes to ``out_dir/logs/group-<run>.log`` (the participant level opens its own,
    ``participant-<run>.log``, after the BIDS validator); ``--reports-only`` runs write none.
    """
    from bidsad.bids import InputError
    from bidsad.seeds import seed_everything

    seed_everything(config.seeds.random_seed)
    ex = config.execution
    out_dir = Path(ex.out_dir)
    group_log = ex.analysis_level == "group" and not ex.reports_only and out_dir.is_dir()
    status = None
    try:
        with runtime.logging_to_file(out_dir / "logs" / f"group-{ex.run_uuid}.log") if group_log \
                else contextlib.nullcontext():
            status = _level(config)
    except InputError as err:  # bad input that concerns the whole run: named in the message
        print(f"bidsad: error: {err}", file=sys.stderr)
        status = runtime.EXIT_USAGE
    except OSError as err:  # out_dir or the work folder cannot be made or written (read-only, /proc, no permission)
        target = Path(err.filename) if err.filename else None
        if target is None or not any(p == target or p in target.parents for p in (out_dir, Path(ex.work_dir))):
            raise
        print(f"bidsad: error: {messages.CANNOT_WRITE.format(path=target, why=err.strerror)}", file=sys.stderr)
        status = runtime.EXIT_USAGE
    finally:  # the configuration of every run that got past its checks (a crash included), for reuse
        if out_dir.is_dir() and status != runtime.EXIT_USAGE:
            config.save(out_dir / "logs" / f"config-{ex.analysis_level}-{ex.run_uuid}.toml")
    return status


def _level(config) -> int:
    """Run the level, ``--reports-only`` or ``--apply-models`` run that ``config`` asks for; return its status."""
    ex = config.execution
    if ex.reports_only and ex.analysis_level == "participant":
        from bidsad.participant import run_participant_reports

        return run_participant_reports(config)
    if ex.reports_only:
        from bidsad.group.reports_only import run_group_reports

        return run_group_reports(config)
    if ex.analysis_level == "participant":
        from bidsad.participant import run_participant_level

        return run_participant_level(config)
    if ex.apply_models:
        from bidsad.group.apply import run_apply

        return run_apply(config)
    from bidsad.group.cross_validation import run_group_level

    return run_group_level(config)
