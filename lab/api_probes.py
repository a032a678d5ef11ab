"""Every OpenStack API at the VIP's name, called the way a user's program calls it: one
keystoneauth session, authenticated once, each call with a short timeout and no retry.

Per API a read (a list of one) and a backend call: a small write that makes and deletes one
thing, so it passes only when the API, keystone's token check and the database behind it all
answer; for heat, a template validated by heat-engine (an RPC round trip through the broker: a
stack create takes the lab's one engine worker 1-2 s, over the call's timeout). Horizon is its
login page. `ServerProbe` asks nova for servers (the fake driver) and follows each to
ACTIVE or ERROR, for the servers requested right before and right after a fault.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Callable, Optional

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

CALL_TIMEOUT = 2.0
READ_INTERVAL = 0.5
BACKEND_INTERVAL = 1.0
PREFIX = "osha-probe"
COMPUTE_MICROVERSION = {"OpenStack-API-Version": "compute 2.37"}
PLACEMENT_MICROVERSION = {"OpenStack-API-Version": "placement 1.7"}


class CallFailed(Exception):
    pass


def name() -> str:
    return f"{PREFIX}-{uuid.uuid4().hex[:10]}"


class Cloud:
    """The admin's session and the public endpoint of each service type, read once."""

    def __init__(self, auth_url: str, user: str, project: str, password: str, region: str,
                 ca_file: Optional[str]):
        auth = v3.Password(auth_url=auth_url, username=user, password=password,
                           project_name=project, user_domain_name="Default",
                           project_domain_name="Default")
        # The token is fetched here with the default patience: the probes start on a healthy
        # cloud; from then on every call has CALL_TIMEOUT and no retry. With TLS, every answer
        # is verified against the stack's CA.
        self.session = ks_session.Session(auth=auth, verify=ca_file or True)
        self.token = self.session.get_token()
        self.region = region
        self.urls: dict[str, str] = {}

    def url(self, service_type: str) -> str:
        if service_type not in self.urls:
            self.urls[service_type] = self.session.get_endpoint(
                service_type=service_type, interface="public", region_name=self.region).rstrip("/")
        return self.urls[service_type]

    def call(self, method: str, service_type: str, path: str, json: Optional[dict] = None,
             headers: Optional[dict] = None, ok: tuple[int, ...] = (200,)) -> dict:
        response = self.session.request(
            self.url(service_type) + path, method, json=json, headers=headers or {},
            timeout=CALL_TIMEOUT, connect_retries=0, status_code_retries=0, raise_exc=False)
        if response.status_code not in ok:
            raise CallFailed(f"{method} {path}: HTTP {response.status_code}")
        return response.json() if response.content and "json" in response.headers.get(
            "Content-Type", "") else {}


@dataclass(frozen=True)
class Api:
    """One API's probe: the catalogue service it is, its read and its backend call."""

    service: str
    read: Callable[[Cloud], None]
    backend: Callable[[Cloud], None]


def list_one(service_type: str, path: str) -> Callable[[Cloud], None]:
    return lambda cloud: cloud.call("GET", service_type, path)


def keystone_read(cloud: Cloud) -> None:
    """The session's own token validated."""
    cloud.call("GET", "identity", "/auth/tokens", headers={"X-Subject-Token": cloud.token})


def keystone_write(cloud: Cloud) -> None:
    made = cloud.call("POST", "identity", "/projects", ok=(201,),
                      json={"project": {"name": name(), "domain_id": "default"}})
    cloud.call("DELETE", "identity", f"/projects/{made['project']['id']}", ok=(204,))


def glance_write(cloud: Cloud) -> None:
    made = cloud.call("POST", "image", "/v2/images", ok=(201,), json={
        "name": name(), "disk_format": "raw", "container_format": "bare"})
    cloud.call("DELETE", "image", f"/v2/images/{made['id']}", ok=(204,))


def nova_write(cloud: Cloud) -> None:
    made = cloud.call("POST", "compute", "/flavors", json={
        "flavor": {"name": name(), "ram": 64, "vcpus": 1, "disk": 1}})
    cloud.call("DELETE", "compute", f"/flavors/{made['flavor']['id']}", ok=(202,))


