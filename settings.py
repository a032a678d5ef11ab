"""The stack's configuration: one strict, declarative schema, validated before any resource exists.

Keys are camelCase in YAML, attributes snake_case in Python. Every level rejects unknown keys,
nothing is coerced, every string is typed as what it is (settings_schema.py), and each cross-field
rule sits on the model holding the fields it relates. `parse()` returns one frozen `Settings` or
raises `SettingsError` with every problem, one line each; secrets are checked like the rest, never
shown, and handed on as Pulumi secrets. `read_stack_file()` reads a Pulumi.<stack>.yaml as
Pulumi does. A new section is a `Section` subclass of `setting(...)`
fields (cross-field checks as `@rule()` generators) plus one field of it on `Settings`. A default
that follows from other keys is a function under "Derived defaults", which its key names.
"""
import pathlib
import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property, partial
from ipaddress import IPv4Address, IPv4Network
from typing import Annotated, Any, ClassVar, Literal, Optional

import pulumi
import yaml
from pydantic import (ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, ValidationInfo,
                      field_validator, with_config)
from pydantic.alias_generators import to_camel
from typing_extensions import TypedDict

import openstack_packages
from catalogue import (RELEASES, SERVICES, SINGLETON_UNITS, SINGLETONS, by_name, default_enabled,
                       default_singletons, ships)
from settings_schema import (BridgeName, Cidr, DevicePath, Domain, Host, HostPort, ImageSource,
                             IPv4, Iqn, Label, LibvirtUri, ListOf, NamePrefix, Password, Path,
                             PoolName, Section, SshHostKey, SshPrivateKey, TagKey, Text,
                             UnitName, UserName, Word, decode, describe, did_you_mean, line,
                             project_keys, rule, setting, unwrap)

PROJECT = "openstack-ha"
DEFAULT_IMAGE = ("https://cloud.centos.org/centos/9-stream/x86_64/images/"
                 "CentOS-Stream-GenericCloud-9-latest.x86_64.qcow2")
DEFAULT_URI = "qemu:///system"
OS_FAMILIES = ("rhel", "debian")
BROKERS = ("qpid", "rabbitmq")
HAPROXY_LAYOUTS = ("clone", "group")
BROKER_LAYOUTS = ("clone", "group")
NETWORK_MODES = ("nat", "isolated", "bridge")
FENCE_AGENTS = ("fence_virsh", "fence_xvm")
SHARED_STORAGE_KINDS = ("volume", "iscsi", "rbd")
INSTALL_MODES = ("packages", "none")
BLOCK_BACKENDS = ("ceph", "rbd", "none")
# Major versions named in image file names (Debian also by codename).
DEBIAN_CODENAMES = {"bullseye": "11", "bookworm": "12", "trixie": "13"}
# What describes each shared block device (hostDevice: where every hypervisor sees it).
SOURCE_KEYS = {"iscsi": ("portal", "iqn", "lun", "hostDevice"),
               "rbd": ("pool", "image", "monitors", "hostDevice")}
# Pacemaker, corosync, pcsd, MariaDB and the broker together need this much on a control node.
MIN_CONTROL_MEMORY_MIB = 2048
# With the OpenStack services too: measured 1.9 to 2.8 GiB of services per control node.
MIN_INSTALL_CONTROL_MEMORY_MIB = 4096
MIN_COMPUTE_MEMORY_MIB = 1024
MIN_SHARED_DISK_GIB, MIN_DISK_GIB = 2, 8
# The system, the OpenStack packages and their logs beside a Ceph OSD's file on a control node.
MIN_ROOT_BESIDE_OSD_GIB = 4
MAX_GIB, MAX_MIB, MAX_NODES = 65536, 16 * 1024 * 1024, 64
# Pacemaker ids of the stack's own layout (components/cluster_resources.py), and fence-<node>.
RESERVED_RESOURCE_IDS = ("vip", "shared-fs", "mysql", "broker", "broker-clone", "haproxy",
                         "haproxy-clone", "glance-api", "cinder-volume", "osha-core")
# Config namespaces of the providers the stack uses: not this program's keys, but no typos either.
PROVIDER_NAMESPACES = ("libvirt", "command", "random", "tls", "pulumi")
Count = Annotated[int, Field(ge=0, le=MAX_NODES)]
ServiceName = Literal[tuple(s.name for s in SERVICES)]


class SettingsError(ValueError):
    """Every invalid setting at once, one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack configuration:\n  - " + "\n  - ".join(problems))


# -- Derived defaults -----------------------------------------------------------------------------
# Every default that follows from other keys is one function here, named by its key's
# `setting(derived=...)` (services: its `shown=`): the key's rule calls it when the key is unset,
# with the keys validated above it, and README shows its docstring. The node plans are the one
# other place: `NodePlan.placed` lays out their addresses and hosts.

def image_version(source: str, family: str) -> Optional[int]:
    """from the source's file name (debian-12, bookworm, ...-9-...)"""
    name = source.rsplit("/", 1)[-1].lower()
    if family == "debian":
        for codename, version in DEBIAN_CODENAMES.items():
            if codename in source.lower():
                return int(version)
        found = re.search(r"debian-([0-9]+)", name)
    else:
        found = re.search(r"(?:centos|rhel|rocky|almalinux|oraclelinux)[a-z_-]*?([0-9]+)", name) \
            or re.search(r"\bel([0-9]+)\b", name)
    return int(found.group(1)) if found else None


def first_address(cidr: IPv4Network) -> IPv4Address:
    """the first address of `cidr`"""
    return cidr.network_address + 1


def local_hypervisor(uri: str) -> tuple["Hypervisor", ...]:
    """one, `local`, at libvirtUri"""
    return (Hypervisor.model_validate({"name": "local", "uri": uri}),)


def network_gateway(network: "Network") -> str:
    """network.gateway"""
    return str(network.gateway)


def authorized_keys_of(fence_user: str) -> str:
    """`~fenceUser/.ssh/authorized_keys`"""
    return ("/root" if fence_user == "root" else f"/home/{fence_user}") + "/.ssh/authorized_keys"


def vip_in(cidr: IPv4Network) -> IPv4Address:
    """`.10` of network.cidr"""
    return IPv4Address(min(int(cidr.network_address) + 10, 2 ** 32 - 1))


def workers_for(size: "Sizing") -> int:
    """1 with 1-vCPU control nodes, else 2"""
    return 1 if size.vcpu == 1 else 2


def broker_for(family: str, installs: bool) -> str:
    """`qpid` (rhel with openstack.install none), else `rabbitmq`"""
    return "qpid" if family == "rhel" and not installs else "rabbitmq"


