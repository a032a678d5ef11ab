#!/usr/bin/env python3
"""A throw-away stack: create it from a base stack file, deploy, smoke-check, always tear down.

    python tools/ephemeral.py --base dev          (or: make ephemeral BASE=dev)

1. A uniquely named stack (eph-<base>-<8 hex>) gets the base file's config, with its own libvirt
   network name, so domains, volumes and the network never collide with the base stack's.
2. `pulumi up`, then the smoke checks over SSH on the first control node (its host key pinned from
   the stack's `nodes` output): every cluster node online, every Pacemaker resource started (none
   failed), and the VIP answering through HAProxy (its statistics page on the VIP).
3. Always, also after a failure or Ctrl-C/SIGTERM: `pulumi destroy --yes`, then
   `pulumi stack rm --yes` (without --force: a stack whose destroy failed is kept and named).

Exit status: 0 all passed; 1 deploy or smoke check failed; 2 the Pulumi CLI or the base file is
missing; 3 the clean-up failed (the stack is left; the message says how to finish it);
130 interrupted. Secure (encrypted) values of the base file are not copied: the stack generates
its own secrets.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

import settings as stack_settings  # noqa: E402
from components.haproxy import STATS_PORT  # noqa: E402
from manifest_schema import Host  # noqa: E402
from tools import crm_mon  # noqa: E402
from tools.replay import SshTarget, pinned_ssh_options  # noqa: E402

PROJECT = stack_settings.PROJECT


class Failed(Exception):
    """A step failed; the message says which and why."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived."""


