"""The base image every node's root volume is a copy-on-write layer of."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_libvirt as libvirt

from settings import Settings


@dataclass
class BaseImageArgs:
    settings: Settings


class BaseImage(pulumi.ComponentResource):
    def __init__(self, name: str, args: BaseImageArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("openstack-ha:index:BaseImage", name, None, opts)
        s = args.settings
        self.volume = libvirt.Volume(
            f"{name}-volume",
            name=f"{s.stack}-base.qcow2",
            pool=s.storage_pool,
            source=s.image.source,
            format="qcow2",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.volume_id = self.volume.id
        self.register_outputs({"volume_id": self.volume_id})
