"""``bidsad`` entry point: dispatch by analysis level; exit 0 ok, 1 a participant or model failed, 2 usage."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from bidsad import messages

LOGGER = logging.getLogger("bidsad")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _setup_logging(verbose: int) -> None:
    """bidsad's messages on stderr (progress always; debug with -vv); other libraries stay quiet."""
    if not LOGGER.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s bidsad %(levelname)s: %(message)s", "%H:%M:%S"))
        LOGGER.addHandler(handler)
        LOGGER.propagate = False
    LOGGER.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("NIPYPE_NO_ET", "1")  # no network check for nipype updates


#: Environment variables of the caches that libraries write under HOME, and their folder names.
CACHE_VARIABLES = {"MPLCONFIGDIR": "matplotlib", "KERAS_HOME": "keras", "NIPYPE_CONFIG_DIR": "nipype",
                   "XDG_CACHE_HOME": "cache"}


def _set_cache_dirs() -> Path | None:
    """Point library caches at a writable folder when HOME is not writable; return that folder.

    Containers run bidsad under any UID (``docker run -u``, Singularity/Apptainer) and often with a
    read-only or missing HOME (``docker run --read-only``); matplotlib, Keras and nipype would then warn or
    fail. The folder is ``<tmp>/bidsad-<uid>`` (``TMPDIR`` respected), or a fresh private one if that is
    not ours. Variables already set (see :data:`CACHE_VARIABLES`) are kept. Caches built in advance (the
    container image's matplotlib font list) are copied from the folder named by ``BIDSAD_CACHE_SEED``.
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


def main(argv: list[str] | None = None) -> None:
    """Run bidsad and exit with its status."""
    from bidsad.cli.parser import parse_args

    _set_cache_dirs()

    config = parse_args(argv)
    _setup_logging(config.execution.verbose)
    from bidsad.cli.parser import NOTES

    for level, note in NOTES:
        LOGGER.log(level, note)
    from bidsad.bids import InputError
    from bidsad.config import seed_everything

    seed_everything(config.seeds.random_seed)
    out_dir = Path(config.execution.out_dir)
    status = None
    try:
        if config.execution.reports_only:
            status = run_reports_only(config)
        elif config.execution.analysis_level == "participant":
            status = run_participant_level(config)
        elif config.execution.apply_models:
            from bidsad.learn.apply import run_apply

            status = run_apply(config)
        else:
            from bidsad.learn.train import run_group_level

            status = run_group_level(config)
    except InputError as err:  # bad input that concerns the whole run: named in the message
        print(f"bidsad: error: {err}", file=sys.stderr)
        status = EXIT_USAGE
    finally:  # the configuration of every run that got past its checks (a crash included), for reuse
        if out_dir.is_dir() and status != EXIT_USAGE:
            config.save(out_dir / "logs" / f"config-{config.execution.analysis_level}-{config.execution.run_uuid}.toml")
    sys.exit(status)


def _nipype_setup(config) -> tuple[str, dict]:
    """Configure nipype (quiet logging, crash files as text, fast polling) and choose the plugin.

    Returns ``(plugin, plugin_args)`` for ``Workflow.run``: ``--plugin`` when given, otherwise Linear for
    one process and MultiProc (``n_procs``, ``memory_gb`` from ``--nprocs``/``--mem``) for more;
    ``--plugin-args`` override these defaults.
    """
    from nipype import config as ncfg
    from nipype import logging as nlogging

    verbose = config.execution.verbose
    # nipype's own tracebacks only with -v: failures are summarised per participant by bidsad
    ncfg.update_config({
        "logging": {"workflow_level": "INFO" if verbose > 1 else ("WARNING" if verbose else "CRITICAL"),
                    "interface_level": "INFO" if verbose > 1 else ("WARNING" if verbose else "CRITICAL"),
                    "utils_level": "WARNING", "log_to_file": False},
        "execution": {"crashdump_dir": str(Path(config.execution.work_dir) / "crash"), "crashfile_format": "txt", "stop_on_first_crash": False, "poll_sleep_duration": 0.1,
                      "remove_unnecessary_outputs": False, "check_version": False,
                      "hash_method": "content"},
        "monitoring": {"enabled": False},
    })
    nlogging.update_logging(ncfg)
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


def run_participant_level(config) -> int:
    """Collect inputs, run the nipype workflow, write reports; return the exit status."""
    import shutil

    from bidsad.bids import collect_participants
    from bidsad.derivatives import stale_tensor_glob
    from bidsad.derivatives.description import write_dataset_description
    from bidsad.validator import validate_input
    from bidsad.workflows.base import crash_dir, init_bidsad_wf

    ex = config.execution
    bids_dir, out_dir = Path(ex.bids_dir), Path(ex.out_dir)
    if not ex.skip_bids_validation:
        validate_input(bids_dir, ex.participant_label)
    participants = collect_participants(bids_dir, ex.participant_label, ex.bids_filters,
                                        validate=not ex.skip_bids_validation, mem_gb=config.nipype.mem_gb)
    log_file = _log_to_file(out_dir, "participant", ex.run_uuid)
    write_dataset_description(out_dir, bids_dir, ex.derivatives)
    _check_work_stamp(Path(ex.work_dir))
    for part in participants:
        for warning in part.warnings:
            LOGGER.warning(warning)
    plugin, plugin_args = _nipype_setup(config)
    if config.nipype.omp_nthreads:  # OpenMP (torch) and ITK (antspyx); 1 makes registration bit-reproducible
        os.environ["OMP_NUM_THREADS"] = str(config.nipype.omp_nthreads)
        os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(config.nipype.omp_nthreads)
    for part in participants:
        # crash files of an earlier attempt must not count against this one, and model tensors of an
        # earlier run must not outlive an input that this run drops
        shutil.rmtree(crash_dir(config, part.label), ignore_errors=True)
        for stale in (out_dir / f"sub-{part.label}").rglob(stale_tensor_glob(config.features.preset)):
            stale.unlink()
        for partial in (out_dir / f"sub-{part.label}").rglob(".*.tmp"):  # a killed run's unfinished writes
            partial.unlink()
    if plugin in PER_PARTICIPANT_PLUGINS:
        participants = _run_per_participant(config, participants, one_at_a_time=plugin == "Linear")
    else:  # cluster plugins: one graph of every participant, each node a job
        workflow = init_bidsad_wf(config, participants)
        LOGGER.info("Participant level: %d participant(s), plugin %s", len(participants), plugin)
        if workflow.list_node_names():
            progress = _start_progress(workflow, plugin_args)
            try:
                workflow.run(plugin=plugin, plugin_args=plugin_args)
            except RuntimeError as err:  # nipype: some nodes failed; attributed below per participant
                LOGGER.debug("nipype reported failures: %s", err)
            finally:
                progress.close()
        for part in participants:
            _finish_participant(config, part)

    failed = []
    for part in participants:
        if part.t1w is None or part.errors:
            failed.append(part.label)
            for error in part.errors:
                LOGGER.error(messages.PARTICIPANT_FAILED.format(label=part.label, why=error))
    _write_boilerplate(out_dir)
    write_dataset_description(out_dir, bids_dir, ex.derivatives)  # Resolution of the res- labels now written
    _write_summary(out_dir / "logs" / f"summary-participant-{ex.run_uuid}.json", participants, failed)
    if failed:
        LOGGER.error(messages.PARTICIPANTS_FAILED.format(
            n=len(failed), total=len(participants), labels=", ".join(f"sub-{f}" for f in failed),
            log=log_file))
        return EXIT_FAILED
    LOGGER.info(messages.PARTICIPANT_DONE.format(n=len(participants), out=out_dir))
    return EXIT_OK


def _start_progress(workflow, plugin_args: dict):
    """Report progress of ``workflow`` (:class:`bidsad.cli.progress.Progress`) through nipype's status
    callback in ``plugin_args``; returns the tracker (call ``close()`` after the run)."""
    from bidsad.cli.progress import Progress

    progress = Progress(workflow)
    plugin_args["status_callback"] = progress
    return progress


#: Plugins under which bidsad schedules whole participants itself (:func:`_run_per_participant`).
PER_PARTICIPANT_PLUGINS = ("Linear", "MultiProc")
#: Peak resident memory of one participant's graph (GB; benchmarks/README.md: 2.5 GB for a full-size
#: participant with BOLD), used to bound how many participants run at once under ``--mem``.
PARTICIPANT_MEM_GB = 3.0


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

    slots, threads = participant_slots(config, 1 if one_at_a_time else len(participants))
    LOGGER.info("Participant level: %d participant(s), %d at a time, %d process(es) each",
                len(participants), slots, threads)
    start, done = time.monotonic(), {}

    def finished(part) -> None:  # "sub-X done, k of N, elapsed" as each participant ends
        from bidsad.cli.progress import format_elapsed

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

    from bidsad.workflows.base import init_bidsad_wf

    config = copy.deepcopy(config)  # the run's configuration, as saved, keeps what the user gave
    config.nipype.omp_nthreads = threads
    os.environ["OMP_NUM_THREADS"] = os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(threads)
    try:
        workflow = init_bidsad_wf(config, [part])
        if workflow.list_node_names():  # failed steps are logged as they happen (bidsad.cli.progress)
            from bidsad.cli.progress import Progress

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


def _log_to_file(out_dir: Path, level: str, run_uuid: str) -> Path:
    """Copy bidsad's log messages to ``out_dir/logs/<level>-<run_uuid>.log`` (UTF-8 whatever the locale)."""
    path = out_dir / "logs" / f"{level}-{run_uuid}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s bidsad %(levelname)s: %(message)s"))
    LOGGER.addHandler(handler)
    return path


