"""OpenStack installed and bootstrapped by the stack (`openstack.install: packages`).

- `OpenStackSecrets`: every service's database and keystone password, nova's metadata secret,
  Horizon's SECRET_KEY and keystone's fernet and credential keys, generated once (pulumi-random);
  they reach nodes only on stdin.
- `OpenStackInstall`: per node, `<node>-openstack-install` (after the node's cluster-prep on
  control nodes: both use the package manager): the distribution's packages, every config file,
  keystone's keys; nothing started.
- `OpenStackBootstrap`: once, `openstack-bootstrap` on the first control node after the
  Pacemaker layout (databases, migrations, keystone's bootstrap and catalogue at the VIP), then
  `<node>-openstack-start` on every node (compute nodes after every control node).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional
from urllib.parse import quote

import pulumi
import pulumi_random as random

import openstack_packages
from catalogue import SERVICES, base_url, browser_url, by_name, endpoints
from components.block_storage import ceph_keys
from components.credentials import Credentials, stdin_lines
from components.cluster_units import DATABASES_MADE, Restart, merged, volume_service
from components.node import ClusterNode, node_apis
from components.openstack_config import (KEY_INDEXES, KEY_REPOSITORIES, STARTED_MARKER, NodePlan,
                                         key_name, node_plan, repoint_edits)
from components.rolling_restart import PENDING_RESTARTS
from components.templating import render, shell_quote
from components.tls import CA_FILE
from settings import Node, Settings


def service_passwords(services: dict[str, bool]) -> list[str]:
    """The services' own passwords: each database user's and keystone user's, heat's domain
    admin's."""
    names = [f"db_{user}" for user in
             dict.fromkeys(d.user for d in openstack_packages.databases(services))]
    names += list(dict.fromkeys(f"ks_{k.user}" for k in
                                openstack_packages.keystone_services(services) if k.user))
    if services.get("heat"):
        names.append("ks_heat_domain_admin")
    return names


@dataclass
class OpenStackSecretsArgs:
    settings: Settings
    credentials: Credentials


