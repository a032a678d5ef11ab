"""The fence-key step against a real sshd: it pins the hypervisor's key, proves the login with
StrictHostKeyChecking=yes, and stops with a clear message when the host answers with another key.

Everything runs in a private network and mount namespace (`unshare`): the "hypervisor" is an sshd
on that namespace's loopback, /root is a tmpfs there, so the step's known_hosts never touches
this machine's.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from components.fencing import pinned_host_key
from components.templating import render

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("sshd", "ssh", "unshare", "ip")),
    reason="needs root, sshd, ssh, unshare and ip")

# Runs inside the namespaces: start the sshd, then each scenario script with the key on stdin.
DRIVER = r"""
set -euo pipefail
work=$1
mount -t tmpfs tmpfs /root
mount -t tmpfs tmpfs /run
mkdir -m 0755 /run/sshd
ip link set lo up
/usr/sbin/sshd -D -e -f "$work/sshd_config" 2>"$work/sshd.log" &
sshd_pid=$!
trap 'kill "$sshd_pid"; wait "$sshd_pid" || true' EXIT
until (exec 3<>/dev/tcp/127.0.0.1/22) 2>/dev/null; do
  kill -0 "$sshd_pid"
  sleep 0.1
done
install -d -m 0700 /root/.ssh
# A stale entry (a key scanned once, say) must not survive the pinning.
printf '127.0.0.1 %s\n' "$(cat "$work/stale.pub")" > /root/.ssh/known_hosts
for scenario in pinned again other; do
  rc=0
  bash "$work/$scenario.sh" < "$work/fence_key" > "$work/$scenario.out" 2>&1 || rc=$?
  echo "$rc" > "$work/$scenario.rc"
  cp /root/.ssh/known_hosts "$work/$scenario.known_hosts"
done
"""


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)],
                   check=True)
    return path.with_suffix(".pub").read_text().strip()


def step(work: Path, host_key: str) -> str:
    return render("fencing-node-key.sh.j2", key_file=str(work / "installed" / "fence.key"),
                  hypervisors=["127.0.0.1", "root", host_key])


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory) -> tuple[Path, str]:
    work = tmp_path_factory.mktemp("fence-login")
    host_key = pinned_host_key(keygen(work / "host_key"), "test sshd")
    (work / "authorized_keys").write_text(keygen(work / "fence_key") + " osha-fence:test\n")
    keygen(work / "stale")
    other = pinned_host_key(keygen(work / "other"), "another host")
    (work / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1\nHostKey {work / 'host_key'}\nPidFile {work / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {work / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n")
    (work / "pinned.sh").write_text(step(work, host_key))
    (work / "again.sh").write_text(step(work, host_key))
    (work / "other.sh").write_text(step(work, other))
    subprocess.run(["unshare", "--net", "--mount", "--propagation", "private", "bash", "-c",
                    DRIVER, "driver", str(work)], check=True, timeout=300)
    return work, host_key


def outcome(work: Path, scenario: str) -> tuple[int, str, str]:
    return (int((work / f"{scenario}.rc").read_text()), (work / f"{scenario}.out").read_text(),
            (work / f"{scenario}.known_hosts").read_text())


def test_the_pinned_hypervisor_is_known_with_exactly_its_key_and_the_login_works(scenarios):
    work, host_key = scenarios
    rc, out, known_hosts = outcome(work, "pinned")
    assert rc == 0, out + (work / "sshd.log").read_text()
    assert known_hosts == f"127.0.0.1 {host_key}\n"
    # The fencing key, given on stdin, is installed whole and private.
    installed = work / "installed" / "fence.key"
    assert installed.read_text() == (work / "fence_key").read_text()
    assert installed.stat().st_mode & 0o777 == 0o600


def test_a_second_run_changes_nothing(scenarios):
    work, host_key = scenarios
    rc, out, known_hosts = outcome(work, "again")
    assert rc == 0, out
    assert known_hosts == f"127.0.0.1 {host_key}\n"


def test_a_hypervisor_answering_with_another_key_fails_the_step_clearly(scenarios):
    work, host_key = scenarios
    rc, out, _ = outcome(work, "other")
    assert rc == 1
    assert "hypervisor 127.0.0.1 answers with a host key other than the pinned ssh-ed25519 " \
        in out and "refusing to fence through it" in out
