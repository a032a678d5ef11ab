"""The failover drill: take down a control node (the VIP's holder, or one without the VIP) and
time the recovery of the cluster and of every API.

Faults (lab/substrate.py): `destroy` (libvirt's hard stop), `kill` (SIGKILL of the container's
init, or of a VM's emulator) and `cut` (the node's link down on the host side: it keeps running,
isolated, and must be fenced; the split-brain case). Seconds from the fault to:

- membership: a survivor's Pacemaker sees the victim lost;
- fenced: a survivor's Pacemaker learns that the victim was fenced;
- vip: ARP for the VIP answered by a MAC that is not the victim's;
- haproxy: HAProxy's statistics page answering at the VIP, reached at a survivor's MAC;
- mysql_write: a row committed through the VIP by a server whose @@hostname is a survivor's;
- broker: the broker at the VIP starting an AMQP connection, as a survivor's node;
- keystone_token: keystone issuing a token through the VIP, reached at a survivor's MAC;
- rejoin: the victim online again in a survivor's view;
- with a `CloudChecks` (lab/openstack.py): each of the real `openstack` client's checks at the
  VIP passing again (`image_kept`: the image uploaded right before the fault downloads
  byte-identical; `volume_kept`: the volume made right before it takes a snapshot; `server`: a
  new server ACTIVE). They all pass before the fault, and start again once every API answers:
  started at the fault, the client's processes loaded the nodes whose recovery they timed.

With a `CloudChecks`, every OpenStack API is also called continuously (lab/api_probes.py: a read
and a call that needs the API's database or engine, 2 s timeout, no retry) and per API the
drill reports its `outage` (seconds from the fault to the first of RECOVERY_CALLS passing calls
in a row after a failed one; 0 when no call failed), the failed calls, the longest gap between
passing answers and the slowest answer. A server requested right before the fault (in flight
when it hits) and one requested right after it are followed to ACTIVE for SERVER_SECONDS, one
in ERROR asked for again (`server_active`: seconds from the fault to the second's ACTIVE;
`servers_stuck`: those not ACTIVE by then).

The probes run side by side in one process inside the lab network (lab/prober.py), each stamped
when its answer changes; membership, fencing and rejoin are read from a survivor's Pacemaker
log (millisecond stamps), polled every half second through the substrate's way in. Throughout, every node's mount table and addresses are sampled
from the host (through each container's init, which also works while a node is cut off): the
shared filesystem and the VIP must never be on two nodes at once. A writer commits rows through
the VIP during the whole drill; every commit it saw acknowledged must be there afterwards.
"""
from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Optional

from components.cluster_resources import GROUP
from components.endpoints import BROKER_PORTS
from components.haproxy import STATS_PORT
from lab import checks, evidence, openstack, wait
from lab.hypervisor import BRIDGE, in_namespace
from manifest_schema import Node

REPO = Path(__file__).resolve().parent.parent
DEADLINE_SECONDS = 300
SAMPLE_SECONDS = 0.25
PROBED = ("vip", "haproxy", "mysql_write", "broker", "keystone_token")
MILESTONES = ("membership", "fenced", *PROBED)
# An API is back when this many calls in a row pass (at 2 calls/s: 2.5 s of service).
RECOVERY_CALLS = 5
# Every server asked for around the fault is followed this long (reported, not checked).
SERVER_SECONDS = 120
CLUSTER_COLUMNS = (*MILESTONES, "rejoin")
COLUMNS = (*CLUSTER_COLUMNS, *openstack.COLUMNS)


def broker_port(lab) -> int:
    """Where the broker listens at the VIP: its TLS port with TLS on."""
    return BROKER_PORTS[lab.ca_file is not None]


@dataclass
class Failover:
    layout: str
    fault: str
    victim: str
    profile: str = "default"
    survivor: Optional[str] = None
    seconds: dict[str, Optional[float]] = field(default_factory=dict)
    rows_acknowledged: int = 0
    rows_found: int = 0
    max_fs_mounts: int = 0
    max_vip_holders: int = 0
    # The last error of each cloud check that had not passed again by the deadline.
    errors: dict[str, str] = field(default_factory=dict)
    # Seconds each cloud check took to pass in the round right before the fault (the client's
    # own time, all checks side by side): the floor under its column.
    before: dict[str, Optional[float]] = field(default_factory=dict)
    # Whether the victim held the VIP (and the core group) when it was taken down.
    vip_holder: bool = True
    # Per API: outage, failed calls, longest gap and slowest answer (`api_figures`).
    apis: dict[str, dict] = field(default_factory=dict)
    server_active: Optional[float] = None
    servers_stuck: int = 0
    prober_cpu_share: Optional[float] = None

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def kind(self) -> str:
        """The fault, and whether it hit the VIP's holder: the reports' rows."""
        return self.fault if self.vip_holder else f"{self.fault} (no VIP)"


