"""Offline Pacemaker: run the stack's rendered layout script against a CIB file, then simulate."""
from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from manifest_schema import Manifest
from tools.crm_mon import ClusterView, parse


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
    return result


def empty_cib(path: Path, nodes: list[str]) -> Path:
    """A CIB holding only the stack's control nodes, as a freshly formed cluster has."""
    path.write_text(run(["cibadmin", "--empty"]).stdout)
    for index, node in enumerate(nodes, start=1):
        run(["cibadmin", "--create", "-o", "nodes", "--xml-text",
             f'<node id="{index}" uname="{node}"/>'], env={**os.environ, "CIB_file": str(path)})
    return path


def apply_layout(rendered_dir: Path, cib: Path) -> subprocess.CompletedProcess:
    """The stack's own cluster-layout create script, run unchanged in its offline mode."""
    layout = Manifest.load(rendered_dir).resource("cluster-layout")
    return run(["bash", str(rendered_dir / layout.files["create"])],
               env={**os.environ, "OSHA_CIB_FILE": str(cib)})


def epoch(cib: Path) -> str:
    return ET.parse(cib).getroot().get("epoch")


def simulate(cib: Path, out: Path, *events: str) -> ClusterView:
    """crm_simulate with quorum, the given events (-u NODE, -f NODE), saved to `out`."""
    run(["crm_simulate", "--xml-file", str(cib), "--simulate", "--quorum", "1", *events,
         "--save-output", str(out)])
    status = run(["crm_mon", "-1", "--output-as=xml"], env={**os.environ, "CIB_file": str(out)})
    return parse(status.stdout)


def transition_inputs(cib: Path, graph: Path, *events: str) -> dict[str, set[str]]:
    """The scheduler's transition for `cib` with the given events (crm_simulate --save-graph):
    every action's key -> the keys of every action it waits for, directly or through others."""
    run(["crm_simulate", "--xml-file", str(cib), "--simulate", "--quorum", "1", *events,
         "--save-graph", str(graph)])
    direct: dict[str, set[str]] = {}
    for synapse in ET.parse(graph).getroot().iter("synapse"):
        (action,) = [a for a in synapse.find("action_set")]
        inputs = synapse.find("inputs")
        direct[action.get("operation_key")] = {
            a.get("operation_key") for trigger in (inputs if inputs is not None else [])
            for a in trigger}
    closed: dict[str, set[str]] = {}

    def waits_for(key: str) -> set[str]:
        if key not in closed:
            closed[key] = set()
            for before in direct.get(key, ()):
                closed[key] |= {before} | waits_for(before)
        return closed[key]
    return {key: waits_for(key) for key in direct}


def start_failures_fatal(cib: Path) -> None:
    """Raise every start's fail count in `cib` to INFINITY, as the controller records a failed
    start (start-failure-is-fatal, the default); crm_simulate's --op-inject counts one."""
    tree = ET.parse(cib)
    for pair in tree.getroot().iter("nvpair"):
        if pair.get("name", "").startswith("fail-count-") and pair.get("name").endswith("#start_0"):
            pair.set("value", "INFINITY")
    tree.write(cib)


def verify(cib: Path) -> str:
    """crm_verify's complaints about `cib` (empty when clean)."""
    result = subprocess.run(["crm_verify", "--verbose", "--xml-file", str(cib)],
                            capture_output=True, text=True)
    return (result.stdout + result.stderr).strip() if result.returncode or result.stderr else ""
