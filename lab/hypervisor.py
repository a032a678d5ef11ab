"""The lab's hypervisor side, all inside one network namespace the lab creates.

libvirtd and virtlogd run in the namespace (no systemd or dbus needed), the stack's network is an
isolated libvirt network there (no <forward>: nothing routes out), and an sshd bound to the
network's gateway address lets the nodes' fence_virsh log in (its sessions talk to the lab's
libvirt driver: `SetEnv LIBVIRT_DEFAULT_URI`). What libvirtd needs around it differs per node
substrate (lab/substrate.py): the substrate gives the shell that prepares libvirtd's private mount
namespace. Every process the lab starts is recorded by PID in its run directory and ended by
that PID, on success, failure and interrupt.
"""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional

from components.templating import render
from lab import wait
from manifest_schema import Network

NAMESPACE = "osha-lab"
RUN_DIR = Path("/run/osha-lab")  # Pulumi.lab.yaml points the fencing key's authorized_keys here
STATE_DIR = Path("/var/lib/osha-lab")
STATE = RUN_DIR / "state.json"  # recorded PIDs, the libvirt URI, loop devices
BRIDGE = "oshalab0"
# `ip netns exec` puts this over /etc/hosts: the lab's clients reach the VIP by its DNS name,
# the name every endpoint carries.
HOSTS = Path("/etc/netns") / NAMESPACE / "hosts"
# The fencing sshd's host key outlives a lab run: the stack pins it (hypervisors[].hostKey), and
# the render that pins it comes before the hypervisor starts.
FENCE_HOST_KEY = Path(os.environ.get("OSHA_LAB_CACHE", "/var/cache/openstack-ha-lab")) \
    / "fence-host-key"


def fence_host_key() -> str:
    """The fencing sshd's ED25519 host public key line (the key is made on first use)."""
    if not FENCE_HOST_KEY.exists():
        FENCE_HOST_KEY.parent.mkdir(parents=True, exist_ok=True)
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(FENCE_HOST_KEY))
    return FENCE_HOST_KEY.with_suffix(".pub").read_text().strip()


def run(*argv: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("timeout", 300)
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
    return result


def in_namespace(*argv: str) -> list[str]:
    return ["ip", "netns", "exec", NAMESPACE, *argv]


def state() -> dict:
    return json.loads(STATE.read_text()) if STATE.exists() else {}


def record(**values) -> None:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps({**state(), **values}))


def record_pid(name: str, pid: int) -> None:
    record(pids={**state().get("pids", {}), name: pid})