def singletons_for(release: str, family: str) -> tuple["Singleton", ...]:
    """per release and OS family"""
    units = SINGLETON_UNITS[family]
    return tuple(Singleton.model_construct(name=name, unit=units[name])
                 for name in default_singletons(release))


def fence_delay_for(control_count: int) -> int:
    """10 with two control nodes, else 0"""
    return 10 if control_count == 2 else 0


def services_for(release: str, installable: Optional[list[str]]) -> dict[str, bool]:
    """on while the release ships them"""
    return {s.name: default_enabled(s, release) and (installable is None or s.name in installable)
            for s in SERVICES}


def block_backend_for(installs: bool, services: dict[str, bool]) -> str:
    """`ceph` when the stack installs OpenStack with cinder, else `none`."""
    return "ceph" if installs and services.get("cinder") else "none"


def mysql_tls_for(tls_enabled: bool) -> bool:
    """tls.enabled"""
    return tls_enabled


class Image(Section):
    source: ImageSource = setting(DEFAULT_IMAGE, "what every root volume is a copy-on-write "
                                  "layer of", shown="CentOS Stream 9 GenericCloud URL")
    os_family: Literal[OS_FAMILIES] = setting("rhel", "package manager and unit names")
    os_version: Optional[int] = setting(
        derived=image_version,
        doc="the OS's major version: which OpenStack releases its packages provide", ge=1, le=999)

    @field_validator("os_version")
    @classmethod
    def _version_from_the_source(cls, version: Optional[int], info: ValidationInfo):
        source, family = info.data.get("source"), info.data.get("os_family")
        if version is not None or source is None or family is None:
            return version
        return image_version(source, family)

    @property
    def is_url(self) -> bool:
        return self.source.startswith(("http://", "https://"))


class Network(Section):
    name: Label = setting("osha", "the libvirt network's name")
    cidr: Cidr = setting(IPv4Network("10.20.0.0/24"), "the control network")
    gateway: Optional[IPv4] = setting(derived=first_address,
                                      doc="the router (with mode `bridge`: the LAN's)")
    mode: Literal[NETWORK_MODES] = setting("nat", "`isolated`: no route out; `bridge`: the "
                                           "nodes join `bridge` on the hypervisors' LAN")
    domain: Domain = setting("osha.internal", "DNS domain of the nodes and the VIP")
    bridge: Optional[BridgeName] = setting(None, "mode `bridge`: an existing host bridge, the "
                                           "same on every hypervisor")

    @rule("gateway")
    def _gateway_inside(cls, gateway: Optional[IPv4Address], data: dict):
        cidr = data.get("cidr")
        if cidr is None or gateway is None:
            return gateway if cidr is None else first_address(cidr)
        if gateway not in cidr or gateway in (cidr.network_address, cidr.broadcast_address):
            yield "gateway", str(gateway), f"must lie inside network.cidr {cidr} (a host address)"
        return gateway

    @rule()
    def _bridge_with_mode(self):
        if self.mode == "bridge" and self.bridge is None:
            yield "bridge", None, "mode bridge needs the name of an existing host bridge such " \
                "as br0 (the same on every hypervisor)"
        elif self.mode != "bridge" and self.bridge is not None:
            yield "bridge", self.bridge, "applies to network.mode bridge only"


class Hypervisor(Section):
    name: Label = setting(doc="what `nodes[].hypervisor` calls this host")
    uri: LibvirtUri = setting(doc="libvirt's URI of the host (host keys are checked: "
                              "`no_verify` and `known_hosts_verify` other than `normal` are "
                              "refused)")
    fence_address: Optional[Host] = setting(
        derived=network_gateway, doc="where the nodes reach the host's sshd for fencing "
        "(required for a remote host and with network.mode `bridge`)")
    fence_user: UserName = setting("root", "the user fence_virsh logs in as")
    authorized_keys_file: Optional[Path] = setting(derived=authorized_keys_of,
                                                   doc="where the nodes' fencing key goes")
    host_key: Optional[SshHostKey] = setting(
        None, "the host's ED25519 SSH host key: the nodes trust the fencing host by it (required "
        "for a remote host)")

    @rule()
    def _remote_host_is_described(self):
        if not self.is_local and self.fence_address is None:
            yield "fenceAddress", None, "required for a remote hypervisor: the address its " \
                "nodes reach it at"
        if not self.is_local and self.host_key is None:
            yield "hostKey", None, "required for a remote hypervisor: its SSH host public key " \
                "(/etc/ssh/ssh_host_ed25519_key.pub there, not a scan over the network)"

    @property
    def is_local(self) -> bool:
        return self.uri.startswith("qemu:")


class Sizing(Section):
    vcpu: int = setting(2, "virtual CPUs", ge=1, le=512)
    memory_mib: int
    disk_gib: int = setting(20, "root disk", ge=MIN_DISK_GIB, le=MAX_GIB)


class ControlSize(Sizing):
    memory_mib: int = setting(4096, "memory (Pacemaker, corosync, MariaDB and the broker)",
                              ge=MIN_CONTROL_MEMORY_MIB, le=MAX_MIB)


class ComputeSize(Sizing):
    memory_mib: int = setting(2048, "memory", ge=MIN_COMPUTE_MEMORY_MIB, le=MAX_MIB)


@dataclass(frozen=True)
class Node:
    name: str
    role: str  # "control" | "compute"
    ip: IPv4Address
    sizing: Optional[Sizing]
    hypervisor: Optional[str]

    @property
    def mac(self) -> str:
        """A stable locally administered MAC derived from the address (cloud-init matches on it)."""
        return "52:54:%02x:%02x:%02x:%02x" % tuple(self.ip.packed)


class NodeEntry(Section):
    name: Label = setting(doc="hostname; libvirt domain `<stack>-<name>`")
    ip: IPv4 = setting(doc="static address in network.cidr")
    hypervisor: Optional[Label] = setting(None, "the host it runs on", shown="the first hypervisor")


class NodePlan(Section):
    """A count with an address plan (consecutive from firstIp), or an explicit list."""

    role: ClassVar[str]
    first_offset: ClassVar[int]
    nodes: Optional[ListOf[NodeEntry]] = setting(None, "an explicit list instead of a count")

    @rule()
    def _list_or_count(self):
        for name in sorted(self.model_fields_set - {"nodes"} if self.nodes is not None else ()):
            yield to_camel(name), getattr(self, name), "applies without nodes only"

    def placed(self, cidr: IPv4Network, hypervisor: Optional[str],
               sizing: Optional[Sizing] = None) -> Optional[list[tuple[Node, dict]]]:
        """(node, where) for each node, `where` naming the key path and value behind the node's
        name, ip and hypervisor; None when the plan runs past 255.255.255.255."""
        if self.nodes is not None:
            return [(Node(e.name, self.role, e.ip, sizing, e.hypervisor or hypervisor),
                     {"name": (("nodes", i, "name"), e.name), "ip": (("nodes", i, "ip"), str(e.ip)),
                      "hypervisor": (("nodes", i, "hypervisor"), e.hypervisor)})
                    for i, e in enumerate(self.nodes)]
        start = int(self.first_ip) if self.first_ip else \
            int(cidr.network_address) + self.first_offset
        if self.count and start + self.count > 2 ** 32:
            return None
        where = {"name": (("namePrefix",), self.name_prefix),
                 "ip": (("firstIp",), str(IPv4Address(min(start, 2 ** 32 - 1))))}  # count 0
        return [(Node(f"{self.name_prefix}{i + 1}", self.role, IPv4Address(start + i), sizing,
                      hypervisor), where) for i in range(self.count)]


