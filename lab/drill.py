"""The failover drill: hard-kill the node holding the VIP and time the cluster's recovery.

From the kill (`virsh destroy`): corosync membership change and fencing (seen by a survivor),
the VIP answering, HAProxy serving, MySQL accepting writes, the broker accepting connections
and keystone issuing a token through the VIP (probed from the lab network). Rows written before
the kill must all be there afterwards, and the shared filesystem must never be mounted on two
nodes. The fenced node must rejoin: fence_virsh's reboot starts it again (the drill starts it
when it is still off).

Resolution: the probes run side by side every loop and are timed when they answer; membership
and fencing are read over SSH from a survivor (crm_mon, stonith_admin), so under emulation
they show up seconds after the fact: upper bounds, which can trail the VIP's figure.
"""
from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

from lab import checks, keystone
from lab.hypervisor import virsh

POLL_SECONDS = 1.0
DEADLINE_SECONDS = 600
STATS_PORT = 8404
BROKER_PORT = 5672
MILESTONES = ("membership", "fenced", "vip", "haproxy", "mysql_write", "broker", "keystone_token")
PROBED = MILESTONES[2:]


@dataclass
class Failover:
    layout: str
    victim: str
    survivor: Optional[str] = None
    seconds: dict[str, Optional[float]] = field(default_factory=dict)
    rows_written: int = 0
    rows_found: int = 0
    max_mounts: int = 0
    rejoin_seconds: Optional[float] = None

    def as_dict(self) -> dict:
        return asdict(self)


def write_rows(vip: str, first: int, count: int) -> int:
    """Rows committed through the VIP before the kill."""
    values = ",".join(f"({i})" for i in range(first, first + count))
    result = checks.mysql(vip, f"INSERT INTO writes (id) VALUES {values};")
    if result.returncode != 0:
        raise RuntimeError(f"writing rows through the VIP: {result.stderr}")
    return count


def _survivor_view(lab, survivors: list[dict]) -> Optional[checks.ClusterView]:
    for node in survivors:
        try:
            return checks.cluster_view(lab, node)
        except (RuntimeError, OSError):
            continue
    return None


def place_on(lab, node: dict) -> None:
    """Move the core group to `node`, as an operator would before a drill, then drop the pin."""
    if lab.holder_of_vip()["name"] == node["name"]:
        return
    for command in (f"pcs resource move osha-core {node['name']} --wait=600",
                    "pcs resource clear osha-core"):
        result = lab.ssh(node, command, timeout=900)
        if result.returncode != 0:
            raise RuntimeError(f"{command}: {result.stderr}")


def run_drill(lab, layout: str, victim: dict, first_row: int, rows: int = 50) -> Failover:
    """Kill `victim` (moved to hold the VIP first) and time the recovery."""
    vip = lab.manifest["vip"]
    place_on(lab, victim)
    survivors = [n for n in lab.controls if n is not victim]
    result = Failover(layout=layout, victim=victim["name"])
    result.rows_written = write_rows(vip, first_row, rows)
    attempts = iter(range(first_row + rows, first_row + 1000))
    probes: dict[str, Callable[[], bool]] = {
        "vip": lambda: checks.probe("tcp", vip, STATS_PORT)[0],
        "haproxy": lambda: checks.probe("http", vip, STATS_PORT, "/")[1] == "200",
        # A fresh id per attempt: a write that committed but lost its answer must not turn
        # every later attempt into a duplicate-key failure.
        "mysql_write": lambda: checks.mysql(
            vip, f"INSERT INTO writes (id) VALUES ({next(attempts)});", timeout=5).returncode == 0,
        "broker": lambda: checks.probe("amqp", vip, BROKER_PORT)[1] == "amqp",
        "keystone_token": lambda: keystone.catalogue(vip) is not None,
    }
    killed = time.monotonic()
    elapsed = lambda: round(time.monotonic() - killed, 1)  # noqa: E731

    def attempt(name: str) -> tuple[bool, float]:
        try:
            answered = probes[name]()
        except (subprocess.TimeoutExpired, OSError, ValueError):
            answered = False
        return answered, elapsed()

    virsh("destroy", victim["domain"])
    pending = set(MILESTONES)
    with ThreadPoolExecutor(max_workers=len(PROBED)) as pool:
        while pending and time.monotonic() - killed < DEADLINE_SECONDS:
            # The probes run side by side, each timed when it answers: a slow one (a connect
            # timeout) does not delay the others' figures.
            probing = {n: pool.submit(attempt, n) for n in PROBED if n in pending}
            view = _survivor_view(lab, survivors)
            if view is not None:
                if "membership" in pending and victim["name"] not in view.online:
                    result.seconds["membership"] = elapsed()
                    pending.discard("membership")
                if "fenced" in pending and _fenced(lab, survivors, victim["name"]):
                    result.seconds["fenced"] = elapsed()
                    pending.discard("fenced")
            for name, future in probing.items():
                answered, seconds = future.result()
                if answered:
                    result.seconds[name] = seconds
                    pending.discard(name)
            mounts = len(checks.mounted_on(lab, lab.mysql_datadir))
            result.max_mounts = max(result.max_mounts, mounts)
            time.sleep(POLL_SECONDS)
    for name in pending:
        result.seconds[name] = None
    found = checks.mysql(vip, f"SELECT COUNT(*) FROM writes WHERE id BETWEEN {first_row} "
                              f"AND {first_row + rows - 1};")
    result.rows_found = int(found.stdout.strip() or 0) if found.returncode == 0 else 0
    result.survivor = lab.holder_of_vip()["name"]
    result.rejoin_seconds = rejoin(lab, victim, killed)
    return result


def _fenced(lab, survivors: list[dict], victim: str) -> bool:
    """A survivor's fencing history shows the victim fenced successfully."""
    for node in survivors:
        history = lab.ssh(node, f"stonith_admin --history {victim} --output-as=xml", timeout=60)
        if history.returncode == 0:
            return 'status="success"' in history.stdout
    return False


def rejoin(lab, victim: dict, killed: float) -> Optional[float]:
    """Seconds from the kill until the cluster sees the victim online again."""
    if not lab.machines.is_running(victim):
        lab.machines.start(victim)
    started = time.monotonic()
    while time.monotonic() - started < DEADLINE_SECONDS:
        view = _survivor_view(lab, [n for n in lab.controls if n is not victim])
        if view is not None and victim["name"] in view.online:
            return round(time.monotonic() - killed, 1)
        time.sleep(5)
    return None


def report(results: list[Failover], path) -> str:
    """The drill's table (returned and printed) and its JSON (written to `path`)."""
    import json

    columns = ["layout", "victim", "survivor", *MILESTONES, "rows", "mounts", "rejoin"]
    rows = [[r.layout, r.victim, r.survivor or "-",
             *(f"{r.seconds[m]:.1f}" if r.seconds.get(m) is not None else "never"
               for m in MILESTONES),
             f"{r.rows_found}/{r.rows_written}", str(r.max_mounts),
             f"{r.rejoin_seconds:.0f}" if r.rejoin_seconds is not None else "never"]
            for r in results]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows]
    table = "\n".join(lines)
    print("seconds from the kill:\n" + table, flush=True)
    path.write_text(json.dumps([r.as_dict() for r in results], indent=2) + "\n")
    return table
