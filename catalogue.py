"""What each OpenStack release ships: the API catalogue HAProxy balances (ports from the seed era
to today) and the single-instance agents Pacemaker runs on one node.

A service is on by default while the stack's release still ships it (`added_in` ..
`removed_after`); `default_off` marks services nobody should get without asking.
The seed-era load-balancing page swapped glance's labels: glance-api is 9292, the registry 9191.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

# Releases in order.
RELEASES = (
    "havana", "icehouse", "juno", "kilo", "liberty", "mitaka", "newton", "ocata", "pike",
    "queens", "rocky", "stein", "train", "ussuri", "victoria", "wallaby", "xena", "yoga",
    "zed", "antelope", "bobcat", "caracal", "dalmatian", "epoxy", "flamingo",
)
# The single-instance agents and the last release shipping each (None: every release);
# nova-consoleauth was removed after Stein.
SINGLETONS = {"nova-consoleauth": "stein", "neutron-l2-agent": None}
# Their systemd units per OS family.
SINGLETON_UNITS = {
    "rhel": {"nova-consoleauth": "openstack-nova-consoleauth",
             "neutron-l2-agent": "neutron-openvswitch-agent"},
    "debian": {"nova-consoleauth": "nova-consoleauth",
               "neutron-l2-agent": "neutron-openvswitch-agent"},
}


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    # HTTP path answering a version document, or None for a plain TCP check.
    check_path: Optional[str]
    added_in: str = "havana"
    removed_after: Optional[str] = None
    default_off: bool = False
    # Keystone service type and endpoint path, for the endpoint repoint (None: not in keystone).
    service_type: Optional[str] = None
    endpoint_path: str = ""
    # Reached by users (HAProxy terminates TLS for it) rather than only by other services.
    public: bool = True
    # With TLS on, users come in on this port and `port` only redirects to it (Horizon).
    tls_port: Optional[int] = None
    # Browser sessions and console websockets stay on the node that started them.
    sticky: bool = False


SERVICES: tuple[Service, ...] = (
    Service("keystone", 5000, "/", service_type="identity", endpoint_path="/v3"),
    # The identity admin interface, for the releases that still listen on it.
    Service("keystone-admin", 35357, "/", removed_after="pike", endpoint_path="/v3"),
    Service("glance-api", 9292, "/", service_type="image"),
    Service("glance-registry", 9191, None, removed_after="train", public=False),
    Service("nova-api", 8774, "/", service_type="compute", endpoint_path="/v2.1"),
    Service("nova-metadata", 8775, "/", public=False),
    Service("nova-ec2", 8773, None, removed_after="liberty", default_off=True,
            service_type="ec2", endpoint_path="/services/Cloud"),
    Service("novncproxy", 6080, None, sticky=True),
    Service("placement", 8778, "/", added_in="newton", service_type="placement"),
    Service("cinder", 8776, "/", service_type="volumev3", endpoint_path="/v3/%(project_id)s"),
    Service("neutron", 9696, "/", service_type="network"),
    Service("heat", 8004, "/", service_type="orchestration",
            endpoint_path="/v1/%(project_id)s"),
    Service("heat-cfn", 8000, "/", service_type="cloudformation", endpoint_path="/v1"),
    Service("heat-cloudwatch", 8003, None, removed_after="pike"),
    Service("ceilometer", 8777, "/", removed_after="pike", service_type="metering"),
    Service("swift", 8080, "/healthcheck", service_type="object-store",
            endpoint_path="/v1/AUTH_%(project_id)s"),
    Service("horizon", 80, "/", tls_port=443, sticky=True),
)
INTERFACES = ("public", "internal", "admin")


def ships(release: str, first: str, last: Optional[str]) -> bool:
    """Whether `release` lies from `first` to `last` (None: to this day)."""
    index = RELEASES.index(release)
    return RELEASES.index(first) <= index and (last is None or index <= RELEASES.index(last))


def default_enabled(service: Service, release: str) -> bool:
    """On when the release ships the service and it is not legacy-off."""
    return ships(release, service.added_in, service.removed_after) and not service.default_off


def default_singletons(release: str) -> list[str]:
    """The single-instance agents `release` ships."""
    return [name for name, last in SINGLETONS.items() if ships(release, RELEASES[0], last)]


def by_name(name: str) -> Service:
    return next(s for s in SERVICES if s.name == name)


def enabled(services: dict[str, bool]) -> list[Service]:
    """The catalogue's services switched on, in catalogue order."""
    return [s for s in SERVICES if services.get(s.name)]


def uses_tls(service: Service, tls_enabled: bool) -> bool:
    return tls_enabled and service.public


def base_url(service: Service, host: str, tls_enabled: bool) -> str:
    """Where clients reach `service` through HAProxy: scheme, host and the port they use."""
    if uses_tls(service, tls_enabled):
        return f"https://{host}:{service.tls_port or service.port}"
    return f"http://{host}:{service.port}"


def browser_url(service: Service, host: str, tls_enabled: bool) -> str:
    """`base_url` as a browser writes it, the scheme's default port left out (Django compares a
    login's Referer with the Host header, which carries no default port)."""
    url = base_url(service, host, tls_enabled)
    return url.removesuffix(":443" if url.startswith("https:") else ":80")


def endpoints(services: dict[str, bool], host: str,
              tls_enabled: bool) -> list[tuple[str, str, str]]:
    """(service type, interface, URL) of every keystone endpoint, all at `host`.

    The identity admin interface goes to port 35357 while keystone-admin is on.
    """
    on = enabled(services)
    admin = next((s for s in on if s.name == "keystone-admin"), None)
    rows = []
    for service in on:
        if service.service_type is None:
            continue
        for interface in INTERFACES:
            target = admin if service.service_type == "identity" and interface == "admin" \
                and admin is not None else service
            rows.append((service.service_type, interface,
                         base_url(target, host, tls_enabled) + target.endpoint_path))
    return rows
