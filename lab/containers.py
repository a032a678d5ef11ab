"""The stack's nodes as libvirt LXC system containers: native speed, systemd as init.

Each node boots an overlay of the cached lab rootfs (lab/build-rootfs.sh) with the stack's own
cloud-init seed in the NoCloud seed directory (user-data, meta-data and network-config exactly as
rendered), its own name, address and MAC, and lab/container-init.sh as its init. The shared disk
is one loop device over a raw file, handed to every control container at the stack's own device
path: libvirtd's private /dev holds that name for the loop device, and libvirt creates the same
node inside each container.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from components.templating import render
from lab.hypervisor import STATE_DIR, in_libvirtd_mounts, record, run, state, virsh
from lab.substrate import Substrate
from lab.wait import until
from manifest_schema import Node

SEED_DIR = "var/lib/cloud/seed/nocloud"
# The container's init (lab/container-init.sh, why there), copied into each node's overlay.
INIT = Path(__file__).with_name("container-init.sh")
INIT_PATH = "usr/local/sbin/lab-init"
# A container boots in about 10 s on these machines (4 at once).
BOOT_SECONDS = 120
# libvirtd runs outside systemd here: its LXC driver manages these cgroup v1 hierarchies itself.
# The cgroup2 `unified` one must stay unmounted (libvirt_lxc fails creating a directory there).
CGROUPS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids")
# Where the rootfs's apt source (lab/build-rootfs.sh) finds the lab's package repository.
REPOSITORY_DIR = "/srv/osha-repo"


def domain_xml(node: Node, root: Path, network: str, link: str, shared_device: str | None,
               repository: Path) -> str:
    return render("lab/container-domain.xml.j2", node=node, root=root, network=network,
                  link=link, shared_device=shared_device, repository=repository,
                  repository_dir=REPOSITORY_DIR, init=f"/{INIT_PATH}")


class Containers(Substrate):
    name = "containers"
    uri = "lxc:///"
    consoles_need_a_reader = True

    def __init__(self, rendered: Path, base: Path, shared_device: str, repository: Path):
        super().__init__(rendered, base)
        self.shared_device = shared_device
        self.repository = repository

    # -- the hypervisor side -----------------------------------------------------------------
    def prepare_libvirtd(self) -> str:
        loop = self._loop_device()
        major, minor = (int(n, 16) for n in run("stat", "-L", "-c", "%t %T", loop).stdout.split())
        cgroups = " && ".join(
            f"mkdir -p /sys/fs/cgroup/{c} && mount -t cgroup -o {c} cgroup /sys/fs/cgroup/{c}"
            for c in CGROUPS)
        name = self.shared_device
        return (f"{super().prepare_libvirtd()} && mkdir -p {os.path.dirname(name)} "
                f"&& mknod {name} b {major} {minor} "
                "&& mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup && "
                f"{cgroups} && mkdir -p /sys/fs/cgroup/systemd "
                "&& mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd")

    def _loop_device(self) -> str:
        """One loop device over the shared disk's raw file."""
        loop = run("losetup", "--find", "--show", str(self.shared_disk_file())).stdout.strip()
        record(loops=[*state().get("loops", []), loop])
        return loop

    # -- nodes -------------------------------------------------------------------------------
    def up(self) -> None:
        super().up()
        for node in self.nodes:
            self._wait_for_address(node)

    def _wait_for_address(self, node: Node) -> None:
        """A container has its address seconds after it starts: one without it fails the lab
        here, with its failed units, not after the ready step has dialled it for 20 minutes."""
        until(f"{node.name} to have its address {node.ip}",
              lambda: f" {node.ip}/" in (self.addresses(node) or ""), seconds=BOOT_SECONDS,
              interval=1, report=lambda: self.exec(node, "systemctl --failed --no-pager").stdout)

    def define(self, node: Node) -> None:
        base = STATE_DIR / "nodes" / node.name
        upper, work, root = base / "upper", base / "work", base / "root"
        for directory in (upper, work, root):
            directory.mkdir(parents=True, exist_ok=True)
        seed = upper / SEED_DIR
        seed.mkdir(parents=True, exist_ok=True)
        for role, path in self.manifest.resource(f"{node.name}-cloudinit").files.items():
            (seed / role).write_text((self.rendered / path).read_text())
        init = upper / INIT_PATH
        init.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(INIT, init)
        in_libvirtd_mounts("mount", "-t", "overlay", "overlay", "-o",
                           f"lowerdir={self.base / 'root'},upperdir={upper},workdir={work}",
                           str(root))
        xml = STATE_DIR / f"{node.name}.xml"
        xml.write_text(domain_xml(node, root, self.manifest.network.name, self.link(node),
                                  self.shared_device if node.shared_disk else None,
                                  self.repository))
        virsh("define", str(xml))

    def init_pid(self, node: Node) -> int | None:
        """The PID (in this machine's namespace) of the container's init, None when it is down."""
        try:
            controller = Path(f"/run/libvirt/lxc/{node.domain}.pid").read_text().split()[0]
            children = Path(f"/proc/{controller}/task/{controller}/children").read_text().split()
        except (OSError, IndexError):
            return None
        return int(children[0]) if children else None

    def kill_hard(self, node: Node) -> None:
        pid = self.init_pid(node)
        if pid is None:
            raise RuntimeError(f"{node.name} has no running init")
        os.kill(pid, signal.SIGKILL)

    def exec(self, node: Node, command: str, timeout: float = 30) -> subprocess.CompletedProcess:
        pid = self.init_pid(node)
        if pid is None:
            return subprocess.CompletedProcess([], 255, "", f"{node.name} is not running")
        try:
            return subprocess.run(["nsenter", "-t", str(pid), "-a", "sh", "-c", command],
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess([], 124, "", f"{command}: timed out")

    def addresses(self, node: Node) -> str | None:
        # Only the network namespace: quicker than entering all of them, and it runs the
        # machine's own `ip`.
        pid = self.init_pid(node)
        if pid is None:
            return None
        result = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-o", "-4", "addr", "show"],
                                capture_output=True, text=True, timeout=10)
        return result.stdout if result.returncode == 0 else None

    def mountinfo(self, node: Node) -> str | None:
        """The node's mount table read through its init (None when it is down)."""
        pid = self.init_pid(node)
        try:
            return Path(f"/proc/{pid}/mountinfo").read_text() if pid else None
        except OSError:
            return None
