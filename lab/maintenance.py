"""A control node's maintenance as its operator does it, with every API called throughout:
`maintenance: [node]` applied by the update path, the node rebooted, then the setting without
it applied again (the lab test, and `bench/maintenance.py` for the core group's holder)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from lab import checks, drill, evidence, openstack, session, wait
from manifest_schema import Node
from tools import replay


def reboot(lab, node: Node, seconds: float = 300) -> None:
    """The operator's clean reboot of `node` (a container that powers off instead is started
    again after 30 s off): done when it runs again (a marker in /run, which every boot empties,
    is gone) and the cluster has it online."""
    marker = "/run/osha-lab-before-reboot"
    if lab.nodes.exec(node, f"touch {marker}").returncode != 0:
        raise RuntimeError(f"{node.name} did not take the reboot marker")
    lab.nodes.exec(node, "systemctl reboot")
    other = next(n for n in lab.controls if n.name != node.name)
    off_since = None

    def back() -> bool:
        nonlocal off_since
        if lab.nodes.exec(node, f"test ! -e {marker}").returncode == 0 and \
                node.name in checks.cluster_view(lab, other).online:
            return True
        if lab.nodes.is_running(node):
            off_since = None
        elif off_since is None:
            off_since = time.monotonic()
        elif time.monotonic() - off_since > 30:
            lab.nodes.start(node)
        return False
    wait.until(f"{node.name} to be back", back, seconds, interval=1,
               report=lambda: evidence.node_report(lab, node))


def rendered_out(lab, node: Node, work: Path) -> Path:
    """The lab's stack rendered with `node` in maintenance; only its maintenance step differs."""
    raw = json.loads((lab.rendered / "settings.json").read_text())
    out = session.render_settings(work, {**raw, "maintenance": [node.name]})
    step = f"{node.name}-maintenance"
    for before, after in ((lab.rendered, out), (out, lab.rendered)):
        changed = replay.changed_steps(replay.Rendered.load(before), replay.Rendered.load(after))
        if changed != [step]:
            raise RuntimeError(f"maintenance of {node.name} changes {changed}, not {step}")
    return out


def rebooted_in_maintenance(lab, cloud: openstack.CloudChecks, node: Node, work: Path,
                            scenario: str) -> tuple[drill.PlannedWork, list[str]]:
    """`node` taken out (drained, in standby: nothing of the cluster runs there), rebooted, and
    brought back, while the prober calls every API: what each API answered, and the two
    maintenance steps' outputs."""
    serving, out = lab.rendered, rendered_out(lab, node, work)
    outputs: list[str] = []

    def maintenance():
        outputs.extend(r.stdout for r in lab.update_to(out))
        view = checks.cluster_view(lab, next(n for n in lab.controls if n.name != node.name))
        still = [r for r, nodes in view.running.items() if node.name in nodes]
        if still:
            raise RuntimeError(f"{node.name} in standby still runs {still}")
        reboot(lab, node)
        outputs.extend(r.stdout for r in lab.update_to(serving))

    return drill.run_planned(lab, cloud, scenario, maintenance), outputs
