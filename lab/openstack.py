"""The cloud the stack installed, used as its users would: the real `openstack` client (Debian's
python3-openstackclient on the machine running the lab), at the VIP's name only, from the lab
network.

Each check is one thing a user does and what must come back: a token; a catalogue that names the
VIP's name only; an image uploaded and downloaded byte-identical; a network and a subnet; a
flavor; a server (`--nic none`, nova's fake driver) ACTIVE; cinder's schedulers; with a volume
service, a volume made, extended, snapshotted, cloned from the snapshot and from the kept image,
then deleted (in a drill: a volume made and deleted, and after the fault, the volume made before
it still there and snapshotted); heat's stack list; Horizon's login page through HAProxy. `CloudChecks.until_all_pass` runs them side by side
until each has passed once and says when each first did, so the drill can time them from a fault.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import urlsplit

from catalogue import base_url, by_name, endpoints
from lab import api_probes
from lab.hypervisor import in_namespace

KEYSTONE_PORT = 5000
ADMIN_USER = "admin"
ADMIN_PROJECT = "admin"
IMAGE_BYTES = 1024 * 1024
# One call: a slow answer during a failover is still an answer; a hung one is retried.
CALL_TIMEOUT = 120
RETRY_SECONDS = 2
# The fake driver's servers are ACTIVE within seconds of the request; the client's own start
# under the lab's load takes up to half a minute.
SERVER_SECONDS = 90
# Names of what the checks create: `lab-<check>-<run>-<n>`; the flavor and the image the server
# check boots from are made once per lab.
FLAVOR = "lab-tiny"
SUBNET_RANGE = "192.168.77.0/24"
# A volume's state settles within seconds on the lab's Ceph (one from an image: about 30 s).
VOLUME_SECONDS = 180


class CheckFailed(Exception):
    pass


def admin_password(lab) -> str:
    """The keystone admin's password: the stack file's secret, or the one the stack generated
    (the render keeps every generated secret under DIR/secrets/)."""
    given = lab.settings.keystone_admin_password
    if given is not None:
        return given.get_secret_value()
    return (lab.rendered / "secrets" / "keystone-admin-password").read_text()


@dataclass
class Cloud:
    """The admin's view of the cloud, at the VIP's name."""

    fqdn: str
    password: str
    region: str
    services: dict[str, bool]
    # The stack's CA the client verifies the APIs by; None: no TLS.
    ca_file: Optional[Path]
    # cinder-volume runs (blockStorage has a backend).
    volumes: bool = False

    @classmethod
    def of(cls, lab) -> "Cloud":
        s = lab.settings
        return cls(s.vip_fqdn, admin_password(lab), s.keystone.region, s.services, lab.ca_file,
                   s.block_storage.enabled)

    @property
    def tls(self) -> bool:
        return self.ca_file is not None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def environment(self) -> dict[str, str]:
        return {**os.environ,
                "OS_AUTH_URL": f"{self.scheme}://{self.fqdn}:{KEYSTONE_PORT}/v3",
                "OS_IDENTITY_API_VERSION": "3", "OS_INTERFACE": "public",
                "OS_USERNAME": ADMIN_USER, "OS_PROJECT_NAME": ADMIN_PROJECT,
                "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
                "OS_REGION_NAME": self.region, "OS_PASSWORD": self.password,
                **({"OS_CACERT": str(self.ca_file)} if self.ca_file else {})}

    def run(self, *args: str, timeout: float = CALL_TIMEOUT) -> str:
        """`openstack ARGS` in the lab network; its stdout, or CheckFailed with its error."""
        try:
            result = subprocess.run(in_namespace("openstack", *args), capture_output=True,
                                    text=True, timeout=timeout, env=self.environment())
        except subprocess.TimeoutExpired:
            raise CheckFailed(f"openstack {args[0]} {args[1]}: no answer in {timeout:.0f}s")
        if result.returncode != 0:
            raise CheckFailed(f"openstack {' '.join(args[:2])}: {result.stderr.strip()[-300:]}")
        return result.stdout

    def json(self, *args: str, timeout: float = CALL_TIMEOUT):
        return json.loads(self.run(*args, "-f", "json", timeout=timeout))

    def horizon_url(self, path: str) -> str:
        return base_url(by_name("horizon"), self.fqdn, self.tls) + path

    def horizon_page(self, path: str) -> str:
        """A GET of Horizon's `path` at the VIP's name from the lab network: the body, or
        CheckFailed."""
        verify = ("--cacert", str(self.ca_file)) if self.ca_file else ()
        result = subprocess.run(in_namespace("curl", "-fsS", "--max-time", "30", *verify,
                                             self.horizon_url(path)),
                                capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise CheckFailed(f"GET {path}: {result.stderr.strip()}")
        return result.stdout

    # -- what a user does ----------------------------------------------------------------------
    def token(self) -> None:
        if not self.run("token", "issue", "-f", "value", "-c", "id").strip():
            raise CheckFailed("token issue printed no token")

    def catalogue(self) -> None:
        """Exactly the stack's endpoints, every one at the VIP's name."""
        listed = self.json("endpoint", "list")
        wrong = sorted({e["URL"] for e in listed if urlsplit(e["URL"]).hostname != self.fqdn})
        if wrong:
            raise CheckFailed(f"endpoints not at {self.fqdn}: {wrong}")
        found = sorted((e["Service Type"], e["Interface"], e["URL"]) for e in listed)
        wanted = sorted(endpoints(self.services, self.fqdn, self.tls))
        if found != wanted:
            raise CheckFailed(f"catalogue {found} is not the stack's {wanted}")

    def upload(self, name: str) -> bytes:
        """A generated image uploaded as `name`; its bytes."""
        data = secrets.token_bytes(IMAGE_BYTES)
        with tempfile.TemporaryDirectory(prefix="osha-lab-image-") as work:
            path = Path(work) / f"{name}.raw"
            path.write_bytes(data)
            self.run("image", "create", name, "--file", str(path), "--disk-format", "raw",
                     "--container-format", "bare", "-f", "value", "-c", "id")
        # The client prints the image as created, before its data went up: ask again.
        status = self.run("image", "show", name, "-f", "value", "-c", "status")
        if status.strip() != "active":
            raise CheckFailed(f"image {name}: {status.strip()}")
        return data

    def download(self, name: str, data: bytes) -> None:
        with tempfile.TemporaryDirectory(prefix="osha-lab-image-") as work:
            path = Path(work) / f"{name}.back"
            self.run("image", "save", "--file", str(path), name)
            if path.read_bytes() != data:
                raise CheckFailed(f"image {name}: the download differs from the upload")

    def network(self, name: str) -> None:
        self.run("network", "create", name, "-f", "value", "-c", "id")
        self.run("subnet", "create", f"{name}-subnet", "--network", name, "--subnet-range",
                 SUBNET_RANGE, "-f", "value", "-c", "id")

    def flavor(self, name: str) -> None:
        self.run("flavor", "create", name, "--ram", "64", "--disk", "1", "--vcpus", "1",
                 "-f", "value", "-c", "id")

    def server(self, name: str, image: str) -> None:
        """A server from `image` ACTIVE within SERVER_SECONDS; one that is not (ERROR, or still
        building: a request the failover lost stays in BUILD) is deleted, and the check fails."""
        try:
            status = self.run("--os-compute-api-version", "2.37", "server", "create", name,
                              "--image", image, "--flavor", FLAVOR, "--nic", "none", "--wait",
                              "-f", "value", "-c", "status", timeout=SERVER_SECONDS).strip()
            if status != "ACTIVE":
                raise CheckFailed(f"server {name}: {status}")
        except CheckFailed:
            try:
                self.run("server", "delete", name)
            except CheckFailed:
                pass  # never created, or nova does not answer yet: the next try has its own name
            raise

    def volume_services(self, everyone: int) -> None:
        """At least `everyone` cinder schedulers up (all of them before a fault, one after)."""
        listed = self.json("volume", "service", "list")
        up = [s["Host"] for s in listed if s["Binary"] == "cinder-scheduler" and s["State"] == "up"]
        if len(up) < everyone:
            raise CheckFailed(f"cinder-scheduler up on {up}")

    def settled(self, kind: str, name: str, wanted: str = "available") -> None:
        """`volume` or `volume snapshot` `name` reaches `wanted` within VOLUME_SECONDS; gone
        when `wanted` is None. CheckFailed on an error state or the deadline."""
        deadline = time.monotonic() + VOLUME_SECONDS
        status = "?"
        while time.monotonic() < deadline:
            listed = self.json(*kind.split(), "list", "--name", name)
            if not listed:
                if wanted is None:
                    return
                status = "absent"
            else:
                status = listed[0]["Status"]
                if status == wanted:
                    return
                if status.startswith("error"):
                    break
            time.sleep(1)
        raise CheckFailed(f"{kind} {name}: {status}, not {wanted or 'deleted'}")

    def volume(self, name: str, *source: str, size: int = 1) -> None:
        self.run("volume", "create", "--size", str(size), *source, name, "-f", "value", "-c",
                 "id")
        self.settled("volume", name)

    def volume_lifecycle(self, name: str, image: str) -> None:
        """A volume available, extended, snapshotted; a volume from the snapshot and one from
        `image`; every one deleted."""
        snapshot, clone, imaged = f"{name}-snap", f"{name}-clone", f"{name}-image"
        self.volume(name)
        self.run("volume", "set", "--size", "2", name)
        self.settled("volume", name)
        self.run("volume", "snapshot", "create", "--volume", name, snapshot, "-f", "value",
                 "-c", "id")
        self.settled("volume snapshot", snapshot)
        self.volume(clone, "--snapshot", snapshot, size=2)
        self.volume(imaged, "--image", image)
        self.run("volume", "delete", clone, imaged)
        self.settled("volume", clone, None)
        self.run("volume", "snapshot", "delete", snapshot)
        self.settled("volume snapshot", snapshot, None)
        self.run("volume", "delete", name)
        self.settled("volume", name, None)
        self.settled("volume", imaged, None)

    def volume_made_and_deleted(self, name: str) -> None:
        """A volume available, then deleted: cinder's API, a scheduler and cinder-volume serve."""
        self.volume(name)
        self.run("volume", "delete", name)
        self.settled("volume", name, None)

    def volume_snapshotted(self, volume: str, snapshot: str) -> None:
        """Volume `volume` is still available, and a snapshot of it becomes available (a new
        snapshot each try: a request lost in a failover leaves only its own snapshot behind)."""
        status = self.json("volume", "show", volume)["status"]
        if status != "available":
            raise CheckFailed(f"volume {volume}: {status}")
        self.run("volume", "snapshot", "create", "--volume", volume, snapshot, "-f", "value",
                 "-c", "id")
        self.settled("volume snapshot", snapshot)
        self.run("volume", "snapshot", "delete", snapshot)

    def stacks(self) -> None:
        self.run("stack", "list", "-f", "value")

    def horizon(self) -> None:
        page = self.horizon_page("/auth/login/")
        if 'name="password"' not in page:
            raise CheckFailed("Horizon's login page has no password field")

    def ensure_flavor(self) -> None:
        if FLAVOR not in self.run("flavor", "list", "-f", "value", "-c", "Name").split():
            self.flavor(FLAVOR)

    def lift_quotas(self) -> None:
        """Every drill makes servers, networks and (the prober) security groups in the admin's
        project (nova's default quota is ten instances, neutron's ten security groups and a
        hundred rules). A probe whose call timed out leaves its group, with two rules, until the
        prober's sweep at its end: within one long drill those filled the rules' quota and every
        later create was refused (409). Each drill keeps a volume (cinder's default: ten)."""
        volumes = ("--volumes", "-1", "--snapshots", "-1", "--gigabytes", "-1") \
            if self.volumes else ()
        self.run("quota", "set", "--instances", "-1", "--cores", "-1", "--ram", "-1",
                 "--networks", "-1", "--subnets", "-1", "--secgroups", "-1",
                 "--secgroup-rules", "-1", *volumes, ADMIN_PROJECT)


