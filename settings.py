"""The stack's configuration, read once and validated before any resource is registered.

`parse()` turns the raw config mapping (keys without the project prefix) into one frozen
`Settings` object or raises `SettingsError` listing every problem, each naming the key, the bad
value and what is allowed. `from_pulumi()` feeds it from the running Pulumi program.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from catalogue import SERVICES, default_enabled

PROJECT = "openstack-ha"
DEFAULT_IMAGE = (
    "https://cloud.centos.org/centos/9-stream/x86_64/images/"
    "CentOS-Stream-GenericCloud-9-latest.x86_64.qcow2"
)
OS_FAMILIES = ("rhel", "debian")
BROKERS = ("qpid", "rabbitmq")
HAPROXY_LAYOUTS = ("clone", "group")
NETWORK_MODES = ("nat", "isolated", "bridge")
# A Linux interface name: at most 15 characters.
BRIDGE_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
FENCE_AGENTS = ("fence_virsh", "fence_xvm")
SHARED_STORAGE_KINDS = ("volume", "iscsi", "rbd")
# Pacemaker, corosync, pcsd, MariaDB and the broker together need this much on a control node.
MIN_CONTROL_MEMORY_MIB = 2048
MIN_COMPUTE_MEMORY_MIB = 1024
MIN_SHARED_DISK_GIB = 2
MIN_DISK_GIB = 8
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
# Releases in order; nova-consoleauth was removed after Stein.
RELEASES = (
    "havana", "icehouse", "juno", "kilo", "liberty", "mitaka", "newton", "ocata", "pike",
    "queens", "rocky", "stein", "train", "ussuri", "victoria", "wallaby", "xena", "yoga",
    "zed", "antelope", "bobcat", "caracal", "dalmatian", "epoxy", "flamingo",
)
LAST_RELEASE_WITH_CONSOLEAUTH = "stein"
SINGLETON_UNITS = {
    "rhel": {"nova-consoleauth": "openstack-nova-consoleauth",
             "neutron-l2-agent": "neutron-openvswitch-agent"},
    "debian": {"nova-consoleauth": "nova-consoleauth",
               "neutron-l2-agent": "neutron-openvswitch-agent"},
}


class SettingsError(ValueError):
    """Every invalid setting at once, one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack configuration:\n  - " + "\n  - ".join(problems))


@dataclass(frozen=True)
class Image:
    source: str
    os_family: str
    is_url: bool


@dataclass(frozen=True)
class Network:
    name: str
    cidr: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    mode: str
    domain: str
    # mode bridge: the existing host bridge (same name on every hypervisor) the nodes join.
    bridge: Optional[str] = None


@dataclass(frozen=True)
class Sizing:
    vcpu: int
    memory_mib: int
    disk_gib: int


@dataclass(frozen=True)
class Hypervisor:
    name: str
    uri: str
    # Address (as seen from the nodes) and user fence_virsh logs in with.
    fence_address: str
    fence_user: str
    # Where the stack installs the nodes' fencing key on this hypervisor.
    authorized_keys_file: str

    @property
    def is_local(self) -> bool:
        return "+ssh://" not in self.uri and not self.uri.startswith("qemu+tcp")


@dataclass(frozen=True)
class Node:
    name: str
    role: str  # "control" | "compute"
    ip: ipaddress.IPv4Address
    sizing: Sizing
    hypervisor: str

    @property
    def mac(self) -> str:
        """A stable locally administered MAC derived from the address (cloud-init matches on it)."""
        octets = self.ip.packed
        return "52:54:%02x:%02x:%02x:%02x" % tuple(octets)


@dataclass(frozen=True)
class Singleton:
    name: str
    unit: str


@dataclass(frozen=True)
class Fencing:
    enabled: bool
    agent: str
    # Two-node clusters delay one side's fencing so both cannot shoot each other at once.
    delay_base_seconds: int
    # What fencing does to a node: `reboot` (it comes back and rejoins) or `off` (quicker; it
    # stays down until someone starts it).
    action: str = "reboot"


