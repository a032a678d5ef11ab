"""One SSH target for every ssh and scp the tools and the lab run: the command lines each caller
ran before it shared one, spelled out."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lab import vms
from tools import ephemeral, replay

NAMESPACE = ("ip", "netns", "exec", "osha-lab")


@pytest.fixture(scope="module")
def lab_render(rendered):
    return replay.Rendered.load(rendered("lab"))


def pinned(root: Path) -> list[str]:
    return [*replay.SSH_OPTIONS, "-o", f"UserKnownHostsFile={root / 'known_hosts'}"]


def first_remote(steps: replay.Rendered, with_input: str = "") -> str:
    return next(n for n, s in steps.steps.items()
                if s.type != "command:local:Command" and with_input in (*s.inputs, ""))


@pytest.mark.parametrize("port, wrap", [(None, ()), (2222, NAMESPACE)])
def test_a_replayed_step_runs_over_ssh_on_its_hosts_port(lab_render, port, wrap, monkeypatch):
    name = first_remote(lab_render)
    step = lab_render.steps[name]
    host = step.host.model_copy(update={"port": port})
    monkeypatch.setitem(lab_render.steps, name, step.model_copy(update={"host": host}))
    argv = replay.Replayer(lab_render, wrap=wrap)._argv(name, "echo 'x y'")
    assert argv == [*wrap, "ssh", *pinned(lab_render.root), "-p", str(port or 22),
                    "-i", str(lab_render.root / host.private_key_file),
                    f"{host.user}@{host.host}", "echo 'x y'"]


def test_a_replayed_copy_runs_scp_on_the_hosts_port(lab_render, monkeypatch):
    name = first_remote(lab_render, "remotePath")
    step = lab_render.steps[name]
    monkeypatch.setattr(replay.Replayer, "_process", lambda self, name, argv, stdin: argv)
    argv = replay.Replayer(lab_render, wrap=NAMESPACE)._copy(name)
    assert argv == [*NAMESPACE, "scp", "-s", *pinned(lab_render.root), "-P", "22",
                    "-i", str(lab_render.root / step.host.private_key_file),
                    str(lab_render.root / step.files["source"]),
                    f"{step.host.user}@{step.host.host}:{step.inputs['remotePath']}"]


def recording(monkeypatch, module) -> list[list[str]]:
    ran: list[list[str]] = []

    def run(argv, **_kwargs):
        ran.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")
    monkeypatch.setattr(module.subprocess, "run", run)
    return ran


def test_the_lab_runs_a_command_as_root_on_a_vm_in_its_namespace(lab_render, monkeypatch):
    ran = recording(monkeypatch, vms)
    manifest = lab_render.manifest
    vms.node_ssh(lab_render.root, manifest, manifest.nodes[0], "systemctl is-active pcsd")
    assert ran == [[*NAMESPACE, "ssh", *pinned(lab_render.root),
                    "-i", str(lab_render.root / manifest.ssh.private_key_file),
                    f"{manifest.ssh.user}@{manifest.nodes[0].ip}",
                    "sudo -n bash -c 'systemctl is-active pcsd'"]]


def test_the_ephemeral_smoke_check_runs_over_ssh_on_the_default_port(monkeypatch):
    ran = recording(monkeypatch, ephemeral)
    target = replay.SshTarget("osha", "10.20.0.11", Path("/scratch/admin.key"), ("-o", "A=b"))
    ephemeral.Node(target).run("sudo crm_mon -1")
    assert ran == [["ssh", "-o", "A=b", "-i", "/scratch/admin.key", "osha@10.20.0.11",
                    "sudo crm_mon -1"]]
