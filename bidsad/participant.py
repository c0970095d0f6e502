"""The participant level: collect participants, build and run each participant's nipype graph, summarise.

:func:`run_participant_level` is the orchestrator (``bidsad bids_dir out_dir participant``);
:func:`run_participant_reports` rebuilds the reports only (``--reports-only``). Under the Linear and
MultiProc plugins bidsad schedules whole participants itself (:func:`participant_slots`), so that a stopped
cohort run leaves whole participants; the cluster plugins (SLURM, SGE) get one graph of every participant.
nipype's configuration, thread counts and the run's log file are set for the run and restored after
(:mod:`bidsad.runtime`). nipype is imported inside the functions.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from bidsad import messages, runtime

LOGGER = logging.getLogger("bidsad")

#: Plugins under which bidsad schedules whole participants itself (:func:`_run_per_participant`).
PER_PARTICIPANT_PLUGINS = ("Linear", "MultiProc")
#: Peak resident memory of one participant's graph (GB; benchmarks/README.md: 2.5 GB for a full-size
#: participant with BOLD), used to bound how many participants run at once under ``--mem``.
PARTICIPANT_MEM_GB = 3.0


def run_participant_level(config) -> int:
    """Collect inputs, run the nipype workflow, write reports; return the exit status.

    Returns :data:`bidsad.runtime.EXIT_OK` (0), or :data:`~bidsad.runtime.EXIT_FAILED` (1) when a participant
    failed (each named with its reasons, also in ``logs/summary-participant-<run>.json``). Raises
    :class:`bidsad.bids.InputError` for inputs that concern the whole run (validator errors, unknown labels).
    """
    ex = config.execution
    out_dir = Path(ex.out_dir)
    participants = _collect(config)
    with runtime.logging_to_file(out_dir / "logs" / f"participant-{ex.run_uuid}.log") as log_file:
        _start_outputs(config, participants)
        plugin, plugin_args = nipype_plugin(config)
        # OpenMP (torch) and ITK (antspyx) threads; 1 makes registration bit-reproducible
        with runtime.nipype_config(nipype_settings(config)), \
                runtime.environment(_thread_variables(config.nipype.omp_nthreads)):
            _clear_earlier_attempts(config, participants)
            if plugin in PER_PARTICIPANT_PLUGINS:
                participants = _run_per_participant(config, participants, one_at_a_time=plugin == "Linear")
            else:  # cluster plugins: one graph of every participant, each node a job
                _run_one_graph(config, participants, plugin, plugin_args)
            return _conclude(config, participants, log_file)


def _collect(config) -> list:
    """The run's participants (:func:`bidsad.bids.collect_participants`), after the BIDS validator unless skipped."""
    from bidsad.bids import collect_participants
    from bidsad.validator import validate_input

    ex = config.execution
    bids_dir = Path(ex.bids_dir)
    if not ex.skip_bids_validation:
        validate_input(bids_dir, ex.participant_label)
    return collect_participants(bids_dir, ex.participant_label, ex.bids_filters,
                                validate=not ex.skip_bids_validation, mem_gb=config.nipype.mem_gb)


def _start_outputs(config, participants: list) -> None:
    """dataset_description.json, the work directory's stamp, and each participant's input warnings."""
    from bidsad.derivatives.description import write_dataset_description

    ex = config.execution
    write_dataset_description(Path(ex.out_dir), Path(ex.bids_dir), ex.derivatives)
    _check_work_stamp(Path(ex.work_dir))
    for part in participants:
        for warning in part.warnings:
            LOGGER.warning(warning)


def _clear_earlier_attempts(config, participants: list) -> None:
    """Remove, per participant, what an earlier attempt left that must not count in this one.

    Crash files of an earlier attempt must not count against this one, model tensors of an earlier run must
    not outlive an input that this run drops, and a killed run's unfinished writes (``.*.tmp``) go.
    """
    import shutil

    from bidsad.derivatives import stale_tensor_glob
    from bidsad.workflows.base import crash_dir

    out_dir = Path(config.execution.out_dir)
    for part in participants:
        shutil.rmtree(crash_dir(config, part.label), ignore_errors=True)
        for stale in (out_dir / f"sub-{part.label}").rglob(stale_tensor_glob(config.features.preset)):
            stale.unlink()
        for partial in (out_dir / f"sub-{part.label}").rglob(".*.tmp"):
            partial.unlink()


