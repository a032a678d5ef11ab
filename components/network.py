"""The control network on one hypervisor: one libvirt runs (addresses, DNS names), or a host bridge."""
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
        if s.network.mode == "bridge":
            # The host bridge joins the hypervisors' LAN; libvirt adds no address, DHCP or DNS
            # to it (the nodes' /etc/hosts names every node and the VIP).
            self.network = libvirt.Network(
                f"{name}-libvirt", name=s.network.name, mode="bridge", bridge=s.network.bridge,
                autostart=True, opts=pulumi.ResourceOptions(parent=self))
        else:
            self.network = self._routed(name, s)
        self.network_id = self.network.id
        self.register_outputs({"network_id": self.network_id})

    def _routed(self, name: str, s: Settings) -> libvirt.Network:
        """A network libvirt runs itself (nat/isolated), with DNS names for the nodes and VIP."""
        hosts = [libvirt.NetworkDnsHostArgs(hostname=f"{n.name}.{s.network.domain}", ip=str(n.ip))
                 for n in s.nodes]
        hosts.append(libvirt.NetworkDnsHostArgs(hostname=s.vip_fqdn, ip=str(s.vip)))
        return libvirt.Network(
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
