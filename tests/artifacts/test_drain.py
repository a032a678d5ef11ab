"""The rendered rolling restart and maintenance steps drain a node from a real HAProxy, through
the node's rendered agent, before they restart or stop anything: a client calling the VIP all
along sees no failed call.

HAProxy runs with the stack's own `defaults` (checks, retries, the agent-check), in front of two
backends on loopback addresses standing for ctl1 and ctl2; each answers slowly, so a restart that
cuts a request under way fails the call. The restart of ctl1's unit is a stand-in `systemctl`
that replaces ctl1's backend process; Pacemaker's standby a stand-in `pcs` that stops it.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from components.haproxy import AGENT_STATE, MAINTENANCE_FLAG, haproxy_config
from components.node import ROOT_PROLOGUE
from components.rolling_restart import PENDING_RESTARTS
from lab import probe
from tests.conftest import stack_config
from tools import render

# Each pytest-xdist worker (`make test`) its own loopback addresses: two of these tests side by
# side on the same ones answered each other's clients.
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
ADDRESSES = {name: f"127.{WORKER // 200}.{WORKER % 200 + 1}.{host}"
             for name, host in (("vip", 10), ("ctl1", 11), ("ctl2", 12))}
API_PORT, FRONT_PORT, STATS_PORT = 18500, 18501, 18502
# Every answer takes this long: a restart that cuts requests under way fails calls.
ANSWER_SECONDS = 0.3

BACKEND = """
import http.server, socketserver, sys, time

class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(%s)
        body = sys.argv[1].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

