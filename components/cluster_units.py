"""What Pacemaker runs in systemd's place, and how a changed file restarts what reads it.

The one declaration the cluster's packages step, the resource layout, the install and the repoint
ask:
- `single_node_services`: the OpenStack services Pacemaker runs on one node, {resource id: unit}:
  glance-api when the stack installs it with its image store on the shared filesystem (not in
  the stack's own Ceph: then every control node runs it), then the
  seed's single-instance services (`cluster.singletons`), then cinder-volume with a block
  storage backend (`volume_service`);
- `units_only_pacemaker_starts`: every unit systemd must leave stopped and disabled: MySQL, the
  broker, HAProxy and those services;
- `Restart`: a file's readers, restarted by systemd, or through Pacemaker as their resources.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import openstack_packages
from settings import Settings

BROKER_UNITS = {"qpid": "qpidd", "rabbitmq": "rabbitmq-server"}
MYSQL_UNITS = ("mariadb", "mysql", "mysqld")
VOLUME_RESOURCE = "cinder-volume"
# Written on the first control node once the bootstrap has made the OpenStack databases: until
# then the layout keeps the resources that need them (`volume_service`) stopped, for a start
# without its database fails and would fail the layout's push.
DATABASES_MADE = "/etc/openstack-ha/databases.made"


def installed_single_node_services(settings: Settings) -> dict[str, str]:
    """{resource id: unit} of the services the stack installs that Pacemaker runs on one node
    (glance-api, while its images are on the shared disk); none when the image carries the
    services."""
    if not settings.openstack.installs:
        return {}
    return openstack_packages.cluster_units(settings.image.os_family, settings.services,
                                            settings.images_in_ceph)


def volume_service(settings: Settings) -> dict[str, str]:
    """{resource id: unit} of cinder-volume, when blockStorage has a backend: one instance
    serves every volume (one `backend_host`), wherever Pacemaker runs it."""
    if not settings.block_storage.enabled:
        return {}
    return {VOLUME_RESOURCE: openstack_packages.volume_unit(settings.image.os_family)}


def single_node_services(settings: Settings) -> dict[str, str]:
    """{resource id: unit} of every OpenStack service Pacemaker runs on one node."""
    return {**installed_single_node_services(settings),
            **{s.name: s.unit for s in settings.cluster.singletons},
            **volume_service(settings)}


def resource_of_unit(settings: Settings, role: str) -> dict[str, str]:
    """{unit: resource id} of `single_node_services` on a node of `role`: the resource a restart
    of the unit goes through. Empty on a compute node: the L2 agent is a plain unit there."""
    if role != "control":
        return {}
    return {unit: name for name, unit in single_node_services(settings).items()}


def units_only_pacemaker_starts(settings: Settings) -> list[str]:
    return [*MYSQL_UNITS, BROKER_UNITS[settings.cluster.broker], "haproxy",
            *single_node_services(settings).values()]


@dataclass(frozen=True)
class Restart:
    """What re-reads `path`: systemd units, and Pacemaker resources for the managed ones."""

    path: str
    units: tuple[str, ...]
    resources: tuple[str, ...]

    @classmethod
    def of(cls, path: str, units: Iterable[str], resource_of: dict[str, str]) -> Restart:
        """`units` re-read `path`; the ones in `resource_of` (`resource_of_unit`) as resources."""
        units = tuple(units)
        return cls(path, tuple(u for u in units if u not in resource_of),
                   tuple(resource_of[u] for u in units if u in resource_of))


def merged(rows: Iterable[Restart]) -> list[Restart]:
    """One row per path, with the units and resources of every row for it, in first-seen order."""
    by_path: dict[str, Restart] = {}
    for row in rows:
        old = by_path.get(row.path, Restart(row.path, (), ()))
        by_path[row.path] = Restart(row.path, tuple(dict.fromkeys(old.units + row.units)),
                                    tuple(dict.fromkeys(old.resources + row.resources)))
    return list(by_path.values())
