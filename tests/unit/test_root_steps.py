"""Node steps run as root: pulumi-command logs in as the admin user, the prologue re-runs under sudo."""
from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from components.node import ROOT_PROLOGUE, as_root

SCRIPT = "#!/bin/bash\nset -euo pipefail\nread -r secret\necho \"uid=$(id -u) len=${#secret}\"\n"


def test_prologue_goes_after_the_shebang():
    wrapped = as_root(SCRIPT)
    assert wrapped.splitlines()[0] == "#!/bin/bash"
    assert wrapped.split("\n", 1)[1].startswith(ROOT_PROLOGUE)
    assert wrapped.endswith(SCRIPT.split("\n", 1)[1])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged user")
def test_unprivileged_login_re_runs_the_same_text_under_sudo_with_stdin():
    """As pulumi-command does: the text goes to the login shell as `bash -c`, secrets on stdin."""
    # pytest's own temp dirs are private to root; the unprivileged user must reach this one.
    with tempfile.TemporaryDirectory() as name:
        tmp_path = Path(name)
        tmp_path.chmod(0o777)
        check_re_run(tmp_path)


def check_re_run(tmp_path: Path):
    log = tmp_path / "sudo.log"
    became_root = tmp_path / "root"
    became_root.mkdir()
    # After "sudo", `id -u` answers 0: the shim stands for having become root.
    (became_root / "id").write_text("#!/bin/bash\necho 0\n")
    # Stands in for sudo: records its argv, then runs the command "as root".
    (tmp_path / "sudo").write_text(
        f'#!/bin/bash\nprintf "%s\\n" "$@" > {log}\nshift\n'
        f'PATH={became_root}:$PATH exec "$@"\n')
    for tool in (became_root / "id", tmp_path / "sudo"):
        tool.chmod(0o755)
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env",
         f"PATH={tmp_path}:/usr/bin:/bin", "bash", "-c", as_root(SCRIPT)],
        input="hunter2\n", capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "uid=0 len=7"
    argv = log.read_text().split("\n")
    assert argv[:3] == ["-n", "/bin/bash", "-c"]
    assert "\n".join(argv[3:]).rstrip("\n") == as_root(SCRIPT).rstrip("\n")


def run_step(script: str, **kwargs) -> subprocess.Popen:
    """The step's text as pulumi-command runs it (`bash -c`, here already root)."""
    return subprocess.Popen(["bash", "-c", as_root(script)], stdout=subprocess.PIPE, text=True,
                            **kwargs)


@pytest.mark.skipif(os.geteuid() != 0, reason="the lock lives in /run/lock, as on a node")
def test_a_second_run_of_a_step_waits_for_the_first_to_end(tmp_path):
    """As after a killed `pulumi up`: the first run goes on without its session, the re-run
    waits for it instead of running beside it."""
    log = tmp_path / "log"
    script = f"#!/bin/bash\nset -euo pipefail\necho start >>{log}\nsleep 1\necho end >>{log}\n"
    first = run_step(script)
    while not log.exists():
        time.sleep(0.05)
    second = run_step(script)
    assert first.wait(timeout=30) == 0 and second.wait(timeout=30) == 0
    assert log.read_text().split() == ["start", "end", "start", "end"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the lock lives in /run/lock, as on a node")
def test_what_a_step_leaves_running_does_not_hold_its_lock(tmp_path):
    """flock holds the lock, not the script: a process the step starts and leaves behind (a
    daemon) does not block the step's next run."""
    pids = tmp_path / "pid"
    script = f"#!/bin/bash\nset -euo pipefail\nsleep 60 >/dev/null 2>&1 &\necho $! >>{pids}\n"
    assert run_step(script).wait(timeout=30) == 0
    try:
        started = time.monotonic()
        assert run_step(script).wait(timeout=30) == 0
        assert time.monotonic() - started < 20
    finally:
        for pid in pids.read_text().split():
            os.kill(int(pid), signal.SIGTERM)


@pytest.mark.skipif(os.geteuid() != 0, reason="the lock lives in /run/lock, as on a node")
def test_the_hangup_of_a_lost_session_neither_ends_the_run_nor_frees_its_lock(tmp_path):
    """sshd hangs up on a killed engine's session: the run goes on (as apt's dpkg does), holding
    the step's lock until it ends."""
    log = tmp_path / "log"
    script = f"#!/bin/bash\nset -euo pipefail\necho start >>{log}\nsleep 1\necho end >>{log}\n"
    first = run_step(script, start_new_session=True)
    while not log.exists():
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGHUP)
    second = run_step(script)
    assert first.wait(timeout=30) == 0 and second.wait(timeout=30) == 0
    assert log.read_text().split() == ["start", "end", "start", "end"]
