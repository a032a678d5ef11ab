"""tools/replay.py: the rendered steps run in the engine's order, exactly as rendered, stdin included."""
from __future__ import annotations

import json
import signal
import os
import shutil
import socket
import subprocess
import time

import pytest

from manifest_schema import Host, Manifest, Network, Resource, Ssh
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


def target(step: Resource) -> str:
    """What the recorded argv ends with before the text: user@host for ssh, -c for local."""
    return f"{step.host.user}@{step.host.host}" if step.host.user else "-c"


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
        if step.type == "command:remote:CopyToRemote":
            copy = copies[f"{step.host.user}@{step.host.host}:{step.inputs['remotePath']}"]
            assert copy["argv"][-2] == str(steps.root / step.files["source"])
    call = by_step(steps, commands, "create")
    for name, step in steps.steps.items():
        if step.type == "command:remote:CopyToRemote":
            continue
        argv = call(name)["argv"]
        if step.type == "command:remote:Command":
            assert argv[0] == "ssh"
        else:
            assert argv[:2] == step.inputs.get("interpreter", ["/bin/sh", "-c"])
        assert call(name)["stdin"] == (steps.text(name, "stdin") or "")
        for dependency in steps.dependencies(name):
            if steps.steps[dependency].type != "command:remote:CopyToRemote":
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


def render_of(root, resources: list[Resource]) -> replay.Rendered:
    """A render of just these steps (no nodes), loaded as the replay loads one."""
    network = Network(name="test", cidr="10.0.0.0/24", gateway="10.0.0.1", domain="test",
                      mode="isolated")
    Manifest(stack="test", vip="10.0.0.2", network=network, nodes=[],
             ssh=Ssh(user="root", private_key_file="secrets/key"), outputs={},
             resources=resources).write(root)
    return replay.Rendered.load(root)


def local_steps(root, steps: dict[str, tuple[str, list[str]]],
                phases: tuple[str, ...] = ("create",)) -> replay.Rendered:
    """A render of local steps: name: (its shell text for each of `phases`, the steps it waits
    for)."""
    resources = []
    for name, (text, after) in steps.items():
        (root / name).mkdir(parents=True)
        for phase in phases:
            (root / name / f"{phase}.sh").write_text(text)
        resources.append(Resource(name=name, type="command:local:Command", parent=None,
                                  depends_on=after, waits_for=after,
                                  host=Host(host="localhost"),
                                  files={phase: f"{name}/{phase}.sh" for phase in phases},
                                  inputs={}))
    return render_of(root, resources)


def test_an_interruption_kills_the_steps_in_flight_and_starts_nothing_more(tmp_path):
    """As a killed engine: the running steps' processes end at once (a step's shell killed
    mid-script does not go on), the steps after them never start; a second run does it all."""
    marks = tmp_path / "marks"
    marks.mkdir()
    steps = local_steps(tmp_path / "render", {
        "slow": (f"sleep 2; touch {marks}/slow", []),
        "beside": (f"sleep 2; touch {marks}/beside", []),
        "after": (f"touch {marks}/after", ["slow"])})
    started = time.monotonic()
    with pytest.raises(replay.Interrupted) as interrupted:
        replay.Replayer(steps, interruption=replay.Interruption("slow", 0.3)).run("create")
    assert time.monotonic() - started < 1.5
    assert interrupted.value.in_flight == ["beside", "slow"]
    time.sleep(2.5)
    assert not list(marks.iterdir())
    results = replay.Replayer(steps).run("create")
    assert sorted(r.name for r in results) == sorted(p.name for p in marks.iterdir()) \
        == ["after", "beside", "slow"]


def test_an_interruption_between_steps_starts_nothing_more(tmp_path):
    """Killed after its step ended and before the next one started: the replay stops there."""
    steps = local_steps(tmp_path / "render", {
        "quick": ("true", []),
        "next": (f"touch {tmp_path}/next", ["quick"])})
    replayer = replay.Replayer(steps, interruption=replay.Interruption("quick", 0))
    with pytest.raises(replay.Interrupted):
        replayer.run("create")
    assert not (tmp_path / "next").exists()


def test_a_resumed_run_runs_again_only_what_the_killed_run_did_not_finish(tmp_path):
    """As `pulumi up` after a killed one: a step that finished keeps its new state and does not
    run again; the killed step and those it blocked run."""
    runs = tmp_path / "runs"
    steps = local_steps(tmp_path / "render", {
        "first": (f"echo first >>{runs}", []),
        "killed": (f"sleep 2; echo killed >>{runs}", ["first"]),
        "blocked": (f"echo blocked >>{runs}", ["killed"])})
    results = replay.run_resumed(lambda chosen: replay.Replayer(steps, interruption=chosen),
                                 "create", list(steps.steps), replay.Interruption("killed", 0.3))
    assert [(r.name, r.returncode) for r in results] == [
        ("first", 0), ("killed", -signal.SIGKILL), ("killed", 0), ("blocked", 0)]
    assert runs.read_text().split() == ["first", "killed", "blocked"]


