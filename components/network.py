"""The control network on one hypervisor: static addressing, DNS names for every node and the VIP."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_libvirt as libvirt

from settings import Settings

# libvirt's name for a network that neither NATs nor routes.
_LIBVIRT_MODE = {"nat": "nat", "isolated": "none"}


@dataclass
class ClusterNetworkArgs:
    settings: Settings


class ClusterNetwork(pulumi.ComponentResource):
    def __init__(self, name: str, args: ClusterNetworkArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("openstack-ha:index:ClusterNetwork", name, None, opts)
        s = args.settings
        hosts = [libvirt.NetworkDnsHostArgs(hostname=f"{n.name}.{s.network.domain}", ip=str(n.ip))
                 for n in s.nodes]
        hosts.append(libvirt.NetworkDnsHostArgs(hostname=s.vip_fqdn, ip=str(s.vip)))
        self.network = libvirt.Network(
            f"{name}-libvirt",
            name=s.network.name,
            mode=_LIBVIRT_MODE[s.network.mode],
            domain=s.network.domain,
            addresses=[str(s.network.cidr)],
            # Every node has a static address: no DHCP server to hand out a second one.
            dhcp=libvirt.NetworkDhcpArgs(enabled=False),
            dns=libvirt.NetworkDnsArgs(enabled=True, local_only=True, hosts=hosts),
            autostart=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.network_id = self.network.id
        self.register_outputs({"network_id": self.network_id})
