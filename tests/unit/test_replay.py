"""tools/replay.py: the rendered steps run in the engine's order, exactly as rendered, stdin included."""
from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import stack_config
from tools import render, replay

RECORDER = """#!/usr/bin/env python3
# Stands in for the process a step starts (ssh to a node, or a local interpreter): records its
# argv and stdin with start and end times, and runs nothing.
import json, os, sys, time
start = time.monotonic()
stdin = sys.stdin.read()
time.sleep(0.05)
with open(os.environ["REPLAY_LOG"], "a") as log:
    log.write(json.dumps({"argv": sys.argv[1:], "text": sys.argv[-1], "stdin": stdin,
                          "start": start, "end": time.monotonic()}) + "\\n")
"""


@pytest.fixture()
def recorder(tmp_path, monkeypatch):
    """(the wrap prefix for Replayer, a function returning the recorded calls)."""
    tool = tmp_path / "record"
    tool.write_text(RECORDER)
    tool.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("REPLAY_LOG", str(log))
    return (str(tool),), lambda: [json.loads(line) for line in log.read_text().splitlines()]


def test_order_puts_every_step_after_its_dependencies(rendered):
    steps = replay.Rendered.load(rendered("dev"))
    order = steps.order()
    assert sorted(order) == sorted(steps.steps)
    for position, name in enumerate(order):
        assert all(order.index(d) < position for d in steps.dependencies(name)), name


def target(step: dict) -> str:
    """What the recorded argv ends with before the text: user@host for ssh, -c for local."""
    host = step["host"]
    return f"{host['user']}@{host['host']}" if host.get("user") else "-c"


def by_step(steps: replay.Rendered, calls: list[dict], phase: str):
    """The recorded call of each step (same text on several nodes: told apart by the target)."""
    keyed = {(c["argv"][-2], c["text"]): c for c in calls}
    assert len(keyed) == len(calls)
    return lambda name: keyed[(target(steps.steps[name]), steps.text(name, phase))]


def test_create_runs_rendered_text_with_stdin_after_dependencies(rendered, recorder):
    wrap, recorded = recorder
    steps = replay.Rendered.load(rendered("dev"))
    replay.Replayer(steps, wrap=wrap, jobs=4).run("create")
    assert len(recorded()) == len(steps.steps)
    copies = {c["argv"][-1]: c for c in recorded() if c["argv"][0] == "scp"}
    commands = [c for c in recorded() if c["argv"][0] != "scp"]
    for name, step in steps.steps.items():
        if step["type"] == "command:remote:CopyToRemote":
            host = step["host"]
            copy = copies[f"{host['user']}@{host['host']}:{step['inputs']['remotePath']}"]
            assert copy["argv"][-2] == str(steps.root / step["files"]["source"])
    call = by_step(steps, commands, "create")
    for name, step in steps.steps.items():
        if step["type"] == "command:remote:CopyToRemote":
            continue
        argv = call(name)["argv"]
        if step["type"] == "command:remote:Command":
            assert argv[0] == "ssh"
        else:
            assert argv[:2] == step["inputs"].get("interpreter", ["/bin/sh", "-c"])
        assert call(name)["stdin"] == (steps.text(name, "stdin") or "")
        for dependency in steps.dependencies(name):
            if steps.steps[dependency]["type"] != "command:remote:CopyToRemote":
                assert call(dependency)["end"] <= call(name)["start"], (dependency, name)


def test_delete_runs_dependents_first(rendered, recorder):
    wrap, recorded = recorder
    steps = replay.Rendered.load(rendered("dev"))
    with_delete = [n for n in steps.steps if steps.text(n, "delete")]
    assert "cluster-setup" in with_delete and "cluster-layout" in with_delete
    replay.Replayer(steps, wrap=wrap, jobs=4).run("delete")
    assert len(recorded()) == len(with_delete)
    call = by_step(steps, recorded(), "delete")
    for name in with_delete:
        for dependency in steps.dependencies(name):
            if steps.text(dependency, "delete"):
                assert call(name)["end"] <= call(dependency)["start"], (name, dependency)


def test_a_failing_step_stops_the_replay(rendered, tmp_path):
    failing = tmp_path / "fail"
    failing.write_text("#!/bin/sh\necho boom >&2\nexit 3\n")
    failing.chmod(0o755)
    steps = replay.Rendered.load(rendered("dev"))
    replayer = replay.Replayer(steps, wrap=(str(failing),))
    with pytest.raises(replay.StepFailed, match="exited 3"):
        replayer.run("create")
    # Only the first wave (steps with no dependencies) started; nothing ran after a failure.
    assert replayer.results and all(r.stderr.strip() == "boom" for r in replayer.results)
    assert all(not steps.dependencies(r.name) for r in replayer.results)


def test_changed_steps_are_exactly_the_edited_ones(rendered, tmp_path):
    old_dir = rendered("dev")
    new_dir = tmp_path / "new"
    shutil.copytree(old_dir, new_dir)
    old, unchanged = replay.Rendered.load(old_dir), replay.Rendered.load(new_dir)
    assert replay.changed_steps(old, unchanged) == []
    victim = unchanged.order()[-1]
    script = new_dir / unchanged.steps[victim]["files"]["create"]
    script.write_text(script.read_text() + "# edited\n")
    assert replay.changed_steps(old, replay.Rendered.load(new_dir)) == [victim]


def test_a_second_render_changes_no_step(rendered, tmp_path):
    """Rendering is reproducible (keys included, whatever their file format), so a re-render of
    an unchanged stack gives `pulumi up` nothing to run."""
    again = tmp_path / "again"
    render.write(render.run_program(stack_config("dev"), "dev"), again)
    assert replay.changed_steps(replay.Rendered.load(rendered("dev")),
                                replay.Rendered.load(again)) == []
