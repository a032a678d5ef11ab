"""tools/ephemeral.py against a stand-in `pulumi` (and `ssh`) on PATH that record their argv.

The stand-ins behave like the real tools where the sequence depends on it: `stack init` writes
the stack file with an encryption salt, `stack rm` deletes it, `stack output` prints the key,
ssh answers crm_mon and curl. FAKE_FAIL makes one pulumi subcommand fail; FAKE_INTERRUPT makes
`up` send SIGINT to the tool and wait for the SIGINT the tool forwards.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tools import ephemeral, render

ROOT = render.ROOT
TOOL = ROOT / "tools" / "ephemeral.py"

FAKE_PULUMI = r'''#!PYTHON
import json, os, signal, sys, time
from pathlib import Path
argv = sys.argv[1:]
with open(os.environ["FAKE_RECORD"], "a") as record:
    record.write(json.dumps(argv) + "\n")
stack = argv[argv.index("--stack") + 1]
command = " ".join(a for a in argv if not a.startswith("-") and a != stack)
stack_file = Path(f"Pulumi.{stack}.yaml")
if command.startswith("stack init"):
    stack_file.write_text("encryptionsalt: v1:fake-salt\n")
if command == "up":
    Path(os.environ["FAKE_RECORD"] + ".config").write_text(stack_file.read_text())
    if os.environ.get("FAKE_INTERRUPT"):
        got = []
        signal.signal(signal.SIGINT, lambda *_: got.append(1))
        os.kill(os.getppid(), signal.SIGINT)
        # Generous: on a loaded machine the tool may take seconds to forward the signal.
        for _ in range(1200):
            if got:
                with open(os.environ["FAKE_RECORD"], "a") as record:
                    record.write(json.dumps(["up received SIGINT"]) + "\n")
                sys.exit(255)
            time.sleep(0.05)
        sys.exit(254)
if command.startswith(os.environ.get("FAKE_FAIL") or "\0"):
    print(f"fake pulumi: {command} fails", file=sys.stderr)
    sys.exit(1)
if command == "stack output adminPrivateKey":
    print("-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n-----END OPENSSH PRIVATE KEY-----")
if command == "stack output nodes":
    print(json.dumps({"ctl1": {"ip": "10.20.0.11", "hostKey": "ssh-ed25519 AAAActl1\n"}}))
if command == "stack rm":
    stack_file.unlink()
'''

FAKE_SSH = r'''#!PYTHON
import json, os, sys
known_hosts = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("UserKnownHostsFile="))
with open(os.environ["FAKE_RECORD"] + ".ssh", "a") as record:
    record.write(json.dumps(sys.argv[1:] + [open(known_hosts).read()]) + "\n")
script = sys.argv[-1]
if "crm_mon" in script:
    print(open(os.environ["FAKE_CRM_MON"]).read())
elif "curl" in script:
    print("<html><title>Statistics Report for HAProxy</title></html>")
'''


def crm_mon(stopped: str = "") -> str:
    """crm_mon --output-as=xml of the dev cluster; `stopped` names a resource that is not running."""
    def resource(name: str) -> str:
        role, active = ("Stopped", "false") if name == stopped else ("Started", "true")
        return (f'<resource id="{name}" resource_agent="ocf:heartbeat:Dummy" role="{role}" '
                f'active="{active}" orphaned="false" failed="false" nodes_running_on="1"/>')
    nodes = "".join(f'<node name="ctl{i}" id="{i}" online="true" standby="false"/>'
                    for i in (1, 2, 3))
    return textwrap.dedent(f"""\
        <pacemaker-result api-version="2.30" request="crm_mon -1 --output-as=xml">
          <nodes>{nodes}</nodes>
          <resources>
            <group id="osha-core" number_resources="2">{resource("vip")}{resource("mysql")}</group>
            <clone id="haproxy-clone">{resource("haproxy")}</clone>
          </resources>
        </pacemaker-result>""")


@pytest.fixture
def project(tmp_path) -> Path:
    """A project directory with Pulumi.yaml and a dev stack file holding one encrypted value."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", project)
    dev = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    dev["config"]["openstack-ha:haclusterPassword"] = {"secure": "v1:AAAA"}
    (project / "Pulumi.dev.yaml").write_text(yaml.safe_dump(dev))
    return project