class ControlNodes(NodePlan):
    role: ClassVar[str] = "control"
    first_offset: ClassVar[int] = 11
    count: Count = setting(3, "how many (odd: an even split loses quorum)")
    first_ip: Optional[IPv4] = setting(None, "the first node's address, the others follow",
                                       shown="`.11` of network.cidr")
    name_prefix: NamePrefix = setting("ctl", "names are the prefix and 1, 2, ...")


class ComputeNodes(NodePlan):
    role: ClassVar[str] = "compute"
    first_offset: ClassVar[int] = 21
    count: Count = setting(0, "how many")
    first_ip: Optional[IPv4] = setting(None, "the first node's address, the others follow",
                                       shown="`.21` of network.cidr")
    name_prefix: NamePrefix = setting("cmp", "names are the prefix and 1, 2, ...")


@with_config(ConfigDict(extra="forbid", strict=True))
class SharedSource(TypedDict, total=False):
    portal: Annotated[HostPort, Field(description="iscsi: the target portal")]
    iqn: Annotated[Iqn, Field(description="iscsi: the target")]
    lun: Annotated[int, Field(ge=0, le=16383, description="iscsi: the LUN")]
    pool: Annotated[Word, Field(description="rbd: the Ceph pool")]
    image: Annotated[Word, Field(description="rbd: the image")]
    monitors: Annotated[list[HostPort], Field(min_length=1, description="rbd: the monitors")]
    hostDevice: Annotated[DevicePath, Field(description="the path every hypervisor sees the LUN "
                                            "or mapped image at")]


class SharedStorage(Section):
    kind: Literal[SHARED_STORAGE_KINDS] = setting(
        "volume", "`volume`: a raw volume in one hypervisor's pool (every control node on that "
        "host); `iscsi`, `rbd`: a block device every hypervisor reaches, described by `source`")
    size_gib: int = setting(4, "the volume's size (kind `volume`)", ge=MIN_SHARED_DISK_GIB,
                            le=MAX_GIB)
    source: SharedSource = setting(dict, "kind `iscsi`: portal, iqn, lun, hostDevice; kind "
                                   "`rbd`: pool, image, monitors, hostDevice")
    filesystem: Literal["xfs", "ext4"] = setting("xfs", "MySQL's filesystem on it")

    @rule()
    def _source_fits_kind(self):
        wanted = SOURCE_KEYS.get(self.kind, ())
        for key in wanted:
            if key not in self.source:
                yield ("source", key), None, f"required for kind {self.kind}"
        for key in self.source:
            if key not in wanted:
                yield ("source", key), self.source[key], "applies to kind " + ", ".join(
                    k for k, keys in SOURCE_KEYS.items() if key in keys) + " only"
        if self.kind != "volume" and "size_gib" in self.model_fields_set:
            yield "sizeGib", self.size_gib, "applies to kind volume only (a LUN or an RBD " \
                "image has its own size)"


class Singleton(Section):
    name: Label = setting(doc="its Pacemaker resource id")
    unit: UnitName = setting(doc="the systemd unit it runs")


class TcpKeepalive(Section):
    # Short: a database or broker connection whose query went to the VIP's old holder as it
    # died waits for the first probe, which the new holder answers with a reset.
    time: int = setting(10, "idle seconds before the first probe", ge=1, le=32767)
    intvl: int = setting(3, "seconds between probes", ge=1, le=32767)
    probes: int = setting(3, "unanswered probes that drop the connection", ge=1, le=127)


# Where a mount hides what the node runs on: the file-system hierarchy's own directories, and
# anything inside the system's trees.
SYSTEM_DIRECTORIES = frozenset((
    "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media",
    "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var",
    *(f"/var/{d}" for d in ("backups", "cache", "crash", "lib", "local", "lock", "log", "mail",
                            "opt", "run", "spool", "tmp"))))
SYSTEM_TREES = ("/bin/", "/boot/", "/dev/", "/etc/", "/lib/", "/lib32/", "/lib64/", "/libx32/",
                "/proc/", "/run/", "/sbin/", "/sys/", "/usr/", "/var/log/", "/var/cache/")


# Each node's own state (restarts left pending, maintenance): never on the shared disk, which
# moves between nodes.
NODE_STATE_DIR = "/var/lib/openstack-ha-node"


def covers_the_system(path: str) -> bool:
    return path in SYSTEM_DIRECTORIES or path.startswith(SYSTEM_TREES)


