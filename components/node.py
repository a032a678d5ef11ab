"""One VM: copy-on-write root volume, cloud-init seed, Domain, and a readiness gate over SSH."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_command as command
import pulumi_libvirt as libvirt
import pulumi_tls as tls

import openstack_packages
from catalogue import SERVICES, Service
from components.cluster_units import installed_single_node_services
from components.credentials import Credentials
from components.hypervisor import HypervisorSite
from components.shared_disk import SharedDisk
from components.templating import render, yaml_document
from settings import Node, Settings

GIB = 1024 ** 3


@dataclass
class ClusterNodeArgs:
    settings: Settings
    node: Node
    site: HypervisorSite
    credentials: Credentials
    # Control nodes attach the shared disk; compute nodes pass None.
    shared_disk: Optional[SharedDisk] = None


def user_data(settings: Settings, node: Node, admin_public_key: str, host_private_key: str,
              host_public_key: str, rhsm_password: Optional[str] = None) -> str:
    """cloud-init user-data of one node: a YAML document of values, never pasted text."""
    domain = settings.network.domain
    # Every node resolves every other node and the VIP without depending on DNS.
    hosts = ["127.0.0.1 localhost", "::1 localhost"]
    hosts += [f"{other.ip} {other.name}.{domain} {other.name}" for other in settings.nodes]
    hosts.append(f"{settings.vip} {settings.vip_fqdn} {settings.vip_name}")
    document: dict = {
        "hostname": node.name,
        "fqdn": f"{node.name}.{domain}",
        "manage_etc_hosts": False,
        "ssh_pwauth": False,
        # Present in every glibc: no locale package to depend on.
        "locale": "C.UTF-8",
        "disable_root": True,
        "users": [{
            "name": settings.admin_user,
            "gecos": "openstack-ha administrator",
            "shell": "/bin/bash",
            "lock_passwd": True,
            "sudo": "ALL=(ALL) NOPASSWD:ALL",
            "ssh_authorized_keys": [admin_public_key.strip()],
        }],
        # The image's host keys go; the node answers with the key the stack generated for it,
        # which every SSH client of the stack pins. Given ssh_keys, cloud-init generates no
        # other key; ssh_genkeytypes (22.4's schema wants one type at least) names the same one.
        "ssh_deletekeys": True,
        "ssh_genkeytypes": ["ed25519"],
        "ssh_keys": {"ed25519_private": host_private_key,
                     "ed25519_public": host_public_key.strip()},
        "write_files": [{"path": "/etc/hosts", "permissions": "0644",
                         "content": "".join(f"{line}\n" for line in hosts)}],
        # A string runs under `sh -c`.
        "runcmd": ["if systemctl list-unit-files qemu-guest-agent.service >/dev/null; "
                   "then systemctl enable --now qemu-guest-agent; fi"],
    }
    if settings.rhsm_username is not None:
        document["rh_subscription"] = {"username": settings.rhsm_username,
                                       "password": rhsm_password, "auto-attach": True}
    return yaml_document(document, first_line="#cloud-config")


def meta_data(settings: Settings, node: Node) -> str:
    return yaml_document({"instance-id": f"{settings.stack}-{node.name}",
                          "local-hostname": node.name})


def network_config(settings: Settings, node: Node) -> str:
    """Netplan v2: the node's static address on the NIC with its MAC."""
    gateway = str(settings.network.gateway)
    return yaml_document({"version": 2, "ethernets": {"primary": {
        "match": {"macaddress": node.mac},
        "addresses": [f"{node.ip}/{settings.network.cidr.prefixlen}"],
        # 0.0.0.0/0, not "default": cloud-init 22.x (Debian 12) rejects the keyword.
        "routes": [{"to": "0.0.0.0/0", "via": gateway}],
        "nameservers": {"addresses": [gateway], "search": [settings.network.domain]},
    }}})


# pulumi-command logs in as the admin user and hands the text to its shell (`bash -c`); the
# step re-runs itself under sudo with the same text, keeping stdin (where secrets come in). Then
# it runs again under a lock named by its text: the run of a killed `pulumi up` may still be
# going on the node (its session gone), and the step's next run waits for it to end. flock holds
# the lock (-o: the script, and what it starts, do not), deaf to the lost session's hangup as
# the script is (apt ignores it while dpkg works): the run ends when a command it waits for does
# and its next output fails. A script run as a file takes no lock.
ROOT_PROLOGUE = (
    '[ "$(id -u)" -eq 0 ] || exec sudo -n /bin/bash -c "$BASH_EXECUTION_STRING"\n'
    'if [ -z "${OSHA_STEP_LOCK:-}" ] && [ -n "${BASH_EXECUTION_STRING:-}" ]; then\n'
    '  text_hash=$(sha256sum <<<"$BASH_EXECUTION_STRING" | cut -c1-32)\n'
    '  export OSHA_STEP_LOCK=/run/lock/openstack-ha-step-$text_hash\n'
    "  trap '' HUP\n"
    '  exec flock -o "$OSHA_STEP_LOCK" /bin/bash -c "$BASH_EXECUTION_STRING"\n'
    'fi\n')


