"""What a node substrate knows: how to define, start, kill and locate the stack's nodes.

Everything else of the lab (replay of the rendered steps, checks, drills, reports) is shared
and talks to nodes over SSH or through `Substrate.exec`. Two substrates exist:
`containers` (lab/containers.py, libvirt LXC at native speed, the default and what CI runs) and
`vms` (lab/vms.py, qemu domains under software emulation, opt-in).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from lab.hypervisor import STATE_DIR, in_namespace, run, virsh
from manifest_schema import Manifest, Node

# libvirtd and its children get a private /dev: the lab can give a device a name there (the
# stack's shared-disk path) without touching the machine's /dev, and /dev/kvm, which runs no
# guest on these machines, is left out (libvirt would re-probe it on every define and start).
PRIVATE_DEV = ('dev=$(mktemp -d) && mount -t tmpfs -o mode=755 tmpfs "$dev" '
               '&& { cp -a /dev/. "$dev"/ 2>/dev/null || true; } && rm -f "$dev/kvm" '
               '&& mount --rbind /dev/pts "$dev/pts" && mount --rbind /dev/shm "$dev/shm" '
               '&& mount --move "$dev" /dev')

# How a drill can take a node down: libvirt's hard stop, SIGKILL of the node's init (containers)
# or of its emulator (VMs), and cutting its link on the host side (the node keeps running).
FAULTS = ("destroy", "kill", "cut")


class Substrate:
    """The nodes of one rendered stack on one kind of libvirt domain."""

    name = ""
    uri = ""
    # A domain whose console, unread, stops it (lab/consoles.py reads them).
    consoles_need_a_reader = False

    def __init__(self, rendered: Path, base: Path):
        self.rendered = rendered
        self.base = base  # the built rootfs (containers) or image (VMs)
        self.manifest = Manifest.load(rendered)

    @property
    def nodes(self) -> list[Node]:
        return self.manifest.nodes

    def shared_disk_file(self) -> Path:
        """The raw file behind the shared disk, named and sized like the stack's shared volume
        (the stack's XSLT recognises the name)."""
        volume = self.manifest.resource("shared-disk-volume").inputs
        path = STATE_DIR / volume["name"]
        run("truncate", "-s", str(volume["size"]), str(path))
        return path

    # -- the hypervisor side -----------------------------------------------------------------
    def prepare_libvirtd(self) -> str:
        """Shell run in libvirtd's fresh mount namespace before it starts."""
        return PRIVATE_DEV

    # -- nodes -------------------------------------------------------------------------------
    def define(self, node: Node) -> None:
        raise NotImplementedError

    def up(self) -> None:
        for node in self.nodes:
            self.define(node)
        for node in self.nodes:
            self.start(node)

    def start(self, node: Node) -> None:
        virsh("start", node.domain)

    def stop(self, node: Node) -> None:
        """Power the node off (a node that is down, as a delete must survive)."""
        virsh("destroy", node.domain, check=False)

    def is_running(self, node: Node) -> bool:
        return virsh("domstate", node.domain, check=False).stdout.strip() == "running"

    def link(self, node: Node) -> str:
        """The host-side end of the node's network link (in the lab's namespace)."""
        return f"osha-{node.name}"[:15]

    def kill(self, node: Node, fault: str) -> None:
        if fault == "destroy":
            virsh("destroy", node.domain)
        elif fault == "kill":
            self.kill_hard(node)
        elif fault == "cut":
            subprocess.run(in_namespace("ip", "link", "set", self.link(node), "down"), check=True)
        else:
            raise ValueError(f"unknown fault {fault}; expected one of {FAULTS}")

    def heal(self, node: Node) -> None:
        """Undo a cut that fencing did not undo (a restarted node gets a new link anyway)."""
        subprocess.run(in_namespace("ip", "link", "set", self.link(node), "up"),
                       capture_output=True)

    def kill_hard(self, node: Node) -> None:
        raise NotImplementedError

    def exec(self, node: Node, command: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """`command` (shell) as root on the node by the substrate's own way in, which works
        while the node's network is cut; a CompletedProcess with returncode 255 when the node
        is not running."""
        raise NotImplementedError

    def mountinfo(self, node: Node) -> str | None:
        """The node's mount table (None when it cannot be read)."""
        result = self.exec(node, "cat /proc/1/mountinfo")
        return result.stdout if result.returncode == 0 else None

    def addresses(self, node: Node) -> str | None:
        """The node's IPv4 addresses, `ip -o -4 addr` (None when they cannot be read)."""
        result = self.exec(node, "ip -o -4 addr show")
        return result.stdout if result.returncode == 0 else None
