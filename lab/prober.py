"""The drill's probes, run side by side inside the lab namespace for the length of one drill.

    ip netns exec osha-lab .venv/bin/python -m lab.prober CONFIG.json

Each probe loops until stdin closes (or the deadline passes) and prints one JSON line whenever
its answer changes, stamped with CLOCK_MONOTONIC (the same clock as the drill's kill):
{"probe": NAME, "t": SECONDS, "ok": BOOL, "by": WHO-ANSWERED}. "by" is what tells a survivor
from the victim: the MAC address that answered ARP for the VIP (`vip`), the MAC the lab network
reaches the VIP at right after an answer (`haproxy`, `keystone_token`), the broker's node name
(`broker`), and for `mysql_write` the server's @@hostname. The MySQL writer commits one row per
round trip and prints every acknowledged commit ({"probe": "mysql_write", ..., "id": ROW}), so the
drill can check afterwards that every acknowledged row is there.

With an "apis" section, every OpenStack API is called side by side (lab/api_probes.py), and
every call printed: {"probe": "api", "api": SERVICE, "kind": "read"|"backend", "t": ITS START,
"ok": BOOL, "seconds": HOW LONG}. Lines on stdin drive the servers: `before` asks nova for one
now (printed as {"probe": "server", "phase": "before", "id": ...} once nova took it); `fault`
asks for one from then on until nova takes it, and follows both to ACTIVE or ERROR (one that
ends in ERROR is asked for again), each final state printed ({"probe": "server", "phase": ...,
"status": ...}). Each second it prints how busy the host's CPUs were ({"probe": "cpu", "t": ...,
"busy": 0-1}); at the end, its own CPU seconds.
"""
from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import pymysql

sys.path.insert(0, str(Path(__file__).resolve().parent))
import api_probes  # noqa: E402  (every OpenStack API, as a user's program calls it)
import probe  # noqa: E402  (the lab's one-shot probes: HTTP, AMQP, keystone)

INTERVAL = 0.2
# A token costs keystone a password hash (bcrypt: a quarter of a core-second): one a second
# keeps the probe from loading the cloud it measures.
INTERVALS = {"keystone_token": 1.0}
SETUP_SECONDS = 60
MAC = re.compile(r"\[([0-9A-Fa-f:]{17})\]")
_print_lock = threading.Lock()


def emit(**event) -> None:
    with _print_lock:
        print(json.dumps(event), flush=True)


def arp_answerer(bridge: str, vip: str) -> Optional[str]:
    """The MAC that answers ARP for the VIP (one request, one second)."""
    out = subprocess.run(["arping", "-c", "1", "-w", "1", "-I", bridge, vip],
                         capture_output=True, text=True).stdout
    found = MAC.search(out)
    return found.group(1).lower() if found else None


def neighbour(bridge: str, vip: str) -> Optional[str]:
    """The MAC this side of the network sends the VIP's packets to now."""
    out = subprocess.run(["ip", "-j", "neigh", "show", vip, "dev", bridge],
                         capture_output=True, text=True).stdout
    entries = json.loads(out or "[]")
    return entries[0].get("lladdr") if entries else None


def broker_node(host: str, port: int, context: Optional[ssl.SSLContext]) -> str:
    """The node in the broker's Connection.Start (RabbitMQ's cluster_name: rabbit@NODE[.DOMAIN])."""
    frame = probe.amqp_start(host, port, context)
    found = re.search(rb"rabbit@([A-Za-z0-9_-]+)", frame)
    return found.group(1).decode() if found else "broker"


def loop(name: str, check: Callable[[], tuple[bool, Optional[str]]], stop: threading.Event) -> None:
    last = None
    while not stop.is_set():
        try:
            state = check()
        except Exception as error:  # any failure is "not answering"; the reason is kept
            state = (False, type(error).__name__)
        if state != last:
            emit(probe=name, t=time.monotonic(), ok=state[0], by=state[1])
            last = state
        stop.wait(INTERVALS.get(name, INTERVAL))