Server((sys.argv[2], int(sys.argv[3])), Slow).serve_forever()
""" % ANSWER_SECONDS

# try-restart of ctl1's unit: its backend process replaced (the restart cuts what it serves), or
# with OSHA_TEST_RESTART_FAILS set, a failed restart that leaves it as it was.
SYSTEMCTL = """#!/bin/bash
case $1 in
  try-restart)
    echo "systemctl $*" >>"$OSHA_TEST_LOG"
    [ -z "${OSHA_TEST_RESTART_FAILS:-}" ] || exit 1
    pid=$(cat "$OSHA_TEST_PIDFILE")
    kill "$pid"
    # Gone, or a zombie its parent (the test) has not reaped yet.
    while [ -e "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status"; do sleep 0.05; done
    setsid python3 "$OSHA_TEST_BACKEND" ctl1 "$OSHA_TEST_ADDRESS" "$OSHA_TEST_PORT" \\
      </dev/null >/dev/null 2>&1 &
    echo $! >"$OSHA_TEST_PIDFILE"
    ;;
esac
"""


def heredoc(script: str, marker: str) -> str:
    """The text of the script's first quoted heredoc that ends at `marker`."""
    return re.search(rf"<<'{marker}'\n(.*?)\n{marker}\n", script, re.S).group(1) + "\n"


def haproxy_defaults(config: str) -> str:
    """The stack's `defaults` section, as rendered."""
    return re.search(r"^defaults\n(?:  .*\n|\n)*", config, re.M).group(0)


def server_options(settings) -> str:
    """The options of the stack's keystone servers, for this test's `api` proxy."""
    options = re.search(r"^  server ctl1 \S+ (.*)$", haproxy_config(settings).split(
        "\nlisten keystone\n")[1], re.M)[1]
    return options.replace('"keystone\\n"', '"api\\n"')


class Processes:
    """Processes this test starts, each ended by its PID."""

    def __init__(self):
        self.started: list[subprocess.Popen] = []

    def start(self, *argv: str) -> subprocess.Popen:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        self.started.append(process)
        return process

    def end(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)


def status_of(node: str) -> str:
    with urllib.request.urlopen(f"http://{ADDRESSES['vip']}:{STATS_PORT}/;csv", timeout=2) as page:
        for line in page.read().decode().splitlines():
            fields = line.split(",")
            if fields[:2] == ["api", node]:
                return fields[17]
    raise AssertionError(f"no row for {node}")


def until(condition, seconds: float = 20) -> None:
    """Waits for `condition` (a page that does not answer yet counts as not met)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if condition():
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, condition
        time.sleep(0.1)


class Client(threading.Thread):
    """Calls the VIP without pause until stopped; keeps every failed call."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.calls, self.failed = 0, []
        self.answered_by: set[str] = set()

    def run(self) -> None:
        while not self.stop.is_set():
            self.calls += 1
            try:
                with urllib.request.urlopen(f"http://{ADDRESSES['vip']}:{FRONT_PORT}/",
                                            timeout=5) as answer:
                    self.answered_by.add(answer.read().decode())
            except OSError as error:
                self.failed.append(repr(error))


@pytest.fixture
def cloud(dev_graph, tmp_path):
    """HAProxy with the stack's defaults in front of ctl1 and ctl2, each with its agent."""
    settings = dev_graph.settings
    agent_program = tmp_path / "agent.py"
    agent_program.write_text(heredoc(dev_graph.named("ctl1-haproxy-agent").inputs["create"],
                                     "PY"))
    backend = tmp_path / "backend.py"
    backend.write_text(BACKEND)
    root = tmp_path / "root"
    processes = Processes()
    try:
        for node in ("ctl1", "ctl2"):
            processes.start(sys.executable, str(agent_program), ADDRESSES[node],
                            str(re.search(r"agent-port (\d+)", haproxy_config(settings))[1]),
                            str(root / (node + AGENT_STATE)), str(root / (node + MAINTENANCE_FLAG)))
            server = processes.start(sys.executable, str(backend), node, ADDRESSES[node],
                                     str(API_PORT))
            (tmp_path / f"backend-{node}.pid").write_text(str(server.pid))
        config = tmp_path / "haproxy.cfg"
        config.write_text(
            "global\n  maxconn 256\n\n" + haproxy_defaults(haproxy_config(settings))
            + f"\nlisten stats\n  bind {ADDRESSES['vip']}:{STATS_PORT}\n  stats enable\n"
            f"  stats uri /\n\nlisten api\n  bind {ADDRESSES['vip']}:{FRONT_PORT}\n"
            "  option httpchk GET /\n  balance roundrobin\n"
            + "".join(f"  server {n} {ADDRESSES[n]}:{API_PORT} {server_options(settings)}\n"
                      for n in ("ctl1", "ctl2")))
        processes.start("haproxy", "-db", "-f", str(config))
        until(lambda: status_of("ctl1") == "UP" and status_of("ctl2") == "UP")
        yield tmp_path, root
    finally:
        for node in ("ctl1", "ctl2"):
            pid_file = tmp_path / f"backend-{node}.pid"
            if pid_file.exists():
                try:
                    os.kill(int(pid_file.read_text()), signal.SIGTERM)
                except ProcessLookupError:
                    pass
        processes.end()


# Pacemaker's node standby stops ctl1's backend (as the operator's reboot of the node will);
# unstandby starts it again. The node's standby attribute is a file.
PCS = """#!/bin/bash
echo "pcs $*" >>"$OSHA_TEST_LOG"
case $2 in
  standby)
    echo on >"$OSHA_TEST_STANDBY"
    kill "$(cat "$OSHA_TEST_PIDFILE")"
    ;;
  unstandby)
    rm -f "$OSHA_TEST_STANDBY"
    setsid python3 "$OSHA_TEST_BACKEND" ctl1 "$OSHA_TEST_ADDRESS" "$OSHA_TEST_PORT" \\
      </dev/null >/dev/null 2>&1 &
    echo $! >"$OSHA_TEST_PIDFILE"
    ;;
esac
"""


CRM_ATTRIBUTE = """#!/bin/bash
cat "$OSHA_TEST_STANDBY" 2>/dev/null
"""


def rolling_restart(dev_graph, tmp_path: Path, root: Path) -> subprocess.CompletedProcess:
    return ctl1_step(dev_graph, "ctl1-rolling-restart", tmp_path, root)


def ctl1_step(graph, name: str, tmp_path: Path, root: Path,
              **environment: str) -> subprocess.CompletedProcess:
    """ctl1's rendered step `name`, its HAProxy and API at this test's addresses (and
    `environment` for the stand-ins)."""
    script = graph.named(name).inputs["create"].replace(ROOT_PROLOGUE, "")
    script = re.sub(r"^stats_url=.*$", f"stats_url='http://{ADDRESSES['vip']}:{STATS_PORT}/;csv'",
                    script, count=1, flags=re.M)
    script = re.sub(r"^apis=\(.*\)$", f"apis=({ADDRESSES['ctl1']}:{API_PORT})", script, count=1,
                    flags=re.M)
    script = re.sub(r"^proxies=\(.*\)$", "proxies=(api)", script, count=1, flags=re.M)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool, text in (("systemctl", SYSTEMCTL), ("pcs", PCS), ("crm_attribute", CRM_ATTRIBUTE)):
        (bin_dir / tool).write_text(text)
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "OSHA_ROOT": str(root / "ctl1"), "OSHA_TEST_LOG": str(tmp_path / "log"),
           "OSHA_TEST_BACKEND": str(tmp_path / "backend.py"),
           "OSHA_TEST_PIDFILE": str(tmp_path / "backend-ctl1.pid"),
           "OSHA_TEST_ADDRESS": ADDRESSES["ctl1"], "OSHA_TEST_PORT": str(API_PORT),
           "OSHA_TEST_STANDBY": str(tmp_path / "standby"),
           "PATH": f"{bin_dir}:{os.environ['PATH']}", **environment}
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                          timeout=300)


