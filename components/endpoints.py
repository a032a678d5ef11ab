"""Every OpenStack config file and keystone endpoint repointed at the VIP.

The file edits are data (templates/repoint.yaml), applied with crudini on every node; database
and broker URLs keep their credentials on the node: only host and port are swapped. Keystone's
endpoints are fixed once per cluster, from the first control node, after HAProxy serves the VIP.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import pulumi
import pulumi_command as command

import data_schema
from catalogue import SERVICES, base_url, by_name, endpoints
from components.cluster_units import Restart, resource_of_unit
from components.node import ClusterNode
from components.rolling_restart import PENDING_RESTARTS
from components.templating import TEMPLATES, render
from components.tls import CA_FILE
from settings import Node, Settings

BROKER_PORTS = {False: 5672, True: 5671}


@dataclass(frozen=True)
class Edit:
    """One key of one file, as the repoint script applies it."""

    path: str
    section: str
    key: str
    kind: str  # set: the value; url: host[:port] swapped into the current URL
    value: str
    query: str = ""
    if_present: bool = False


def load_rules() -> list[dict[str, Any]]:
    """templates/repoint.yaml's files, with the shared edit lists flattened in (checked)."""
    files = data_schema.load(data_schema.RepointRules, TEMPLATES / "repoint.yaml")["files"]
    for entry in files:
        flat = []
        for edit in entry["edits"]:
            flat += edit if isinstance(edit, list) else [edit]
        entry["edits"] = flat
    return files


def value_context(settings: Settings, node: Node) -> dict[str, Any]:
    """What edit templates may name."""
    host = settings.vip_fqdn
    tls_on = settings.tls_enabled
    urls = {s.name: base_url(s, host, tls_on) for s in SERVICES}
    admin = "keystone-admin" if settings.services.get("keystone-admin") else "keystone"
    return dict(host=host, vip=str(settings.vip), node_ip=str(node.ip), url=urls,
                identity_admin_url=base_url(by_name(admin), host, tls_on), ca_file=CA_FILE,
                broker_port=BROKER_PORTS[tls_on], ssl_ca_query=f"ssl_ca={CA_FILE}")


def _applies(rule: dict[str, Any], roles: list[str], settings: Settings, node: Node) -> bool:
    facts = {"tls": settings.tls_enabled, "no_tls": not settings.tls_enabled,
             "rabbitmq": settings.cluster.broker == "rabbitmq",
             "qpid": settings.cluster.broker == "qpid"}
    when = rule.get("when", [])
    when = [when] if isinstance(when, str) else when
    return node.role in rule.get("roles", roles) and all(facts[c] for c in when)


def node_edits(settings: Settings, node: Node) -> list[Edit]:
    """Every edit for `node`, values filled in."""
    context = value_context(settings, node)
    edits = []
    for entry in load_rules():
        if node.role not in entry["roles"]:
            continue
        for rule in entry["edits"]:
            if not _applies(rule, entry["roles"], settings, node):
                continue
            query = rule.get("tls_query", "") if settings.tls_enabled else ""
            edits.append(Edit(entry["path"], rule["section"], rule["key"], rule["kind"],
                              rule["value"].format(**context), query.format(**context),
                              bool(rule.get("if_present"))))
    return edits


def node_restarts(settings: Settings, node: Node) -> list[Restart]:
    """Per file: its units, the Pacemaker-managed ones as their resource ids."""
    resource_of = resource_of_unit(settings, node.role)
    return [Restart.of(entry["path"], entry["units"][settings.image.os_family], resource_of)
            for entry in load_rules() if node.role in entry["roles"]]


@dataclass
class EndpointsArgs:
    settings: Settings
    controls: list[ClusterNode]
    computes: list[ClusterNode]
    # The repoint waits for these (the cluster layout, HAProxy serving the VIP, the services
    # started).
    depends_on: list[pulumi.Resource]
    # Keystone's admin password (the stack's or the keystoneAdminPassword secret); None: the
    # step sources keystone.openrcFile.
    admin_password: Optional[pulumi.Output] = None


class Endpoints(pulumi.ComponentResource):
    """`repointed`: each node's repoint step, by node name; `keystone`: the one catalogue step."""

    def __init__(self, name: str, args: EndpointsArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("openstack-ha:index:Endpoints", name, None, opts)
        s = args.settings
        self.repointed: dict[str, command.remote.Command] = {}
        for node in args.controls + args.computes:
            context = dict(settings=s, node=node.spec, edits=node_edits(s, node.spec),
                           restarts=node_restarts(s, node.spec))
            # What the repoint changes restarts in the rolling restart; its undo (a destroy)
            # restarts at once.
            self.repointed[node.spec.name] = node.step(
                f"{node.spec.name}-repoint", parent=self, depends_on=args.depends_on,
                create=render("repoint.sh.j2", pending_restarts=PENDING_RESTARTS, **context),
                delete=render("repoint-undo.sh.j2", **context))
        first = args.controls[0]
        password = args.admin_password
        self.keystone = first.step(
            "keystone-endpoints", parent=self,
            depends_on=[*args.depends_on, *self.repointed.values()],
            create=render("keystone-endpoints.sh.j2", settings=s, ca_file=CA_FILE,
                          auth_url=base_url(by_name("keystone"), s.vip_fqdn, s.tls_enabled)
                          + "/v3",
                          use_password=password is not None,
                          endpoints=endpoints(s.services, s.vip_fqdn, s.tls_enabled)),
            stdin=pulumi.Output.secret(password.apply(lambda p: f"{p}\n"))
            if password is not None else None)
        self.register_outputs({"nodes": [n.spec.name for n in args.controls + args.computes]})