def host_cpu(stop: threading.Event) -> None:
    """Each second, the share of the host's CPU time that was busy ({"probe": "cpu", "busy": 0-1}):
    the lab's nodes share the host's cores, so a saturated host is one reason for a slow answer."""
    def busy_and_total() -> tuple[int, int]:
        # user nice system idle iowait irq softirq steal (guest time is within user).
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        return sum(ticks) - ticks[3] - ticks[4], sum(ticks)
    before = busy_and_total()
    while not stop.wait(1.0):
        now = busy_and_total()
        total = now[1] - before[1]
        emit(probe="cpu", t=time.monotonic(), ok=True, by=None,
             busy=round((now[0] - before[0]) / total, 3) if total else 0.0)
        before = now


def writer(config: dict, context: Optional[ssl.SSLContext], stop: threading.Event) -> None:
    """Commits rows through the VIP one at a time (over TLS with `context`); prints each
    acknowledged commit."""
    mysql = config["mysql"]
    row = config["first_row"]
    connection = None
    failing = None
    while not stop.is_set():
        try:
            if connection is None:
                connection = pymysql.connect(host=config["vip"], user=mysql["user"],
                                             password=mysql["password"], database=mysql["database"],
                                             connect_timeout=2, read_timeout=3, write_timeout=3,
                                             ssl=context)
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO writes (id) VALUES (%s)", (row,))
                cursor.execute("SELECT @@hostname")
                (host,) = cursor.fetchone()
            connection.commit()
            emit(probe="mysql_write", t=time.monotonic(), ok=True, by=host, id=row)
            failing = None
            row += 1
        except Exception as error:
            if failing is None:
                emit(probe="mysql_write", t=time.monotonic(), ok=False, by=type(error).__name__)
            failing = error
            # An unacknowledged id is never reused: it may have committed all the same.
            row += 1
            if connection is not None:
                try:
                    connection.close()
                except Exception:
                    pass
                connection = None
            stop.wait(INTERVAL)


def brief(error: Exception, head: int = 100, tail: int = 200) -> str:
    """The error's type and message, its middle elided when long: the client's wrappers come
    first ("SSL exception connecting to URL: ...") and the cause last (urllib3's "Caused by")."""
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= head + tail else f"{text[:head]} ... {text[-tail:]}"


def caller(api: str, kind: str, call: Callable[[], None], interval: float,
           stop: threading.Event) -> None:
    """`call` every `interval` seconds (from one start to the next) until stopped; every call
    printed with its start, outcome and duration."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            call()
            error = None
        except Exception as failed:  # a failed call is the measurement; the reason is kept
            error = brief(failed)
        took = time.monotonic() - started
        emit(probe="api", api=api, kind=kind, t=started, ok=error is None,
             seconds=round(took, 3), **({"error": error} if error else {}))
        stop.wait(max(0.0, interval - took))


def api_threads(config: dict, stop: threading.Event) -> tuple[list[threading.Thread], object]:
    """A reader and a backend caller per enabled API, Horizon's page; the server probe."""
    apis = config["apis"]
    cloud = api_probes.Cloud(apis["auth_url"], apis["user"], apis["project"], apis["password"],
                             apis["region"], config["ca_file"])
    jobs = []
    for api in api_probes.APIS:
        if api.service in apis["services"]:
            jobs += [(api.service, "read", lambda a=api: a.read(cloud), api_probes.READ_INTERVAL),
                     (api.service, "backend", lambda a=api: a.backend(cloud),
                      api_probes.BACKEND_INTERVAL)]
    if apis.get("horizon_url"):
        jobs.append(("horizon", "read", lambda: api_probes.horizon_read(cloud, apis["horizon_url"]),
                     api_probes.READ_INTERVAL))
    threads = [threading.Thread(target=caller, args=(*job, stop), daemon=True) for job in jobs]
    servers = patiently(lambda: api_probes.ServerProbe(cloud, apis["server"]["image"],
                                                       apis["server"]["flavor"]), SETUP_SECONDS)
    return threads, servers