def _run_one_graph(config, participants: list, plugin: str, plugin_args: dict) -> None:
    """Cluster plugins: one nipype graph of every participant, each node a job; then each participant's
    crash reasons and report (:func:`_finish_participant`)."""
    from bidsad.progress import Progress
    from bidsad.workflows.base import init_bidsad_wf

    workflow = init_bidsad_wf(config, participants)
    LOGGER.info("Participant level: %d participant(s), plugin %s", len(participants), plugin)
    if workflow.list_node_names():
        progress = Progress(workflow)
        plugin_args["status_callback"] = progress
        try:
            workflow.run(plugin=plugin, plugin_args=plugin_args)
        except RuntimeError as err:  # nipype: some nodes failed; attributed below per participant
            LOGGER.debug("nipype reported failures: %s", err)
        finally:
            progress.close()
    for part in participants:
        _finish_participant(config, part)


def _conclude(config, participants: list, log_file: Path) -> int:
    """Name the failed participants, write the boilerplate, the dataset description (the ``res-`` labels
    now written) and the run summary; return the exit status."""
    from bidsad.derivatives.description import write_dataset_description
    from bidsad.reports.boilerplate import write_boilerplate_or_warn

    ex = config.execution
    out_dir = Path(ex.out_dir)
    failed = []
    for part in participants:
        if part.t1w is None or part.errors:
            failed.append(part.label)
            for error in part.errors:
                LOGGER.error(messages.PARTICIPANT_FAILED.format(label=part.label, why=error))
    write_boilerplate_or_warn(out_dir)
    write_dataset_description(out_dir, Path(ex.bids_dir), ex.derivatives)
    _write_summary(out_dir / "logs" / f"summary-participant-{ex.run_uuid}.json", participants, failed)
    if failed:
        LOGGER.error(messages.PARTICIPANTS_FAILED.format(
            n=len(failed), total=len(participants), labels=", ".join(f"sub-{f}" for f in failed),
            log=log_file))
        return runtime.EXIT_FAILED
    LOGGER.info(messages.PARTICIPANT_DONE.format(n=len(participants), out=out_dir))
    return runtime.EXIT_OK


def nipype_settings(config) -> dict:
    """nipype's configuration for a run (for :func:`bidsad.runtime.nipype_config`): quiet logging (nipype's
    own tracebacks only with -v: failures are summarised per participant by bidsad), crash files as text in
    ``<work_dir>/crash``, fast polling, no version check. Input files are hashed by size and modification
    time (nipype's default), not by content: md5 of every input file of every node (hundreds of MB per
    participant, in the scheduler and again in the worker) cost about 20 CPU s in a fully cached rerun of the
    full-size participant and more in a fresh run (issue 19)."""
    verbose = config.execution.verbose
    level = "INFO" if verbose > 1 else ("WARNING" if verbose else "CRITICAL")
    return {
        "logging": {"workflow_level": level, "interface_level": level, "utils_level": "WARNING", "log_to_file": False},
        "execution": {"crashdump_dir": str(Path(config.execution.work_dir) / "crash"), "crashfile_format": "txt",
                      "stop_on_first_crash": False, "poll_sleep_duration": 0.1, "remove_unnecessary_outputs": False,
                      "check_version": False, "hash_method": "timestamp"},
        "monitoring": {"enabled": False},
    }


def nipype_plugin(config) -> tuple[str, dict]:
    """Choose the nipype plugin: ``(plugin, plugin_args)`` for ``Workflow.run``.

    ``--plugin`` when given, otherwise Linear for one process and MultiProc (``n_procs``, ``memory_gb`` from
    ``--nprocs``/``--mem``) for more; ``--plugin-args`` override these defaults. Cluster plugins get only the
    user's arguments (and a note on what they need).
    """
    nprocs = config.nipype.nprocs or os.cpu_count() or 1
    plugin = config.nipype.plugin or ("Linear" if nprocs == 1 else "MultiProc")
    args = {}
    if plugin == "MultiProc":
        args = {"n_procs": nprocs, "raise_insufficient": False}
        if config.nipype.mem_gb:
            args["memory_gb"] = config.nipype.mem_gb
    elif plugin in ("SLURM", "SGE"):
        LOGGER.info(messages.PLUGIN_CLUSTER.format(plugin=plugin))
    args.update(config.nipype.plugin_args or {})
    return plugin, args


