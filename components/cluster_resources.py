"""The seed's resource layout in Pacemaker, built in a shadow CIB and pushed as one diff.

VIP, shared Filesystem, MySQL, (glance-api,) and the single-instance services form one group that
moves as a whole. HAProxy runs on every control node (a clone the group follows) or, in the seed's
layout, inside the group right after the VIP. The broker likewise: a clone on every control node
the group follows (it keeps nothing on the shared disk, so a failover finds one already running),
or, in the seed's layout, in the group after MySQL. The Filesystem is mounted at
`cluster.sharedDir`: MySQL's datadir and, when the stack installs OpenStack without Ceph of its
own, glance's image store are directories in it, and glance-api runs where it is mounted (with
the stack's Ceph, glance's images are in a pool there and every control node runs glance-api,
balanced like every other API). cinder-volume (with a
blockStorage backend) is one primitive outside the group: its volumes are in Ceph, so it runs on
any node and moves alone.

Before the layout, `<node>-cluster-users` writes on every control node the files MySQL and
RabbitMQ load at each start: MySQL's root from the control network (`mysqlRootPassword`) and the
broker's `openstack` user (`brokerPassword`), so both hold on whichever node the service runs.
"""
from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.cluster import MYSQL_LOG, Cluster
from components.cluster_units import (BROKER_UNITS, DATABASES_MADE,
                                      installed_single_node_services, volume_service)
from components.credentials import Credentials, stdin_lines
from components.fencing import Fencing, StonithDevice
from components.node import ClusterNode
from components.shared_disk import SharedDisk
from components.templating import render
from settings import Settings

GROUP = "osha-core"
TAG = "osha-managed"
# Run by MySQL at every start: root's account from the control network (cluster-users.sh.j2).
MYSQL_INIT_FILE = "/etc/openstack-ha/mysql-init.sql"
RABBITMQ_DEFINITIONS = "/etc/rabbitmq/definitions.json"
RABBITMQ_DEFINITIONS_CONF = "/etc/rabbitmq/conf.d/80-openstack-ha-definitions.conf"
# Three control nodes' services hold about 150 connections: Debian's default maximum.
MYSQL_MAX_CONNECTIONS = 1000
# A failover starts MySQL after a crash: InnoDB replays its redo log from the last checkpoint.
# With the default 96 MiB log and no early flushing, a quiet control-plane database checkpoints
# rarely (measured: 43 MB of log and 3035 pages to recover, 16 s of a 24 s start); a small log
# and pages flushed as they are dirtied keep the checkpoint close to the log's end.
MYSQL_SHORT_RECOVERY = "--innodb-log-file-size=16M --innodb-max-dirty-pages-pct-lwm=1"
MYSQL = {
    "rhel": {"binary": "/usr/libexec/mysqld", "config": "/etc/my.cnf"},
    "debian": {"binary": "/usr/sbin/mariadbd", "config": "/etc/mysql/my.cnf"},
}


