"""One lab run: render the lab stack, build the rootfs and the local package repository (and for
VMs the image derived from them), bring up the hypervisor and the nodes on the chosen substrate,
converge them with the stack's own steps (OpenStack's install, bootstrap and start included), and
tear everything down on any exit.

    python -m lab.session up [--substrate containers|vms]   # leaves the lab running, says how to reach it
    python -m lab.session down                               # ends it

The failover profile comes from OSHA_LAB_PROFILE, as for `make lab`.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import settings as stack_settings
from components import shared_disk
from components.openstack_config import node_plan
from lab import checks, evidence, hypervisor
from lab.containers import Containers
from lab.substrate import Substrate
from lab.vms import VMs, node_ssh
from manifest_schema import Manifest, Node
from tools import render, replay

REPO = Path(__file__).resolve().parent.parent
STACK = "lab"
SUBSTRATES = ("containers", "vms")
# The stack's steps that repoint an OpenStack install (after its start steps; they find nothing
# to change when the stack installed it), the rolling restarts that follow them and the nodes'
# maintenance steps after those.
REPOINT_STEPS = ("-repoint", "keystone-endpoints", "-rolling-restart", "-maintenance")


def substrate_from_environment() -> str:
    """`OSHA_LAB_SUBSTRATE` (make lab / make lab-vms set it); containers by default."""
    name = os.environ.get("OSHA_LAB_SUBSTRATE", "containers")
    if name not in SUBSTRATES:
        raise SystemExit(f"OSHA_LAB_SUBSTRATE={name}: expected one of {', '.join(SUBSTRATES)}")
    return name


# Failover profiles the drills compare: the stack's defaults, and the quick settings (a short
# corosync token; no throttling on the host-wide load average containers report, see README).
PROFILES = {
    "default": {},
    "fast": {"cluster": {"tokenMs": 1000, "loadThresholdPercent": 1000}},
}


def stack_config(profile: str = "default", layout: str | None = None) -> dict:
    """Pulumi.lab.yaml's settings with a failover profile (and a HAProxy layout) on top."""
    raw = render.stack_config(STACK)
    for section, values in PROFILES[profile].items():
        raw[section] = {**raw.get(section, {}), **values}
    if layout:
        raw["cluster"] = {**raw["cluster"], "haproxyLayout": layout}
    # The nodes pin the lab's fencing sshd by its own host key.
    raw["hypervisors"] = [{**entry, "hostKey": hypervisor.fence_host_key()}
                          for entry in raw["hypervisors"]]
    return raw


def profile_from_environment() -> str:
    """`OSHA_LAB_PROFILE` (make lab PROFILE=...); the stack's defaults unless it names another."""
    name = os.environ.get("OSHA_LAB_PROFILE", "default")
    if name not in PROFILES:
        raise SystemExit(f"OSHA_LAB_PROFILE={name}: expected one of {', '.join(PROFILES)}")
    return name


def steps_of(rendered: replay.Rendered) -> tuple[list[str], list[str]]:
    """(cluster steps, repoint steps) in the engine's order."""
    names = rendered.order()
    return ([n for n in names if not n.endswith(REPOINT_STEPS)],
            [n for n in names if n.endswith(REPOINT_STEPS)])


def interruption_from_environment(rendered: replay.Rendered, steps: list[str],
                                  default: replay.Interruption) -> replay.Interruption:
    """Where a first run of `steps` is killed: `default`, or with OSHA_LAB_INTERRUPT_SEED set, a
    point drawn with that seed (0-120 s after the start of a step another one waits for; a
    short step has ended by then, and the kill finds the steps running at that time)."""
    seed = os.environ.get("OSHA_LAB_INTERRUPT_SEED")
    return default if seed is None else drawn_interruption(rendered, steps, int(seed))


def drawn_interruption(rendered: replay.Rendered, steps: list[str], seed: int,
                       durations: dict[str, float] | None = None) -> replay.Interruption:
    """The point `seed` draws among `steps`: in a step another one waits for, 0-120 s after its
    start, or, given each step's seconds in an earlier run, within that step's run then."""
    awaited = [s for s in steps if any(s in rendered.dependencies(o) for o in steps)]
    draw = random.Random(seed)
    step = draw.choice(awaited)
    limit = durations[step] if durations is not None else 120
    return replay.Interruption(step, round(draw.uniform(0, limit), 1))


def render_stack(out: Path, profile: str = "default", layout: str | None = None) -> Path:
    """The lab stack rendered (tools/render) with a failover profile (and a HAProxy layout)."""
    return render_settings(out, stack_config(profile, layout))


def render_settings(out: Path, raw: dict) -> Path:
    """The lab stack rendered (tools/render) with the settings `raw`, kept beside the render."""
    render.write(render.run_program(raw, STACK), out)
    (out / "settings.json").write_text(json.dumps(raw, indent=2) + "\n")
    return out


def exit_on_signals() -> None:
    """SIGTERM and Ctrl-C end the lab (by its recorded PIDs) before the program exits."""
    def stop(signum, _frame):
        replay.STOP.set()
        ensure_down()
        sys.exit(f"lab interrupted by signal {signum}")
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)


