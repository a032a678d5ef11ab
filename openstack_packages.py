"""What `openstack.install: packages` puts on each node: templates/packages/openstack.yaml, read.

Pure data and lookups (the settings check against them before any resource exists; the install
and bootstrap components build their steps from them).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Optional

import data_schema

DATA = Path(__file__).resolve().parent / "templates" / "packages" / "openstack.yaml"
ROLES = ("control", "compute")


@lru_cache(maxsize=None)
def data() -> dict[str, Any]:
    return data_schema.load(data_schema.Packages, DATA)


def releases(family: str, version: Optional[str]) -> tuple[str, ...]:
    """The releases the family's package source provides for that major version."""
    return tuple(data()["sources"][family].get(version or "", ()))


def source_versions(family: str) -> list[str]:
    return list(data()["sources"][family])


def installable() -> tuple[str, ...]:
    """Catalogue services the install knows."""
    return tuple(data()["services"])


def needs(service: str) -> list[str]:
    return data()["services"][service].get("needs", [])


def l2_agents(family: str) -> dict[str, dict]:
    """Single-instance L2 agent units the install knows: {unit: {packages, mechanism, units}}."""
    return data()["l2_agents"][family]


def compute_drivers() -> tuple[str, ...]:
    return tuple(data()["compute"]["drivers"])


def compute_driver(name: str) -> dict:
    return data()["compute"]["drivers"][name]


def attaches_with_libvirt(driver: str) -> bool:
    """Whether nova's `driver` attaches volumes through libvirt and qemu."""
    return compute_driver(driver)["nova"].startswith("libvirt.")


@dataclass(frozen=True)
class Database:
    name: str
    user: str


@dataclass(frozen=True)
class KeystoneService:
    """A catalogue service as keystone knows it: its name, and the user it authenticates as."""

    service: str
    name: str
    user: Optional[str]


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _on(services: dict[str, bool]) -> list[str]:
    """Installable services switched on, in the data file's order."""
    return [name for name in installable() if services.get(name)]


def volume_unit(family: str) -> str:
    """cinder-volume's unit, which Pacemaker runs on one node."""
    return data()["block_storage"]["volume_unit"][family]


def packages(role: str, family: str, services: dict[str, bool], l2_unit: Optional[str],
             driver: str, block_backend: str = "none") -> list[str]:
    """Every package a node of `role` installs."""
    if role == "compute":
        compute = data()["compute"]
        attaches = block_backend != "none" and attaches_with_libvirt(driver)
        return _unique([*compute["common"][family], *compute_driver(driver)["packages"][family],
                        *_compute_agent(family, services, l2_unit).get("packages", []),
                        *(data()["block_storage"]["libvirt_packages"][family] if attaches
                          else [])])
    found = list(data()["control"]["common"][family])
    for name in _on(services):
        found += data()["services"][name]["packages"][family]
    if l2_unit is not None:
        found += l2_agents(family)[l2_unit]["packages"]
    if block_backend != "none":
        found += data()["block_storage"]["packages"][block_backend][family]
    return _unique(found)


def _compute_agent(family: str, services: dict[str, bool], l2_unit: Optional[str]) -> dict:
    """The L2 agent on a compute node ({} if none): neutron binds a port only to a host whose
    agent reports, so every compute node runs one (the control nodes run it as one cluster
    resource)."""
    if l2_unit is None or not services.get("neutron"):
        return {}
    return l2_agents(family)[l2_unit]


def run_units(role: str, family: str, services: dict[str, bool], l2_unit: Optional[str],
              driver: str, images_in_ceph: bool = False) -> list[str]:
    """Units every node of `role` runs once the bootstrap is done (glance-api too with its
    images in Ceph)."""
    if role == "compute":
        compute = data()["compute"]
        agent = _compute_agent(family, services, l2_unit)
        return _unique([*compute_driver(driver)["units"][family], *compute["units"][family],
                        *agent.get("units", []), *([l2_unit] if agent else [])])
    found = list(data()["control"]["common_units"][family])
    if l2_unit is not None:
        found += l2_agents(family)[l2_unit].get("units", [])
    for name in _on(services):
        found += service_units(name, family)
    if images_in_ceph:
        found += [data()["services"][name]["cluster_unit"][family] for name in _on(services)
                  if data()["services"][name].get("image_store")]
    return _unique(found)


def service_units(service: str, family: str) -> list[str]:
    """The units every control node runs for one service."""
    return list(data()["services"][service].get("units", {}).get(family, []))


def cluster_units(family: str, services: dict[str, bool],
                  images_in_ceph: bool = False) -> dict[str, str]:
    """Services Pacemaker runs on one node instead: {catalogue service: unit}. One that keeps
    images (`image_store`) only while they are on the shared disk."""
    entries = data()["services"]
    return {name: entries[name]["cluster_unit"][family] for name in _on(services)
            if "cluster_unit" in entries[name]
            and not (images_in_ceph and entries[name].get("image_store"))}


def idle_units(role: str, family: str) -> list[str]:
    return list(data()["idle_units"][family]) if role == "control" else []


def databases(services: dict[str, bool]) -> list[Database]:
    entries = [data()["services"][name] for name in _on(services)]
    return [Database(db, entry["user"]) for entry in entries for db in entry.get("databases", [])]


def keystone_services(services: dict[str, bool]) -> list[KeystoneService]:
    return [KeystoneService(name, entry["keystone"]["name"], entry["keystone"].get("user"))
            for name in _on(services) if "keystone" in (entry := data()["services"][name])]


def release_package(family: str, release: str) -> Optional[str]:
    """The package that turns the family's OpenStack repository on, if it needs one."""
    template = data().get("release_package", {}).get(family)
    return template.format(release=release) if template else None