def _write_summary(path: Path, participants, failed: list[str]) -> None:
    """Run summary (JSON, atomic): per participant its status, inputs used, warnings and errors."""
    from bidsad.utils import atomic_write_json

    atomic_write_json(path, {f"sub-{p.label}": {
        "status": "failed" if p.label in failed else "ok",
        "t1w": str(p.t1w) if p.t1w else None, "bold": [str(run.path) for run in p.bold],
        "warnings": p.warnings, "errors": p.errors} for p in participants})


def _write_boilerplate(out_dir: Path) -> None:
    """Write logs/CITATION.*; a failure is logged, never fatal (the outputs are already written)."""
    from bidsad.reports.boilerplate import write_boilerplate

    try:
        write_boilerplate(out_dir)
    except Exception as err:  # the boilerplate must never cost the run
        LOGGER.warning(messages.BOILERPLATE_FAILED.format(why=err))


def run_reports_only(config) -> int:
    """``--reports-only``: rebuild the level's reports and the citation boilerplate from existing outputs.

    Participant level: every selected participant's ``sub-<label>.html`` (errors from the crash files
    of the work directory, when it is the same); group level: ``group/group.html``. Nothing is run or
    trained. Raises :class:`bidsad.bids.InputError` when the group level has no outputs.
    """
    from bidsad.bids import InputError

    ex = config.execution
    bids_dir, out_dir = Path(ex.bids_dir), Path(ex.out_dir)
    reports = []
    if ex.analysis_level == "participant":
        from bidsad.bids import collect_participants
        from bidsad.reports.participant import write_participant_report
        from bidsad.workflows.base import crash_dir

        participants = collect_participants(bids_dir, ex.participant_label, ex.bids_filters,
                                            validate=not ex.skip_bids_validation)
        for part in participants:
            part.errors.extend(_crash_reasons(crash_dir(config, part.label)))
            reports.append(write_participant_report(config, part))
    else:
        from bidsad.reports.group import write_apply_report, write_group_report

        if (out_dir / "group" / "predictions.json").is_file() and not (out_dir / "group" / "metrics.json").is_file():
            LOGGER.info(messages.REPORTS_DONE.format(reports=write_apply_report(out_dir)))  # an --apply-models run
            return EXIT_OK
        if not (out_dir / "group" / "metrics.json").is_file():
            raise InputError(messages.REPORTS_NO_GROUP.format(group=out_dir / "group", bids=bids_dir, out=out_dir))
        reports.append(write_group_report(out_dir, bids_dir))
    _write_boilerplate(out_dir)
    LOGGER.info(messages.REPORTS_DONE.format(reports=", ".join(str(r) for r in reports)))
    return EXIT_OK
