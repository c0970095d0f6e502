"""``bidsad`` entry point: parse, dispatch by analysis level; exit 0 ok, 1 a participant or model failed, 2 usage.

The process-wide state a run sets (library caches, log handlers, environment variables) is restored when
:func:`main` returns (:mod:`bidsad.runtime`), so it can be called twice in one process.
"""

from __future__ import annotations

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
    """Run the chosen level; map bad input of the whole run to exit status 2; save the run's configuration."""
    from bidsad.bids import InputError
    from bidsad.seeds import seed_everything

    seed_everything(config.seeds.random_seed)
    out_dir = Path(config.execution.out_dir)
    status = None
    try:
        if config.execution.reports_only and config.execution.analysis_level == "participant":
            from bidsad.participant import run_participant_reports

            status = run_participant_reports(config)
        elif config.execution.reports_only:
            from bidsad.group.reports_only import run_group_reports

            status = run_group_reports(config)
        elif config.execution.analysis_level == "participant":
            from bidsad.participant import run_participant_level

            status = run_participant_level(config)
        elif config.execution.apply_models:
            from bidsad.group.apply import run_apply

            status = run_apply(config)
        else:
            from bidsad.group.cross_validation import run_group_level

            status = run_group_level(config)
    except InputError as err:  # bad input that concerns the whole run: named in the message
        print(f"bidsad: error: {err}", file=sys.stderr)
        status = runtime.EXIT_USAGE
    finally:  # the configuration of every run that got past its checks (a crash included), for reuse
        if out_dir.is_dir() and status != runtime.EXIT_USAGE:
            config.save(out_dir / "logs" / f"config-{config.execution.analysis_level}-{config.execution.run_uuid}.toml")
    return status