class CloudChecks:
    """Every check, with what they need made first: the server's flavor, and an image uploaded
    now that a later round downloads (across a failover)."""

    def __init__(self, cloud: Cloud, schedulers: int):
        self.cloud = cloud
        self.schedulers = schedulers
        self.run_id = secrets.token_hex(3)
        self.attempt = 0
        self.lock = threading.Lock()
        self.kept: Optional[tuple[str, bytes]] = None
        self.kept_volume: Optional[str] = None

    def name(self, what: str) -> str:
        with self.lock:
            self.attempt += 1
            return f"lab-{what}-{self.run_id}-{self.attempt}"

    def keep_for_the_fault(self) -> None:
        """Made right before a fault: the image the next round's `image_kept` downloads, and the
        volume `volume_kept` snapshots."""
        name = self.name("kept")
        self.kept = (name, self.cloud.upload(name))
        if self.cloud.volumes:
            volume = self.name("kept-volume")
            self.cloud.volume(volume)
            self.kept_volume = volume

    def checks(self, after_fault: bool, lifecycle: bool) -> dict[str, Callable[[], None]]:
        """Each check by its column. With `lifecycle` the volume check is the whole lifecycle;
        without, a volume made and deleted: every call of the lifecycle is served by the same
        cinder-volume, so a drill learns from it only that one survived, at five times the
        client's calls."""
        c = self.cloud
        found: dict[str, Callable[[], None]] = {
            "token": c.token,
            "catalog": c.catalogue,
            "image": lambda: (lambda n: c.download(n, c.upload(n)))(self.name("image")),
            "network": lambda: c.network(self.name("net")),
            "flavor": lambda: c.flavor(self.name("flavor")),
            "server": lambda: c.server(self.name("server"), self.kept[0]),
            "volumes": lambda: c.volume_services(1 if after_fault else self.schedulers),
            "stacks": c.stacks,
            "horizon": c.horizon,
        }
        if c.volumes:
            found["volume"] = (
                (lambda: c.volume_lifecycle(self.name("volume"), self.kept[0])) if lifecycle
                else (lambda: c.volume_made_and_deleted(self.name("volume"))))
        if after_fault:
            found["image_kept"] = lambda: c.download(*self.kept)
            if c.volumes:
                found["volume_kept"] = lambda: c.volume_snapshotted(
                    self.kept_volume, self.name("kept-snap"))
        return found

    def until_all_pass(self, since: float, deadline_seconds: float, after_fault: bool = False,
                       lifecycle: bool = True) -> tuple[dict[str, Optional[float]],
                                                        dict[str, str]]:
        """Every check retried until it passes once, side by side: ({check: seconds from
        `since` (time.monotonic()) to its first pass, None when it never did}, {check: its
        last error}). The first call makes the server's flavor and the kept image first."""
        if self.kept is None:
            _, error = retry(self.prepare, since, deadline_seconds)
            if error:
                return {}, {"prepare": error}
        checks = self.checks(after_fault, lifecycle)
        with ThreadPoolExecutor(len(checks)) as pool:
            outcomes = {name: pool.submit(retry, check, since, deadline_seconds)
                        for name, check in checks.items()}
        passed = {name: outcome.result()[0] for name, outcome in outcomes.items()}
        errors = {name: outcome.result()[1] for name, outcome in outcomes.items()
                  if outcome.result()[1]}
        return passed, errors

    def prepare(self) -> None:
        self.cloud.lift_quotas()
        self.cloud.ensure_flavor()
        self.keep_for_the_fault()


