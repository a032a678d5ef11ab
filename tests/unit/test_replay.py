"""tools/replay.py: the rendered steps run in the engine's order, exactly as rendered, stdin included."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tools import replay

FAKE_SSH = """#!/usr/bin/env python3
# Stands in for ssh: records the target, the command text and stdin, with start and end times.
import json, os, sys, time
start = time.monotonic()
stdin = sys.stdin.read()
time.sleep(0.05)
with open(os.environ["REPLAY_LOG"], "a") as log:
    log.write(json.dumps({"target": sys.argv[-2], "text": sys.argv[-1], "stdin": stdin,
                          "start": start, "end": time.monotonic()}) + "\\n")
"""


@pytest.fixture()
def fake_ssh(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ssh", "scp"):
        (bin_dir / tool).write_text(FAKE_SSH)
        (bin_dir / tool).chmod(0o755)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path('/usr/bin')}:{Path('/bin')}")
    monkeypatch.setenv("REPLAY_LOG", str(log))
    return lambda: [json.loads(line) for line in log.read_text().splitlines()]


def test_order_puts_every_step_after_its_dependencies(rendered):
    steps = replay.Rendered.load(rendered("dev"))
    order = steps.order()
    assert sorted(order) == sorted(steps.steps)
    for position, name in enumerate(order):
        assert all(order.index(d) < position for d in steps.dependencies(name)), name


def test_create_runs_rendered_text_with_stdin_after_dependencies(rendered, fake_ssh):
    steps = replay.Rendered.load(rendered("dev"))
    remote = [n for n, s in steps.steps.items() if s["type"] == "command:remote:Command"]
    replay.Replayer(steps, jobs=4).run("create")
    calls = fake_ssh()
    by_text = {c["text"]: c for c in calls}
    assert len(calls) == len(remote)
    for name in remote:
        call = by_text[steps.text(name, "create")]
        host = steps.steps[name]["host"]
        assert call["target"] == f"{host['user']}@{host['host']}"
        expected_stdin = steps.text(name, "stdin") or ""
        assert call["stdin"] == expected_stdin
        for dependency in steps.dependencies(name):
            if steps.steps[dependency]["type"] == "command:remote:Command":
                before = by_text[steps.text(dependency, "create")]
                assert before["end"] <= call["start"], (dependency, name)


def test_delete_runs_dependents_first(rendered, fake_ssh):
    steps = replay.Rendered.load(rendered("dev"))
    with_delete = [n for n in steps.steps if steps.text(n, "delete")]
    replay.Replayer(steps, jobs=4).run("delete")
    calls = {c["text"]: c for c in fake_ssh()} if with_delete else {}
    assert len(calls) == len({steps.text(n, "delete") for n in with_delete})
    for name in with_delete:
        for dependency in steps.dependencies(name):
            if steps.text(dependency, "delete"):
                assert calls[steps.text(name, "delete")]["end"] <= \
                    calls[steps.text(dependency, "delete")]["start"]


def test_a_failing_step_stops_the_replay(rendered, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text("#!/bin/sh\necho boom >&2\nexit 3\n")
    (bin_dir / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    steps = replay.Rendered.load(rendered("dev"))
    with pytest.raises(replay.StepFailed, match="exited 3"):
        replay.Replayer(steps).run("create")


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