class Cluster(Section):
    name: Label = setting("osha", "the Pacemaker cluster's name")
    haproxy_layout: Literal[HAPROXY_LAYOUTS] = setting(
        "clone", "`clone`: HAProxy on every node, the VIP follows it; `group`: HAProxy in the "
        "VIP's group (the seed's layout)")
    broker: Optional[Literal[BROKERS]] = setting(
        derived=broker_for, doc="the message broker")
    broker_layout: Literal[BROKER_LAYOUTS] = setting(
        "clone", "`clone`: the broker runs on every node and the VIP's group follows it, so a "
        "failover waits for no broker start; `group`: the broker in the group after MySQL (the "
        "seed's active/passive)")
    stickiness: int = setting(100, "resource-stickiness", ge=0, le=1000000)
    failure_timeout_seconds: int = setting(
        60, "Pacemaker's `failure-timeout` for every resource: a node where a start failed (a "
        "failed start keeps the resource off that node) or a cloned broker failed is a place to "
        "run it again this long after the failure; 0 keeps it out until `pcs resource cleanup`",
        ge=0, le=86400)
    shared_dir: Path = setting("/var/lib/openstack-ha", "where the shared disk is mounted, on one "
                               "node at a time: MySQL's datadir (`mysql/`) and, without the "
                               "stack's own Ceph, glance's image store (`glance-images/`) lie in "
                               "it; a directory of its own, not one of the system's (`/etc`, "
                               "`/var/lib`, anything in `/usr`, ...)")
    singletons: Optional[ListOf[Singleton]] = setting(derived=singletons_for,
                                                      doc="services run on exactly one node")
    tcp_keepalive: TcpKeepalive = setting(TcpKeepalive, "kernel keepalives against half-dead "
                                          "connections after a failover")
    # Failover speed (bench/failover.py measures both).
    token_ms: int = setting(3000, "corosync's token timeout (ms): a lost node is noticed after "
                            "about token + consensus (1.2 x token), plus 650 ms per node past two; "
                            "lower fails over faster and raises false alarms on a loaded host; "
                            "changed on a running cluster by `pcs cluster config update`",
                            ge=300, le=60000)
    load_threshold_percent: int = setting(
        80, "Pacemaker's `load-threshold`: above it the controller runs fewer actions at once "
        "and waits between them, delaying a failover by seconds; containers report the whole "
        "host's load, so raise it where nodes share a host", ge=1, le=10000)

    @rule()
    def _shared_dir_not_a_system_directory(self):
        if covers_the_system(self.shared_dir):
            yield "sharedDir", self.shared_dir, "a mount there would hide the system's own " \
                "files on the node that holds the disk; choose a directory of its own such as " \
                "/var/lib/openstack-ha or /srv/openstack-ha"
        elif self.shared_dir == NODE_STATE_DIR or self.shared_dir.startswith(NODE_STATE_DIR + "/"):
            yield "sharedDir", self.shared_dir, f"{NODE_STATE_DIR} holds each node's own " \
                "state, which must not move with the disk; choose another directory"

    mysql_datadir = property(lambda self: f"{self.shared_dir}/mysql")
    image_store = property(lambda self: f"{self.shared_dir}/glance-images")
    keepalive_time = property(lambda self: self.tcp_keepalive.time)
    keepalive_intvl = property(lambda self: self.tcp_keepalive.intvl)
    keepalive_probes = property(lambda self: self.tcp_keepalive.probes)


class Fencing(Section):
    enabled: bool = setting(True, "power a node off through its hypervisor before its "
                            "resources move")
    acknowledge_disabled: bool = setting(False, "required to run with fencing off")
    agent: Literal[FENCE_AGENTS] = setting("fence_virsh", "`fence_xvm` needs fence_virtd on "
                                           "every hypervisor (not set up by the stack)")
    delay_base_seconds: Optional[int] = setting(derived=fence_delay_for,
                                                doc="one side's delay against a fence race",
                                                ge=0, le=600)
    action: Literal["reboot", "off"] = setting(
        "reboot", "`reboot`: a fenced node is powered off and on and rejoins by itself; `off`: it "
        "stays down until someone starts it (fencing completes without waiting for the start)")

    @rule()
    def _off_is_acknowledged(self):
        if not self.enabled and not self.acknowledge_disabled:
            yield "enabled", False, "without fencing the shared MySQL filesystem can be " \
                "mounted twice and corrupted; set fencing.acknowledgeDisabled: true to run " \
                "without it anyway"


class Tls(Section):
    enabled: bool = setting(True, "TLS at HAProxy for the public APIs and Horizon, MySQL and "
                            "the broker (the seed's \"Securing Services\"); `false` sends "
                            "passwords and tokens in the clear: unsafe off a lab")
    require_mysql_tls: Optional[bool] = setting(derived=mysql_tls_for,
                                                doc="MySQL refuses plain connections")
    certificate_days: int = setting(
        730, "the service certificates' lifetime; a changed value issues new ones, which "
        "`pulumi up` rolls out without restarting a service (also done once a certificate is "
        "within 30 days of its end and `pulumi refresh` has seen it)", ge=31, le=3650)
    ca_generation: int = setting(
        1, "raise it by one for a new stack CA: one `pulumi up` adds it to every node's trust "
        "beside the old one, installs the certificates it signed, then drops the old CA, "
        "restarting nothing (clients off the nodes need the new `caCertificate` output)",
        ge=1, le=999)

    @rule("require_mysql_tls")
    def _mysql_tls_follows_tls(cls, required: Optional[bool], data: dict):
        yield from ()
        return mysql_tls_for(data.get("enabled", True)) if required is None else required

    @rule()
    def _mysql_tls_needs_tls(self):
        if self.require_mysql_tls and not self.enabled:
            yield "requireMysqlTls", True, "needs tls.enabled: true (MySQL has no certificate " \
                "without it)"


class BlockStorage(Section):
    backend: Optional[Literal[BLOCK_BACKENDS]] = setting(
        derived=block_backend_for, doc="where cinder-volume (one instance, run by Pacemaker) "
        "keeps volumes: `ceph`: a Ceph cluster the stack runs on the control nodes (a monitor, a "
        "manager and an OSD on each); `rbd`: a Ceph cluster of your own (`monitors`, `user`, "
        "the `cephClientKey` secret); `none`: no volume service")
    osd_size_gib: int = setting(8, "backend ceph: each control node's OSD, a file under "
                                "/var/lib/ceph on its root disk", ge=4, le=MAX_GIB)
    pool: Word = setting("volumes", "the Ceph pool of cinder's volumes")
    user: Word = setting("cinder", "the Ceph client cinder-volume authenticates as")
    monitors: ListOf[HostPort] = setting((), "backend rbd: the cluster's monitors (host or "
                                         "host:port)", shown="none")

    @rule()
    def _fields_fit_backend(self):
        if self.backend == "rbd" and not self.monitors:
            yield "monitors", [], "required with backend rbd"
        if self.backend != "rbd" and self.monitors:
            yield "monitors", list(self.monitors), "applies with backend rbd only"

    @property
    def enabled(self) -> bool:
        return self.backend != "none"


class Keystone(Section):
    region: Word = setting("RegionOne", "the region of every endpoint")
    admin_user: Word = setting("admin", "the admin the endpoint repoint acts as")
    admin_project: Word = setting("admin", "the admin's project")
    openrc_file: Path = setting("/root/keystonerc_admin", "sourced by the endpoint repoint when "
                                "the keystoneAdminPassword secret is not set (packstack's)")


class OpenStack(Section):
    install: Literal[INSTALL_MODES] = setting(
        "packages", "`packages`: the stack installs OpenStack from the OS family's own packages "
        "and bootstraps it; `none`: the image carries the services (the stack clusters, balances "
        "and repoints them)")
    workers: Optional[int] = setting(derived=workers_for,
                                     doc="processes per API (keystone, placement, nova, neutron, "
                                     "cinder, heat); Horizon runs twice as many threads",
                                     ge=1, le=64)
    daemon_workers: int = setting(1, "workers of every other service (conductor, scheduler, "
                                  "neutron RPC, heat-engine, glance-api, metadata, heat-cfn)",
                                  ge=1, le=64)
    compute_driver: Literal[openstack_packages.compute_drivers()] = setting(
        "qemu", "nova's driver on compute nodes: `qemu` (emulated guests), `kvm` (needs nested "
        "virtualisation on the hypervisor), `fake` (nova's fake driver: no guests, for tests)")

    @rule()
    def _nothing_else_without_install(self):
        if self.install == "none":
            for name in sorted(self.model_fields_set - {"install"}):
                yield to_camel(name), getattr(self, name), "applies with install packages only"

    @property
    def installs(self) -> bool:
        return self.install == "packages"


