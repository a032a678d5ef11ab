"""What a failed lab check leaves behind: the cluster's view in its message, the nodes' logs on disk.

`cluster_report` is the short text an error carries (crm_mon with inactive resources, fail
counts and node attributes; every constraint); `save` writes it with the allocation scores,
each running node's journal, Pacemaker log, OpenStack logs and sockets into one directory under
the lab's artifacts directory (OSHA_LAB_ARTIFACTS, printed by CI), beside the replay's step logs
(`replay-logs/`).
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

from manifest_schema import Node

DEFAULT_ARTIFACTS = Path("/var/tmp/openstack-ha-lab/artifacts")
# The cluster's view as an operator reads it: resources (stopped ones too), fail counts, node
# attributes, last operation times and failed actions; then every constraint with its id.
CLUSTER_VIEW = {
    "crm_mon": "crm_mon -1 -r -f -A -t",
    "constraints": "pcs constraint --full",
}
# Why the scheduler places what where (long: saved, not printed).
SCORES = {"allocation scores": "crm_simulate -L -s"}
OPENSTACK_LOG_DIRS = ("keystone", "nova", "neutron", "glance", "cinder", "heat", "placement",
                      "rabbitmq", "apache2")
# Every OpenStack service's log files on a node, as shell globs.
OPENSTACK_LOGS = " ".join(f"/var/log/{d}/*.log" for d in OPENSTACK_LOG_DIRS)
NODE_LOGS = {
    "journal.txt": "journalctl -b --no-pager -o short-precise",
    "pacemaker.log": "tail -c 20000000 /var/log/pacemaker/pacemaker.log",
    # What the services themselves said, and every socket with its timers: an API that hangs
    # shows here what its workers wait on.
    "openstack.log": f"for f in {OPENSTACK_LOGS}"
                     + '; do [ -f "$f" ] || continue; echo "=== $f"; tail -c 2000000 "$f"; done',
    "sockets.txt": "ss -tanpoi",
}


def artifacts_dir() -> Path:
    """This lab run's artifacts directory (OSHA_LAB_ARTIFACTS, or a new one per run)."""
    chosen = os.environ.get("OSHA_LAB_ARTIFACTS")
    return Path(chosen) if chosen else DEFAULT_ARTIFACTS / time.strftime("%Y%m%d-%H%M%S")


def _run_all(lab, node: Node, commands: dict[str, str]) -> str:
    sections = []
    for title, command in commands.items():
        result = lab.nodes.exec(node, command, timeout=120)
        sections.append(f"--- {title} ({command}) on {node.name} ---\n"
                        f"{result.stdout}{result.stderr}".rstrip())
    return "\n".join(sections)


def cluster_report(lab, scores: bool = False) -> str:
    """The cluster's view from the first running control node (through the substrate's way in,
    which works while a node's network is cut)."""
    running = [n for n in lab.controls if lab.nodes.is_running(n)]
    if not running:
        return "no control node is running"
    return _run_all(lab, running[0], {**CLUSTER_VIEW, **(SCORES if scores else {})})


# Why a node is not back in the cluster, short enough for an error message. Each systemctl call
# bounded: with PID 1 stuck (where /proc/1/stack shows it) they wait for it.
NODE_STATE = {
    "init": "cat /proc/1/stack; ps -eo pid,stat,wchan:24,args --forest | head -25",
    "boot": "timeout 20 systemctl is-system-running; timeout 20 systemctl --failed --plain",
    "cluster units": "timeout 20 systemctl status --no-pager -n 15 corosync pacemaker",
}


def node_report(lab, node: Node) -> str:
    """`node`'s power state, and when it runs, its boot's state and its cluster units' status."""
    if not lab.nodes.is_running(node):
        return f"{node.name} is not running"
    return _run_all(lab, node, NODE_STATE)


def save(lab, label: str) -> Path:
    """The cluster's view and every running node's logs under `<artifacts>/<label>`; returns
    that directory."""
    out = lab.artifacts / re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cluster.txt").write_text(cluster_report(lab, scores=True) + "\n")
    for node in lab.manifest.nodes:
        if not lab.nodes.is_running(node):
            (out / f"{node.name}.down").write_text("not running when the evidence was taken\n")
            continue
        for name, command in NODE_LOGS.items():
            result = lab.nodes.exec(node, command, timeout=180)
            (out / f"{node.name}.{name}").write_text(result.stdout + result.stderr)
    return out