def placement_write(cloud: Cloud) -> None:
    """A resource provider, created and deleted. Not a custom resource class: placement numbers
    those itself, and a create racing another (one whose caller had timed out, still running)
    loses the number and is answered 204 "already exists" without being made."""
    provider = str(uuid.uuid4())
    cloud.call("POST", "placement", "/resource_providers", headers=PLACEMENT_MICROVERSION,
               ok=(201,), json={"name": name(), "uuid": provider})
    cloud.call("DELETE", "placement", f"/resource_providers/{provider}",
               headers=PLACEMENT_MICROVERSION, ok=(204,))


def neutron_write(cloud: Cloud) -> None:
    made = cloud.call("POST", "network", "/v2.0/security-groups", ok=(201,),
                      json={"security_group": {"name": name()}})
    cloud.call("DELETE", "network", f"/v2.0/security-groups/{made['security_group']['id']}",
               ok=(204,))


def sweep_security_groups(cloud: Cloud) -> None:
    """The probe's security groups whose delete failed during an outage, deleted (they count
    against the project's quota)."""
    listed = cloud.call("GET", "network", "/v2.0/security-groups?fields=id&fields=name")
    for group in listed["security_groups"]:
        if group["name"].startswith(PREFIX):
            cloud.call("DELETE", "network", f"/v2.0/security-groups/{group['id']}", ok=(204, 404))


def cinder_write(cloud: Cloud) -> None:
    made = cloud.call("POST", "volumev3", "/types", json={"volume_type": {"name": name()}})
    cloud.call("DELETE", "volumev3", f"/types/{made['volume_type']['id']}", ok=(202,))


def heat_validate(cloud: Cloud) -> None:
    cloud.call("POST", "orchestration", "/validate",
               json={"template": {"heat_template_version": "2018-08-31"}})


APIS = (
    Api("keystone", keystone_read, keystone_write),
    Api("glance-api", list_one("image", "/v2/images?limit=1"), glance_write),
    Api("nova-api", list_one("compute", "/servers?limit=1"), nova_write),
    Api("placement", list_one("placement", "/resource_providers"), placement_write),
    Api("neutron", list_one("network", "/v2.0/networks?limit=1"), neutron_write),
    Api("cinder", list_one("volumev3", "/volumes?limit=1"), cinder_write),
    Api("heat", list_one("orchestration", "/stacks?limit=1"), heat_validate),
)


def horizon_read(cloud: Cloud, url: str) -> None:
    """Horizon's login page: no token, but the same session and timeout."""
    response = cloud.session.request(url, "GET", authenticated=False, timeout=CALL_TIMEOUT,
                                     connect_retries=0, raise_exc=False)
    if response.status_code != 200 or 'name="password"' not in response.text:
        raise CallFailed(f"GET {url}: HTTP {response.status_code}")


class ServerProbe:
    """Servers asked of nova (the fake driver, no network) and followed to a final state."""

    FINAL = ("ACTIVE", "ERROR")

    def __init__(self, cloud: Cloud, image: str, flavor: str):
        self.cloud = cloud
        images = cloud.call("GET", "image", f"/v2/images?name={image}")["images"]
        flavors = cloud.call("GET", "compute", "/flavors")["flavors"]
        self.image_id = images[0]["id"]
        self.flavor_id = next(f["id"] for f in flavors if f["name"] == flavor)
        self.made: list[str] = []

    def request(self) -> str:
        """One server create; its id (CallFailed when nova does not take it)."""
        made = self.cloud.call("POST", "compute", "/servers", headers=COMPUTE_MICROVERSION,
                               ok=(202,), json={"server": {
                                   "name": name(), "imageRef": self.image_id,
                                   "flavorRef": self.flavor_id, "networks": "none"}})
        self.made.append(made["server"]["id"])
        return made["server"]["id"]

    def status(self, server_id: str) -> str:
        return self.cloud.call("GET", "compute", f"/servers/{server_id}",
                               headers=COMPUTE_MICROVERSION)["server"]["status"]

    def delete_made(self) -> None:
        """Every server this probe asked for, deleted (the next drill's cloud starts clean)."""
        for server_id in self.made:
            try:
                self.cloud.call("DELETE", "compute", f"/servers/{server_id}", ok=(204, 404))
            except Exception:  # a server the cloud never made, or nova still recovering
                pass

    def follow(self, server_id: str, deadline: float, stop) -> str:
        """The server's last status seen by `deadline` (time.monotonic()) or `stop`."""
        status = "UNKNOWN"
        while time.monotonic() < deadline and not stop.is_set():
            try:
                status = self.status(server_id)
            except Exception:  # nova not answering yet: ask again
                pass
            if status in self.FINAL:
                return status
            stop.wait(1.0)
        return status
