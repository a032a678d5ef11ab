"""One VM: copy-on-write root volume, cloud-init seed, Domain, and a readiness gate over SSH."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_command as command
import pulumi_libvirt as libvirt

from components.credentials import Credentials
from components.hypervisor import HypervisorSite
from components.shared_disk import SharedDisk
from components.templating import render
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


def cloud_init_files(settings: Settings, node: Node, admin_public_key: str,
                     rhsm_password: Optional[str] = None) -> dict[str, str]:
    """user-data, meta-data and network-config of one node, rendered from templates/cloud-init/."""
    rhsm = None
    if settings.rhsm_username is not None:
        rhsm = {"username": settings.rhsm_username, "password": rhsm_password}
    context = dict(settings=settings, node=node, admin_public_key=admin_public_key.strip(),
                   prefix=settings.network.cidr.prefixlen, rhsm=rhsm)
    return {part: render(f"cloud-init/{part}.yaml.j2", **context)
            for part in ("user-data", "meta-data", "network-config")}


# pulumi-command logs in as the admin user and hands the text to its shell (`bash -c`); the
# step re-runs itself under sudo with the same text, keeping stdin (where secrets come in).
ROOT_PROLOGUE = (
    '[ "$(id -u)" -eq 0 ] || exec sudo -n /bin/bash -c "$BASH_EXECUTION_STRING"\n')


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
        # With RHSM the user-data holds a password: the whole seed then stays a Pulumi secret.
        files = pulumi.Output.all(args.credentials.admin_public_key,
                                  s.secrets.get("rhsmPassword")).apply(
            lambda values: cloud_init_files(s, node, *values))
        seed = libvirt.CloudInitDisk(
            f"{name}-cloudinit", name=f"{self.domain_name}-cloudinit.iso", pool=s.storage_pool,
            user_data=files["user-data"], meta_data=files["meta-data"],
            network_config=files["network-config"], opts=child)
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
            # The first boot takes minutes; keep dialling until sshd answers.
            dial_error_limit=120, per_dial_timeout=10)
        # A replaced Domain keeps its address; the trigger re-runs the gate (and what follows).
        self.ready = command.remote.Command(
            f"{name}-ready", connection=self.connection,
            create=render("readiness.sh.j2", node=node, settings=s),
            triggers=[self.domain.id],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.domain]))
        self.register_outputs({"domain_name": self.domain_name, "ip": str(node.ip)})

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
                                                                         False)),
            **kwargs)