def _singletons_installable(singletons: tuple, family: str):
    """With install packages, each single-instance unit is an L2 agent the install knows, and
    there is one at most."""
    known = openstack_packages.l2_agents(family)
    agents = [i for i, s in enumerate(singletons) if s.unit in known]
    for i, s in enumerate(singletons):
        if s.unit not in known:
            yield ("cluster", "singletons", i, "unit"), s.unit, "openstack.install packages " \
                f"installs no such unit; use one of {', '.join(known)} (the L2 agent), or " \
                "openstack.install none"
    for i in agents[1:]:
        yield ("cluster", "singletons", i, "unit"), singletons[i].unit, "one L2 agent only: " \
            f"{singletons[agents[0]].unit} is already one"


def _install_needs(services: dict[str, bool], data: dict):
    """What the installed services cannot run without: each other, compute nodes nova, neutron
    its L2 agent."""
    for name in openstack_packages.installable():
        for needed in openstack_packages.needs(name) if services.get(name) else ():
            if not services.get(needed):
                yield f"services.{needed}", False, f"{name} needs {needed} (with openstack." \
                    "install packages)"
    if _placed(data, "compute_nodes") and not services.get("nova-api"):
        yield "services.nova-api", False, "compute nodes need nova-api"
    cluster, image = data.get("cluster"), data.get("image")
    if cluster is not None and image is not None and services.get("neutron") and not any(
            s.unit in openstack_packages.l2_agents(image.os_family) for s in cluster.singletons):
        yield "cluster.singletons", [s.unit for s in cluster.singletons], "neutron needs its " \
            "L2 agent as a single-instance unit: add {name: neutron-l2-agent, unit: " \
            f"{next(iter(openstack_packages.l2_agents(image.os_family)))}}}"


def _placed(data: dict, field: str, sizing: Optional[Sizing] = None) -> Optional[list]:
    """The nodes of `field` (control_nodes, compute_nodes) from validated `data`, with where each
    came from; None when the plan or the network is invalid."""
    plan, network, hypervisors = data.get(field), data.get("network"), data.get("hypervisors")
    if plan is None or network is None:
        return None
    return plan.placed(network.cidr, hypervisors[0].name if hypervisors else None, sizing)


def _node_problems(key: str, placed: list, earlier: list, network: Network,
                   hypervisors: Optional[tuple]):
    """Addresses in the network and free, names unique, hosts known; one line per key and kind."""
    cidr = network.cidr
    reserved = {cidr.network_address: "the network address", network.gateway: "the gateway",
                cidr.broadcast_address: "the broadcast address"}
    names, addresses = {n.name: n for n, _ in earlier}, {n.ip: n for n, _ in earlier}
    known = [h.name for h in hypervisors] if hypervisors else None
    reported = set()
    for node, where in placed:
        found = []  # (attribute, kind, remedy)
        if node.ip not in cidr:
            found.append(("ip", "outside", f"{node.name} at {node.ip}: must lie inside "
                          f"network.cidr {cidr}"))
        elif node.ip in reserved:
            found.append(("ip", "reserved", f"{node.name} at {node.ip} would be "
                          f"{reserved[node.ip]}; a node address may not be the gateway, network "
                          "or broadcast address"))
        if node.ip in addresses:
            found.append(("ip", "taken", f"node addresses must be unique: {node.name} and "
                          f"{addresses[node.ip].name} at {node.ip}"))
        if node.name in names:
            found.append(("name", "taken", f"node names must be unique: {node.name} is already "
                          f"a {names[node.name].role} node"))
        if known is not None and node.hypervisor not in known:
            found.append(("hypervisor", "unknown", "name one of the hypervisors: "
                          + ", ".join(known)))
        for attribute, kind, remedy in found:
            path, value = where[attribute]
            if (path, kind) not in reported:  # a count plan: once per key and kind
                reported.add((path, kind))
                yield (key, *path), value, remedy
        names[node.name], addresses[node.ip] = node, node