def place_on(lab, node: Node) -> None:
    """Move the core group to `node`, as an operator would before a drill, then drop the pin
    (also when the move failed: the pin is the lab's, and left behind it would hold the group)."""
    if lab.holder_of_vip().name == node.name:
        return
    move = f"pcs resource move {GROUP} {node.name} --wait=600"
    moved = lab.ssh(node, move, timeout=900)
    cleared = lab.ssh(node, f"pcs resource clear {GROUP}", timeout=120)
    if moved.returncode != 0:
        raise RuntimeError(f"{move}: {moved.stderr.strip()}\n{evidence.cluster_report(lab)}")
    if cleared.returncode != 0:
        raise RuntimeError(f"pcs resource clear {GROUP}: {cleared.stderr.strip()}")


def take_the_group_everywhere(lab) -> list[str]:
    """Move the core group onto every control node in turn and back to where it was, each move
    ending with every member of the group started there and nothing failed: after faults, every
    node must still be a place to fail over to. Returns the nodes in the order the group visited
    them."""
    home = lab.holder_of_vip()
    visited = []
    for node in [*(n for n in lab.controls if n is not home), home]:
        wait_settled(lab)
        place_on(lab, node)
        view = checks.cluster_view(lab, node)
        members = view.groups.get(GROUP, [])
        if not members or any(view.on(m) != [node.name] for m in members) or view.failed:
            raise RuntimeError(f"the core group did not settle on {node.name}:\n"
                               f"{evidence.cluster_report(lab)}")
        visited.append(node.name)
    return visited


def api_figures(calls: list[dict], fault: float) -> dict:
    """One API's calls (prober events, in start order) seen from the fault at `fault`:
    {"outage": seconds to the first of RECOVERY_CALLS passing calls in a row after a failed one
    (0.0 when none failed, None when never back), "failed": calls failed, "longest_gap":
    longest time without a passing answer, "slowest": the slowest passing answer}."""
    after = [c for c in calls if c["t"] + c["seconds"] >= fault]
    failed = [i for i, c in enumerate(after) if not c["ok"]]
    outage: Optional[float] = 0.0 if not failed else None
    streak = 0
    for index in range(failed[0] + 1 if failed else len(after), len(after)):
        streak = streak + 1 if after[index]["ok"] else 0
        if streak == RECOVERY_CALLS:
            outage = round(max(0.0, after[index - RECOVERY_CALLS + 1]["t"] - fault), 2)
            break
    answers = [c["t"] + c["seconds"] for c in calls if c["ok"]]
    marks = [max([a for a in answers if a < fault], default=fault),
             *(a for a in answers if a >= fault)]
    if outage is None and after:
        marks.append(after[-1]["t"] + after[-1]["seconds"])
    gaps = [b - a for a, b in zip(marks, marks[1:])]
    slowest = [c["seconds"] for c in after if c["ok"]]
    return {"outage": outage, "failed": len(failed),
            "longest_gap": round(max(gaps, default=0.0), 2),
            "slowest": round(max(slowest), 2) if slowest else None}


def server_figures(events: list[dict], fault: float) -> tuple[Optional[float], int]:
    """(seconds from the fault to ACTIVE of the server asked for after it, how many servers
    were not final (ACTIVE or ERROR-then-ACTIVE) by the end)."""
    finals = {e["phase"]: e for e in events
              if e["probe"] == "server" and e["status"] != "requested"}
    before_asked = any(e["probe"] == "server" and e["phase"] == "before" for e in events)
    phases = ["fault", *(["before"] if before_asked else [])]
    stuck = sum(1 for p in phases if (finals.get(p) or {}).get("status") != "ACTIVE")
    active = finals.get("fault")
    seconds = (round(active["t"] - fault, 2)
               if active and active["status"] == "ACTIVE" else None)
    return seconds, stuck