def _build(script: str, *args: str) -> Path:
    """One of lab/build-*.sh (cached by content); the directory it prints."""
    started = time.monotonic()
    result = subprocess.run(["bash", str(REPO / "lab" / script), *args], stdout=subprocess.PIPE,
                            text=True, check=True)
    path = Path(result.stdout.strip().splitlines()[-1])
    print(f"lab {script}: ready in {time.monotonic() - started:.0f}s: {path}", file=sys.stderr,
          flush=True)
    return path


def repository_packages(settings) -> list[str]:
    """Every package the stack's install step asks apt for on any node of the stack."""
    if not settings.openstack.installs:
        return []
    return sorted({p for node in settings.nodes for p in node_plan(settings, node).packages})


def build(substrate: str, packages: list[str]) -> tuple[Path, Path]:
    """(the rootfs for containers or the VM image derived from it, the local package
    repository holding `packages`); each built when missing."""
    rootfs = _build("build-rootfs.sh")
    repository = _build("build-repo.sh", str(rootfs), *packages)
    if substrate == "containers":
        return rootfs, repository
    return _build("build-image.sh", str(repository)), repository


class Lab:
    """The running lab: the rendered stack, its nodes, and a replayer into the namespace."""

    def __init__(self, rendered: Path, substrate: str = "containers"):
        self.use(rendered)
        self.artifacts = evidence.artifacts_dir()
        self.log_dir = self.artifacts / "replay-logs"
        print(f"lab artifacts (step logs, evidence of failed checks): {self.artifacts}",
              file=sys.stderr, flush=True)
        self.shared_dir = str(self.settings.cluster.shared_dir)
        base, repository = build(substrate, repository_packages(self.settings))
        self.nodes: Substrate = (
            Containers(rendered, base, shared_disk.DEVICE, repository)
            if substrate == "containers" else VMs(rendered, base))
        self.hypervisor = hypervisor.Hypervisor(self.manifest.network, self.nodes,
                                                {self.manifest.vip: self.settings.vip_fqdn},
                                                self.artifacts / "consoles")

    def use(self, rendered: Path) -> None:
        """Take `rendered` (tools/render's output, with its settings) as the stack."""
        self.rendered = rendered
        self.manifest = Manifest.load(rendered)
        # The stack's CA (its caCertificate output): the lab's clients verify TLS by it.
        self.ca_file: Path | None = None
        if "caCertificate" in self.manifest.outputs:
            self.ca_file = rendered / "ca.pem"
            self.ca_file.write_text(self.manifest.outputs["caCertificate"])
        self.settings = stack_settings.parse(
            json.loads((rendered / "settings.json").read_text()), STACK)

    def update_to(self, rendered: Path,
                  interruption: replay.Interruption | None = None) -> list[replay.Result]:
        """`pulumi up` from the current render to `rendered`: only new and changed steps run.
        With `interruption`, killed there once and run again (replay.run_resumed)."""
        changed = replay.changed_steps(replay.Rendered.load(self.rendered),
                                       replay.Rendered.load(rendered))
        if interruption is None:
            results = self.replayer(rendered).run("update", changed)
        else:
            results = replay.run_resumed(lambda chosen: self.replayer(rendered, chosen), "update",
                                         changed, interruption)
        self.use(rendered)
        return results

    def replayer(self, rendered: Path | None = None,
                 interruption: replay.Interruption | None = None) -> replay.Replayer:
        return replay.Replayer(replay.Rendered.load(rendered or self.rendered),
                               wrap=tuple(hypervisor.in_namespace()), jobs=4,
                               log_dir=self.log_dir, interruption=interruption)

    def up(self) -> None:
        self.hypervisor.up()
        self.nodes.up()

    def steps(self) -> tuple[list[str], list[str]]:
        return steps_of(replay.Rendered.load(self.rendered))

    def holder_of_vip(self) -> Node:
        view = checks.cluster_view(self, next(n for n in self.controls
                                              if self.nodes.is_running(n)))
        (name,) = view.running["vip"]
        return self.node(name)

    def node(self, name: str) -> Node:
        return self.manifest.node(name)

    def converge(self) -> None:
        """Every step of the stack, in the engine's order, exactly as rendered."""
        cluster_steps, repoint_steps = self.steps()
        self.replayer().run("create", cluster_steps + repoint_steps)

    def ssh(self, node: Node, command: str, **kwargs) -> subprocess.CompletedProcess:
        return node_ssh(self.rendered, self.manifest, node, command, **kwargs)

    @property
    def controls(self) -> list[Node]:
        return [n for n in self.manifest.nodes if n.role == "control"]


def ensure_down(*_args) -> None:
    hypervisor.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--substrate", choices=SUBSTRATES, default=substrate_from_environment())
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp/osha-lab"))
    args = parser.parse_args()
    if args.action == "down":
        ensure_down()
        return 0
    exit_on_signals()
    lab = Lab(render_stack(args.dir / "rendered", profile_from_environment()), args.substrate)
    try:
        lab.up()
        lab.converge()
    except BaseException:
        ensure_down()
        raise
    print(f"lab up; rendered stack in {args.dir / 'rendered'}; end it with: "
          "python -m lab.session down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