def _raise_interrupted(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


def stack_name(base: str) -> str:
    """A lowercase DNS label (it also names the libvirt network): at most 32 characters."""
    return f"eph-{base[:19]}-{secrets.token_hex(4)}"


class Pulumi:
    """The Pulumi CLI in the project directory, one stack."""

    def __init__(self, project_dir: Path, stack: str):
        self.project_dir = project_dir
        self.stack = stack
        # Set once `stack init` may have created the stack: from then on it is torn down.
        self.created = False

    def run(self, *argv: str, capture: bool = False) -> str:
        """`pulumi ARGV --stack STACK`, in its own session so a terminal Ctrl-C reaches only us."""
        command = ["pulumi", *argv, "--stack", self.stack, "--non-interactive"]
        print("+ " + " ".join(command), file=sys.stderr, flush=True)
        process = subprocess.Popen(command, cwd=self.project_dir, text=True,
                                   stdout=subprocess.PIPE if capture else None,
                                   start_new_session=True)
        try:
            stdout, _ = process.communicate()
        except (KeyboardInterrupt, Interrupted):
            # On SIGINT Pulumi cancels gracefully and saves its state; a kill would leave
            # pending operations that the destroy cannot account for.
            process.send_signal(signal.SIGINT)
            process.wait()
            raise
        if process.returncode != 0:
            raise Failed(f"`{' '.join(command)}` exited with {process.returncode}")
        return stdout or ""


def stack_file(project_dir: Path, stack: str) -> Path:
    return project_dir / f"Pulumi.{stack}.yaml"


def ephemeral_config(base_file: Path, stack: str) -> dict:
    """The base file's plain config, with the network named after the stack."""
    document = yaml.safe_load(base_file.read_text()) or {}
    config = {key: value for key, value in (document.get("config") or {}).items()
              if not (isinstance(value, dict) and "secure" in value)}
    network_key = f"{PROJECT}:network"
    config[network_key] = {**(config.get(network_key) or {}), "name": stack}
    return config


def write_config(path: Path, config: dict) -> None:
    """Merge into the file `pulumi stack init` wrote (it may hold the stack's encryption salt)."""
    document = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
    document["config"] = config
    path.write_text(yaml.safe_dump(document, sort_keys=False))


# ---- smoke checks --------------------------------------------------------------------------

def cluster_problems(crm_mon_xml: str, expected_nodes: list[str]) -> list[str]:
    """What `crm_mon --output-as=xml` shows wrong: offline nodes, resources not started."""
    view = crm_mon.parse(crm_mon_xml)
    problems = [f"node {name} is not online" for name in expected_nodes
                if name not in view.online]
    if not view.instances:
        problems.append("the cluster runs no resources")
    return problems + [f"resource {why}" for why in view.not_started]


class Node:
    """SSH to one node as the admin user with the stack's key, trusting only its host key."""

    def __init__(self, target: SshTarget):
        self.target = target

    def run(self, script: str) -> str:
        try:
            result = subprocess.run(self.target.ssh(script), capture_output=True, text=True,
                                    timeout=300)
        except subprocess.TimeoutExpired:
            raise Failed(f"ssh {self.target.login} `{script}` did not finish in 300 s") from None
        if result.returncode != 0:
            raise Failed(f"ssh {self.target.login} `{script}` exited with {result.returncode}: "
                         f"{result.stderr.strip()}")
        return result.stdout


def smoke(node: Node, parsed: stack_settings.Settings) -> None:
    problems = cluster_problems(node.run("sudo crm_mon -1 --output-as=xml"),
                                [n.name for n in parsed.controls])
    url = f"http://{parsed.vip}:{STATS_PORT}/"
    page = node.run(f"curl -fsS --max-time 10 {url}")
    if "HAProxy" not in page:
        problems.append(f"{url} did not answer with HAProxy's statistics page")
    if problems:
        raise Failed("smoke checks failed:\n  - " + "\n  - ".join(problems))
    print(f"smoke checks passed: {len(parsed.controls)} nodes online, every resource started, "
          f"{url} answers through HAProxy", file=sys.stderr)


def run_smoke(pulumi: Pulumi, parsed: stack_settings.Settings) -> None:
    key = pulumi.run("stack", "output", "adminPrivateKey", "--show-secrets", capture=True)
    nodes = json.loads(pulumi.run("stack", "output", "nodes", "--json", capture=True))
    first = parsed.controls[0]
    with tempfile.TemporaryDirectory() as scratch:
        key_file = Path(scratch) / "admin.key"
        key_file.touch(mode=0o600)
        key_file.write_text(key.strip() + "\n")
        options = pinned_ssh_options(Path(scratch) / "known_hosts", [
            Host(host=str(first.ip), host_key=nodes[first.name]["hostKey"])])
        smoke(Node(SshTarget(parsed.admin_user, str(first.ip), key_file, options)), parsed)


# ---- the whole run ---------------------------------------------------------------------------

def deploy_and_check(pulumi: Pulumi, base_file: Path) -> None:
    config = ephemeral_config(base_file, pulumi.stack)
    raw = {k[len(PROJECT) + 1:]: v for k, v in config.items() if k.startswith(f"{PROJECT}:")}
    parsed = stack_settings.parse(raw, pulumi.stack)
    pulumi.created = True
    try:
        pulumi.run("stack", "init")
    except Failed:
        pulumi.created = False
        raise
    write_config(stack_file(pulumi.project_dir, pulumi.stack), config)
    pulumi.run("up", "--yes", "--skip-preview")
    run_smoke(pulumi, parsed)


def clean_up(pulumi: Pulumi) -> Optional[str]:
    """destroy, then stack rm, whatever happened before; None or what is left to do."""
    if not pulumi.created:
        return None
    # Another Ctrl-C or SIGTERM must not stop the tear-down half-way.
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        problems = []
        for argv in (("destroy", "--yes", "--skip-preview"), ("stack", "rm", "--yes")):
            try:
                pulumi.run(*argv)
            except Failed as error:
                problems.append(str(error))
        # stack rm deletes Pulumi.<stack>.yaml; no copy may outlive a removed stack.
        with contextlib.suppress(FileNotFoundError):
            if not problems:
                stack_file(pulumi.project_dir, pulumi.stack).unlink()
        if problems:
            return ("clean-up failed, the stack is left: " + "; ".join(problems) +
                    f"\n  finish with: pulumi destroy --yes --stack {pulumi.stack} && "
                    f"pulumi stack rm --yes --stack {pulumi.stack}")
        return None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="dev", help="the base stack (Pulumi.<base>.yaml)")
    parser.add_argument("--base-file", type=Path, help="a stack file other than Pulumi.<base>.yaml")
    parser.add_argument("--project-dir", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    if shutil.which("pulumi") is None:
        print("ephemeral: the Pulumi CLI (`pulumi`) is not on PATH; install it "
              "(https://www.pulumi.com/docs/install/) and run again. Nothing was created.",
              file=sys.stderr)
        return 2
    base_file = args.base_file or stack_file(args.project_dir, args.base)
    if not base_file.is_file():
        print(f"ephemeral: no base stack file {base_file}", file=sys.stderr)
        return 2
    pulumi = Pulumi(args.project_dir, stack_name(args.base))
    print(f"ephemeral stack {pulumi.stack} from {base_file.name}", file=sys.stderr)
    # Both signals explicitly: a process started in the background inherits SIGINT ignored,
    # and Ctrl-C must still tear the stack down.
    previous = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        deploy_and_check(pulumi, base_file)
    except (Failed, stack_settings.SettingsError) as error:
        print(f"ephemeral: {error}", file=sys.stderr)
        status = 1
    except (KeyboardInterrupt, Interrupted):
        print("ephemeral: interrupted; tearing the stack down", file=sys.stderr)
        status = 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        left = clean_up(pulumi)
    if left:
        print(f"ephemeral: {left}", file=sys.stderr)
        return 3
    print(f"ephemeral: stack {pulumi.stack} destroyed and removed "
          f"({'passed' if status == 0 else 'failed' if status == 1 else 'interrupted'})",
          file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