@pytest.mark.parametrize("phase", ["create", "delete"])
def test_a_partial_run_keeps_the_order_a_step_left_out_imposes(tmp_path, phase):
    """As the engine's update: `last` waits for `first` through `between`, which does not run
    (unchanged); a delete runs them the other way round."""
    log = tmp_path / "log"
    script = "echo {0} start >>{1}; sleep 0.5; echo {0} end >>{1}"
    steps = local_steps(tmp_path / "render", {
        "first": (script.format("first", log), []),
        "between": ("true", ["first"]),
        "last": (script.format("last", log), ["between"])}, phases=("create", "delete"))
    replay.Replayer(steps, jobs=4).run(phase, ["first", "last"])
    expected = ["first", "last"] if phase == "create" else ["last", "first"]
    assert log.read_text().split("\n")[:-1] == [f"{name} {event}" for name in expected
                                                for event in ("start", "end")]


def test_changed_steps_are_exactly_the_edited_ones(rendered, tmp_path):
    old_dir = rendered("dev")
    new_dir = tmp_path / "new"
    shutil.copytree(old_dir, new_dir)
    old, unchanged = replay.Rendered.load(old_dir), replay.Rendered.load(new_dir)
    assert replay.changed_steps(old, unchanged) == []
    victim = unchanged.order()[-1]
    script = new_dir / unchanged.steps[victim].files["create"]
    script.write_text(script.read_text() + "# edited\n")
    assert replay.changed_steps(old, replay.Rendered.load(new_dir)) == [victim]


def test_ssh_trusts_exactly_the_host_keys_the_manifest_pins(rendered, recorder):
    wrap, recorded = recorder
    steps = replay.Rendered.load(rendered("dev"))
    replay.Replayer(steps, wrap=wrap).run("create", ["ctl1-ready", "ctl1-haproxy-config"])
    known_hosts = steps.root / "known_hosts"
    pinned = {f"{s.host.host} {s.host.host_key}" for s in steps.steps.values()
              if s.host.host_key}
    assert len(pinned) == len(steps.manifest.nodes)
    assert sorted(known_hosts.read_text().splitlines()) == sorted(pinned)
    assert len(recorded()) == 2
    for call in recorded():
        options = " ".join(call["argv"])
        assert "StrictHostKeyChecking=yes" in options
        assert f"UserKnownHostsFile={known_hosts}" in options
        assert "StrictHostKeyChecking=no" not in options
        assert "UserKnownHostsFile=/dev/null" not in options


def keygen(path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)],
                   check=True)
    return path.with_suffix(".pub").read_text().strip()


@pytest.fixture
def sshd(tmp_path):
    """An sshd on a free loopback port (in a private mount namespace for its /run/sshd), letting
    root in with a client key: (port, its host public key, the client key file)."""
    if os.geteuid() != 0 or shutil.which("sshd") is None:
        pytest.skip("needs root and sshd")
    host_key = keygen(tmp_path / "host_key")
    client = tmp_path / "client_key"
    (tmp_path / "authorized_keys").write_text(keygen(client) + "\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "sshd_config"
    config.write_text(f"ListenAddress 127.0.0.1:{port}\nHostKey {tmp_path / 'host_key'}\n"
                      f"PidFile {tmp_path / 'sshd.pid'}\n"
                      f"AuthorizedKeysFile {tmp_path / 'authorized_keys'}\n"
                      "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                      "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n")
    server = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         'mount -t tmpfs tmpfs /run && mkdir -m 0755 /run/sshd && exec /usr/sbin/sshd -D -e -f "$0"',
         str(config)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as attempt:
                if attempt.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert server.poll() is None, server.stderr.read()
            assert time.monotonic() < deadline, "sshd did not listen"
            time.sleep(0.1)
        yield port, host_key, client
    finally:
        server.terminate()
        server.wait(timeout=30)


def one_step_render(root, port: int, host_key: str, client_key) -> replay.Rendered:
    """A render with one remote step on the loopback sshd."""
    (root / "probe").mkdir(parents=True)
    (root / "probe" / "create.sh").write_text("echo logged in as $(id -un)\n")
    host = Host(host="127.0.0.1", port=port, user="root", private_key_file=str(client_key),
                host_key=host_key)
    return render_of(root, [Resource(
        name="probe", type=replay.REMOTE, parent=None, depends_on=[], waits_for=[], host=host,
        files={"create": "probe/create.sh"}, inputs={"connection": {"dialErrorLimit": 1}})])


def test_a_step_runs_on_a_host_answering_with_its_pinned_key(sshd, tmp_path):
    port, host_key, client = sshd
    steps = one_step_render(tmp_path / "render", port, host_key, client)
    (result,) = replay.Replayer(steps).run("create")
    assert result.stdout == "logged in as root\n"
    assert (steps.root / "known_hosts").read_text() == f"[127.0.0.1]:{port} {host_key}\n"


def test_a_host_answering_with_another_key_is_refused(sshd, tmp_path):
    port, _, client = sshd
    other = keygen(tmp_path / "other_key")
    steps = one_step_render(tmp_path / "render", port, other, client)
    with pytest.raises(replay.StepFailed, match="Host key verification failed"):
        replay.Replayer(steps).run("create")


def test_a_second_render_changes_no_step(rendered, tmp_path):
    """Rendering is reproducible (keys included, whatever their file format), so a re-render of
    an unchanged stack gives `pulumi up` nothing to run."""
    again = tmp_path / "again"
    render.write(render.run_program(stack_config("dev"), "dev"), again)
    assert replay.changed_steps(replay.Rendered.load(rendered("dev")),
                                replay.Rendered.load(again)) == []
