"""HAProxy on every control node: each enabled OpenStack API at the VIP, balanced over all nodes.

The config is rendered once, copied to each node with CopyToRemote, checked with `haproxy -c`
and installed; HAProxy (run by Pacemaker) reloads only when the installed file changed. Each
control node also runs HAProxy's agent (`<node>-haproxy-agent`), through which the rolling restart
and maintenance drain the node from every HAProxy (components/rolling_restart.py,
components/maintenance.py).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_command as command

from catalogue import enabled, uses_tls
from components.node import ClusterNode
from components.templating import render
from components.tls import haproxy_cert_file
from settings import NODE_STATE_DIR, Settings

CONFIG_FILE = "/etc/haproxy/haproxy.cfg"
STATS_SOCKET = "/var/lib/haproxy/stats"
STATS_PORT = 8404
# Each control node's HAProxy agent (templates/haproxy-agent.sh.j2): asked for a proxy, it answers
# "drain" while the state file lists it (the rolling restart) or the maintenance flag is there
# (components/maintenance.py), "ready" otherwise.
AGENT_PORT = 8405
AGENT_STATE = "/run/openstack-ha/haproxy-agent"
MAINTENANCE_FLAG = f"{NODE_STATE_DIR}/maintenance"
AGENT_PROGRAM = "/usr/local/lib/openstack-ha/haproxy-agent.py"
AGENT_UNIT = "openstack-ha-haproxy-agent.service"


def stats_url(settings: Settings) -> str:
    """HAProxy's stats at the VIP, as CSV: how every HAProxy sees each node's servers."""
    return f"http://{settings.vip}:{STATS_PORT}/;csv"


def haproxy_config(settings: Settings) -> str:
    """haproxy.cfg for the stack's enabled services, TLS-terminating the public ones if asked."""
    services = enabled(settings.services)
    return render(
        "haproxy.cfg.j2", settings=settings, services=services,
        nodes=settings.controls, tls_enabled=settings.tls_enabled,
        tls_services={s.name for s in services if uses_tls(s, settings.tls_enabled)},
        cert_file=haproxy_cert_file, stats_socket=STATS_SOCKET, stats_port=STATS_PORT,
        agent_port=AGENT_PORT)


def api_ports(settings: Settings) -> list[int]:
    """Every port HAProxy binds at the VIP."""
    return sorted({port for service in enabled(settings.services)
                   for port in (service.port, service.tls_port) if port})


def staged_path(settings: Settings) -> str:
    """Where CopyToRemote (logged in as the admin user, not root) leaves the config."""
    return f"/home/{settings.admin_user}/openstack-ha-haproxy.cfg"


@dataclass
class HaproxyArgs:
    settings: Settings
    controls: list[ClusterNode]
    # The copies wait for these: the Pacemaker layout and, with TLS, the certificates.
    depends_on: list[pulumi.Resource]


class Haproxy(pulumi.ComponentResource):
    """`installed` lists each control node's install step."""

    def __init__(self, name: str, args: HaproxyArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("openstack-ha:index:Haproxy", name, None, opts)
        s = args.settings
        config = haproxy_config(s)
        digest = hashlib.sha256(config.encode()).hexdigest()
        context = dict(settings=s, staged=staged_path(s), config_file=CONFIG_FILE, digest=digest)
        self.installed = []
        for node in args.controls:
            # A new digest re-copies; the install text carries the digest, so it re-runs too.
            copy = command.remote.CopyToRemote(
                f"{node.spec.name}-haproxy-config", connection=node.connection,
                source=pulumi.StringAsset(config), remote_path=staged_path(s), triggers=[digest],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[node.ready, *args.depends_on]))
            # Web-served APIs (keystone, placement, Horizon under Apache/httpd) listen on every
            # address by default; they move to the node's own, leaving the VIP's ports to HAProxy.
            listen = node.step(
                f"{node.spec.name}-api-listen", parent=self, depends_on=args.depends_on,
                create=render("api-listen.sh.j2", node=node.spec, ports=api_ports(s)),
                delete=render("api-listen-undo.sh.j2"))
            agent_context = dict(node=node.spec, agent_port=AGENT_PORT, state_file=AGENT_STATE,
                                 maintenance_flag=MAINTENANCE_FLAG, program=AGENT_PROGRAM,
                                 unit=AGENT_UNIT)
            agent = node.step(
                f"{node.spec.name}-haproxy-agent", parent=self,
                create=render("haproxy-agent.sh.j2", **agent_context),
                delete=render("haproxy-agent-remove.sh.j2", **agent_context))
            self.installed.append(node.step(
                f"{node.spec.name}-haproxy-install", parent=self,
                depends_on=[copy, listen, agent, *args.depends_on],
                create=render("haproxy-install.sh.j2", **context),
                delete=render("haproxy-uninstall.sh.j2", **context)))
        self.register_outputs({"config_sha256": digest})
