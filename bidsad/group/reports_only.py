"""``bidsad bids_dir out_dir group --reports-only``: the group report and citation boilerplate rebuilt from
existing outputs; nothing is trained."""

from __future__ import annotations

import logging
from pathlib import Path

from bidsad import messages, runtime
from bidsad.derivatives import GROUP_DIR, METRICS_JSON, PREDICTIONS_JSON

LOGGER = logging.getLogger("bidsad")


def run_group_reports(config) -> int:
    """Rebuild ``group/group.html`` (or an ``--apply-models`` run's report) and the citation boilerplate from
    existing outputs; return the exit status (0).

    Raises
    ------
    bidsad.bids.InputError
        The group level has no outputs in ``out_dir``.
    """
    from bidsad.bids import InputError
    from bidsad.reports.boilerplate import write_boilerplate_or_warn
    from bidsad.reports.group import write_apply_report, write_group_report

    bids_dir, out_dir = Path(config.execution.bids_dir), Path(config.execution.out_dir)
    group_dir = out_dir / GROUP_DIR
    if (group_dir / PREDICTIONS_JSON).is_file() and not (group_dir / METRICS_JSON).is_file():
        LOGGER.info(messages.REPORTS_DONE.format(reports=write_apply_report(out_dir)))  # an --apply-models run
        return runtime.EXIT_OK
    if not (group_dir / METRICS_JSON).is_file():
        raise InputError(messages.REPORTS_NO_GROUP.format(group=group_dir, bids=bids_dir, out=out_dir))
    report = write_group_report(out_dir, bids_dir)
    write_boilerplate_or_warn(out_dir)
    LOGGER.info(messages.REPORTS_DONE.format(reports=str(report)))
    return runtime.EXIT_OK