@dataclass(frozen=True)
class SharedStorage:
    kind: str  # volume: a raw libvirt volume in the pool; iscsi/rbd: a device every host reaches
    size_gib: int
    device: str  # the device path inside the nodes
    source: dict[str, Any]
    filesystem: str


@dataclass(frozen=True)
class Cluster:
    name: str
    haproxy_layout: str
    broker: str
    stickiness: int
    mysql_datadir: str
    singletons: tuple[Singleton, ...]
    keepalive_time: int
    keepalive_intvl: int
    keepalive_probes: int
    # Failover speed: corosync's token (ms) bounds how soon a lost node is noticed; Pacemaker
    # throttles its actions above load-threshold (percent of the CPU load it considers normal).
    token_ms: int = 3000
    load_threshold_percent: int = 80


@dataclass(frozen=True)
class Keystone:
    region: str
    admin_user: str
    admin_project: str
    # Sourced for the endpoint repoint when no keystoneAdminPassword secret is set (packstack's).
    openrc_file: str = "/root/keystonerc_admin"


@dataclass(frozen=True)
class Settings:
    stack: str
    libvirt_uri: str
    storage_pool: str
    image: Image
    network: Network
    hypervisors: tuple[Hypervisor, ...]
    controls: tuple[Node, ...]
    computes: tuple[Node, ...]
    vip: ipaddress.IPv4Address
    vip_name: str
    shared_storage: SharedStorage
    admin_user: str
    cluster: Cluster
    fencing: Fencing
    release: str
    services: dict[str, bool]
    tls_enabled: bool
    mysql_require_tls: bool
    keystone: Keystone
    tags: dict[str, str]
    # Red Hat subscription-manager user (its password is the rhsmPassword secret).
    rhsm_username: Optional[str]
    # Secrets come in as Pulumi Outputs (or None when the stack generates them); never plain text.
    secrets: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def nodes(self) -> tuple[Node, ...]:
        return self.controls + self.computes

    @property
    def vip_fqdn(self) -> str:
        return f"{self.vip_name}.{self.network.domain}"

    @property
    def is_prod(self) -> bool:
        return self.tags.get("environment") == "prod"

    def hypervisor(self, name: str) -> Hypervisor:
        return next(h for h in self.hypervisors if h.name == name)


# Keys this program reads; anything else under the project's namespace is a typo.
KNOWN_KEYS = {
    "libvirtUri", "storagePool", "image", "network", "hypervisors", "controlNodes",
    "computeNodes", "controlSize", "computeSize", "vip", "vipName", "sharedStorage",
    "adminUser", "adminSshPrivateKey", "haclusterPassword", "acknowledgeEvenControlCount",
    "acknowledgeHypervisorMajority", "cluster", "fencing", "release", "services", "tls",
    "keystone", "keystoneAdminPassword", "mysqlRootPassword", "brokerPassword",
    "rhsmUsername", "rhsmPassword", "tags",
}
SECRET_KEYS = ("adminSshPrivateKey", "haclusterPassword", "keystoneAdminPassword",
               "mysqlRootPassword", "brokerPassword", "rhsmPassword")


