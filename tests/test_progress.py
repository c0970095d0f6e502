"""Participant-level progress (issue 17): a line per finished participant, failures as they happen."""

from __future__ import annotations

import logging


def _double(x):
    return 2 * x


def _fail(x):
    raise ValueError(f"broken input {x}")


def _toy_workflow(base_dir):
    """Three participants of three steps in a chain; sub-02's second step fails."""
    from nipype.interfaces import utility as niu
    from nipype.pipeline import engine as pe

    top = pe.Workflow(name="bidsad_toy_wf", base_dir=str(base_dir))
    for label in ("01", "02", "03"):
        sub = pe.Workflow(name=f"single_subject_{label}_wf")
        nodes = []
        for index in range(3):
            function = _fail if (label == "02" and index == 1) else _double
            node = pe.Node(niu.Function(function=function, input_names=["x"], output_names=["y"]), name=f"step{index}")
            nodes.append(node)
        nodes[0].inputs.x = 1
        outputnode = pe.Node(niu.IdentityInterface(fields=["y"]), name="outputnode")  # never run by nipype
        sub.connect([(nodes[0], nodes[1], [("y", "x")]), (nodes[1], nodes[2], [("y", "x")]),
                     (nodes[2], outputnode, [("y", "y")])])
        top.add_nodes([sub])
    return top


def test_progress_lines_per_participant_and_failures_as_they_happen(tmp_path, caplog):
    from nipype import config as ncfg

    from bidsad.progress import Progress

    saved = ncfg.get("execution", "crashdump_dir", None)
    ncfg.set("execution", "crashdump_dir", str(tmp_path / "crash"))
    workflow = _toy_workflow(tmp_path / "work")
    ticks = iter(range(0, 10_000, 30))  # a fake clock: 30 s per call
    progress = Progress(workflow, bar=False, clock=lambda: next(ticks))
    assert progress.steps_total == 9 and progress.total_participants == 3
    logger = logging.getLogger("bidsad")
    logger.addHandler(caplog.handler)
    propagate, logger.propagate = logger.propagate, False  # each record once, with or without bidsad's setup
    caplog.set_level(logging.INFO, logger="bidsad")
    try:
        try:
            workflow.run(plugin="Linear", plugin_args={"status_callback": progress})
        except RuntimeError:
            pass
    finally:
        logger.removeHandler(caplog.handler)
        logger.propagate = propagate
        ncfg.set("execution", "crashdump_dir", saved or "")
    lines = [r.getMessage() for r in caplog.records]
    print("\n".join(lines))
    done = [line for line in lines if " done, " in line or " failed, " in line]
    assert sorted(line.split(",")[0] for line in done) == ["sub-01 done", "sub-02 failed", "sub-03 done"]
    assert [line.split(", ")[1] for line in done] == ["1 of 3", "2 of 3", "3 of 3"]
    assert all(", elapsed " in line and line.endswith("s") or "reasons" in line for line in done)
    failure = next(i for i, line in enumerate(lines) if "step step1 failed" in line)
    assert lines[failure].startswith("sub-02: step step1 failed after ")
    failed_line = lines.index(next(line for line in done if line.startswith("sub-02 failed")))
    assert failure < failed_line < lines.index(done[-1])  # said when it happened, before the others finished
    assert progress.steps_done == 9  # sub-02's skipped third step counted with its failed parent
    assert any(line.startswith("9 of 9 steps done (100 %)") for line in lines)


def test_progress_runs_graphs_with_map_nodes(tmp_path):
    """nipype keeps the plugin arguments (the callback among them) in each MapNode and pickles the node:
    the callback must pickle (a MapNode made every demo participant fail with 'cannot pickle _thread.lock')."""
    from nipype.interfaces import utility as niu
    from nipype.pipeline import engine as pe

    from bidsad.progress import Progress

    top = pe.Workflow(name="bidsad_map_wf", base_dir=str(tmp_path))
    sub = pe.Workflow(name="single_subject_01_wf")
    doubled = pe.MapNode(niu.Function(function=_double, input_names=["x"], output_names=["y"]),
                         iterfield=["x"], name="doubled")
    doubled.inputs.x = [1, 2, 3]
    sub.add_nodes([doubled])
    top.add_nodes([sub])
    progress = Progress(top, bar=False, announce=False)
    result = top.run(plugin="Linear", plugin_args={"status_callback": progress})
    (node,) = [n for n in result.nodes() if n.name == "doubled"]
    assert node.result.outputs.y == [2, 4, 6]
    assert progress.failed == set()
