"""`crm_mon --output-as=xml` read one way, for the lab's checks, the CIB tests' simulations and the
ephemeral stack's smoke check."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass


@dataclass
class ClusterView:
    quorate: bool
    online: list[str]
    running: dict[str, list[str]]  # resource id -> nodes it is started on
    failed: list[str]  # failed actions' operation keys
    groups: dict[str, list[str]]  # group id -> its members' ids, in order
    # Every resource instance not started, or started but failed: "<id> is <role>[ (failed)]".
    not_started: list[str]
    instances: int  # resource instances the cluster runs or should run

    def on(self, resource: str) -> list[str]:
        return self.running.get(resource, [])


def parse(text: str) -> ClusterView:
    root = ET.fromstring(text)
    running: dict[str, list[str]] = {}
    not_started = []
    instances = list(root.iter("resource"))
    for resource in instances:
        role, failed = resource.get("role"), resource.get("failed") == "true"
        if role == "Started":
            running.setdefault(resource.get("id"), []).extend(
                n.get("name") for n in resource.findall("node"))
        if resource.get("active") != "true" or role != "Started" or failed:
            not_started.append(f"{resource.get('id')} is {role}{' (failed)' if failed else ''}")
    dc = root.find("summary/current_dc")
    return ClusterView(
        quorate=dc is not None and dc.get("with_quorum") == "true",
        online=[n.get("name") for n in root.find("nodes") if n.get("online") == "true"],
        running=running,
        failed=[f.get("op_key", "") for f in root.iter("failure")],
        groups={g.get("id"): [r.get("id") for r in g.findall("resource")]
                for g in root.iter("group")},
        not_started=not_started,
        instances=len(instances))