class OpenStackSecrets(pulumi.ComponentResource):
    """`values`: every secret a step may ask for, by the name it asks for it."""

    def __init__(self, name: str, args: OpenStackSecretsArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("openstack-ha:index:OpenStackSecrets", name, None, opts)
        s, credentials = args.settings, args.credentials
        child = pulumi.ResourceOptions(parent=self)
        services = s.services
        # [A-Za-z0-9]: these go into database URLs and oslo.config files unquoted.
        passwords = service_passwords(services)
        if services.get("nova-api"):
            passwords.append("metadata_secret")
        if services.get("horizon"):
            passwords.append("horizon_secret_key")
        self.values: dict[str, pulumi.Output] = {
            key: random.RandomPassword(f"openstack-{key.replace('_', '-')}", length=32,
                                       special=False, opts=child).result
            for key in passwords}
        if services.get("keystone"):
            for repository in KEY_REPOSITORIES:
                for index in KEY_INDEXES:
                    key = random.RandomBytes(f"keystone-{repository}-key-{index}", length=32,
                                             opts=child)
                    # Fernet's encoding: URL-safe base64 of 32 random bytes.
                    self.values[key_name(repository, index)] = key.base64.apply(
                        lambda text: text.replace("+", "-").replace("/", "_"))
        # In the transport URL: quoted, so a given password may hold any character.
        self.values["broker"] = credentials.broker_password.apply(lambda p: quote(p, safe=""))
        self.values["mysql_root"] = credentials.mysql_root_password
        if credentials.keystone_admin_password is not None:
            self.values["keystone_admin"] = credentials.keystone_admin_password
        self.values.update(ceph_keys(s, self))
        self.register_outputs({})

    def bundle(self, names: list[str]) -> pulumi.Output[str]:
        return stdin_lines({n: self.values[n] for n in names})


@dataclass
class OpenStackInstallArgs:
    settings: Settings
    controls: list[ClusterNode]
    computes: list[ClusterNode]
    secrets: OpenStackSecrets
    # Per control node, the step that must finish first there (its cluster-prep: both use the
    # package manager).
    after: dict[str, pulumi.Resource]


def install_restarts(plan: NodePlan, repoint: list[Restart], settings: Settings) -> list[Restart]:
    """Who re-reads each file the install may change: its own files, keystone's key
    repositories and the repoint's files (its edits run here too), merged by path."""
    keystone_units = tuple(openstack_packages.service_units("keystone", settings.image.os_family))
    keys = [Restart(f"/etc/keystone/{r}-keys", keystone_units, ())
            for r in KEY_REPOSITORIES] if plan.keystone_keys else []
    return merged([*plan.restarts, *keys, *repoint])


def install_script(settings: Settings, node: Node, plan: NodePlan) -> str:
    edits, repoint = repoint_edits(settings, node)
    return render("openstack-install.sh.j2", settings=settings, node=node, plan=plan,
                  edits=edits, restarts=install_restarts(plan, repoint, settings),
                  pending_restarts=PENDING_RESTARTS, started_marker=STARTED_MARKER)


class OpenStackInstall(pulumi.ComponentResource):
    """`installed`: each node's install step, `plans`: what it puts on the node, by node name."""

    def __init__(self, name: str, args: OpenStackInstallArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("openstack-ha:index:OpenStackInstall", name, None, opts)
        s = args.settings
        self.installed: dict[str, pulumi.Resource] = {}
        self.plans: dict[str, NodePlan] = {}
        for node in args.controls + args.computes:
            plan = self.plans[node.spec.name] = node_plan(s, node.spec)
            self.installed[node.spec.name] = node.step(
                f"{node.spec.name}-openstack-install", parent=self,
                depends_on=[args.after[node.spec.name]] if node.spec.name in args.after else [],
                create=install_script(s, node.spec, plan),
                stdin=args.secrets.bundle(plan.secrets))
        self.register_outputs({"nodes": list(self.installed)})


@dataclass
class OpenStackBootstrapArgs:
    settings: Settings
    controls: list[ClusterNode]
    computes: list[ClusterNode]
    secrets: OpenStackSecrets
    install: OpenStackInstall
    # The bootstrap waits for these: the Pacemaker layout (MySQL, the broker, the VIP), HAProxy.
    depends_on: list[pulumi.Resource]


def identity_url(settings: Settings) -> str:
    return base_url(by_name("keystone"), settings.vip_fqdn, settings.tls_enabled) + "/v3"


def bootstrap_plans(settings: Settings) -> tuple[dict, dict]:
    """(databases plan, catalogue plan): the JSON the bootstrap's Python steps take."""
    s = settings
    cafile = CA_FILE if s.tls_enabled else None
    databases = {"host": s.vip_fqdn, "ssl_ca": cafile,
                 "databases": [[d.name, d.user] for d in openstack_packages.databases(s.services)]}
    keystone = openstack_packages.keystone_services(s.services)
    types = {service.name: service.service_type for service in SERVICES}
    catalogue = {
        "auth_url": identity_url(s), "region": s.keystone.region,
        "admin_user": s.keystone.admin_user, "admin_project": s.keystone.admin_project,
        "cafile": cafile, "users": list(dict.fromkeys(k.user for k in keystone if k.user)),
        "services": [[types[k.service], k.name] for k in keystone],
        "endpoints": [list(row) for row in endpoints(s.services, s.vip_fqdn, s.tls_enabled)],
        "heat": bool(s.services.get("heat"))}
    return databases, catalogue


def bootstrap_secrets(settings: Settings) -> list[str]:
    return sorted(["mysql_root", "keystone_admin", *service_passwords(settings.services)])


class OpenStackBootstrap(pulumi.ComponentResource):
    """`bootstrap`: the once-per-cluster step; `started`: every node's start step."""

    def __init__(self, name: str, args: OpenStackBootstrapArgs,
                 opts: pulumi.ResourceOptions = None):
        super().__init__("openstack-ha:index:OpenStackBootstrap", name, None, opts)
        s = args.settings
        first = args.controls[0]
        databases, catalogue = bootstrap_plans(s)
        family = s.image.os_family
        # memcached too: keystone's cache.
        keystone_units = [*openstack_packages.data()["control"]["common_units"][family],
                          *openstack_packages.service_units("keystone", family)]
        self.bootstrap = first.step(
            "openstack-bootstrap", parent=self,
            depends_on=[*args.depends_on, *args.install.installed.values()],
            create=render(
                "openstack-bootstrap.sh.j2", settings=s, services=s.services,
                databases_plan=json.dumps(databases), catalogue_plan=json.dumps(catalogue),
                keystone_units=keystone_units, identity_url=identity_url(s),
                needs_databases=list(volume_service(s)), databases_made=DATABASES_MADE),
            stdin=args.secrets.bundle(bootstrap_secrets(s)))
        # One node after the other: started together, three nodes' services on a small
        # machine outlasted systemd's start timeout.
        self.started_on: dict[str, pulumi.Resource] = {}
        previous: list[pulumi.Resource] = []
        for node in args.controls + args.computes:
            plan = args.install.plans[node.spec.name]
            previous = [node.step(
                f"{node.spec.name}-openstack-start", parent=self,
                depends_on=[self.bootstrap, *previous],
                create=render("openstack-start.sh.j2", run_units=plan.run_units,
                              idle_units=plan.idle_units, started_marker=STARTED_MARKER,
                              apis=node_apis(s, node.spec)))]
            self.started_on[node.spec.name] = previous[0]
        self.started = list(self.started_on.values())
        self.register_outputs({"identity_url": identity_url(s)})


def admin_openrc(settings: Settings, password: pulumi.Output[str]) -> pulumi.Output[str]:
    """An openrc for the admin at the VIP (a secret output)."""
    s = settings
    lines = {"OS_AUTH_URL": identity_url(s), "OS_IDENTITY_API_VERSION": "3",
             "OS_USERNAME": s.keystone.admin_user, "OS_PROJECT_NAME": s.keystone.admin_project,
             "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
             "OS_REGION_NAME": s.keystone.region, "OS_INTERFACE": "public"}
    if s.tls_enabled:
        lines["OS_CACERT"] = CA_FILE
    return pulumi.Output.secret(password.apply(lambda p: "".join(
        f"export {k}={shell_quote(v)}\n" for k, v in {**lines, "OS_PASSWORD": p}.items())))


def dashboard_url(settings: Settings) -> Optional[str]:
    if not settings.services.get("horizon"):
        return None
    path = "/dashboard" if settings.image.os_family == "rhel" else "/"
    return browser_url(by_name("horizon"), settings.vip_fqdn, settings.tls_enabled) + path