def as_root(script: str) -> str:
    """`script` with the root prologue after its shebang line."""
    if script.startswith("#!"):
        shebang, _, body = script.partition("\n")
        return f"{shebang}\n{ROOT_PROLOGUE}{body}"
    return ROOT_PROLOGUE + script


class ClusterNode(pulumi.ComponentResource):
    """Later steps run on this node through `connection`, after `ready`."""

    def __init__(self, name: str, args: ClusterNodeArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("openstack-ha:index:ClusterNode", name, None, opts)
        s, node = args.settings, args.node
        self.spec = node
        child = pulumi.ResourceOptions(parent=self, provider=args.site.provider)
        self.domain_name = f"{s.stack}-{node.name}"
        root = libvirt.Volume(
            f"{name}-root", name=f"{self.domain_name}-root.qcow2", pool=s.storage_pool,
            base_volume_id=args.site.image.volume_id, format="qcow2",
            size=node.sizing.disk_gib * GIB, opts=child)
        # The node's SSH host key: delivered at first boot, pinned by every connection to it.
        host_key = tls.PrivateKey(f"{name}-host-key", algorithm="ED25519",
                                  opts=pulumi.ResourceOptions(parent=self))
        self.host_public_key = host_key.public_key_openssh
        # The user-data holds the host's private key (and the RHSM password): a Pulumi secret.
        seed_user_data = pulumi.Output.secret(pulumi.Output.all(
            args.credentials.admin_public_key, host_key.private_key_openssh,
            host_key.public_key_openssh, s.secrets.get("rhsmPassword")).apply(
            lambda values: user_data(s, node, *values)))
        seed = libvirt.CloudInitDisk(
            f"{name}-cloudinit", name=f"{self.domain_name}-cloudinit.iso", pool=s.storage_pool,
            user_data=seed_user_data, meta_data=meta_data(s, node),
            network_config=network_config(s, node), opts=child)
        disks = [libvirt.DomainDiskArgs(volume_id=root.id)]
        xml = None
        if args.shared_disk is not None:
            disks.append(args.shared_disk.disk)
            xml = libvirt.DomainXmlArgs(xslt=args.shared_disk.xslt)
        self.domain = libvirt.Domain(
            f"{name}-domain", name=self.domain_name, memory=node.sizing.memory_mib,
            vcpu=node.sizing.vcpu, cloudinit=seed.id, qemu_agent=True, autostart=True,
            disks=disks, xml=xml,
            # The static address is cloud-init's (network-config matches this MAC); giving it
            # here too would make the provider add a DHCP reservation to a network without DHCP.
            network_interfaces=[libvirt.DomainNetworkInterfaceArgs(
                network_id=args.site.network.network_id, mac=node.mac)],
            consoles=[libvirt.DomainConsoleArgs(type="pty", target_type="serial",
                                                target_port="0")],
            opts=child)
        self.connection = command.remote.ConnectionArgs(
            host=str(node.ip), user=s.admin_user, private_key=args.credentials.admin_private_key,
            host_key=self.host_public_key,
            # The first boot takes minutes; keep dialling until sshd answers.
            dial_error_limit=120, per_dial_timeout=10)
        # A replaced Domain keeps its address; the trigger re-runs the gate (and what follows).
        self.ready = command.remote.Command(
            f"{name}-ready", connection=self.connection,
            create=render("readiness.sh.j2", node=node, settings=s),
            triggers=[self.domain.id],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.domain]))
        self.register_outputs({"domain_name": self.domain_name, "ip": str(node.ip),
                               "host_key": self.host_public_key})

    def step(self, name: str, **kwargs) -> command.remote.Command:
        """A remote Command on this node, run as root after the readiness gate, under `parent`."""
        parent = kwargs.pop("parent")
        depends_on = [self.ready, *kwargs.pop("depends_on", [])]
        for phase in ("create", "update", "delete"):
            if kwargs.get(phase) is not None:
                kwargs[phase] = pulumi.Output.from_input(kwargs[phase]).apply(as_root) \
                    if not isinstance(kwargs[phase], str) else as_root(kwargs[phase])
        return command.remote.Command(
            name, connection=self.connection,
            opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on,
                                        delete_before_replace=kwargs.pop("delete_before_replace",
                                                                         False),
                                        aliases=kwargs.pop("aliases", None)),
            **kwargs)


def node_services(settings: Settings, node: Node) -> list[Service]:
    """Every API this node serves itself (not one Pacemaker runs on one node: glance-api with its
    images on the shared disk); each is HAProxy's proxy of that name."""
    if node.role != "control":
        return []
    cluster_run = installed_single_node_services(settings)
    return [s for s in SERVICES
            if settings.services.get(s.name) and s.name in openstack_packages.installable()
            and s.name not in cluster_run]


def node_apis(settings: Settings, node: Node) -> list[str]:
    """address:port of every API this node serves itself (`node_services`)."""
    return [f"{node.ip}:{s.port}" for s in node_services(settings, node)]
