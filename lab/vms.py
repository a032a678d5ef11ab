"""The stack's nodes as persistent qemu domains (the `vms` substrate, opt-in: `make lab-vms`).

Each node boots the lab image (lab/build-image.sh, derived from the lab rootfs; a qcow2 overlay)
with the stack's own cloud-init seed (user-data, meta-data and network-config exactly as
rendered, on a NoCloud ISO), and control nodes attach the one shared raw disk through the stack's
own XSLT. Names, addresses, MACs and sizes are the stack's; direct kernel boot and software
emulation are the lab's own.
"""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from components.templating import render, shell_quote
from lab.hypervisor import STATE_DIR, in_namespace, run, virsh
from lab.substrate import Substrate
from manifest_schema import Manifest, Node, Resource
from tools.replay import SshTarget, ssh_options

# Software emulation keeps each guest's translation cache small (about 1.2 GB per qemu).
TB_CACHE_MIB = 128


def seed_iso(rendered: Path, seed: Resource, target: Path) -> Path:
    """A NoCloud seed ISO holding the rendered cloud-init files under their own names."""
    staging = target.with_suffix(".d")
    staging.mkdir(exist_ok=True)
    for role, path in seed.files.items():
        (staging / role).write_text((rendered / path).read_text())
    run("genisoimage", "-quiet", "-output", str(target), "-volid", "cidata", "-joliet",
        "-rock", *(str(staging / role) for role in seed.files))
    return target


def domain_xml(node: Node, image: Path, overlay: Path, seed: Path, shared: Path | None,
               network: str, link: str) -> str:
    return render("lab/vm-domain.xml.j2", node=node, kernel=image / "vmlinuz",
                  initrd=image / "initrd.img", tb_cache_mib=TB_CACHE_MIB, overlay=overlay,
                  shared=shared, seed=seed, network=network, link=link,
                  console_log=STATE_DIR / f"{node.name}.console.log")


class VMs(Substrate):
    """One persistent qemu domain per node of the rendered stack."""

    name = "vms"
    uri = "qemu:///system"

    def prepare_libvirtd(self) -> str:
        # The private /dev also rules out libvirt's per-guest /dev namespace; the lab's qemu.conf
        # turns that off, bound over the packaged one for this libvirtd only.
        qemu_conf = STATE_DIR / "qemu.conf"
        qemu_conf.write_text("namespaces = []\n")
        return f"{super().prepare_libvirtd()} && mount --bind {qemu_conf} /etc/libvirt/qemu.conf"

    def define(self, node: Node) -> None:
        overlay = STATE_DIR / f"{node.name}.qcow2"
        run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
            str(self.base / "root.qcow2"), str(overlay), f"{node.disk_gib}G")
        seed = seed_iso(self.rendered, self.manifest.resource(f"{node.name}-cloudinit"),
                        STATE_DIR / f"{node.name}-seed.iso")
        shared = self.shared_disk_file() if node.shared_disk else None
        xml = domain_xml(node, self.base, overlay, seed, shared, self.manifest.network.name,
                         self.link(node))
        domain = self.manifest.resource(f"{node.name}-domain")
        if "xslt" in domain.files:
            # The stack's own transformation marks the shared disk shareable.
            plain = STATE_DIR / f"{node.name}-plain.xml"
            plain.write_text(xml)
            xml = run("xsltproc", str(self.rendered / domain.files["xslt"]), str(plain)).stdout
        path = STATE_DIR / f"{node.name}.xml"
        path.write_text(xml)
        virsh("define", str(path))

    def kill_hard(self, node: Node) -> None:
        """SIGKILL of the node's emulator."""
        pid = Path(f"/run/libvirt/qemu/{node.domain}.pid").read_text().split()[0]
        os.kill(int(pid), signal.SIGKILL)

    def exec(self, node: Node, command: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Over SSH (a VM has no way in from the host that survives a cut link)."""
        try:
            return node_ssh(self.rendered, self.manifest, node, command, timeout=timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess([], 124, "", f"{command}: timed out")


def node_ssh(rendered: Path, manifest: Manifest, node: Node, command: str,
             timeout: float = 120, stdin: str = "") -> subprocess.CompletedProcess:
    """Run `command` as root on `node` inside the lab namespace, its host key pinned."""

    target = SshTarget(manifest.ssh.user, node.ip, rendered / manifest.ssh.private_key_file,
                       ssh_options(rendered, manifest))
    argv = in_namespace(*target.ssh(f"sudo -n bash -c {shell_quote(command)}"))
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