class _Reader:
    """Collects problems while reading the raw mapping, so all of them are reported at once."""

    def __init__(self, raw: dict[str, Any]):
        self.raw = raw
        self.problems: list[str] = []

    def fail(self, key: str, value: Any, allowed: str) -> None:
        self.problems.append(f"{PROJECT}:{key}: {value!r} is invalid; {allowed}")

    def section(self, key: str) -> dict[str, Any]:
        value = self.raw.get(key, {})
        if not isinstance(value, dict):
            self.fail(key, value, "expected a mapping")
            return {}
        return value

    def choice(self, key: str, value: Any, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            self.fail(key, value, f"allowed: {', '.join(allowed)}")
            return allowed[0]
        return value

    def integer(self, key: str, value: Any, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(key, value, f"expected an integer >= {minimum}")
            return minimum
        return value

    def boolean(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            self.fail(key, value, "expected true or false")
            return False
        return value

    def address(self, key: str, value: Any) -> Optional[ipaddress.IPv4Address]:
        try:
            return ipaddress.IPv4Address(value)
        except (ipaddress.AddressValueError, ValueError, TypeError):
            self.fail(key, value, "expected an IPv4 address such as 10.20.0.10")
            return None

    def name(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not NAME_PATTERN.match(value):
            self.fail(key, value, "expected a lowercase DNS label (a-z, 0-9, '-'), 2-32 characters")
        return str(value)


def _read_network(r: _Reader) -> Optional[Network]:
    raw = r.section("network")
    try:
        cidr = ipaddress.IPv4Network(raw.get("cidr", "10.20.0.0/24"), strict=True)
    except (ValueError, TypeError):
        r.fail("network.cidr", raw.get("cidr"), "expected an IPv4 network such as 10.20.0.0/24")
        return None
    if cidr.num_addresses < 8:
        r.fail("network.cidr", str(cidr), "expected a prefix of /29 or larger")
        return None
    gateway = r.address("network.gateway", raw.get("gateway", str(cidr.network_address + 1)))
    if gateway is not None and gateway not in cidr:
        r.fail("network.gateway", str(gateway), f"must lie inside network.cidr {cidr}")
    domain = raw.get("domain", "osha.internal")
    if not isinstance(domain, str) or not all(NAME_PATTERN.match(p) or p.isalnum()
                                             for p in domain.split(".")):
        r.fail("network.domain", domain, "expected a DNS domain such as osha.internal")
    mode = r.choice("network.mode", raw.get("mode", "nat"), NETWORK_MODES)
    bridge = raw.get("bridge")
    if mode == "bridge" and (not isinstance(bridge, str) or not BRIDGE_PATTERN.match(bridge)):
        r.fail("network.bridge", bridge, "mode bridge needs the name of an existing host bridge "
               "such as br0 (the same on every hypervisor)")
    elif mode != "bridge" and bridge is not None:
        r.fail("network.bridge", bridge, "applies to network.mode bridge only")
    return Network(
        name=r.name("network.name", raw.get("name", "osha")),
        cidr=cidr,
        gateway=gateway or cidr.network_address + 1,
        mode=mode,
        domain=str(domain),
        bridge=str(bridge) if mode == "bridge" else None,
    )


def _read_sizing(r: _Reader, key: str, defaults: Sizing, min_memory: int) -> Sizing:
    raw = r.section(key)
    return Sizing(
        vcpu=r.integer(f"{key}.vcpu", raw.get("vcpu", defaults.vcpu), 1),
        memory_mib=r.integer(f"{key}.memoryMib", raw.get("memoryMib", defaults.memory_mib),
                             min_memory),
        disk_gib=r.integer(f"{key}.diskGib", raw.get("diskGib", defaults.disk_gib), MIN_DISK_GIB),
    )


def _read_nodes(r: _Reader, key: str, role: str, prefix: str, default_count: int,
                default_first: int, sizing: Sizing, network: Network,
                default_hypervisor: str) -> tuple[Node, ...]:
    """A count with an address plan (firstIp, consecutive) or an explicit list of name + ip."""
    raw = r.section(key)
    explicit = raw.get("nodes")
    if explicit is not None:
        if not isinstance(explicit, list):
            r.fail(f"{key}.nodes", explicit, "expected a list of {name, ip}")
            return ()
        entries = [(e.get("name"), e.get("ip"), e.get("hypervisor", default_hypervisor))
                   if isinstance(e, dict) else (None, None, None) for e in explicit]
    else:
        count = r.integer(f"{key}.count", raw.get("count", default_count), 0)
        first = r.address(f"{key}.firstIp",
                          raw.get("firstIp", str(network.cidr.network_address + default_first)))
        if first is None:
            return ()
        name_prefix = raw.get("namePrefix", prefix)
        entries = [(f"{name_prefix}{i + 1}", str(first + i), default_hypervisor)
                   for i in range(count)]
    nodes = []
    for index, (name, ip, hypervisor) in enumerate(entries):
        where = f"{key}.nodes[{index}]" if explicit is not None else f"{key}"
        address = r.address(f"{where}.ip", ip)
        if address is None:
            continue
        if address not in network.cidr:
            r.fail(f"{where}.ip", str(address), f"must lie inside network.cidr {network.cidr}")
        nodes.append(Node(name=r.name(f"{where}.name", name), role=role, ip=address,
                          sizing=sizing, hypervisor=str(hypervisor)))
    return tuple(nodes)


def _read_hypervisors(r: _Reader, network: Network, libvirt_uri: str) -> tuple[Hypervisor, ...]:
    raw = r.raw.get("hypervisors")
    if raw is None:
        raw = [{"name": "local", "uri": libvirt_uri}]
    if not isinstance(raw, list) or not raw:
        r.fail("hypervisors", raw, "expected a non-empty list of {name, uri, fenceAddress}")
        return ()
    hypervisors = []
    for index, entry in enumerate(raw):
        key = f"hypervisors[{index}]"
        if not isinstance(entry, dict):
            r.fail(key, entry, "expected a mapping {name, uri, fenceAddress}")
            continue
        uri = entry.get("uri", libvirt_uri)
        if not isinstance(uri, str) or not re.match(r"^qemu(\+ssh|\+tcp|\+tls)?://", uri):
            r.fail(f"{key}.uri", uri, "expected a libvirt URI such as qemu:///system or "
                   "qemu+ssh://root@host/system")
        remote = isinstance(uri, str) and "+" in uri.split("://")[0]
        if remote and "fenceAddress" not in entry:
            r.fail(f"{key}.fenceAddress", None,
                   "required for a remote hypervisor: the address its nodes reach it at")
        elif network.mode == "bridge" and "fenceAddress" not in entry:
            # On a bridged network the gateway is the LAN's router, not this hypervisor.
            r.fail(f"{key}.fenceAddress", None,
                   "required with network.mode bridge: the address its nodes reach it at")
        user = entry.get("fenceUser", "root")
        hypervisors.append(Hypervisor(
            name=r.name(f"{key}.name", entry.get("name")),
            uri=str(uri),
            fence_address=str(entry.get("fenceAddress", network.gateway)),
            fence_user=str(user),
            authorized_keys_file=str(entry.get(
                "authorizedKeysFile",
                "/root/.ssh/authorized_keys" if user == "root"
                else f"/home/{user}/.ssh/authorized_keys")),
        ))
    for attribute in ("name", "uri"):
        values = [getattr(h, attribute) for h in hypervisors]
        for duplicate in sorted({v for v in values if values.count(v) > 1}):
            r.fail("hypervisors", duplicate, f"hypervisor {attribute}s must be unique")
    if len(hypervisors) > 1 and network.mode != "bridge":
        r.fail("network.mode", network.mode,
               "a libvirt NAT or isolated network exists on one host only and does not join "
               "hypervisors; with more than one hypervisor use mode bridge and name the host "
               "bridge (network.bridge) every hypervisor has on the shared LAN")
    return tuple(hypervisors)


def _check_plan(r: _Reader, network: Network, controls: tuple[Node, ...],
                computes: tuple[Node, ...], vip: Optional[ipaddress.IPv4Address],
                hypervisors: tuple[Hypervisor, ...]) -> None:
    nodes = controls + computes
    names = [n.name for n in nodes]
    for duplicate in sorted({n for n in names if names.count(n) > 1}):
        r.fail("controlNodes/computeNodes", duplicate, "node names must be unique")
    ips = [n.ip for n in nodes]
    for duplicate in sorted({ip for ip in ips if ips.count(ip) > 1}):
        r.fail("controlNodes/computeNodes", str(duplicate), "node addresses must be unique")
    reserved = {network.cidr.network_address, network.cidr.broadcast_address}
    for node in nodes:
        if node.ip == network.gateway or node.ip in reserved:
            r.fail(f"{node.role}Nodes", f"{node.name}={node.ip}",
                   "a node address may not be the gateway, network or broadcast address")
    known = {h.name for h in hypervisors}
    for node in nodes:
        if node.hypervisor not in known:
            r.fail(f"{node.role}Nodes", f"{node.name}: hypervisor={node.hypervisor}",
                   f"name one of the hypervisors: {', '.join(sorted(known))}")
    if vip is None:
        return
    if vip not in network.cidr:
        r.fail("vip", str(vip), f"must lie inside network.cidr {network.cidr}")
    elif vip == network.gateway or vip in reserved:
        r.fail("vip", str(vip), "must not be the gateway, network or broadcast address")
    clash = [n.name for n in nodes if n.ip == vip]
    if clash:
        r.fail("vip", str(vip), f"must differ from every node address (used by {clash[0]})")


def _check_quorum(r: _Reader, controls: tuple[Node, ...], hypervisors: tuple[Hypervisor, ...]):
    if len(controls) < 2:
        r.fail("controlNodes", len(controls), "a cluster needs at least 2 control nodes")
    elif len(controls) % 2 == 0 and not r.raw.get("acknowledgeEvenControlCount", False):
        r.fail("controlNodes", len(controls),
               "an even control count loses quorum on an even split; use an odd count or set "
               "acknowledgeEvenControlCount: true")
    per_host = {h.name: sum(1 for n in controls if n.hypervisor == h.name) for h in hypervisors}
    crowded = [h for h, count in per_host.items() if count > len(controls) // 2]
    if len(hypervisors) > 1 and crowded and not r.raw.get("acknowledgeHypervisorMajority", False):
        r.fail("controlNodes", f"{per_host[crowded[0]]} of {len(controls)} on {crowded[0]}",
               "a majority of control nodes on one hypervisor loses quorum with that host; "
               "spread them or set acknowledgeHypervisorMajority: true")


def _read_shared_storage(r: _Reader, controls: tuple[Node, ...]) -> SharedStorage:
    raw = r.section("sharedStorage")
    kind = r.choice("sharedStorage.kind", raw.get("kind", "volume"), SHARED_STORAGE_KINDS)
    size = r.integer("sharedStorage.sizeGib", raw.get("sizeGib", 4), MIN_SHARED_DISK_GIB)
    source = raw.get("source", {})
    control_hosts = sorted({n.hypervisor for n in controls})
    if kind == "volume" and len(control_hosts) > 1:
        r.fail("sharedStorage.kind", kind,
               f"control nodes run on {', '.join(control_hosts)}, and a volume in one "
               "hypervisor's local pool cannot be attached across hosts; name a shared block "
               "device every host reaches: kind iscsi (source: portal, iqn, lun, hostDevice) or "
               "rbd (source: pool, image, monitors, hostDevice)")
    # hostDevice: the path every hypervisor sees the LUN or mapped image at.
    required = {"iscsi": ("portal", "iqn", "lun", "hostDevice"),
                "rbd": ("pool", "image", "monitors", "hostDevice")}
    for needed in required.get(kind, ()):
        if not isinstance(source, dict) or needed not in source:
            r.fail(f"sharedStorage.source.{needed}", None, f"required for kind {kind}")
    host_device = source.get("hostDevice") if isinstance(source, dict) else None
    if host_device is not None and not str(host_device).startswith("/dev/"):
        r.fail("sharedStorage.source.hostDevice", host_device,
               "expected the block device path every hypervisor sees, e.g. "
               "/dev/disk/by-path/ip-192.0.2.5:3260-iscsi-iqn.2026-01.lab:osha-lun-0")
    return SharedStorage(
        kind=kind, size_gib=size, source=source if isinstance(source, dict) else {},
        device=str(raw.get("device", "/dev/disk/by-id/virtio-osha-shared")),
        filesystem=r.choice("sharedStorage.filesystem", raw.get("filesystem", "xfs"),
                            ("xfs", "ext4")),
    )


def _read_image(r: _Reader) -> Image:
    raw = r.section("image")
    source = raw.get("source", DEFAULT_IMAGE)
    is_url = isinstance(source, str) and bool(re.match(r"^https?://", source))
    if not isinstance(source, str) or not source:
        r.fail("image.source", source, "expected a local path or an http(s) URL of a qcow2 image")
    elif not is_url and not os.path.isfile(source):
        r.fail("image.source", source, "the image file does not exist on this machine; give an "
               "existing path or an http(s) URL")
    return Image(source=str(source), is_url=is_url,
                 os_family=r.choice("image.osFamily", raw.get("osFamily", "rhel"), OS_FAMILIES))


def _read_singletons(r: _Reader, os_family: str, release: str) -> tuple[Singleton, ...]:
    raw = r.section("cluster").get("singletons")
    if raw is None:
        defaults = SINGLETON_UNITS[os_family]
        wanted = ["neutron-l2-agent"]
        if RELEASES.index(release) <= RELEASES.index(LAST_RELEASE_WITH_CONSOLEAUTH):
            wanted.insert(0, "nova-consoleauth")
        return tuple(Singleton(name=n, unit=defaults[n]) for n in wanted)
    if not isinstance(raw, list):
        r.fail("cluster.singletons", raw, "expected a list of {name, unit}")
        return ()
    singletons = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("unit"), str):
            r.fail(f"cluster.singletons[{index}]", entry, "expected {name, unit}")
            continue
        singletons.append(Singleton(name=r.name(f"cluster.singletons[{index}].name",
                                                entry.get("name")), unit=entry["unit"]))
    return tuple(singletons)


def _read_cluster(r: _Reader, os_family: str, release: str, controls) -> Cluster:
    raw = r.section("cluster")
    broker = r.choice("cluster.broker", raw.get("broker", "qpid" if os_family == "rhel"
                                                else "rabbitmq"), BROKERS)
    if broker == "qpid" and os_family == "debian":
        r.fail("cluster.broker", broker, "Debian ships no qpidd; use rabbitmq with osFamily debian")
    keepalive = raw.get("tcpKeepalive", {})
    return Cluster(
        name=r.name("cluster.name", raw.get("name", "osha")),
        haproxy_layout=r.choice("cluster.haproxyLayout", raw.get("haproxyLayout", "clone"),
                                HAPROXY_LAYOUTS),
        broker=broker,
        stickiness=r.integer("cluster.stickiness", raw.get("stickiness", 100), 0),
        mysql_datadir=str(raw.get("mysqlDatadir", "/var/lib/mysql")),
        singletons=_read_singletons(r, os_family, release),
        keepalive_time=r.integer("cluster.tcpKeepalive.time", keepalive.get("time", 60), 1),
        keepalive_intvl=r.integer("cluster.tcpKeepalive.intvl", keepalive.get("intvl", 10), 1),
        keepalive_probes=r.integer("cluster.tcpKeepalive.probes", keepalive.get("probes", 6), 1),
        token_ms=r.integer("cluster.tokenMs", raw.get("tokenMs", 3000), 300),
        load_threshold_percent=r.integer("cluster.loadThresholdPercent",
                                         raw.get("loadThresholdPercent", 80), 1),
    )


def _read_fencing(r: _Reader, controls) -> Fencing:
    raw = r.section("fencing")
    enabled = r.boolean("fencing.enabled", raw.get("enabled", True))
    if not enabled and not raw.get("acknowledgeDisabled", False):
        r.fail("fencing.enabled", False,
               "without fencing the shared MySQL filesystem can be mounted twice and corrupted; "
               "set fencing.acknowledgeDisabled: true to run without it anyway")
    delay = raw.get("delayBaseSeconds", 10 if len(controls) == 2 else 0)
    return Fencing(enabled=enabled,
                   agent=r.choice("fencing.agent", raw.get("agent", "fence_virsh"), FENCE_AGENTS),
                   delay_base_seconds=r.integer("fencing.delayBaseSeconds", delay, 0),
                   action=r.choice("fencing.action", raw.get("action", "reboot"), ("reboot", "off")))


def _read_services(r: _Reader, release: str) -> dict[str, bool]:
    raw = r.section("services")
    enabled = {s.name: default_enabled(s, release, RELEASES) for s in SERVICES}
    for name, value in raw.items():
        if name not in enabled:
            r.fail(f"services.{name}", value, f"unknown service; known: {', '.join(enabled)}")
        else:
            enabled[name] = r.boolean(f"services.{name}", value)
    return enabled


def _read_rhsm(r: _Reader, image: Image, secrets: dict[str, Any]) -> Optional[str]:
    username = r.raw.get("rhsmUsername")
    if username is None:
        return None
    if image.os_family != "rhel":
        r.fail("rhsmUsername", username, "subscription-manager applies to osFamily rhel only")
    if secrets.get("rhsmPassword") is None:
        r.fail("rhsmPassword", None, "required with rhsmUsername: pulumi config set --secret "
               "rhsmPassword ...")
    return str(username)


def parse(raw: dict[str, Any], stack: str, secrets: Optional[dict[str, Any]] = None) -> Settings:
    """Validate `raw` (config keys without the project prefix) into Settings."""
    r = _Reader(raw)
    for key in sorted(set(raw) - KNOWN_KEYS):
        r.fail(key, raw[key], f"unknown key; known keys: {', '.join(sorted(KNOWN_KEYS))}")
    libvirt_uri = str(raw.get("libvirtUri", "qemu:///system"))
    image = _read_image(r)
    network = _read_network(r)
    if network is None:
        raise SettingsError(r.problems)
    hypervisors = _read_hypervisors(r, network, libvirt_uri)
    default_hypervisor = hypervisors[0].name if hypervisors else "local"
    control_size = _read_sizing(r, "controlSize", Sizing(2, 4096, 20), MIN_CONTROL_MEMORY_MIB)
    compute_size = _read_sizing(r, "computeSize", Sizing(2, 2048, 20), MIN_COMPUTE_MEMORY_MIB)
    controls = _read_nodes(r, "controlNodes", "control", "ctl", 3, 11, control_size, network,
                           default_hypervisor)
    computes = _read_nodes(r, "computeNodes", "compute", "cmp", 0, 21, compute_size, network,
                           default_hypervisor)
    vip = r.address("vip", raw.get("vip", str(network.cidr.network_address + 10)))
    _check_plan(r, network, controls, computes, vip, hypervisors)
    _check_quorum(r, controls, hypervisors)
    release = r.choice("release", raw.get("release", "antelope"), RELEASES)
    tls = r.section("tls")
    keystone = r.section("keystone")
    tags = r.section("tags")
    settings = Settings(
        stack=stack,
        libvirt_uri=libvirt_uri,
        storage_pool=str(raw.get("storagePool", "default")),
        image=image,
        network=network,
        hypervisors=hypervisors,
        controls=controls,
        computes=computes,
        vip=vip or network.cidr.network_address,
        vip_name=r.name("vipName", raw.get("vipName", "openstack")),
        shared_storage=_read_shared_storage(r, controls),
        admin_user=r.name("adminUser", raw.get("adminUser", "osha")),
        cluster=_read_cluster(r, image.os_family, release, controls),
        fencing=_read_fencing(r, controls),
        release=release,
        services=_read_services(r, release),
        tls_enabled=r.boolean("tls.enabled", tls.get("enabled", False)),
        mysql_require_tls=r.boolean("tls.requireMysqlTls", tls.get("requireMysqlTls", False)),
        keystone=Keystone(region=str(keystone.get("region", "RegionOne")),
                          admin_user=str(keystone.get("adminUser", "admin")),
                          admin_project=str(keystone.get("adminProject", "admin")),
                          openrc_file=str(keystone.get("openrcFile", "/root/keystonerc_admin"))),
        tags={str(k): str(v) for k, v in tags.items()},
        rhsm_username=_read_rhsm(r, image, secrets or {}),
        secrets=dict(secrets or {}),
    )
    if r.problems:
        raise SettingsError(r.problems)
    return settings


def _decode(value: Any) -> Any:
    """Pulumi hands structured config over as JSON text."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def raw_config() -> dict[str, Any]:
    """Every `openstack-ha:*` key the engine set, without the prefix (secrets excluded)."""
    from pulumi.runtime import config as runtime_config

    merged = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    prefix = f"{PROJECT}:"
    return {k[len(prefix):]: _decode(v) for k, v in merged.items()
            if k.startswith(prefix) and k[len(prefix):] not in SECRET_KEYS}


def from_pulumi(get_secret: Callable[[str], Any], stack: str) -> Settings:
    """Read the running program's config; secrets stay Pulumi secrets."""
    return parse(raw_config(), stack, {key: get_secret(key) for key in SECRET_KEYS})
