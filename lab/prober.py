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
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import pymysql

sys.path.insert(0, str(Path(__file__).resolve().parent))
import probe  # noqa: E402  (the lab's one-shot probes: HTTP, AMQP, keystone)

INTERVAL = 0.2
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


def broker_node(host: str, port: int) -> str:
    """The node in the broker's Connection.Start (RabbitMQ's cluster_name: rabbit@NODE[.DOMAIN])."""
    frame = probe.amqp_start(host, port)
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
        stop.wait(INTERVAL)


def writer(config: dict, stop: threading.Event) -> None:
    """Commits rows through the VIP one at a time; prints each acknowledged commit."""
    mysql = config["mysql"]
    row = config["first_row"]
    connection = None
    failing = None
    while not stop.is_set():
        try:
            if connection is None:
                connection = pymysql.connect(host=config["vip"], user=mysql["user"],
                                             password=mysql["password"], database=mysql["database"],
                                             connect_timeout=2, read_timeout=3, write_timeout=3)
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


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[0]).read_text())
    vip, bridge = config["vip"], config["bridge"]
    ks = config["keystone"]
    checks = {
        "vip": lambda: (lambda mac: (mac is not None, mac))(arp_answerer(bridge, vip)),
        "haproxy": lambda: (probe.http_status(vip, config["stats_port"], "/") == "200",
                            neighbour(bridge, vip)),
        "broker": lambda: (True, broker_node(vip, config["broker_port"])),
        "keystone_token": lambda: (bool(probe.keystone(vip, ks["port"], ks["user"],
                                                       ks["project"], ks["password"])),
                                   neighbour(bridge, vip)),
    }
    stop = threading.Event()
    threads = [threading.Thread(target=loop, args=(name, check, stop), daemon=True)
               for name, check in checks.items()]
    threads.append(threading.Thread(target=writer, args=(config, stop), daemon=True))
    for thread in threads:
        thread.start()
    # Until the drill closes our stdin, or the deadline.
    done = threading.Thread(target=sys.stdin.read, daemon=True)
    done.start()
    done.join(config["deadline_seconds"])
    stop.set()
    for thread in threads:
        thread.join(10)
    emit(probe="end", t=time.monotonic(), ok=True, by=None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
