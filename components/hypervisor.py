"""One libvirt host: its explicit provider, its copy of the control network and the base image."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_libvirt as libvirt

from components.image import BaseImage, BaseImageArgs
from components.network import ClusterNetwork, ClusterNetworkArgs
from settings import Hypervisor, Settings


@dataclass
class HypervisorSiteArgs:
    settings: Settings
    hypervisor: Hypervisor


class HypervisorSite(pulumi.ComponentResource):
    """Everything placed on one hypervisor goes through `provider`."""

    def __init__(self, name: str, args: HypervisorSiteArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("openstack-ha:index:HypervisorSite", name, None, opts)
        self.hypervisor = args.hypervisor
        self.provider = libvirt.Provider(f"{name}-libvirt", uri=args.hypervisor.uri,
                                         opts=pulumi.ResourceOptions(parent=self))
        placed = pulumi.ResourceOptions(parent=self, provider=self.provider)
        self.network = ClusterNetwork(f"{name}-network",
                                      ClusterNetworkArgs(args.settings), placed)
        self.image = BaseImage(f"{name}-image", BaseImageArgs(args.settings), placed)
        self.register_outputs({"uri": args.hypervisor.uri})