class Prober:
    """lab/prober.py in the lab namespace; its events collected as they come."""

    def __init__(self, lab, first_row: int, cloud: Optional[openstack.CloudChecks] = None):
        config = {"vip": lab.manifest.vip, "bridge": BRIDGE, "first_row": first_row,
                  "stats_port": STATS_PORT, "broker_port": broker_port(lab),
                  "ca_file": str(lab.ca_file) if lab.ca_file else None,
                  "deadline_seconds": DEADLINE_SECONDS + 120,
                  "mysql": {"user": checks.MYSQL_USER, "password": checks.MYSQL_PASSWORD,
                            "database": checks.MYSQL_DATABASE},
                  "keystone": {"port": openstack.KEYSTONE_PORT, "user": openstack.ADMIN_USER,
                               "project": openstack.ADMIN_PROJECT,
                               "password": openstack.admin_password(lab)}}
        if cloud:
            config["apis"] = openstack.prober_config(cloud, SERVER_SECONDS)
        self.apis = sorted(config.get("apis", {}).get("probed", []))
        self.config = tempfile.NamedTemporaryFile("w", suffix=".json", prefix="osha-prober-")
        json.dump(config, self.config)
        self.config.flush()
        self.events: list[dict] = []
        self.started = time.monotonic()
        self.stopped_at: Optional[float] = None
        # The events the drill judged every API settled on: its figures are taken from them.
        self.judged: Optional[list[dict]] = None
        self.process = subprocess.Popen(
            in_namespace(sys.executable, str(REPO / "lab" / "prober.py"), self.config.name),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.events.append(json.loads(line))

    def send(self, command: str) -> None:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def calls(self, api: str, events: Optional[list[dict]] = None) -> list[dict]:
        """The API's calls among `events` (all so far) in the order they started; once the drill
        stopped probing, only those that had ended by then (a call still in flight at the stop
        is not a measurement)."""
        calls = [e for e in (self.events if events is None else events)
                 if e["probe"] == "api" and e["api"] == api
                 and (self.stopped_at is None or e["t"] + e["seconds"] <= self.stopped_at)]
        return sorted(calls, key=lambda e: e["t"])

    def api_figures(self, fault: float) -> dict[str, dict]:
        """Per API, the figures of the calls the drill judged on (a call that ended between
        that judgement and the stop would otherwise read as an API never back)."""
        return {api: api_figures(self.calls(api, self.judged), fault) for api in self.apis}

    def answering(self, api: str, since: float = 0.0,
                  events: Optional[list[dict]] = None) -> bool:
        """The API's last RECOVERY_CALLS calls since `since` all passed."""
        last = [c for c in self.calls(api, events) if c["t"] >= since][-RECOVERY_CALLS:]
        return len(last) == RECOVERY_CALLS and all(c["ok"] for c in last)

    def apis_settled(self, fault: float) -> bool:
        """Every API answering again after the fault, and the servers final; when they are,
        the events this was judged on are kept for the figures."""
        events = list(self.events)
        if not all(self.answering(api, fault, events) for api in self.apis):
            return False
        last = {e["phase"]: e["status"] for e in events if e["probe"] == "server"}
        # A server in ERROR is asked for again: its phase is over at ACTIVE, or at the prober's
        # deadline (the status it reached then).
        settled = not self.apis or ("fault" in last and
                                    all(s not in ("requested", "ERROR") for s in last.values()))
        if settled:
            self.judged = events
        return settled

    def request_server_in_flight(self, seconds: float = 90) -> None:
        """A server asked for now (nova took it), still building when the fault comes."""
        self.send("before")
        asked = wait.until("nova to take the server before the fault", lambda: next(
            (e for e in self.events if e["probe"] == "server" and e["phase"] == "before"), None),
            seconds, interval=0.1)
        if asked["id"] is None:
            raise RuntimeError(f"nova refused the server before the fault: {asked}")

    def save(self, path: Path, fault: float) -> None:
        """Every event, its time made relative to the fault (the run's evidence)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({**e, "t": round(e["t"] - fault, 3)}) + "\n"
                                for e in self.events))

    def cpu_share(self) -> Optional[float]:
        """The prober's CPU seconds per second of its life (1.0: one core)."""
        end = self.current("end")
        return round(end["cpu_seconds"] / (end["t"] - self.started), 3) if end else None

    def current(self, name: str) -> Optional[dict]:
        seen = [e for e in self.events if e["probe"] == name]
        return seen[-1] if seen else None

    def wait_all_answering(self, seconds: float = 120) -> None:
        """Before the fault: every probe answered (by the victim)."""
        wait.until("every probe to answer before the fault",
                   lambda: all((self.current(n) or {}).get("ok") for n in PROBED) and all(
                       self.answering(api) for api in self.apis),
                   seconds, interval=0.2, report=self.answers)

    def answers(self) -> str:
        """The probes' last answers and the last call of each API not answering."""
        failing = {api: self.calls(api)[-1:] for api in self.apis if not self.answering(api)}
        return f"probes: { {n: self.current(n) for n in PROBED} }; APIs: {failing}"

    def stop(self) -> None:
        self.stopped_at = time.monotonic()
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.reader.join(10)
        self.config.close()

    def first_survivor_answer(self, name: str, since: float, victim_ids: set[str]) -> Optional[float]:
        """Seconds from `since` to the probe's first answer by a survivor; when a survivor was
        answering already, to its first answer after a failure (0 when it never failed)."""
        events = [e for e in self.events if e["probe"] == name]
        before = [e for e in events if e["t"] < since]
        after = [e for e in events if e["t"] >= since]
        if before and before[-1]["ok"] and before[-1]["by"] not in victim_ids:
            failed = next((i for i, e in enumerate(after) if not e["ok"]), None)
            if failed is None:
                return 0.0
            after = after[failed:]
        for event in after:
            if event["ok"] and event["by"] not in victim_ids:
                return round(event["t"] - since, 2)
        return None

    def acknowledged(self) -> list[int]:
        return [e["id"] for e in self.events if e["probe"] == "mysql_write" and "id" in e]


class Sampler:
    """Every node's mounts and addresses, sampled from the host until stopped."""

    def __init__(self, lab):
        self.lab = lab
        self.max_fs = 0
        self.max_vip = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            self.max_fs = max(self.max_fs, len(checks.mounted_on(self.lab, self.lab.shared_dir)))
            self.max_vip = max(self.max_vip, len(checks.vip_on(self.lab)))
            self.stopped.wait(SAMPLE_SECONDS)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(30)


PACEMAKER_LOG = "/var/log/pacemaker/pacemaker.log"
# What Pacemaker 2.1 logs on every node when a peer is lost, fenced and back (its fencer's view).
LOG_EVENTS = {"membership": "pacemaker-fenced .* Node {v} state is now lost",
              "fenced": "Peer {v} was terminated .*: OK",
              "rejoin": "pacemaker-fenced .* Node {v} state is now member"}


def cluster_events(lab, survivors: list[Node], victim: str, since: float) -> dict[str, float]:
    """Seconds from `since` (wall clock) to the first membership loss, fencing and return of
    `victim` that a survivor's Pacemaker logged after it (log stamps: milliseconds, this clock)."""
    patterns = {name: re.compile(p.format(v=re.escape(victim))) for name, p in LOG_EVENTS.items()}
    grep = "|".join(p.format(v=victim) for p in LOG_EVENTS.values())
    year = datetime.fromtimestamp(since).year
    for node in survivors:
        result = lab.nodes.exec(node, f"grep -E '{grep}' {PACEMAKER_LOG} | tail -n 200", timeout=20)
        if result.returncode != 0:
            continue
        found: dict[str, float] = {}
        for line in result.stdout.splitlines():
            try:
                stamp = datetime.strptime(f"{year} {line[:19]}", "%Y %b %d %H:%M:%S.%f")
            except ValueError:
                continue
            seconds = round(stamp.timestamp() - since, 2)
            if seconds < 0:
                continue
            for name, pattern in patterns.items():
                if name not in found and pattern.search(line):
                    # Back means back after the fencing.
                    if name != "rejoin" or ("fenced" in found and seconds >= found["fenced"]):
                        found[name] = seconds
        return found
    return {}


def run_drill(lab, layout: str, victim: Node, fault: str, profile: str = "default",
              cloud: Optional[openstack.CloudChecks] = None, vip_holder: bool = True) -> Failover:
    """Take down `victim` by `fault` and time the recovery (and the cloud's checks and every
    API, with `cloud`). With `vip_holder` the core group is moved onto the victim first;
    without, off it."""
    if vip_holder:
        place_on(lab, victim)
    elif lab.holder_of_vip().name == victim.name:
        place_on(lab, next(n for n in lab.controls if n is not victim))
    survivors = [n for n in lab.controls if n is not victim]
    result = Failover(layout=layout, fault=fault, victim=victim.name, profile=profile,
                      vip_holder=vip_holder)
    victim_ids = {victim.mac, victim.name}
    columns = COLUMNS if cloud else CLUSTER_COLUMNS
    if cloud:
        result.before, errors = cloud.until_all_pass(time.monotonic(), DEADLINE_SECONDS,
                                                     lifecycle=False)
        if errors:
            raise RuntimeError(f"the cloud's checks do not pass before the fault: {errors}")
        cloud.keep_for_the_fault()
    prober = Prober(lab, next_row(lab), cloud)
    sampler = Sampler(lab)
    recovered: dict[str, Optional[float]] = {}
    try:
        prober.wait_all_answering()
        if prober.apis:
            prober.request_server_in_flight()
        killed, killed_wall = time.monotonic(), time.time()
        lab.nodes.kill(victim, fault)
        if prober.apis:
            prober.send("fault")
        seen: dict[str, float] = {}
        while time.monotonic() - killed < DEADLINE_SECONDS:
            seen.update(cluster_events(lab, survivors, victim.name, killed_wall))
            for name in PROBED:
                answered = prober.first_survivor_answer(name, killed, victim_ids)
                if answered is not None:
                    seen.setdefault(name, answered)
            if all(c in seen for c in CLUSTER_COLUMNS) and prober.apis_settled(killed):
                break
            time.sleep(0.5)
    finally:
        prober.stop()
        sampler.stop()
        if fault == "cut":
            lab.nodes.heal(victim)
    label = f"{datetime.now():%H%M%S}-{layout}-{fault}-{victim.name}"
    label += "" if vip_holder else "-no-vip"
    prober.save(lab.artifacts / "drills" / f"{label}.jsonl", killed)
    result.apis = prober.api_figures(killed)
    result.server_active, result.servers_stuck = (
        server_figures(prober.events, killed) if prober.apis else (None, 0))
    result.prober_cpu_share = prober.cpu_share()
    if cloud:
        # Once every API answers again: started at the fault, the client's processes (a Python
        # start and a password hash per call) loaded the nodes they were timing.
        recovered = dict(zip(("seconds", "errors"), cloud.until_all_pass(
            killed, time.monotonic() - killed + DEADLINE_SECONDS, after_fault=True,
            lifecycle=False)))
    seen.update({k: v for k, v in recovered.get("seconds", {}).items() if v is not None})
    result.seconds = {c: seen.get(c) for c in columns}
    result.errors = recovered.get("errors", {})
    result.max_fs_mounts, result.max_vip_holders = sampler.max_fs, sampler.max_vip
    acknowledged = prober.acknowledged()
    result.rows_acknowledged = len(acknowledged)
    result.rows_found = rows_present(lab, acknowledged)
    result.survivor = lab.holder_of_vip().name
    if not lab.nodes.is_running(victim):
        # Fencing did not start it again (it failed, or it stopped short of `on`).
        lab.nodes.start(victim)
    print(f"drill {layout}/{fault} victim {victim.name}: {result.seconds}"
          + (f"; still failing: {result.errors}" if result.errors else ""), file=sys.stderr,
          flush=True)
    return result


# How a probed call failed: no answer within the prober's timeout (a slow answer), the
# connection closed without an answer (also seen with no work under way: a kept-alive connection
# the proxy closes as the client reuses it; over TLS the client sees the close as an EOF in the
# TLS protocol), anything else (an HTTP error, a refused connection or handshake: what a drain
# must prevent).
FAILURE_KINDS = ("timeouts", "closed", "refused")
CLOSED_WITHOUT_ANSWER = ("RemoteDisconnected", "EOF occurred in violation of protocol",
                         "UNEXPECTED_EOF_WHILE_READING")


def failure_kind(error: str) -> str:
    if "timed out" in error or "Timeout" in error:
        return "timeouts"
    if any(sign in error for sign in CLOSED_WITHOUT_ANSWER):
        return "closed"
    return "refused"


@dataclass
class PlannedWork:
    """Planned work (a `pulumi up` that restarts services) with every API called throughout:
    per API, its calls and failed calls while the work ran, by FAILURE_KINDS (with the first
    errors); how busy the host's CPUs were meanwhile (`host_busy`)."""
    scenario: str
    layout: str
    seconds: float
    apis: dict[str, dict]
    rows_acknowledged: int
    rows_found: int
    host_busy: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def run_planned(lab, cloud: openstack.CloudChecks, scenario: str, work) -> PlannedWork:
    """`work()` while the prober calls every API; what each API answered meanwhile."""
    if cloud.kept is None:
        # The prober's server probe needs the lab's flavor and image.
        cloud.prepare()
    prober = Prober(lab, next_row(lab), cloud)
    try:
        prober.wait_all_answering()
        started = time.monotonic()
        work()
        ended = time.monotonic()
    finally:
        prober.stop()
    prober.save(lab.artifacts / "planned" / f"{datetime.now():%H%M%S}-{scenario}.jsonl", started)
    apis = {}
    for api in prober.apis:
        calls = [c for c in prober.calls(api) if started <= c["t"] <= ended]
        failed = [c for c in calls if not c["ok"]]
        kinds = [failure_kind(c.get("error", "")) for c in failed]
        apis[api] = {"calls": len(calls), "failed": len(failed),
                     **{kind: kinds.count(kind) for kind in FAILURE_KINDS},
                     "errors": sorted({c.get("error", "") for c in failed})[:3]}
    acknowledged = prober.acknowledged()
    result = PlannedWork(scenario=scenario, layout=lab.settings.cluster.haproxy_layout,
                         seconds=round(ended - started, 1), apis=apis,
                         rows_acknowledged=len(acknowledged),
                         rows_found=rows_present(lab, acknowledged),
                         host_busy=host_busy(prober, started, ended))
    print(f"planned {scenario} ({result.layout}, {result.seconds} s): failed calls "
          f"{ {api: {k: a[k] for k in FAILURE_KINDS} for api, a in apis.items()} }; "
          f"host CPU {result.host_busy}", file=sys.stderr, flush=True)
    return result


def host_busy(prober: Prober, started: float, ended: float) -> dict:
    """How busy the host's CPUs were while the work ran: the median second, the share of
    seconds at least 95 % busy, and the median of the seconds a call that timed out spanned."""
    seconds = [e for e in prober.events if e["probe"] == "cpu" and started <= e["t"] <= ended]
    timed_out = [c for api in prober.apis for c in prober.calls(api)
                 if started <= c["t"] <= ended and not c["ok"]
                 and failure_kind(c.get("error", "")) == "timeouts"]
    # A sample covers the second before its stamp.
    spanned = [s["busy"] for s in seconds
               if any(c["t"] < s["t"] and s["t"] - 1 < c["t"] + c["seconds"] for c in timed_out)]
    busy = [s["busy"] for s in seconds]
    return {"median": round(statistics.median(busy), 2) if busy else None,
            "saturated_share": round(sum(b >= 0.95 for b in busy) / len(busy), 2) if busy else None,
            "median_during_timeouts": round(statistics.median(spanned), 2) if spanned else None}


def next_row(lab) -> int:
    """The first row id no drill has used yet (the lab's MySQL user and table made first: a
    bench runs drills on a lab no check has prepared)."""
    checks.ensure_mysql_user(lab, lab.holder_of_vip())
    result = checks.mysql(lab.manifest.vip, "SELECT COALESCE(MAX(id), 0) + 1 FROM writes;",
                          lab.ca_file)
    if result.returncode != 0:
        raise RuntimeError(f"reading the last row id: {result.stderr}")
    return int(result.stdout.strip())


def rows_present(lab, ids: list[int]) -> int:
    if not ids:
        return 0
    found = checks.mysql(lab.manifest.vip,
                         f"SELECT id FROM writes WHERE id BETWEEN {min(ids)} AND {max(ids)};",
                         lab.ca_file)
    if found.returncode != 0:
        raise RuntimeError(f"reading back the drill's rows: {found.stderr}")
    return len(set(ids) & {int(v) for v in found.stdout.split()})


def wait_settled(lab, seconds: float = 300) -> None:
    """Every control node online and nothing pending or failed, before the next drill."""
    names = sorted(n.name for n in lab.controls)

    def settled() -> bool:
        running = [n for n in lab.controls if lab.nodes.is_running(n)]
        if not running:
            raise wait.NotYet("no control node running")
        unsettled = why_unsettled(lab, running[0], names)
        if unsettled:
            raise wait.NotYet(unsettled)
        return True
    wait.until("the cluster to settle", settled, seconds, interval=1,
               not_yet=(RuntimeError, subprocess.TimeoutExpired),
               report=lambda: evidence.cluster_report(lab))


def why_unsettled(lab, node: Node, names: list[str]) -> str:
    """What keeps the cluster from being ready for a drill, seen from `node` ('' when nothing)."""
    view = checks.cluster_view(lab, node)
    if sorted(view.online) != names:
        return f"online: {sorted(view.online)} of {names}"
    if len(view.on("vip")) != 1:
        return f"the VIP is started on {view.on('vip')}"
    if view.failed:
        return f"failed actions: {view.failed}"
    idle = lab.ssh(node, "crm_resource --wait --timeout=60", timeout=90)
    if idle.returncode != 0:
        return f"a transition still pending: {idle.stderr.strip()}"
    return ""


# -- reports --------------------------------------------------------------------------------
def grouped(results: list[Failover]) -> dict[tuple[str, str, str], list[Failover]]:
    """The drills per (profile, layout, fault kind), in the order first run."""
    groups: dict[tuple[str, str, str], list[Failover]] = {}
    for r in results:
        groups.setdefault((r.profile, r.layout, r.kind), []).append(r)
    return groups


def probed_apis(results: list[Failover]) -> list[str]:
    return sorted({api for r in results for api in r.apis})


def figure_cell(figures: Optional[tuple[float, float]], missing: int) -> str:
    """`median/max` (`never` without any), with how many drills had no figure."""
    cell = f"{figures[0]:.1f}/{figures[1]:.1f}" if figures else "never"
    return cell + (f" ({missing} never)" if missing and figures else "")


def median_and_max(values: list[Optional[float]]) -> tuple[Optional[tuple[float, float]], int]:
    """((median, max) of the values present, or None), how many were missing."""
    present = [v for v in values if v is not None]
    figures = (statistics.median(present), max(present)) if present else None
    return figures, len(values) - len(present)


def median_max(values: list[Optional[float]]) -> str:
    return figure_cell(*median_and_max(values))


def api_rows(results: list[Failover]) -> tuple[list[str], list[list[str]]]:
    """Per (profile, layout, fault kind): each API's outage (median/max seconds, failed calls in
    all), the server asked for after the fault (seconds to ACTIVE) and servers stuck."""
    apis = probed_apis(results)
    header = ["profile", "layout", "fault", "n", *apis, "server ACTIVE", "stuck"]
    lines = []
    for (profile, layout, kind), members in grouped(results).items():
        cells = [profile, layout, kind, str(len(members))]
        for api in apis:
            figures = [m.apis.get(api, {}) for m in members]
            failed = sum(f.get("failed", 0) for f in figures)
            cells.append(f"{median_max([f.get('outage') for f in figures])} [{failed}]")
        cells += [median_max([m.server_active for m in members]),
                  str(sum(m.servers_stuck for m in members))]
        lines.append(cells)
    return header, lines


def measured(results: list[Failover]) -> list[str]:
    """The columns the drills measured (the cloud's only with its checks)."""
    return [c for c in COLUMNS if any(c in r.seconds for r in results)]


def summary(results: list[Failover]) -> list[dict]:
    """Median and max of every measured column per (profile, layout, fault kind)."""
    groups = grouped(results)
    rows = []
    for (profile, layout, kind), members in groups.items():
        row = {"profile": profile, "layout": layout, "fault": kind, "drills": len(members),
               "rows": f"{sum(m.rows_found for m in members)}/"
                       f"{sum(m.rows_acknowledged for m in members)}",
               "max_fs_mounts": max(m.max_fs_mounts for m in members),
               "max_vip_holders": max(m.max_vip_holders for m in members)}
        for column in measured(results):
            row[column] = median_and_max([m.seconds.get(column) for m in members])
        rows.append(row)
    return rows


def rows(results: list[Failover]) -> tuple[list[str], list[list[str]]]:
    """The drill table's header and rows: median/max seconds per column (`never` counts), then
    the safety columns (acknowledged/found rows, most nodes at once with the filesystem, VIP)."""
    columns = measured(results)
    header = ["profile", "layout", "fault", "n", *columns, "rows acked/found", "fs max", "vip max"]
    lines = []
    for row in summary(results):
        cells = [row["profile"], row["layout"], row["fault"], str(row["drills"])]
        cells += [figure_cell(*row[column]) for column in columns]
        found, acked = row["rows"].split("/")
        cells += [f"{acked}/{found}", str(row["max_fs_mounts"]), str(row["max_vip_holders"])]
        lines.append(cells)
    return header, lines


def aligned(header: list[str], lines: list[list[str]]) -> str:
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    text = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    text += ["  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines]
    return "\n".join(text)


def table(results: list[Failover]) -> str:
    """The drill tables as aligned text: the cluster's and the client's columns, then every
    API's outage when the drills probed them."""
    text = "seconds from the fault, median/max:\n" + aligned(*rows(results))
    if probed_apis(results):
        text += ("\n\nAPI outage, seconds from the fault, median/max [failed calls]:\n"
                 + aligned(*api_rows(results)))
    return text


def markdown(results: list[Failover]) -> str:
    """The drill tables as Markdown tables (the README's)."""
    tables = [rows(results)] + ([api_rows(results)] if probed_apis(results) else [])
    return "\n\n".join("\n".join("| " + " | ".join(cells) + " |"
                                  for cells in [header, ["---"] * len(header), *lines])
                        for header, lines in tables)


def load(path: Path) -> tuple[str, list[Failover]]:
    """A report written by `report`: the machine and its drills."""
    data = json.loads(path.read_text())
    return data["machine"], [Failover(**d) for d in data["drills"]]


def report(results: list[Failover], path: Path, machine: str = "") -> str:
    """Prints the table, writes every drill as JSON to `path` and returns the table."""
    text = table(results)
    print(text, flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine, "drills": [r.as_dict() for r in results]},
                               indent=2) + "\n")
    return text


