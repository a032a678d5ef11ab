"""The lab's hypervisor side, all inside one network namespace the lab creates.

libvirtd and virtlogd run in the namespace (no systemd or dbus needed), the stack's network is an
isolated libvirt network there (no <forward>: nothing routes out), and an sshd bound to the
network's gateway address lets the VMs' fence_virsh log in. Every process the lab starts is
recorded by PID in its run directory and ended by that PID, on success, failure and interrupt.
"""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Optional

NAMESPACE = "osha-lab"
RUN_DIR = Path("/run/osha-lab")  # Pulumi.lab.yaml points the fencing key's authorized_keys here
STATE_DIR = Path("/var/lib/osha-lab")
PIDS = RUN_DIR / "pids.json"
BRIDGE = "oshalab0"
PRIVATE_DEV = ('dev=$(mktemp -d) && mount -t tmpfs -o mode=755 tmpfs "$dev" '
               '&& { cp -a /dev/. "$dev"/ 2>/dev/null || true; } && rm -f "$dev/kvm" '
               '&& mount --rbind /dev/pts "$dev/pts" && mount --rbind /dev/shm "$dev/shm" '
               '&& mount --move "$dev" /dev && ')


def run(*argv: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
    return result


def in_namespace(*argv: str) -> list[str]:
    return ["ip", "netns", "exec", NAMESPACE, *argv]


def virsh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(*in_namespace("virsh", "-c", "qemu:///system", *argv), check=check)


def _record(name: str, pid: int) -> None:
    pids = json.loads(PIDS.read_text()) if PIDS.exists() else {}
    pids[name] = pid
    PIDS.write_text(json.dumps(pids))


def _wait_for_pid_file(path: Path, seconds: float = 30) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text().split()[0])
        time.sleep(0.2)
    raise RuntimeError(f"{path} did not appear")


class Hypervisor:
    def __init__(self, network: dict):
        self.network = network
        self.cidr = ipaddress.IPv4Network(network["cidr"])

    # -- up ---------------------------------------------------------------------------------
    def up(self) -> None:
        if run("pgrep", "-x", "libvirtd", check=False).returncode == 0:
            raise RuntimeError("a libvirtd is already running on this machine; the lab needs its own")
        cleanup()  # leftovers of a crashed run, by their recorded PIDs
        # libvirt's packaged "default" network NATs: never let it start in the lab.
        Path("/etc/libvirt/qemu/networks/autostart/default.xml").unlink(missing_ok=True)
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        STATE_DIR.chmod(0o755)
        run("ip", "netns", "add", NAMESPACE)
        run(*in_namespace("ip", "link", "set", "lo", "up"))
        self._daemon("virtlogd", ["virtlogd", "-d", "-p", str(RUN_DIR / "virtlogd.pid")],
                     RUN_DIR / "virtlogd.pid")
        # /dev/kvm runs no guest on these machines, and libvirt re-probes a KVM it cannot use on
        # every define and start (over a minute each): libvirtd and its qemu children get a
        # private /dev without it, and use software emulation only.
        # The private /dev also rules out libvirt's per-guest /dev namespace; the lab's qemu.conf
        # turns that off, bound over the packaged one for this libvirtd only.
        qemu_conf = RUN_DIR / "qemu.conf"
        qemu_conf.write_text("namespaces = []\n")
        self._daemon("libvirtd",
                     ["unshare", "--mount", "sh", "-c",
                      PRIVATE_DEV + 'mount --bind "$1" /etc/libvirt/qemu.conf && '
                      'exec libvirtd -d -p "$0"',
                      str(RUN_DIR / "libvirtd.pid"), str(qemu_conf)], RUN_DIR / "libvirtd.pid")
        self._wait_libvirt()
        self._network()
        self._sshd()

    def _daemon(self, name: str, argv: list[str], pid_file: Path) -> None:
        run(*in_namespace(*argv))
        _record(name, _wait_for_pid_file(pid_file))

    def _wait_libvirt(self) -> None:
        deadline = time.monotonic() + 60
        while virsh("version", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("libvirtd did not answer")
            time.sleep(0.5)

    def _network(self) -> None:
        gateway = self.network["gateway"]
        xml = STATE_DIR / "network.xml"
        # No <forward> and no <dhcp>: an isolated segment with static addresses only.
        xml.write_text(f"""<network>
  <name>{self.network['name']}</name>
  <bridge name='{BRIDGE}' stp='off' delay='0'/>
  <domain name='{self.network['domain']}'/>
  <ip address='{gateway}' prefix='{self.cidr.prefixlen}'/>
</network>
""")
        virsh("net-define", str(xml))
        virsh("net-start", self.network["name"])

    def _sshd(self) -> None:
        """sshd for fence_virsh, listening only on the gateway inside the namespace."""
        host_key = RUN_DIR / "ssh_host_ed25519_key"
        if not host_key.exists():
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key))
        (RUN_DIR / "authorized_keys").touch(mode=0o600)
        config = RUN_DIR / "sshd_config"
        config.write_text(f"""ListenAddress {self.network['gateway']}
HostKey {host_key}
PidFile {RUN_DIR / 'sshd.pid'}
AuthorizedKeysFile {RUN_DIR / 'authorized_keys'}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
""")
        Path("/run/sshd").mkdir(exist_ok=True)
        self._daemon("sshd", ["/usr/sbin/sshd", "-f", str(config)], RUN_DIR / "sshd.pid")


def cleanup() -> None:
    """End what a lab started (by recorded PID), undefine its domains and drop its namespace."""
    if NAMESPACE in run("ip", "netns", "list", check=False).stdout.split():
        for domain in virsh("list", "--all", "--name", check=False).stdout.split():
            virsh("destroy", domain, check=False)
            virsh("undefine", domain, check=False)
        for network in virsh("net-list", "--all", "--name", check=False).stdout.split():
            virsh("net-destroy", network, check=False)
            virsh("net-undefine", network, check=False)
    pids = json.loads(PIDS.read_text()) if PIDS.exists() else {}
    for name in ("sshd", "libvirtd", "virtlogd"):
        pid: Optional[int] = pids.get(name)
        if pid and _alive(pid):
            os.kill(pid, signal.SIGTERM)
            _wait_gone(pid)
    if NAMESPACE in run("ip", "netns", "list", check=False).stdout.split():
        run("ip", "netns", "delete", NAMESPACE, check=False)
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    shutil.rmtree(STATE_DIR, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pid: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
