"""What the OpenStack install writes and runs on one node, as data: no Pulumi resources here.

The config files are templates/openstack/files.yaml's entries, each rendered from its template in
templates/openstack/ (config kind: a value is one plain word). Secrets are never rendered: a
fragment holds `@@OSHA_SECRET_<name>@@` where one goes, and the install step fills it on the node
from its stdin; `@@OSHA_FACT_<name>@@` is a value only the node knows (its interface's name).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Optional

import data_schema

import openstack_packages
from catalogue import by_name
from components.block_storage import ceph_facts
from components.cluster_units import Restart, merged, resource_of_unit
from components.endpoints import node_edits, node_restarts, value_context
from components.templating import TEMPLATES, render
from settings import Node, Settings

FILES = TEMPLATES / "openstack" / "files.yaml"
PRESEED = TEMPLATES / "packages"
SECRET = "@@OSHA_SECRET_{}@@"
FACT = "@@OSHA_FACT_{}@@"
PLACEHOLDER = re.compile(r"@@OSHA_(SECRET|FACT)_(\w+)@@")
# Keystone's key repositories: the same keys on every control node, so a token one node issued
# validates on the others. Index 0 is the staged key, 1 the primary (what fernet_setup leaves).
KEY_REPOSITORIES = ("fernet", "credential")
KEY_INDEXES = (0, 1)
# Written by the start step once this node's services run: until then the install keeps them
# disabled, so a reboot before the bootstrap starts nothing.
STARTED_MARKER = "/etc/openstack-ha/openstack.started"
LOCK_PATHS = {"debian": "/var/lock/{}", "rhel": "/var/lib/{}/tmp"}
# Bounds on what an API worker waits for. A request the VIP's old holder took as it died is
# never answered, and nothing else ends the wait (these HTTP sockets have no keepalive): a
# worker stuck on it holds its API down on that node (nova-api and neutron stayed down for
# minutes after a holder was killed).
CALL_BOUNDS = {
    # keystonemiddleware's token check, per attempt; it tries again through the VIP 3 times.
    "token_check_seconds": 10,
    # A service's call to another one's API (nova to neutron, neutron to nova, ...).
    "service_call_seconds": 30,
    # uwsgi replaces a worker one request holds longer than this, whatever it waits on; above
    # oslo.messaging's 60 s RPC timeout, which ends an API's own calls first.
    "request_seconds": 90,
    # An idle RPC consumer (conductor, scheduler, compute, agents) learns that the broker at the
    # VIP is gone only when its next heartbeat meets the new holder's reset: with oslo's 60 s,
    # conductors came back 51-62 s after a fault while nova-api, which reconnects as it sends,
    # was back in 27 s, and the casts it sent to the new broker meanwhile had no queue to land
    # in (servers left in BUILD); with 10 s they came back in 10-12 s. RabbitMQ advises 5 to
    # 20 s against false positives.
    "broker_heartbeat_seconds": 10,
}

# How long oslo.cache skips a memcached it found dead (templates/openstack/_cache.j2): the time
# control nodes may disagree about where a key lives once that memcached is back. Each retry of
# a silent node's costs a call up to memcache_socket_timeout (1 s).
CACHE_DEAD_RETRY_SECONDS = 10


@dataclass(frozen=True)
class ConfigFile:
    """One file the install step writes: `text` merged into it (ini, shell) or as it (whole)."""

    path: str
    kind: str
    text: str
    delete: tuple[tuple[str, str], ...] = ()
    mode: str = ""
    group: str = ""
    reload: str = ""


@dataclass(frozen=True)
class NodePlan:
    """Everything the install and start steps do on one node."""

    role: str
    family: str
    packages: tuple[str, ...]
    preseed: str
    release_package: Optional[str]
    files: tuple[ConfigFile, ...]
    # Which units (and cluster resources) re-read each file, for restarts.
    restarts: tuple
    run_units: tuple[str, ...]
    # Units Pacemaker runs on one node: disabled here, never started or stopped by a step.
    cluster_units: tuple[str, ...]
    idle_units: tuple[str, ...]
    keystone_keys: bool
    horizon_site: bool

    @property
    def secrets(self) -> list[str]:
        """The secret names the files (and the keystone keys) need on stdin, sorted."""
        names = {m.group(2) for f in self.files for m in PLACEHOLDER.finditer(f.text)
                 if m.group(1) == "SECRET"}
        if self.keystone_keys:
            names |= {key_name(r, i) for r in KEY_REPOSITORIES for i in KEY_INDEXES}
        return sorted(names)

    @property
    def facts(self) -> list[str]:
        return sorted({m.group(2) for f in self.files for m in PLACEHOLDER.finditer(f.text)
                       if m.group(1) == "FACT"})


def key_name(repository: str, index: int) -> str:
    return f"{repository}_{index}"


@lru_cache(maxsize=None)
def _table() -> dict[str, Any]:
    return data_schema.load(data_schema.ConfigFiles, FILES)


def l2_agent(settings: Settings) -> Optional[tuple[str, str, str]]:
    """(singleton name, unit, ML2 mechanism) of the L2 agent Pacemaker runs, if any."""
    known = openstack_packages.l2_agents(settings.image.os_family)
    return next(((s.name, s.unit, known[s.unit]["mechanism"]) for s in settings.cluster.singletons
                 if s.unit in known), None)


def memcached_servers(settings: Settings) -> list[str]:
    return [f"{n.ip}:11211" for n in settings.controls]


def context(settings: Settings, node: Node) -> dict[str, Any]:
    """What the fragments may name (endpoints.value_context's names, and the install's own)."""
    s = settings
    family = s.image.os_family
    agent = l2_agent(s)
    driver = openstack_packages.compute_driver(s.openstack.compute_driver)
    domain = s.network.domain
    values = value_context(s, node)
    query = f"?{values['ssl_ca_query']}" if s.tls_enabled else ""
    return {
        **values,
        # Database URLs by database, each with its owner's password (db_<user>).
        "db": {d.name: f"mysql+pymysql://{d.user}:{SECRET.format('db_' + d.user)}@{s.vip_fqdn}/"
                       f"{d.name}{query}" for d in openstack_packages.databases(s.services)},
        "transport_url": f"rabbit://openstack:{SECRET.format('broker')}@{s.vip_fqdn}:"
                         f"{values['broker_port']}/",
        "tls": s.tls_enabled,
        "region": s.keystone.region,
        "memcached": ",".join(memcached_servers(s)),
        "memcached_list": memcached_servers(s),
        **CALL_BOUNDS,
        "cache_dead_retry_seconds": CACHE_DEAD_RETRY_SECONDS,
        "workers": s.openstack.workers,
        "daemon_workers": s.openstack.daemon_workers,
        "shared_dir": s.cluster.shared_dir,
        "image_store": s.cluster.image_store,
        "services": s.services,
        "ceph": ceph_facts(s),
        "mechanism": agent[2] if agent else "linuxbridge",
        "compute_driver": driver["nova"],
        "virt_type": s.openstack.compute_driver
        if openstack_packages.attaches_with_libvirt(s.openstack.compute_driver) else "",
        "lock": {svc: LOCK_PATHS[family].format(svc)
                 for svc in ("glance", "nova", "neutron", "cinder", "heat")},
        "allowed_hosts": [s.vip_fqdn, str(s.vip), node.name, f"{node.name}.{domain}", str(node.ip),
                          "localhost"],
        "secret": _Placeholders(SECRET),
        "fact": _Placeholders(FACT),
    }


class _Placeholders(dict):
    """`secret.db_nova` in a template: the placeholder the node fills."""

    def __init__(self, pattern: str):
        super().__init__()
        self.pattern = pattern

    def __missing__(self, name: str) -> str:
        return self.pattern.format(name)

    def __getattr__(self, name: str) -> str:
        return self.pattern.format(name)


def _applies(entry: dict, settings: Settings, node: Node) -> bool:
    agent = l2_agent(settings)
    return (node.role in entry.get("roles", ["control"])
            and entry.get("family", settings.image.os_family) == settings.image.os_family
            and (not entry.get("services") or any(settings.services.get(s)
                                                  for s in entry["services"]))
            and ("mechanism" not in entry or (agent is not None
                                              and agent[2] == entry["mechanism"]))
            and ("block" not in entry or settings.block_storage.backend in entry["block"]))


def node_files(settings: Settings, node: Node) -> list[tuple[ConfigFile, tuple[str, ...]]]:
    """(file, units that read it) for every file the node's install writes."""
    s, family = settings, settings.image.os_family
    values = context(s, node)
    agent = l2_agent(s)
    found = []
    for entry in _table()["files"]:
        if not _applies(entry, s, node):
            continue
        units = list(entry["units"].get(family, []))
        if entry.get("l2_agent") and agent is not None:
            units.append(agent[1])
        group = entry.get("group", {}).get(family, "root")
        found.append((ConfigFile(
            entry["path"], entry.get("kind", "ini"),
            render(f"openstack/{entry['template']}", **values),
            tuple(tuple(pair) for pair in entry.get("delete", [])),
            entry.get("mode", ""), group if entry.get("kind") == "whole" else "",
            entry.get("reload", "")), tuple(units)))
    if family == "debian" and node.role == "control":
        found += _uwsgi_files(s, values)
    return found