def machine() -> str:
    """Which machine measured: CPU model, cores, memory."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), platform.processor())
    memory_gib = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 ** 2
    return f"{cpu}, {os.cpu_count()} cores, {memory_gib:.0f} GiB"


def report_planned(results: list[PlannedWork], path: Path, machine: str = "") -> None:
    """Prints each scenario's failed calls per API and writes them all as JSON to `path`."""
    for r in results:
        failed = ", ".join(f"{api} {a['failed']}/{a['calls']}" for api, a in sorted(r.apis.items()))
        print(f"{r.scenario} ({r.layout}, {r.seconds} s), failed/calls: {failed}", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine, "scenarios": [r.as_dict() for r in results]},
                               indent=2) + "\n")


def chart(results: list[Failover], path: Path, machine: str = "") -> None:
    """One panel per layout and fault kind: each column's distribution over the drills (PNG);
    with probed APIs, each API's outage likewise beside it (PATH-apis.png)."""
    boxes(results, measured(results), lambda r, c: r.seconds.get(c), path,
          "seconds from the fault", "Failover", machine)
    apis = probed_apis(results)
    if apis:
        boxes(results, apis, lambda r, api: r.apis.get(api, {}).get("outage"),
              path.with_name(f"{path.stem}-apis{path.suffix}"),
              "outage, seconds from the fault", "Every API's outage", machine)