def retry(check: Callable[[], None], since: float,
          deadline_seconds: float) -> tuple[Optional[float], str]:
    """(seconds from `since` to the first time `check` passed, "") or (None, its last error)."""
    error = "not tried before the deadline"
    while time.monotonic() - since < deadline_seconds:
        try:
            check()
        except Exception as failed:  # any failure is "not yet"; the last reason is kept
            error = f"{type(failed).__name__}: {failed}"
            time.sleep(RETRY_SECONDS)
            continue
        return round(time.monotonic() - since, 2), ""
    return None, error


COLUMNS = ("token", "catalog", "image", "image_kept", "network", "flavor", "server", "volumes",
           "volume", "volume_kept",
           "stacks", "horizon")


def prober_config(checks: CloudChecks, server_seconds: float) -> dict:
    """What lab/prober.py needs to call every enabled API as the admin (lab/api_probes.py), and
    the servers it asks for: the kept image (uploaded before the fault) and the lab's flavor."""
    c = checks.cloud
    services = sorted(a.service for a in api_probes.APIS if c.services.get(a.service))
    horizon = c.services.get("horizon")
    return {"auth_url": f"{c.scheme}://{c.fqdn}:{KEYSTONE_PORT}/v3", "user": ADMIN_USER,
            "project": ADMIN_PROJECT, "password": c.password, "region": c.region,
            "services": services, "probed": [*services, *(["horizon"] if horizon else [])],
            "horizon_url": c.horizon_url("/auth/login/") if horizon else None,
            "server": {"image": checks.kept[0], "flavor": FLAVOR, "seconds": server_seconds}}


def endpoint_ids(cloud: Cloud) -> list[tuple[str, str]]:
    """(id, URL) of every endpoint keystone lists."""
    return sorted((e["ID"], e["URL"]) for e in cloud.json("endpoint", "list"))


def listed_twice(cloud: Cloud) -> dict[str, list]:
    """Keystone's users, services and endpoints that exist more than once (none, after any
    number of runs of the stack's steps)."""
    keys = {"user": lambda e: e["Name"], "service": lambda e: (e["Name"], e["Type"]),
            "endpoint": lambda e: (e["Service Name"], e["Interface"], e["Region"])}
    twice = {}
    for kind, key in keys.items():
        seen = [key(e) for e in cloud.json(kind, "list")]
        twice[kind] = sorted({k for k in seen if seen.count(k) > 1})
    return twice