def _uwsgi_files(settings: Settings, values: dict) -> list[tuple[ConfigFile, tuple[str, ...]]]:
    found = []
    for service, api in _table()["uwsgi"].items():
        if not settings.services.get(service):
            continue
        processes = values["workers"] if api["workers"] == "api" else values["daemon_workers"]
        units = (api["unit"],)
        found.append((ConfigFile(api["ini"], "ini", render(
            "openstack/uwsgi.ini.j2", processes=processes, threads=api["threads"],
            request_seconds=values["request_seconds"]),
            # nova-api-metadata's ini sets processes twice: one merge would change only one.
            # Every key goes and comes back, in the fragment's order on each run.
            delete=(("uwsgi", "processes"), ("uwsgi", "threads"), ("uwsgi", "harakiri"))),
            units))
        found.append((ConfigFile(f"/etc/default/{api['name']}", "shell", render(
            "openstack/uwsgi-default.j2", node_ip=values["node_ip"],
            port=by_name(service).port, ini=api["ini"])), units))
    return found


def _restarts(settings: Settings, node: Node,
              files: list[tuple[ConfigFile, tuple[str, ...]]]) -> tuple:
    """Who re-reads each of the install's own files: units, and cluster resources for the units
    Pacemaker runs."""
    resource_of = resource_of_unit(settings, node.role)
    return tuple(merged(Restart.of(config.path, units, resource_of) for config, units in files))


