"""The ONE disk every control node attaches: MySQL's data lives on it, mounted on one node at a time.

pulumi-libvirt 0.5.4 has no `shareable` flag, so each control Domain carries an XSLT
(templates/shared-disk.xsl.j2) that marks this disk shareable with host caching off and a fixed
serial, which gives it the same /dev/disk/by-id name on every node.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_libvirt as libvirt

from components.templating import render
from settings import Settings

GIB = 1024 ** 3
SERIAL = "osha-shared"
# Where every node sees it: udev names the disk after its serial.
DEVICE = f"/dev/disk/by-id/virtio-{SERIAL}"


@dataclass
class SharedDiskArgs:
    settings: Settings


class SharedDisk(pulumi.ComponentResource):
    def __init__(self, name: str, args: SharedDiskArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("openstack-ha:index:SharedDisk", name, None, opts)
        s = args.settings
        storage = s.shared_storage
        # What the disk is called where libvirt sees it: a pool volume's name or a host device.
        self.volume_name: Optional[str] = None
        self.host_device: Optional[str] = None
        if storage.kind == "volume":
            volume_name = self.volume_name = f"{s.stack}-shared.raw"
            # Raw: a qcow2 image written by two guests corrupts its metadata.
            self.volume = libvirt.Volume(
                f"{name}-volume", name=volume_name, pool=s.storage_pool, format="raw",
                size=storage.size_gib * GIB, opts=pulumi.ResourceOptions(parent=self))
            self.disk = libvirt.DomainDiskArgs(volume_id=self.volume.id)
            # The provider attaches a pool volume by its file path, which ends in the volume name.
            match = volume_name
        else:
            # iSCSI LUNs and RBD images are mapped on every hypervisor as the same block device.
            self.volume = None
            self.host_device = storage.source["hostDevice"]
            self.disk = libvirt.DomainDiskArgs(block_device=storage.source["hostDevice"])
            match = storage.source["hostDevice"]
        self.xslt = render("shared-disk.xsl.j2", match=match, serial=SERIAL)
        self.device = DEVICE
        self.register_outputs({"device": self.device})