@pytest.fixture
def fakes(tmp_path) -> Path:
    """A bin directory with the stand-in pulumi and ssh."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("pulumi", FAKE_PULUMI), ("ssh", FAKE_SSH)):
        path = bin_dir / name
        path.write_text(text.replace("PYTHON", sys.executable, 1))
        path.chmod(0o755)
    return bin_dir


def run_tool(project: Path, path: str, record: Path, tmp_path: Path, **env) -> \
        subprocess.CompletedProcess:
    crm = tmp_path / "crm_mon.xml"
    crm.write_text(env.pop("crm", crm_mon()))
    return subprocess.run([sys.executable, str(TOOL), "--base", "dev", "--project-dir",
                           str(project)], capture_output=True, text=True, timeout=120,
                          env={"PATH": path, "FAKE_RECORD": str(record),
                               "FAKE_CRM_MON": str(crm), **env})


def calls(record: Path) -> list[list[str]]:
    return [json.loads(line) for line in record.read_text().splitlines()] \
        if record.exists() else []


def subcommands(record: Path) -> list[str]:
    """Each call without its options and stack name, e.g. "stack rm"."""
    result = []
    for argv in calls(record):
        stack = argv[argv.index("--stack") + 1] if "--stack" in argv else None
        result.append(" ".join(a for a in argv if not a.startswith("-") and a != stack))
    return result


def test_without_the_pulumi_cli_it_stops_with_a_clear_error(project, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = run_tool(project, str(empty), tmp_path / "record", tmp_path)
    assert result.returncode == 2
    assert "the Pulumi CLI (`pulumi`) is not on PATH" in result.stderr
    assert "Nothing was created" in result.stderr
    assert sorted(p.name for p in project.iterdir()) == ["Pulumi.dev.yaml", "Pulumi.yaml"]


def test_a_passing_run_deploys_checks_and_tears_down(project, fakes, tmp_path):
    record = tmp_path / "record"
    result = run_tool(project, str(fakes), record, tmp_path)
    assert result.returncode == 0, result.stderr
    assert subcommands(record) == ["stack init", "up", "stack output adminPrivateKey",
                                   "stack output nodes", "destroy", "stack rm"]
    stacks = {argv[argv.index("--stack") + 1] for argv in calls(record)}
    (stack,) = stacks
    assert stack.startswith("eph-dev-") and len(stack) <= 32
    assert ["up", "--yes", "--skip-preview", "--stack", stack, "--non-interactive"] in \
        calls(record)
    assert ["destroy", "--yes", "--skip-preview", "--stack", stack, "--non-interactive"] in \
        calls(record)
    assert ["stack", "rm", "--yes", "--stack", stack, "--non-interactive"] in calls(record)
    # The smoke checks ran on the first control node as the admin user, its host key pinned.
    ssh = [json.loads(line) for line in Path(f"{record}.ssh").read_text().splitlines()]
    assert [argv[-3] for argv in ssh] == ["osha@10.20.0.11"] * 2
    assert "crm_mon" in ssh[0][-2] and "curl" in ssh[1][-2] and "10.20.0.10:8404" in ssh[1][-2]
    for argv in ssh:
        assert "StrictHostKeyChecking=yes" in argv and "StrictHostKeyChecking=no" not in argv
        assert argv[-1] == "10.20.0.11 ssh-ed25519 AAAActl1\n"  # the known_hosts it was given
    assert "smoke checks passed" in result.stderr
    # No stack file is left behind.
    assert sorted(p.name for p in project.iterdir()) == ["Pulumi.dev.yaml", "Pulumi.yaml"]


def test_the_stack_gets_the_base_config_its_own_network_and_no_foreign_secrets(
        project, fakes, tmp_path):
    record = tmp_path / "record"
    assert run_tool(project, str(fakes), record, tmp_path).returncode == 0
    written = yaml.safe_load(Path(f"{record}.config").read_text())
    stack = calls(record)[0][calls(record)[0].index("--stack") + 1]
    assert written["encryptionsalt"] == "v1:fake-salt"  # stack init's file was merged into
    config = written["config"]
    assert config["openstack-ha:network"]["name"] == stack
    assert config["openstack-ha:network"]["cidr"] == "10.20.0.0/24"
    assert config["openstack-ha:controlNodes"] == {"count": 3, "firstIp": "10.20.0.11"}
    assert "openstack-ha:haclusterPassword" not in config


@pytest.mark.parametrize("failing", ["up", "stack output"])
def test_a_failed_deploy_is_still_torn_down(project, fakes, tmp_path, failing):
    record = tmp_path / "record"
    result = run_tool(project, str(fakes), record, tmp_path, FAKE_FAIL=failing)
    assert result.returncode == 1
    assert subcommands(record)[-2:] == ["destroy", "stack rm"]
    assert f"`pulumi {failing}" in result.stderr and "destroyed and removed (failed)" in \
        result.stderr


def test_a_failed_smoke_check_is_reported_and_torn_down(project, fakes, tmp_path):
    record = tmp_path / "record"
    result = run_tool(project, str(fakes), record, tmp_path, crm=crm_mon(stopped="mysql"))
    assert result.returncode == 1
    assert "resource mysql is Stopped" in result.stderr
    assert subcommands(record)[-2:] == ["destroy", "stack rm"]


def test_an_interrupt_reaches_pulumi_and_the_stack_is_torn_down(project, fakes, tmp_path):
    record = tmp_path / "record"
    result = run_tool(project, str(fakes), record, tmp_path, FAKE_INTERRUPT="1")
    assert result.returncode == 130, result.stderr
    assert subcommands(record) == ["stack init", "up", "up received SIGINT", "destroy",
                                   "stack rm"]
    assert "interrupted; tearing the stack down" in result.stderr


def test_a_failed_destroy_keeps_the_stack_and_says_how_to_finish(project, fakes, tmp_path):
    record = tmp_path / "record"
    result = run_tool(project, str(fakes), record, tmp_path, FAKE_FAIL="destroy")
    assert result.returncode == 3
    # stack rm still runs, without --force: it refuses to drop a stack that has resources.
    assert subcommands(record)[-2:] == ["destroy", "stack rm"]
    assert all("--force" not in argv for argv in calls(record))
    assert "clean-up failed, the stack is left" in result.stderr
    assert "finish with: pulumi destroy --yes --stack eph-dev-" in result.stderr


def test_a_stack_that_was_never_created_is_not_destroyed(project, fakes, tmp_path):
    record = tmp_path / "record"
    result = run_tool(project, str(fakes), record, tmp_path, FAKE_FAIL="stack init")
    assert result.returncode == 1
    assert subcommands(record) == ["stack init"]


def test_cluster_problems_reads_crm_mon():
    assert ephemeral.cluster_problems(crm_mon(), ["ctl1", "ctl2", "ctl3"]) == []
    assert ephemeral.cluster_problems(crm_mon(stopped="vip"), ["ctl1", "ctl2", "ctl3"]) == \
        ["resource vip is Stopped"]
    assert ephemeral.cluster_problems(crm_mon(), ["ctl1", "ctl4"]) == ["node ctl4 is not online"]


def test_stack_names_are_unique_dns_labels():
    names = {ephemeral.stack_name("a-very-long-base-stack-name-indeed") for _ in range(50)}
    assert len(names) == 50
    assert all(len(n) <= 32 and n == n.lower() for n in names)