def virsh(*argv: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    return run(*in_namespace("virsh", "-c", state()["uri"], *argv), check=check, timeout=timeout)


def _wait_for_pid_file(path: Path, seconds: float = 30) -> int:
    def pid() -> Optional[int]:
        text = path.read_text() if path.exists() else ""
        return int(text.split()[0]) if text.strip() else None
    return wait.until(f"{path} to appear", pid, seconds, interval=0.2)


def network_xml(network: Network) -> str:
    """The stack's network as the lab's isolated libvirt network on BRIDGE."""
    return render("lab/network.xml.j2", network=network, bridge=BRIDGE,
                  prefix=ipaddress.IPv4Network(network.cidr).prefixlen)


def in_libvirtd_mounts(*argv: str) -> subprocess.CompletedProcess:
    """A command in libvirtd's private mount namespace (where the nodes' roots are mounted)."""
    return run("nsenter", "-t", str(state()["pids"]["libvirtd"]), "-m", *argv)


class Hypervisor:
    def __init__(self, network: Network, substrate, names: dict[str, str], consoles: Path):
        """`names`: {address: DNS name} the lab network's clients resolve (the VIP's);
        `consoles`: where each container's console is logged (lab/consoles.py)."""
        self.network = network
        self.consoles = consoles
        self.substrate = substrate
        self.names = names

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
        # libvirt-daemon without its -system package (which would start a machine-wide
        # libvirtd) leaves the log directory to its user.
        Path("/var/log/libvirt").mkdir(parents=True, exist_ok=True)
        record(uri=self.substrate.uri)
        run("ip", "netns", "add", NAMESPACE)
        HOSTS.parent.mkdir(parents=True, exist_ok=True)
        HOSTS.write_text("127.0.0.1 localhost\n" + "".join(
            f"{address} {name}\n" for address, name in self.names.items()))
        run(*in_namespace("ip", "link", "set", "lo", "up"))
        self._daemon("virtlogd", ["virtlogd", "-d", "-p", str(RUN_DIR / "virtlogd.pid")],
                     RUN_DIR / "virtlogd.pid")
        prelude = self.substrate.prepare_libvirtd()
        self._daemon("libvirtd",
                     ["unshare", "--mount", "sh", "-c",
                      prelude + ' && exec libvirtd -d -p "$0"', str(RUN_DIR / "libvirtd.pid")],
                     RUN_DIR / "libvirtd.pid")
        self._wait_libvirt()
        # What a run killed during its teardown left defined (its libvirtd ended before the
        # undefine): a definition under the same name would refuse the new one.
        undefine_all()
        if self.substrate.consoles_need_a_reader:
            self._read_consoles()
        self._network()
        self._sshd()

    def _daemon(self, name: str, argv: list[str], pid_file: Path) -> None:
        run(*in_namespace(*argv))
        record_pid(name, _wait_for_pid_file(pid_file))

    def _read_consoles(self) -> None:
        """lab/consoles.py: every container's console read (unread, it can hang its PID 1)."""
        self.consoles.mkdir(parents=True, exist_ok=True)
        with (self.consoles / "reader.err").open("ab") as errors:
            reader = subprocess.Popen([sys.executable, "-m", "lab.consoles", str(self.consoles)],
                                      cwd=Path(__file__).resolve().parent.parent,
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=errors, start_new_session=True)
        record_pid("consoles", reader.pid)

    def _wait_libvirt(self) -> None:
        wait.until("libvirtd to answer", lambda: virsh("version", check=False).returncode == 0,
                   seconds=60, interval=0.5)

    def _network(self) -> None:
        xml = STATE_DIR / "network.xml"
        xml.write_text(network_xml(self.network))
        virsh("net-define", str(xml))
        virsh("net-start", self.network.name)

    def _sshd(self) -> None:
        """sshd for fence_virsh, listening only on the gateway inside the namespace."""
        fence_host_key()
        host_key = FENCE_HOST_KEY
        (RUN_DIR / "authorized_keys").touch(mode=0o600)
        config = RUN_DIR / "sshd_config"
        config.write_text(f"""ListenAddress {self.network.gateway}
HostKey {host_key}
PidFile {RUN_DIR / 'sshd.pid'}
AuthorizedKeysFile {RUN_DIR / 'authorized_keys'}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
SetEnv LIBVIRT_DEFAULT_URI={self.substrate.uri}
""")
        Path("/run/sshd").mkdir(exist_ok=True)
        self._daemon("sshd", ["/usr/sbin/sshd", "-f", str(config)], RUN_DIR / "sshd.pid")


def undefine_all() -> None:
    """Every domain and network the lab's libvirtd knows: stopped and undefined."""
    for domain in virsh("list", "--all", "--name", check=False, timeout=60).stdout.split():
        virsh("destroy", domain, check=False, timeout=60)
        virsh("undefine", domain, check=False, timeout=60)
    for network in virsh("net-list", "--all", "--name", check=False, timeout=60).stdout.split():
        virsh("net-destroy", network, check=False, timeout=60)
        virsh("net-undefine", network, check=False, timeout=60)


def cleanup() -> None:
    """End what a lab started (by recorded PID), undefine its domains, drop its namespace,
    detach its loop devices."""
    recorded = state()
    if NAMESPACE in run("ip", "netns", "list", check=False).stdout.split() and "uri" in recorded:
        try:
            undefine_all()
        except subprocess.TimeoutExpired:
            pass  # a libvirtd that does not answer is ended by its PID below, with its domains
    for name in ("consoles", "sshd", "libvirtd", "virtlogd"):
        pid: Optional[int] = recorded.get("pids", {}).get(name)
        if pid and _alive(pid):
            os.kill(pid, signal.SIGTERM)
            _wait_gone(pid)
    for loop in recorded.get("loops", []):
        run("losetup", "-d", loop, check=False)
    if NAMESPACE in run("ip", "netns", "list", check=False).stdout.split():
        run("ip", "netns", "delete", NAMESPACE, check=False)
    shutil.rmtree(HOSTS.parent, ignore_errors=True)
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    shutil.rmtree(STATE_DIR, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False  # this process's own child (the console reader), now reaped
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pid: int, seconds: float = 20) -> None:
    """PID `pid` ended: by the signal it was sent, else by SIGKILL after `seconds`."""
    try:
        wait.until(f"PID {pid} to end", lambda: not _alive(pid), seconds, interval=0.2)
    except wait.TimedOut:
        os.kill(pid, signal.SIGKILL)
