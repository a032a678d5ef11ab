"""The control nodes become one Pacemaker cluster: packages, pcsd, kernel settings, corosync."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

import pulumi

from components.cluster_units import units_only_pacemaker_starts
from components.credentials import Credentials
from components.node import ClusterNode
from components.templating import package_list, render
from settings import Settings

BROKER_PACKAGES = {"qpid": "qpid-cpp-server", "rabbitmq": "rabbitmq-server"}
# Where MySQL logs when Pacemaker starts it (the mysql agent's `log`); the directory must exist.
MYSQL_LOG = {"rhel": "/var/log/mariadb/mariadb.log", "debian": "/var/log/mysql/error.log"}


@dataclass
class ClusterArgs:
    settings: Settings
    controls: list[ClusterNode]
    credentials: Credentials


class Cluster(pulumi.ComponentResource):
    """`formed` finishes once every control node is online in a quorate cluster; `prep` is each
    control node's package step, by node name."""

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("openstack-ha:index:Cluster", name, None, opts)
        s = args.settings
        context = dict(settings=s, nodes=[c.spec for c in args.controls])
        packages = package_list(s.image.os_family) + [BROKER_PACKAGES[s.cluster.broker]]
        sysctl_conf = render("cluster-sysctl.conf.j2", settings=s)
        prepared = []
        self.prep: dict[str, pulumi.Resource] = {}
        for node in args.controls:
            self.prep[node.spec.name] = node.step(
                f"{node.spec.name}-cluster-prep", parent=self,
                create=render("cluster-prep.sh.j2", packages=packages,
                              units=units_only_pacemaker_starts(s),
                              mysql_log_dir=str(PurePosixPath(MYSQL_LOG[s.image.os_family]).parent),
                              **context),
                stdin=args.credentials.hacluster_password)
            prepared.append(self.prep[node.spec.name])
            prepared.append(node.step(
                f"{node.spec.name}-sysctl", parent=self,
                create=render("cluster-sysctl.sh.j2", sysctl_conf=sysctl_conf, **context),
                delete=render("cluster-sysctl-delete.sh.j2")))
        first = args.controls[0]
        self.formed = first.step(
            "cluster-setup", parent=self, depends_on=prepared,
            create=render("cluster-setup.sh.j2", **context),
            delete=render("cluster-destroy.sh.j2"),
            stdin=args.credentials.hacluster_password)
        self.register_outputs({"name": s.cluster.name})