def pending(root: Path) -> Path:
    return root / ("ctl1" + PENDING_RESTARTS)


def test_a_pending_restart_drains_the_node_first_and_no_call_fails(dev_graph, cloud):
    tmp_path, root = cloud
    pending(root).parent.mkdir(parents=True)
    pending(root).write_text("unit nova-api\n")
    result, calls, failed = calling(lambda: rolling_restart(dev_graph, tmp_path, root))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "drained ctl1 from: api" in result.stdout, result.stdout
    assert (tmp_path / "log").read_text() == "systemctl try-restart nova-api.service\n"
    assert calls > 20 and failed == [], (calls, failed[:5])
    # Done: the node serves again, nothing is left pending or drained.
    assert status_of("ctl1") == "UP"
    assert not pending(root).exists()
    assert not (root / "ctl1/run/openstack-ha/haproxy-agent").exists()


def test_nothing_pending_restarts_nothing_and_ends_a_drain_a_killed_run_left(dev_graph, cloud):
    tmp_path, root = cloud
    state = root / "ctl1/run/openstack-ha/haproxy-agent"
    state.parent.mkdir(parents=True)
    state.write_text("api\n")
    until(lambda: status_of("ctl1") == "DRAIN (agent)")
    result = rolling_restart(dev_graph, tmp_path, root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "nothing to restart\n"
    assert not (tmp_path / "log").exists()
    until(lambda: status_of("ctl1") == "UP")


def test_a_run_killed_while_drained_is_resumed_drained_and_serves_again(dev_graph, cloud):
    """A killed run left the node drained with its restarts still pending: the next run restarts
    them while the node stays drained and waits until it serves again, as a first run does."""
    tmp_path, root = cloud
    state = root / "ctl1/run/openstack-ha/haproxy-agent"
    pending(root).parent.mkdir(parents=True)
    pending(root).write_text("unit nova-api\n")

    def killed_drained_then_run_again():
        state.parent.mkdir(parents=True)
        state.write_text("api\n")
        until(lambda: status_of("ctl1") == "DRAIN (agent)")
        return rolling_restart(dev_graph, tmp_path, root)

    result, calls, failed = calling(killed_drained_then_run_again)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "drained ctl1 from: api" in result.stdout, result.stdout
    assert "ctl1 serves again: api" in result.stdout, result.stdout
    assert (tmp_path / "log").read_text() == "systemctl try-restart nova-api.service\n"
    assert calls > 20 and failed == [], (calls, failed[:5])
    # As the lab reads HAProxy's view.
    assert json.loads(probe.servers(ADDRESSES["vip"], STATS_PORT)) == {
        "api": {"ctl1": "UP", "ctl2": "UP"}}
    assert not pending(root).exists() and not state.exists()


def test_a_run_that_ends_with_restarts_pending_leaves_the_node_drained_for_the_next(dev_graph,
                                                                                   cloud):
    """A failed restart ends the run with the node's restarts still pending: the node stays
    drained (a half-restarted node gets no request), and the next run resumes and ends it."""
    tmp_path, root = cloud
    state = root / "ctl1/run/openstack-ha/haproxy-agent"
    pending(root).parent.mkdir(parents=True)
    pending(root).write_text("unit nova-api\n")

    def failed_then_run_again():
        failed = ctl1_step(dev_graph, "ctl1-rolling-restart", tmp_path, root,
                           OSHA_TEST_RESTART_FAILS="1")
        left = state.exists(), pending(root).exists(), status_of("ctl1")
        return failed, left, rolling_restart(dev_graph, tmp_path, root)

    (failed, left, again), calls, failed_calls = calling(failed_then_run_again)
    assert failed.returncode != 0 and "drained ctl1 from: api" in failed.stdout, failed.stdout
    assert left == (True, True, "DRAIN (agent)")
    assert again.returncode == 0 and "ctl1 serves again: api" in again.stdout, again.stdout
    assert calls > 20 and failed_calls == [], (calls, failed_calls[:5])
    assert status_of("ctl1") == "UP" and not state.exists() and not pending(root).exists()


def test_a_server_its_checks_find_down_is_drained_too_before_its_restart(dev_graph, cloud):
    """A server HAProxy finds down when the restart begins (in CI's lab: an answer slower than
    the check's timeout on a loaded host) can pass its checks again while its services restart:
    it is drained with the others, and serves again only once the restart is done."""
    tmp_path, root = cloud
    pending(root).parent.mkdir(parents=True)
    pending(root).write_text("unit nova-api\n")
    os.kill(int((tmp_path / "backend-ctl1.pid").read_text()), signal.SIGTERM)
    until(lambda: status_of("ctl1").startswith("DOWN"))
    client = Client()
    client.start()
    try:
        result = rolling_restart(dev_graph, tmp_path, root)
    finally:
        client.stop.set()
        client.join(timeout=10)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "drained ctl1 from: api" in result.stdout, result.stdout
    assert "ctl1 serves again: api" in result.stdout, result.stdout
    assert status_of("ctl1") == "UP" and client.calls > 10 and client.failed == [], \
        (client.calls, client.failed[:5])

def agent_says(node: str, proxy: str, settings) -> str:
    """What `node`'s agent answers HAProxy asking for `proxy`."""
    port = int(re.search(r"agent-port (\d+)", haproxy_config(settings))[1])
    with socket.create_connection((ADDRESSES[node], port), timeout=2) as agent:
        agent.sendall(f"{proxy}\n".encode())
        return agent.makefile().readline().strip()


def calling(action):
    """`action()`'s result, with four clients calling the VIP all along (several calls under way
    at any time, as a cloud's users make them): from when each node has answered until each
    client made 10 more calls after it (what it stopped has been noticed); then how many calls
    they made, and the failed ones."""
    clients = [Client() for _ in range(4)]
    for client in clients:
        client.start()
    until(lambda: set().union(*(c.answered_by for c in clients)) == {"ctl1", "ctl2"})
    try:
        result = action()
        after = [c.calls + 10 for c in clients]
        until(lambda: all(c.calls >= n for c, n in zip(clients, after)))
    finally:
        for client in clients:
            client.stop.set()
            client.join(timeout=10)
    return result, sum(c.calls for c in clients), [f for c in clients for f in c.failed]


def test_maintenance_drains_the_node_before_its_standby_and_undrains_it_after(dev_graph, cloud):
    tmp_path, root = cloud
    flag = root / ("ctl1" + MAINTENANCE_FLAG)
    ctl1_out = render.run_program(stack_config("dev", maintenance=["ctl1"]), "dev")
    result, calls, failed = calling(
        lambda: ctl1_step(ctl1_out, "ctl1-maintenance", tmp_path, root))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "drained ctl1 from: api" in result.stdout, result.stdout
    assert (tmp_path / "log").read_text() == "pcs node standby ctl1 --wait=600\n"
    assert calls > 20 and failed == [], (calls, failed[:5])
    # Out for as long as it is listed: its backend is down (the stand-in standby) and its agent,
    # reading a flag that outlives a reboot, says "drain" to every proxy.
    assert status_of("ctl1") == "DOWN"
    assert flag.exists() and agent_says("ctl1", "any-proxy", dev_graph.settings) == "drain"

    result = ctl1_step(dev_graph, "ctl1-maintenance", tmp_path, root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "log").read_text().splitlines()[1:] == ["pcs node unstandby ctl1 --wait=600"]
    assert not flag.exists()
    until(lambda: status_of("ctl1") == "UP")


def test_a_node_never_taken_out_passes_through_and_a_second_run_changes_nothing(dev_graph,
                                                                               cloud):
    tmp_path, root = cloud
    ctl1_out = render.run_program(stack_config("dev", maintenance=["ctl1"]), "dev")
    for graph, says in ((dev_graph, "ctl1 serves: api\n"), (ctl1_out, "in standby"),
                        (ctl1_out, "in standby")):
        result = ctl1_step(graph, "ctl1-maintenance", tmp_path, root)
        assert result.returncode == 0, result.stdout + result.stderr
        assert says in result.stdout
    # Pacemaker asked once: the second run found the node in standby.
    assert (tmp_path / "log").read_text() == "pcs node standby ctl1 --wait=600\n"


def test_the_agent_steps_readiness_check_asks_a_question_as_haproxy_does(dev_graph):
    """The agent step is done when the agent answers; its check sends a proxy's name, as HAProxy
    does, so an agent that waits for the name (and answers only then) answers it at once."""
    script = dev_graph.named("ctl1-haproxy-agent").inputs["create"]
    check = re.findall(r"<<'PY'\n(.*?)\nPY\n", script, re.S)[1]
    with socket.create_server(("127.0.0.1", 0)) as agent:
        agent.settimeout(30)

        def answer_a_question():
            connection, _ = agent.accept()
            with connection:
                connection.settimeout(5)
                if connection.makefile().readline():
                    connection.sendall(b"ready\n")

        answering = threading.Thread(target=answer_a_question, daemon=True)
        answering.start()
        result = subprocess.run([sys.executable, "-", "127.0.0.1", str(agent.getsockname()[1])],
                                input=check, capture_output=True, text=True, timeout=60)
        answering.join(timeout=30)
    assert (result.returncode, result.stdout) == (0, "ready\n"), result.stderr