class Settings(Section):
    """Every key under `openstack-ha:`; fields are validated in this order, a rule seeing the
    valid fields above it."""

    libvirt_uri: LibvirtUri = setting(DEFAULT_URI, "the hypervisor of a single-host stack (remote "
                                      "hosts go under hypervisors)")
    image: Image = setting(Image, "the base image")
    release: Literal[RELEASES] = setting("antelope", "OpenStack release: decides which services "
                                         "and singletons exist")
    storage_pool: PoolName = setting("default", "libvirt pool for every volume, on every host")
    network: Network = setting(Network, "the control network")
    hypervisors: Optional[ListOf[Hypervisor]] = setting(
        derived=local_hypervisor, doc="one libvirt provider each; nodes are placed "
        "by `nodes[].hypervisor` and fenced through their own host (Pulumi.multihost.yaml)",
        min_length=1)
    control_size: ControlSize = setting(ControlSize, "each control node's size")
    compute_size: ComputeSize = setting(ComputeSize, "each compute node's size")
    openstack: OpenStack = setting(OpenStack, "the OpenStack services themselves")
    control_nodes: ControlNodes = setting(ControlNodes, "the cluster")
    compute_nodes: ComputeNodes = setting(ComputeNodes, "nova-compute nodes (repointed)")
    acknowledge_even_control_count: bool = setting(False, "allow an even number of control "
                                                   "nodes")
    acknowledge_hypervisor_majority: bool = setting(False, "allow a majority of control nodes on "
                                                    "one hypervisor (losing it loses quorum)")
    maintenance: ListOf[Label] = setting(
        (), "control nodes taken out to be patched or rebooted: drained from every HAProxy, "
        "then in Pacemaker standby (the core group and the VIP move off); a node removed from "
        "the list takes requests again once its APIs answer (README: Node maintenance)",
        shown="none")
    vip_name: Label = setting("openstack", "the VIP's DNS name is `<vipName>.<network.domain>`")
    vip: Optional[IPv4] = setting(derived=vip_in, doc="the floating IP")
    shared_storage: SharedStorage = setting(SharedStorage, "MySQL's disk")
    admin_user: UserName = setting("osha", "the SSH admin on every node")
    cluster: Cluster = setting(Cluster, "Pacemaker")
    fencing: Fencing = setting(Fencing, "fencing")
    services: dict[ServiceName, bool] = setting(
        dict, "`{name: true/false}` over catalogue.py", shown=services_for.__doc__)
    tls: Tls = setting(Tls, "TLS")
    block_storage: BlockStorage = setting(BlockStorage, "cinder's volume service and its backend")
    keystone: Keystone = setting(Keystone, "for the endpoint repoint")
    tags: dict[TagKey, Text] = setting(dict, "`environment: prod` turns on the guardrails")
    rhsm_username: Optional[Word] = setting(None, "Red Hat subscription-manager user "
                                            "(osFamily rhel; needs rhsmPassword)")
    admin_ssh_private_key: Optional[SshPrivateKey] = setting(None, "adminUser's SSH key",
                                                             shown="generated")
    hacluster_password: Optional[Password] = setting(None, "pcsd's hacluster user",
                                                     shown="generated")
    keystone_admin_password: Optional[Password] = setting(
        None, "keystone's admin: install packages bootstraps it with this; install none: the "
        "endpoint repoint logs in with it, or sources keystone.openrcFile without it",
        shown="generated with openstack.install packages")
    mysql_root_password: Optional[Password] = setting(
        None, "MySQL's root from the control network (every MySQL start sets it); the "
        "bootstrap creates the databases with it", shown="generated")
    broker_password: Optional[Password] = setting(
        None, "RabbitMQ's `openstack` user, loaded by every broker start", shown="generated")
    rhsm_password: Optional[Password] = setting(None, "with rhsmUsername")
    ceph_client_key: Optional[Password] = setting(
        None, "blockStorage.backend rbd: the cephx key of blockStorage.user (`ceph auth "
        "print-key client.<user>`)", shown="generated with backend ceph")
    _stack: str = PrivateAttr("")

    @rule("hypervisors")
    def _hosts_fit_network(cls, hypervisors: Optional[tuple], data: dict):
        uri, network = data.get("libvirt_uri"), data.get("network")
        if hypervisors is None and uri is not None:
            if not uri.startswith("qemu:"):
                yield "libvirtUri", uri, "a remote hypervisor needs fenceAddress and hostKey: " \
                    "describe it under hypervisors"
                return None
            hypervisors = local_hypervisor(uri)
        elif hypervisors and uri not in (None, DEFAULT_URI, *(h.uri for h in hypervisors)):
            yield "libvirtUri", uri, "applies only without hypervisors (each names its uri)"
        for attribute in ("name", "uri"):
            values = [getattr(h, attribute) for h in hypervisors or ()]
            for duplicate in sorted({v for v in values if values.count(v) > 1}):
                yield "hypervisors", duplicate, f"hypervisor {attribute}s must be unique"
        if network is None or hypervisors is None:
            return hypervisors
        if len(hypervisors) > 1 and network.mode != "bridge":
            yield "network.mode", network.mode, "a NAT or isolated network lives on one host " \
                "and does not join hypervisors; use mode bridge and network.bridge"
        for index, h in enumerate(hypervisors):
            if h.fence_address is None and network.mode == "bridge":  # the LAN's router
                yield ("hypervisors", index, "fenceAddress"), None, "required with " \
                    "network.mode bridge: the address its nodes reach it at"
        return tuple(h.model_copy(update={
            "fence_address": h.fence_address or network_gateway(network),
            "authorized_keys_file": h.authorized_keys_file or authorized_keys_of(h.fence_user)})
            for h in hypervisors)

    @rule("control_nodes", "compute_nodes")
    def _nodes_fit(cls, plan: NodePlan, data: dict):
        network, hypervisors = data.get("network"), data.get("hypervisors")
        if network is None:
            return plan
        key, field = to_camel(f"{plan.role}_nodes"), f"{plan.role}_nodes"
        placed = _placed({**data, field: plan}, field)
        if placed is None:
            yield (key, "firstIp"), plan.first_ip and str(plan.first_ip), "the address plan " \
                "runs past 255.255.255.255; start lower or place fewer nodes"
            return plan
        earlier = (_placed(data, "control_nodes") or []) if plan.role == "compute" else []
        yield from _node_problems(key, placed, earlier, network, hypervisors)
        return plan

    @rule("acknowledge_even_control_count")
    def _quorum_holds(cls, acknowledged: bool, data: dict):
        placed = _placed(data, "control_nodes")
        count = len(placed or ())
        if placed is not None and count < 2:
            yield "controlNodes", count, "a cluster needs at least 2 control nodes"
        elif placed is not None and count % 2 == 0 and not acknowledged:
            yield "controlNodes", count, "an even control count loses quorum on an even split; " \
                "use an odd count or set acknowledgeEvenControlCount: true"
        return acknowledged

    @rule("acknowledge_hypervisor_majority")
    def _no_host_holds_a_majority(cls, acknowledged: bool, data: dict):
        controls = [n for n, _ in _placed(data, "control_nodes") or ()]
        host, most = (Counter(n.hypervisor for n in controls).most_common(1) or [(None, 0)])[0]
        hosts = len(data.get("hypervisors") or ())
        if hosts > 1 and most > len(controls) // 2 and not acknowledged:
            yield "controlNodes", f"{most} of {len(controls)} on {host}", "a majority of control " \
                "nodes on one hypervisor loses quorum with that host; spread them or set " \
                "acknowledgeHypervisorMajority: true"
        return acknowledged

    @rule("maintenance")
    def _maintenance_keeps_the_cluster(cls, names: tuple, data: dict):
        placed = _placed(data, "control_nodes")
        if placed is None:
            return names
        controls = [n.name for n, _ in placed]
        for index, name in enumerate(names):
            if name not in controls:
                yield ("maintenance", index), name, "is no control node (" + \
                    ", ".join(controls) + ")"
            elif names.index(name) < index:
                yield ("maintenance", index), name, "is listed twice"
        serving = len(controls) - len(set(names))
        # Two nodes keep quorum with one (corosync's two_node); more need a majority serving.
        if names and serving <= len(controls) // 2 and not (len(controls) == 2 and serving == 1):
            yield "maintenance", list(names), f"leaves {serving} of {len(controls)} control " \
                "nodes serving, without quorum or a node for the core group; take fewer " \
                "nodes out at once"
        return names

    @rule("vip")
    def _vip_stands_alone(cls, vip: Optional[IPv4Address], data: dict):
        network = data.get("network")
        if network is None:
            return vip
        cidr = network.cidr
        vip = vip or vip_in(cidr)
        nodes = [n for f in ("control_nodes", "compute_nodes") for n, _ in _placed(data, f) or []]
        clash = [n.name for n in nodes if n.ip == vip]
        if any(n.name == data.get("vip_name") for n in nodes):
            yield "vipName", data["vip_name"], "is a node's name; the VIP needs its own"
        if vip not in cidr:
            yield "vip", str(vip), f"must lie inside network.cidr {cidr}"
        elif vip in (network.gateway, cidr.network_address, cidr.broadcast_address):
            yield "vip", str(vip), "must not be the gateway, network or broadcast address"
        elif clash:
            yield "vip", str(vip), f"must differ from every node address (used by {clash[0]})"
        else:
            for index, h in enumerate(data.get("hypervisors") or ()):
                holder = "the VIP" if h.fence_address == str(vip) else next(
                    (n.name for n in nodes if str(n.ip) == h.fence_address), None)
                if holder:
                    yield ("hypervisors", index, "fenceAddress"), h.fence_address, f"is " \
                        f"{holder}'s address; fence_virsh must reach the hypervisor itself"
        return vip

    @rule("shared_storage")
    def _storage_reaches_controls(cls, storage: SharedStorage, data: dict):
        hosts = sorted({n.hypervisor for n, _ in _placed(data, "control_nodes") or []} - {None})
        if storage.kind == "volume" and len(hosts) > 1:
            yield "sharedStorage.kind", "volume", f"control nodes run on {', '.join(hosts)}, " \
                "and a volume in one host's pool cannot be attached across hosts; use kind " \
                "iscsi (source: portal, iqn, lun, hostDevice) or rbd (pool, image, monitors, " \
                "hostDevice)"
        return storage

    @rule("openstack")
    def _packages_provide_the_release(cls, openstack: OpenStack, data: dict):
        image, release, size = data.get("image"), data.get("release"), data.get("control_size")
        if image is None or release is None or size is None:
            return openstack
        workers = openstack.workers or workers_for(size)
        if not openstack.installs:
            return openstack.model_copy(update={"workers": workers})
        family, version = image.os_family, image.os_version
        if version is None:
            yield "image.osVersion", None, f"required with openstack.install packages: the " \
                f"source's file name does not say which {family} it is (one of " \
                f"{', '.join(openstack_packages.source_versions(family))})"
        elif release not in openstack_packages.releases(family, str(version)):
            provided = openstack_packages.releases(family, str(version))
            yield "release", release, f"{family} {version}'s packages provide " + (
                ", ".join(provided) if provided else "no OpenStack release the stack knows") + \
                "; pick one of those, or openstack.install none with an image that carries " \
                "the services"
        if size.memory_mib < MIN_INSTALL_CONTROL_MEMORY_MIB:
            yield "controlSize.memoryMib", size.memory_mib, "with openstack.install packages a " \
                f"control node needs at least {MIN_INSTALL_CONTROL_MEMORY_MIB} (the OpenStack " \
                "services take 2 to 3 GiB besides MySQL and the broker)"
        return openstack.model_copy(update={"workers": workers})

    @rule("cluster")
    def _cluster_fits_release(cls, cluster: Cluster, data: dict):
        image, release, openstack = data.get("image"), data.get("release"), data.get("openstack")
        if image is None or release is None:
            return cluster
        installs = openstack is not None and openstack.installs
        units = SINGLETON_UNITS[image.os_family]
        broker = cluster.broker or broker_for(image.os_family, installs)
        if broker == "qpid" and image.os_family == "debian":
            yield "cluster.broker", broker, "Debian ships no qpidd; use rabbitmq with osFamily " \
                "debian"
        elif broker == "qpid" and installs:
            yield "cluster.broker", broker, "the OpenStack the stack installs speaks to " \
                "RabbitMQ; use rabbitmq, or openstack.install none"
        singletons = cluster.singletons if cluster.singletons is not None else \
            singletons_for(release, image.os_family)
        names = [s.name for s in singletons]
        for i, s in enumerate(singletons):
            if s.name in RESERVED_RESOURCE_IDS or s.name.startswith("fence-") or \
                    names.index(s.name) < i:
                yield ("cluster", "singletons", i, "name"), s.name, "must be unique and none of " \
                    f"the stack's own resource ids ({', '.join(RESERVED_RESOURCE_IDS)}, fence-*)"
            if s.unit == units.get(s.name) and s.name not in default_singletons(release):
                yield ("cluster", "singletons", i, "unit"), s.unit, f"{release} ships no " \
                    f"{s.name} (the last release with it is {SINGLETONS[s.name]})"
        if installs:
            yield from _singletons_installable(singletons, image.os_family)
        return cluster.model_copy(update={"broker": broker, "singletons": singletons})

    @field_validator("fencing")
    @classmethod
    def _two_nodes_delay_one_side(cls, fencing: Fencing, info: ValidationInfo):
        controls = _placed(info.data, "control_nodes")
        if fencing.delay_base_seconds is not None or controls is None:
            return fencing
        return fencing.model_copy(update={"delay_base_seconds": fence_delay_for(len(controls))})

    @rule("services")
    def _services_ship_with_release(cls, given: dict, data: dict):
        release, openstack = data.get("release"), data.get("openstack")
        if release is None or openstack is None:
            return given
        installable = openstack_packages.installable() if openstack.installs else None
        for name, on in given.items():
            service = by_name(name)
            if on and not ships(release, service.added_in, service.removed_after):
                yield ("services", name), on, f"{release} ships no {name}"
            elif on and installable is not None and name not in installable:
                yield ("services", name), on, "openstack.install packages does not install " \
                    f"{name}; switch it off, or use openstack.install none"
        if given.get("keystone") is False:
            yield "services.keystone", False, "the endpoint repoint registers every endpoint " \
                "through keystone at the VIP: keystone stays on"
        services = {name: given.get(name, on)
                    for name, on in services_for(release, installable).items()}
        if installable is not None:
            yield from _install_needs(services, data)
        return services

    @rule("block_storage")
    def _block_storage_fits(cls, storage: BlockStorage, data: dict):
        openstack, services = data.get("openstack"), data.get("services")
        # Without a valid release the services are not known (their rule returned them as given).
        if openstack is None or services is None or data.get("release") is None:
            return storage
        backend = storage.backend or block_backend_for(openstack.installs, services)
        if backend != "none" and not (openstack.installs and services.get("cinder")):
            yield "blockStorage.backend", backend, "cinder-volume is installed with " \
                "openstack.install packages and services.cinder on; use backend none"
        size = data.get("control_size")
        if backend == "ceph" and size is not None and \
                size.disk_gib - storage.osd_size_gib < MIN_ROOT_BESIDE_OSD_GIB:
            yield "blockStorage.osdSizeGib", storage.osd_size_gib, "the OSD's file must leave " \
                f"{MIN_ROOT_BESIDE_OSD_GIB} GiB of a control node's root disk (controlSize." \
                f"diskGib {size.disk_gib})"
        if backend != "ceph" and "osd_size_gib" in storage.model_fields_set:
            yield "blockStorage.osdSizeGib", storage.osd_size_gib, "applies with backend ceph " \
                "only"
        return storage.model_copy(update={"backend": backend})

    @rule("ceph_client_key")
    def _ceph_key_for_rbd(cls, key: Optional[SecretStr], data: dict):
        storage = data.get("block_storage")
        if storage is None:
            return key
        if storage.backend == "rbd" and key is None:
            yield "cephClientKey", None, "required with blockStorage.backend rbd: pulumi " \
                "config set --secret cephClientKey \"$(ceph auth print-key client." \
                f"{storage.user})\""
        elif storage.backend != "rbd" and key is not None:
            yield "cephClientKey", key, "applies with blockStorage.backend rbd only (backend " \
                "ceph generates its keys)"
        return key

    @rule("rhsm_password")
    def _rhsm_on_rhel_with_password(cls, password: Optional[SecretStr], data: dict):
        image, username = data.get("image"), data.get("rhsm_username")
        if username is not None and image is not None and image.os_family != "rhel":
            yield "rhsmUsername", username, "subscription-manager applies to osFamily rhel only"
        if username is not None and password is None:
            yield "rhsmPassword", None, "required with rhsmUsername: pulumi config set --secret " \
                "rhsmPassword ..."
        elif username is None and "rhsm_username" in data and password is not None:
            yield "rhsmPassword", password, "applies with rhsmUsername only"
        return password

    @rule("broker_password")
    def _broker_password_for_rabbitmq(cls, password: Optional[SecretStr], data: dict):
        cluster = data.get("cluster")
        if password is not None and cluster is not None and cluster.broker != "rabbitmq":
            yield "brokerPassword", password, "is the RabbitMQ user's; applies with " \
                "cluster.broker rabbitmq only"
        return password

    @cached_property
    def controls(self) -> tuple[Node, ...]:
        return tuple(n for n, _ in _placed(dict(self), "control_nodes", self.control_size))

    @cached_property
    def computes(self) -> tuple[Node, ...]:
        return tuple(n for n, _ in _placed(dict(self), "compute_nodes", self.compute_size))

    stack = property(lambda self: self._stack)
    nodes = property(lambda self: self.controls + self.computes)
    vip_fqdn = property(lambda self: f"{self.vip_name}.{self.network.domain}")
    is_prod = property(lambda self: self.tags.get("environment") == "prod")
    tls_enabled = property(lambda self: self.tls.enabled)
    mysql_require_tls = property(lambda self: self.tls.require_mysql_tls)
    # Compute nodes attach cinder's Ceph volumes through libvirt and qemu.
    attaches_volumes_with_libvirt = property(
        lambda self: self.block_storage.enabled and bool(self.computes)
        and openstack_packages.attaches_with_libvirt(self.openstack.compute_driver))

    # With the stack's own Ceph, glance keeps its images in a pool there and every control node
    # serves them; else in a directory of the shared disk, served by the node that mounts it.
    images_in_ceph = property(
        lambda self: self.block_storage.backend == "ceph" and bool(self.services.get("glance-api")))

    def hypervisor(self, name: str) -> Hypervisor:
        return next(h for h in self.hypervisors if h.name == name)

    @cached_property
    def secrets(self) -> dict[str, Optional[pulumi.Output]]:
        """Each secret the config sets, as a Pulumi secret; None where the stack generates it."""
        values = {f.alias: getattr(self, name) for name, f in type(self).model_fields.items()
                  if f.alias in SECRET_KEYS}
        return {k: None if v is None else pulumi.Output.secret(v.get_secret_value())
                for k, v in values.items()}


