"""The schema of a render's manifest, DIR/manifest.json: tools/render writes it, tools/replay.py and
the lab read it, each through `Manifest`. A key the schema does not name (a misspelt `wait_for`)
is an error naming it, not a field a reader silently finds missing.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from data_schema import Role, Strict

FILE = "manifest.json"


class Network(Strict):
    name: str
    cidr: str
    gateway: str
    domain: str
    mode: str


class Node(Strict):
    name: str
    role: Role
    ip: str
    mac: str
    domain: str  # the libvirt domain's name
    vcpu: int
    memory_mib: int
    disk_gib: int
    hypervisor: Optional[str]
    shared_disk: bool


class Ssh(Strict):
    """How the operator logs in to every node."""

    user: str
    private_key_file: str  # relative to DIR


class Host(Strict):
    """Where a step runs: `localhost` (a local Command, nothing else set), or the SSH connection
    it pins; `port` is written only when the connection names one (22 otherwise)."""

    host: str
    user: Optional[str] = None
    private_key_file: Optional[str] = None
    host_key: Optional[str] = None
    port: Optional[int] = None


class Resource(Strict):
    name: str
    type: str
    parent: Optional[str]
    depends_on: list[str]
    # Custom resources that finish before this one starts (components expanded).
    waits_for: list[str]
    host: Optional[Host]
    # The texts it runs or ships, by role (create, stdin, source, user-data...): paths under DIR.
    files: dict[str, str]
    # Its other inputs, secret values masked.
    inputs: dict[str, Any]


class Manifest(Strict):
    stack: str
    vip: str
    network: Network
    nodes: list[Node]
    ssh: Ssh
    outputs: dict[str, Any]
    resources: list[Resource]

    @classmethod
    def load(cls, rendered: Path) -> Manifest:
        """The manifest of the render directory `rendered`; ValidationError if it is not one."""
        return cls.model_validate_json((rendered / FILE).read_text())

    def write(self, rendered: Path) -> None:
        # Unset fields stay out: a host's port appears only when its connection names one.
        document = self.model_dump(mode="json", exclude_unset=True)
        (rendered / FILE).write_text(json.dumps(document, indent=2) + "\n")

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def resource(self, name: str) -> Resource:
        return next(r for r in self.resources if r.name == name)