@dataclass(frozen=True)
class Resource:
    """One `pcs resource create` (or `stonith create`) and where it goes."""

    id: str
    agent: str
    params: tuple[tuple[str, str], ...] = ()
    ops: tuple[str, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()
    group: bool = True
    clone: bool = False
    stonith: bool = False

    @property
    def top_id(self) -> str:
        """The id the tag holds: the clone's for a clone."""
        return f"{self.id}-clone" if self.clone else self.id

    def pcs_args(self) -> list[str]:
        args = ["stonith" if self.stonith else "resource", "create", self.id, self.agent,
                *(f"{k}={v}" for k, v in self.params)]
        for op in self.ops:
            args += ["op", *op.split()]
        if self.meta:
            args += ["meta", *(f"{k}={v}" for k, v in self.meta)]
        if self.clone:
            args.append("clone")
        elif self.group:
            args += ["--group", GROUP]
        return args


def mysql_client_host(settings: Settings) -> str:
    """The control network as a MySQL account host (address/netmask)."""
    cidr = settings.network.cidr
    return f"{cidr.network_address}/{cidr.netmask}"


def resources(settings: Settings, device: str, stonith: list[StonithDevice]) -> list[Resource]:
    """Every resource the stack manages, in creation (and group) order."""
    s = settings
    mysql = MYSQL[s.image.os_family]
    fs_params = [("device", device), ("directory", s.cluster.shared_dir),
                 ("fstype", s.shared_storage.filesystem)]
    if s.image.os_family == "rhel":
        # SELinux: MySQL may only use files labelled mysqld_db_t.
        fs_params.append(("options", 'context="system_u:object_r:mysqld_db_t:s0"'))
    haproxy = Resource("haproxy", "systemd:haproxy", ops=("monitor interval=10s",),
                       clone=s.cluster.haproxy_layout == "clone")
    broker = broker_resource(settings)
    layout = [Resource("vip", "ocf:heartbeat:IPaddr2",
                       (("ip", str(s.vip)), ("cidr_netmask", str(s.network.cidr.prefixlen))),
                       ("monitor interval=10s",))]
    if not haproxy.clone:
        layout.append(haproxy)  # the seed's layout: HAProxy right after the VIP it binds
    layout += [
        Resource("shared-fs", "ocf:heartbeat:Filesystem", tuple(fs_params),
                 ("monitor interval=20s timeout=40s",)),
        Resource("mysql", "ocf:heartbeat:mysql", (
            ("binary", mysql["binary"]), ("config", mysql["config"]), ("log", MYSQL_LOG[s.image.os_family]),
            ("datadir", s.cluster.mysql_datadir), ("user", "mysql"), ("group", "mysql"),
            ("pid", "/run/mysqld/mysqld.pid"), ("socket", "/run/mysqld/mysqld.sock"),
            # Clients reach MySQL at the VIP; the distribution default listens on loopback only.
            # No reverse DNS per connection: a new node's empty host cache would otherwise make
            # every client wait on the resolver right after a failover.
            ("additional_parameters", "--bind-address=0.0.0.0 --skip-name-resolve "
             f"--max-connections={MYSQL_MAX_CONNECTIONS} --init-file={MYSQL_INIT_FILE} "
             f"{MYSQL_SHORT_RECOVERY}")),
            ("start timeout=180s", "stop timeout=120s", "monitor interval=20s timeout=30s")),
        # Its image store is on the Filesystem: it runs on that node alone, and HAProxy's health
        # check sends image traffic there. After MySQL: it needs the database, and MySQL, which
        # every API needs, starts without waiting for it.
        *(Resource(name, f"systemd:{unit}", ops=("start timeout=120s", "monitor interval=30s"))
          for name, unit in installed_single_node_services(s).items()),
        *([] if broker.clone else [broker]),  # the seed's layout: the broker after MySQL
        *(Resource(x.name, f"systemd:{x.unit}", ops=("monitor interval=30s",))
          for x in s.cluster.singletons),
    ]
    # Outside the group: it needs no shared filesystem (volumes are in Ceph), so its failure
    # moves it alone, and the group's moves do not restart it.
    layout += [Resource(name, f"systemd:{unit}", ops=("start timeout=120s", "monitor interval=30s"),
                        group=False) for name, unit in volume_service(s).items()]
    layout += [r for r in (broker, haproxy) if r.clone]
    # fence_virsh logs in over SSH: well past Pacemaker's 20 s default on a busy host.
    layout += [Resource(d.id, d.agent, d.params,
                        ("start timeout=120s", "monitor interval=60s timeout=120s"),
                        group=False, stonith=True) for d in stonith]
    return layout


def broker_resource(settings: Settings) -> Resource:
    """The broker: in the group, or a clone on every control node."""
    clone = settings.cluster.broker_layout == "clone"
    return Resource(
        "broker", f"systemd:{BROKER_UNITS[settings.cluster.broker]}",
        # RabbitMQ's start (Erlang VM boot, Mnesia) took over 200 s on an emulated, loaded node.
        ops=("start timeout=300s", "stop timeout=120s", "monitor interval=30s"),
        # A clone instance that fails is not restarted in place (that is RabbitMQ's whole start):
        # its node is left, so the group moves to a node whose broker runs; it starts there again
        # once the failure has expired (cluster.failureTimeoutSeconds).
        meta=(("migration-threshold", "1"),) if clone else (),
        clone=clone)


def constraints(layout: list[Resource], stonith: list[StonithDevice]) -> list[list[str]]:
    """pcs constraint commands: the group runs only beside the clones (HAProxy's, the broker's);
    no device runs on its own target.

    No order between a clone and the group: an order waits for the clone's start as a whole, so a
    failover's group members waited for the broker starting on the fenced node as it rejoined
    (measured: glance-api's start 50 s behind MySQL's). The colocation keeps the group on a node
    whose instances run; HAProxy binds the VIP before it is local (`ip_nonlocal_bind`), and
    clients of the broker connect again by themselves."""
    commands = [["constraint", "colocation", "add", GROUP, "with", r.top_id, "INFINITY"]
                for r in layout if r.clone]
    commands += [["constraint", "location", d.id, "avoids", d.node] for d in stonith]
    return commands


def pcs_commands(settings: Settings, device: str, stonith: list[StonithDevice]) -> list[list[str]]:
    """The whole layout as pcs argument lists, applied to an empty slate of managed resources."""
    layout = resources(settings, device, stonith)
    tagged = [GROUP] + [r.top_id for r in layout if not r.group or r.clone or r.stonith]
    return [
        *(r.pcs_args() for r in layout),
        *constraints(layout, stonith),
        ["tag", "create", TAG, *dict.fromkeys(tagged)],
        ["property", "set", f"stonith-enabled={'true' if stonith else 'false'}"],
        ["property", "set", f"load-threshold={settings.cluster.load_threshold_percent}%"],
        # Every failure expires: a node where a start failed once (start failures are fatal on
        # their node) is again a place to fail over to, instead of being out until a cleanup.
        ["resource", "defaults", "update", f"resource-stickiness={settings.cluster.stickiness}",
         f"failure-timeout={settings.cluster.failure_timeout_seconds}s"],
    ]


@dataclass
class ClusterResourcesArgs:
    settings: Settings
    controls: list[ClusterNode]
    cluster: Cluster
    fencing: Fencing
    shared_disk: SharedDisk
    credentials: Credentials
    # Steps whose files the clustered services read at their first start (HAProxy's config,
    # TLS material): the layout starts those services, so it waits for them.
    service_files: list[pulumi.Resource]


class ClusterResources(pulumi.ComponentResource):
    """Runs on the first control node once the cluster is formed and fencing can reach hosts."""

    def __init__(self, name: str, args: ClusterResourcesArgs,
                 opts: pulumi.ResourceOptions = None):
        super().__init__("openstack-ha:index:ClusterResources", name, None, opts)
        s = args.settings
        first = args.controls[0]
        device = args.shared_disk.device
        prepared = first.step(
            "shared-storage-prepare", parent=self, depends_on=[args.cluster.formed],
            create=render("shared-storage-prepare.sh.j2", settings=s, device=device))
        passwords = {"mysql_root": args.credentials.mysql_root_password}
        if s.cluster.broker == "rabbitmq":
            passwords["broker"] = args.credentials.broker_password
        users = [node.step(
            f"{node.spec.name}-cluster-users", parent=self, depends_on=[args.cluster.formed],
            create=render("cluster-users.sh.j2", settings=s, init_file=MYSQL_INIT_FILE,
                          mysql_host=mysql_client_host(s), definitions=RABBITMQ_DEFINITIONS,
                          definitions_conf=RABBITMQ_DEFINITIONS_CONF),
            stdin=stdin_lines(passwords)) for node in args.controls]
        commands = pcs_commands(s, device, args.fencing.devices)
        ids = [r.id for r in resources(s, device, args.fencing.devices)]
        self.layout = first.step(
            "cluster-layout", parent=self,
            depends_on=[prepared, args.cluster.formed, *args.fencing.ready, *users,
                        *args.service_files],
            create=render("cib-layout.sh.j2", commands=commands, tag=TAG, ids=ids,
                          needs_databases=list(volume_service(s)),
                          databases_made=DATABASES_MADE),
            delete=render("cib-layout-delete.sh.j2", tag=TAG))
        self.register_outputs({"resources": ids})