def preseed(role: str, family: str) -> str:
    """debconf answers for the role's packages (Debian): every question that would configure a
    database, the broker, keystone or endpoints is answered no."""
    if family != "debian":
        return ""
    lines = (PRESEED / f"debian-preseed-{role}.txt").read_text().splitlines()
    return "\n".join(line for line in lines if line.strip() and not line.startswith("#"))


def node_plan(settings: Settings, node: Node) -> NodePlan:
    s, family = settings, settings.image.os_family
    agent = l2_agent(s)
    l2_unit = agent[1] if agent else None
    driver = s.openstack.compute_driver
    files = node_files(s, node)
    control = node.role == "control"
    return NodePlan(
        role=node.role, family=family,
        packages=tuple(openstack_packages.packages(node.role, family, s.services, l2_unit,
                                                   driver, s.block_storage.backend)),
        preseed=preseed(node.role, family),
        release_package=openstack_packages.release_package(family, s.release),
        files=tuple(f for f, _ in files),
        restarts=_restarts(s, node, files),
        run_units=tuple(openstack_packages.run_units(node.role, family, s.services, l2_unit,
                                                     driver, s.images_in_ceph)),
        cluster_units=tuple(resource_of_unit(s, node.role)),
        idle_units=tuple(openstack_packages.idle_units(node.role, family)),
        keystone_keys=control and bool(s.services.get("keystone")),
        horizon_site=control and family == "debian" and bool(s.services.get("horizon")))


def repoint_edits(settings: Settings, node: Node) -> tuple[list, list]:
    """The repoint's own edits and restarts for this node: the install applies them too, so the
    repoint step that follows finds nothing to change."""
    return node_edits(settings, node), node_restarts(settings, node)