def patiently(call: Callable, seconds: float):
    """`call`'s result, asked again on any failure for up to `seconds` (the probes' setup, on a
    healthy but loaded cloud; the probes themselves never retry)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def server_until_final(servers, phase: str, server_id: Optional[str], deadline: float,
                       stop: threading.Event) -> None:
    """Follow `server_id` (or ask for one until nova takes it) to ACTIVE, asking again after an
    ERROR, until `deadline`; print each final (or last) state. Every server is deleted after."""
    while not stop.is_set() and time.monotonic() < deadline:
        if server_id is None:
            try:
                server_id = servers.request()
            except Exception:
                stop.wait(0.5)
                continue
        status = servers.follow(server_id, deadline, stop)
        emit(probe="server", phase=phase, t=time.monotonic(), id=server_id, status=status)
        if status != "ERROR":
            break
        server_id = None


def commands(servers, config: dict, stop: threading.Event, workers: list) -> None:
    """The drill's lines on stdin, until it closes it."""
    before: Optional[str] = None
    for line in sys.stdin:
        command = line.strip()
        if command == "before" and servers is not None:
            try:
                # Before the fault a slow answer is only slow: asked again for a while.
                before = patiently(servers.request, SETUP_SECONDS)
                emit(probe="server", phase="before", t=time.monotonic(), id=before,
                     status="requested")
            except Exception as failed:  # the drill stops: the cloud was not healthy
                emit(probe="server", phase="before", t=time.monotonic(), id=None,
                     status=f"refused: {failed}")
        elif command == "fault" and servers is not None:
            deadline = time.monotonic() + config["apis"]["server"]["seconds"]
            for phase, server_id in (("before", before), ("fault", None)):
                if phase == "before" and server_id is None:
                    continue
                worker = threading.Thread(target=server_until_final,
                                          args=(servers, phase, server_id, deadline, stop),
                                          daemon=True)
                worker.start()
                workers.append(worker)


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[0]).read_text())
    vip, bridge = config["vip"], config["bridge"]
    ks = config["keystone"]
    context = probe.tls_context(config["ca_file"])
    checks = {
        "vip": lambda: (lambda mac: (mac is not None, mac))(arp_answerer(bridge, vip)),
        "haproxy": lambda: (probe.http_status(vip, config["stats_port"], "/") == "200",
                            neighbour(bridge, vip)),
        "broker": lambda: (True, broker_node(vip, config["broker_port"], context)),
        "keystone_token": lambda: (bool(probe.keystone(vip, ks["port"], ks["user"],
                                                       ks["project"], ks["password"], context)),
                                   neighbour(bridge, vip)),
    }
    stop = threading.Event()
    threads = [threading.Thread(target=loop, args=(name, check, stop), daemon=True)
               for name, check in checks.items()]
    threads.append(threading.Thread(target=writer, args=(config, context, stop), daemon=True))
    threads.append(threading.Thread(target=host_cpu, args=(stop,), daemon=True))
    servers = None
    if "apis" in config:
        api_callers, servers = api_threads(config, stop)
        threads += api_callers
    for thread in threads:
        thread.start()
    # Until the drill closes our stdin, or the deadline.
    server_workers: list[threading.Thread] = []
    done = threading.Thread(target=commands, args=(servers, config, stop, server_workers),
                            daemon=True)
    done.start()
    done.join(config["deadline_seconds"])
    stop.set()
    for thread in threads + server_workers:
        thread.join(10)
    if servers is not None:
        servers.delete_made()
        try:
            api_probes.sweep_security_groups(servers.cloud)
        except Exception:  # neutron still recovering: the next drill's sweep gets them
            pass
    cpu = os.times()
    emit(probe="end", t=time.monotonic(), ok=True, by=None,
         cpu_seconds=round(cpu.user + cpu.system, 2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