SECRET_KEYS = tuple(f.alias for f in Settings.model_fields.values()
                    if unwrap(f.annotation) is SecretStr)
project_config = partial(project_keys, project=PROJECT, root=Settings,
                         namespaces=PROVIDER_NAMESPACES, secret_keys=SECRET_KEYS)


# The top-level keys of a Pulumi stack file.
STACK_FILE_KEYS = ("config", "environment", "secretsprovider", "encryptedkey", "encryptionsalt")


class _StackFileLoader(yaml.SafeLoader):
    """YAML as Pulumi reads a stack file: a key given twice is an error, not the last one wins;
    merge keys (`<<: *anchor`) merge, and a key given beside them overrides theirs."""

    def construct_mapping(self, node, deep=False):
        seen = []
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} given twice",
                                                        key_node.start_mark)
            seen.append(key)
        return super().construct_mapping(node, deep)


def read_stack_file(path: pathlib.Path) -> dict[str, Any]:
    """A stack file's `config` (every namespace), or SettingsError, one line per problem."""
    def fail(key: tuple, value: Any, remedy: str) -> SettingsError:
        return SettingsError([line(PROJECT, (path.name, *key), value, remedy)])

    try:
        document = yaml.load(path.read_text(), Loader=_StackFileLoader)
    except OSError as error:
        raise fail((), str(path), f"cannot read it: {error.strerror}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        text = " ".join(str(getattr(error, "problem", None) or error).split())
        raise fail((), str(path), f"not valid YAML: {where}{text}") from None
    document = {} if document is None else document
    if not isinstance(document, dict):
        raise fail((), document, "expected a mapping with a `config:` key")
    for key in document:
        if key not in STACK_FILE_KEYS:
            raise fail((key,), document[key], "not a key of a Pulumi stack file" + (
                did_you_mean(key, list(STACK_FILE_KEYS)) or
                f"; known keys: {', '.join(STACK_FILE_KEYS)}"))
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise fail(("config",), config, "expected a mapping of namespace:key to values")
    return config


def parse(raw: Any, stack: str, secrets: Optional[dict[str, Any]] = None) -> Settings:
    """Validate `raw` (config keys without the project prefix; secret values may be among them,
    as in Pulumi's config, or in `secrets`) into Settings."""
    given = {k: v for k, v in (secrets or {}).items() if v is not None}
    try:
        settings = Settings.model_validate({**raw, **given} if isinstance(raw, dict) else raw)
    except ValidationError as error:
        raise SettingsError(describe(error, Settings, PROJECT, SECRET_KEYS)) from None
    settings._stack = stack
    return settings


def from_pulumi(stack: str) -> Settings:
    """The running program's settings, from every key the engine set (secrets validated like the
    rest, then kept as Pulumi secrets)."""
    from pulumi.runtime import config as runtime_config

    raw, problems = project_config({**runtime_config.get_config_env(),
                                    **runtime_config.CONFIG.get()})
    try:
        settings = parse({k: decode(Settings, k, v) for k, v in raw.items()}, stack)
    except SettingsError as error:
        problems += error.problems
    if problems:
        raise SettingsError(problems)
    return settings