def _thread_variables(threads: int | None) -> dict[str, str]:
    """OpenMP (torch) and ITK (antspyx) thread counts as environment variables; none when ``threads`` is unset."""
    if not threads:
        return {}
    return {"OMP_NUM_THREADS": str(threads), "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(threads)}


def _crash_reasons(folder: Path) -> list[str]:
    """The exception message of every nipype crash file in ``folder`` (the innermost one), with the file."""
    import re

    reasons = []
    for crash in sorted(folder.glob("crash-*.txt")) if folder.is_dir() else []:
        text = crash.read_text(errors="replace")
        found = re.findall(r"^\s*(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.+)$", text, flags=re.MULTILINE)
        found = [(kind, message) for kind, message in found if kind != "NodeExecutionError"]
        why = f"{found[-1][1].strip()}" if found else "unexpected error"
        reasons.append(f"{why} (details: {crash})")
    return reasons


def _check_work_stamp(work_dir: Path) -> None:
    """Stamp ``work_dir`` with bidsad's version; warn when an earlier run used another version.

    Cached results of another version are never reused: nipype's top workflow is named after the version
    (:func:`bidsad.workflows.base.workflow_name`), and node caches are keyed on their inputs' content.
    The same version after a crash reuses every finished node.
    """
    import json

    from bidsad import __version__
    from bidsad.utils import atomic_write_json

    stamp = work_dir / "bidsad_stamp.json"
    try:
        earlier = json.loads(stamp.read_text(encoding="utf-8")).get("bidsad_version")
    except (OSError, ValueError, AttributeError):
        earlier = None
    if earlier and earlier != __version__:
        LOGGER.warning(messages.WORK_OTHER_VERSION.format(work=work_dir, old=earlier, new=__version__))
    atomic_write_json(stamp, {"bidsad_version": __version__})


def participant_slots(config, n_participants: int) -> tuple[int, int]:
    """How a run's ``--nprocs`` is split: (participants at once, processes per participant).

    With ``--omp-nthreads T``: ``nprocs // T`` participants of ``T`` processes each. Otherwise as many
    participants as processes (most steps use one core), and the processes left over go to the running
    participants (one participant alone gets all of them). ``--mem`` bounds the participants at once
    to ``mem / PARTICIPANT_MEM_GB``. Never fewer than one participant or one process.
    """
    nprocs = config.nipype.nprocs or os.cpu_count() or 1
    threads = config.nipype.omp_nthreads
    slots = max(1, nprocs // threads) if threads else nprocs
    slots = max(1, min(slots, n_participants))
    if config.nipype.mem_gb:
        slots = max(1, min(slots, int(config.nipype.mem_gb // PARTICIPANT_MEM_GB)))
    return slots, threads or max(1, nprocs // slots)


def _run_per_participant(config, participants: list, *, one_at_a_time: bool = False) -> list:
    """Run participants one graph each, ``slots`` at a time (:func:`participant_slots`; one with
    ``--plugin Linear``), each participant's outputs and report finished before its worker takes the next
    one, so that a stopped cohort run leaves whole participants; return the participants (errors added).

    Workers are forked processes reused across participants (libraries and models load once per worker).
    A participant whose worker dies (e.g. killed for memory) is reported failed; the others go on.
    """
    import concurrent.futures as cf
    import multiprocessing
    import time

    from bidsad.progress import format_elapsed

    slots, threads = participant_slots(config, 1 if one_at_a_time else len(participants))
    LOGGER.info("Participant level: %d participant(s), %d at a time, %d process(es) each",
                len(participants), slots, threads)
    start, done = time.monotonic(), {}

    def finished(part) -> None:  # "sub-X done, k of N, elapsed" as each participant ends
        done[part.label] = part
        template = messages.PARTICIPANT_FINISHED_FAILED if part.errors else messages.PARTICIPANT_FINISHED
        LOGGER.info(template.format(label=part.label, k=len(done), n=len(participants),
                                    elapsed=format_elapsed(time.monotonic() - start)))

    if slots == 1:
        for part in participants:
            finished(_run_one_participant(config, part, threads, 1))
        return [done[part.label] for part in participants]
    with cf.ProcessPoolExecutor(max_workers=slots, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = {pool.submit(_run_one_participant, config, part, threads, slots): part
                   for part in participants}
        for future in cf.as_completed(futures):
            part = futures[future]
            try:
                result = future.result()
            except Exception as err:  # the worker process itself died: this participant failed
                part.errors.append(f"the participant's process ended unexpectedly ({err!r})")
                result = part
            finished(result)
    return [done[part.label] for part in participants]


def _run_one_participant(config, part, threads: int, slots: int):
    """One participant's graph, then its report: MultiProc with ``threads`` processes (``--plugin-args``
    apply, ``--mem`` shared between the ``slots`` participants at once), Linear for one process.

    Runs in a worker process (or in this one); returns ``part`` with the reasons of failed nodes in
    ``part.errors``.
    """
    import copy

    from bidsad.progress import Progress
    from bidsad.workflows.base import init_bidsad_wf

    config = copy.deepcopy(config)  # the run's configuration, as saved, keeps what the user gave
    config.nipype.omp_nthreads = threads
    with runtime.environment(_thread_variables(threads)):
        try:
            workflow = init_bidsad_wf(config, [part])
            if workflow.list_node_names():  # failed steps are logged as they happen (bidsad.progress)
                args = {"status_callback": Progress(workflow, bar=False, announce=False)}
                if threads > 1 and config.nipype.plugin != "Linear":
                    args.update({"raise_insufficient": False, "n_procs": threads, **(config.nipype.plugin_args or {})})
                    if config.nipype.mem_gb:
                        args.setdefault("memory_gb", config.nipype.mem_gb / slots)
                    workflow.run(plugin="MultiProc", plugin_args=args)
                else:
                    workflow.run(plugin="Linear", plugin_args=args)
        except RuntimeError as err:  # nipype: some nodes failed; their crash files name why
            LOGGER.debug("nipype reported failures for sub-%s: %s", part.label, err)
        except Exception as err:  # building the graph failed: this participant only
            part.errors.append(f"{type(err).__name__}: {err}")
        _finish_participant(config, part)
    return part


def _finish_participant(config, part) -> None:
    """Collect the participant's crash reasons into ``part.errors`` and write its report."""
    from bidsad.reports.participant import write_participant_report
    from bidsad.workflows.base import crash_dir

    part.errors.extend(_crash_reasons(crash_dir(config, part.label)))
    write_participant_report(config, part)


def _write_summary(path: Path, participants, failed: list[str]) -> None:
    """Run summary (JSON, atomic): per participant its status, inputs used, warnings and errors."""
    from bidsad.utils import atomic_write_json

    atomic_write_json(path, {f"sub-{p.label}": {
        "status": "failed" if p.label in failed else "ok",
        "t1w": str(p.t1w) if p.t1w else None, "bold": [str(run.path) for run in p.bold],
        "warnings": p.warnings, "errors": p.errors} for p in participants})


def run_participant_reports(config) -> int:
    """``participant --reports-only``: rebuild every selected participant's ``sub-<label>.html`` and the
    citation boilerplate from existing outputs (errors from the crash files of the work directory, when it
    is the same); nothing is run. Returns :data:`bidsad.runtime.EXIT_OK`; raises
    :class:`bidsad.bids.InputError` when none of them has outputs in ``out_dir``."""
    from bidsad.bids import InputError, collect_participants
    from bidsad.reports.boilerplate import write_boilerplate_or_warn
    from bidsad.reports.participant import write_participant_report
    from bidsad.workflows.base import crash_dir

    ex = config.execution
    participants = collect_participants(Path(ex.bids_dir), ex.participant_label, ex.bids_filters,
                                        validate=not ex.skip_bids_validation)
    out_dir = Path(ex.out_dir)
    if not any((out_dir / f"sub-{part.label}").is_dir() for part in participants):
        labels = ", ".join(f"sub-{part.label}" for part in participants) or "the selected participants"
        raise InputError(messages.REPORTS_NO_PARTICIPANT.format(out=out_dir, labels=labels, bids=ex.bids_dir))
    reports = []
    for part in participants:
        part.errors.extend(_crash_reasons(crash_dir(config, part.label)))
        reports.append(write_participant_report(config, part))
    write_boilerplate_or_warn(Path(ex.out_dir))
    LOGGER.info(messages.REPORTS_DONE.format(reports=", ".join(str(r) for r in reports)))
    return runtime.EXIT_OK