def boxes(results: list[Failover], columns: list[str], value, path: Path, ylabel: str,
          title: str, machine: str) -> None:
    """A panel per (layout, fault kind), a box and the points per column: `value(drill,
    column)`, None when missing."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layouts = sorted({r.layout for r in results})
    kinds = list(dict.fromkeys(r.kind for r in results))
    figure, axes = plt.subplots(len(layouts), len(kinds), squeeze=False, sharey=True,
                                figsize=(max(4.2, 0.33 * len(columns)) * len(kinds),
                                         3.4 * len(layouts)))
    for row, layout in enumerate(layouts):
        for col, kind in enumerate(kinds):
            members = [r for r in results if r.layout == layout and r.kind == kind]
            values = [[v for v in (value(m, c) for m in members) if v is not None]
                      for c in columns]
            ax = axes[row][col]
            ax.boxplot([v or [float("nan")] for v in values], showfliers=False)
            for index, column in enumerate(values, start=1):
                ax.scatter([index] * len(column), column, s=9, alpha=0.6, zorder=3)
            ax.set_xticks(range(1, len(columns) + 1), [c.replace("_", "\n") for c in columns],
                          fontsize=7, rotation=35)
            ax.set_title(f"{layout} layout, {kind} ({len(members)} drills)", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
            if col == 0:
                ax.set_ylabel(ylabel)
    profiles = ", ".join(sorted({r.profile for r in results}))
    figure.suptitle(f"{title}, profile {profiles}" + (f"\n{machine}" if machine else ""),
                    fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
