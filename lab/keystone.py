"""Keystone on the lab's control nodes, standing in for the per-node install the seed assumes.

`bootstrap` leaves keystone as a non-HA install would (lab/keystone-bootstrap.sh): every node's
keystone.conf names the node's own address, and the catalogue's identity, image, compute and
network endpoints name the address of the node that bootstrapped it. The stack's repoint steps
must then move all of it to the VIP.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from lab import checks

SCRIPT = Path(__file__).resolve().parent / "keystone-bootstrap.sh"
REMOTE_SCRIPT = "/root/keystone-bootstrap.sh"
KEYSTONE_CONF = "/etc/keystone/keystone.conf"
PORT = 5000
# Lab-only credentials: the lab network lives in a namespace nothing reaches.
DB_PASSWORD = "osha-lab-keystone-db"
ADMIN_PASSWORD = "osha-lab-admin"
ADMIN_USER = "admin"
ADMIN_PROJECT = "admin"


def _run(lab, node: dict, *args: str, stdin: str = "", timeout: float = 1800) -> str:
    for command, text in ((f"cat > {REMOTE_SCRIPT}", SCRIPT.read_text()),
                          (f"bash {REMOTE_SCRIPT} {' '.join(args)}", stdin)):
        result = lab.ssh(node, command, stdin=text, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{node['name']}: {command}: exit {result.returncode}: "
                               f"{result.stderr[-2000:]}")
    return result.stdout


def bootstrap(lab, holder: dict, region: str) -> None:
    """Keystone configured on every control node and initialised on `holder` (MySQL's node)."""
    for node in lab.controls:
        _run(lab, node, "configure", node["ip"], stdin=DB_PASSWORD)
    keys = _run(lab, holder, "initialise", holder["ip"], region,
                stdin=f"{DB_PASSWORD}\n{ADMIN_PASSWORD}").strip().splitlines()[-1]
    for node in lab.controls:
        if node is not holder:
            _run(lab, node, "keys", stdin=keys)


def catalogue(host: str) -> Optional[dict]:
    """A token from keystone at `host` and the catalogue listed with it; None when it fails."""
    ok, out = checks.probe("keystone", host, PORT, ADMIN_USER, ADMIN_PROJECT, ADMIN_PASSWORD)
    return json.loads(out) if ok else None


def config_value(lab, node: dict, section: str, key: str, path: str = KEYSTONE_CONF) -> str:
    result = lab.ssh(node, f"crudini --get {path} {section} {key}")
    if result.returncode != 0:
        raise RuntimeError(f"{node['name']}: {path} [{section}] {key}: {result.stderr}")
    return result.stdout.strip()
