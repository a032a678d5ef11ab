"""The seed's "Securing Services": a stack CA, one certificate per service, installed on the nodes.

Keys are ECDSA P-256. Every certificate names the VIP, its DNS name and every control node (the
broker and MySQL answer on whichever node holds the VIP). Private keys reach the nodes only
through the install step's stdin.

Three steps per node, so that a new CA (`tls.caGeneration`) costs no failed call: every node
first trusts the stack CA beside the one it trusted until then (`<node>-tls-trust`), then each
control node installs the certificates the CA signed (`<node>-tls-install`), then every node
trusts the stack CA alone (`<node>-tls-trust-prune`). Clients read the CA file at each new
connection, so none of them restarts. On a stack whose CA does not change the trust steps change
nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

from catalogue import enabled, uses_tls
from components.node import ClusterNode
from components.templating import render
from settings import Settings

TLS_DIR = "/etc/openstack-ha/tls"
CA_FILE = f"{TLS_DIR}/ca.pem"
HAPROXY_CERT_DIR = "/etc/haproxy/certs"
# Ten years for the CA (the service certificates' lifetime is tls.certificateDays).
CA_HOURS = 24 * 365 * 10
# A certificate this close to its end is renewed by the `pulumi up` after a `pulumi refresh`.
EARLY_RENEWAL_HOURS = 24 * 30
BROKER_GROUPS = {"qpid": "qpidd", "rabbitmq": "rabbitmq"}
# The system trust store, so clients (the OpenStack services, the openstack CLI) accept the VIP.
TRUST_ANCHORS = {"rhel": "/etc/pki/ca-trust/source/anchors/openstack-ha-ca.pem",
                 "debian": "/usr/local/share/ca-certificates/openstack-ha-ca.crt"}
MYSQL_DROP_INS = {"rhel": "/etc/my.cnf.d/openstack-ha-tls.cnf",
                  "debian": "/etc/mysql/mariadb.conf.d/90-openstack-ha-tls.cnf"}
RABBITMQ_DROP_IN = "/etc/rabbitmq/conf.d/90-openstack-ha-tls.conf"
# qpidd reads its certificate from an NSS database.
QPID_NSS_DIR = f"{TLS_DIR}/qpid-nss"


@dataclass(frozen=True)
class InstalledFile:
    """One file the install step writes: stdin block `name` to `path`."""

    name: str
    path: str
    mode: str
    group: str
    # What must re-read it when it changes: a Pacemaker resource (restarted), "<resource>-
    # certificate" (its certificate and key, reloaded in place), "haproxy", or "trust".
    consumer: str


def haproxy_cert_file(service_name: str) -> str:
    return f"{HAPROXY_CERT_DIR}/{service_name}.pem"


def certificate_names(settings: Settings) -> list[str]:
    """One certificate per TLS-terminated HAProxy service, plus MySQL and the broker."""
    return [s.name for s in enabled(settings.services)
            if uses_tls(s, settings.tls_enabled)] + ["mysql", "broker"]


def ca_resource_name(kind: str, generation: int) -> str:
    """The CA's key or cert resource: the first generation keeps the names stacks began with."""
    return f"tls-ca-{kind}" if generation == 1 else f"tls-ca-{kind}-{generation}"


def ca_common_name(stack: str, generation: int) -> str:
    """Each generation's own subject: the certificates carry no key identifiers, so a client
    trusting two CAs of one name picked the first as the issuer and failed on its signature."""
    return f"openstack-ha {stack} CA" + (f" {generation}" if generation > 1 else "")


def installed_files(settings: Settings) -> list[InstalledFile]:
    """Where each certificate and key lands on a control node (the CA is the trust steps'):
    HAProxy wants certificate and key in one file."""
    files = []
    broker_group = BROKER_GROUPS[settings.cluster.broker]
    for name in certificate_names(settings):
        if name in ("mysql", "broker"):
            group = "mysql" if name == "mysql" else broker_group
            reload = f"{name}-certificate"
            files += [InstalledFile(f"{name}-cert", f"{TLS_DIR}/{name}.crt", "0644", "root", reload),
                      InstalledFile(f"{name}-key", f"{TLS_DIR}/{name}.key", "0640", group, reload)]
        else:
            files.append(InstalledFile(f"{name}-bundle", haproxy_cert_file(name), "0600", "root",
                                       "haproxy"))
    return files


def stdin_bundle(blocks: dict[str, str]) -> str:
    """Every block under a `### <name>` header line, the format the install step splits."""
    return "".join(f"### {name}\n{text.rstrip()}\n" for name, text in blocks.items())


def subject_names(settings: Settings) -> tuple[list[str], list[str]]:
    """DNS names and IP addresses every certificate carries."""
    domain = settings.network.domain
    dns = [settings.vip_fqdn, settings.vip_name]
    for node in settings.controls:
        dns += [f"{node.name}.{domain}", node.name]
    return dns, [str(settings.vip)] + [str(n.ip) for n in settings.controls]


@dataclass
class StackTlsArgs:
    settings: Settings
    # Control nodes get every certificate; compute nodes the CA.
    nodes: list[ClusterNode]
    # The install steps wait for these (the Pacemaker resources they restart).
    depends_on: list[pulumi.Resource]


class StackTls(pulumi.ComponentResource):
    """`installed` lists each control node's install step; `ca_cert_pem` is the trust anchor."""

    def __init__(self, name: str, args: StackTlsArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("openstack-ha:index:StackTls", name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        generation = s.tls.ca_generation
        ca_key = tls.PrivateKey(ca_resource_name("key", generation), algorithm="ECDSA",
                                ecdsa_curve="P256", opts=child)
        ca = tls.SelfSignedCert(
            ca_resource_name("cert", generation), private_key_pem=ca_key.private_key_pem,
            is_ca_certificate=True,
            subject=tls.SelfSignedCertSubjectArgs(common_name=ca_common_name(s.stack, generation),
                                                  organization="openstack-ha"),
            validity_period_hours=CA_HOURS,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"], opts=child)
        self.ca_cert_pem = ca.cert_pem
        dns_names, ip_addresses = subject_names(s)
        blocks = {}
        for cert_name in certificate_names(s):
            key = tls.PrivateKey(f"tls-{cert_name}-key", algorithm="ECDSA", ecdsa_curve="P256",
                                 opts=child)
            request = tls.CertRequest(
                f"tls-{cert_name}-csr", private_key_pem=key.private_key_pem,
                subject=tls.CertRequestSubjectArgs(common_name=s.vip_fqdn,
                                                   organizational_unit=cert_name,
                                                   organization="openstack-ha"),
                dns_names=dns_names, ip_addresses=ip_addresses, opts=child)
            cert = tls.LocallySignedCert(
                f"tls-{cert_name}-cert", cert_request_pem=request.cert_request_pem,
                ca_private_key_pem=ca_key.private_key_pem, ca_cert_pem=ca.cert_pem,
                validity_period_hours=s.tls.certificate_days * 24,
                early_renewal_hours=EARLY_RENEWAL_HOURS,
                allowed_uses=["digital_signature", "key_encipherment", "server_auth"],
                opts=child)
            if cert_name in ("mysql", "broker"):
                blocks[f"{cert_name}-cert"] = cert.cert_pem
                blocks[f"{cert_name}-key"] = key.private_key_pem
            else:
                blocks[f"{cert_name}-bundle"] = pulumi.Output.concat(cert.cert_pem,
                                                                     key.private_key_pem)
        names = list(blocks)
        bundle = pulumi.Output.secret(pulumi.Output.all(*blocks.values()).apply(
            lambda texts: stdin_bundle(dict(zip(names, texts)))))
        context = dict(settings=s, tls_dir=TLS_DIR, ca_file=CA_FILE,
                       trust_anchor=TRUST_ANCHORS[s.image.os_family],
                       mysql_drop_in=MYSQL_DROP_INS[s.image.os_family],
                       rabbitmq_drop_in=RABBITMQ_DROP_IN, nss_dir=QPID_NSS_DIR,
                       broker_group=BROKER_GROUPS[s.cluster.broker])
        # The config text the install step writes, each its own template, handed over whole.
        configs = {"mysql_conf": render("tls-mysql.cnf.j2", **context)}
        if s.cluster.broker == "rabbitmq":
            configs["rabbitmq_conf"] = render("tls-rabbitmq.conf.j2", **context)
        else:
            configs["qpidd_block"] = render("tls-qpidd.conf.j2", **context)
        controls = [n for n in args.nodes if n.spec.role == "control"]
        trusted = [node.step(
            f"{node.spec.name}-tls-trust", parent=self, depends_on=args.depends_on,
            create=render("tls-trust.sh.j2", **context, role=node.spec.role, prune=False),
            delete=render("tls-trust-remove.sh.j2", **context), stdin=ca.cert_pem,
            # A compute node's one TLS step was <node>-tls-install (the CA alone): the same
            # resource, not one deleted (taking the CA with it) after this one is created.
            aliases=[pulumi.Alias(name=f"{node.spec.name}-tls-install")]
            if node.spec.role != "control" else None)
            for node in args.nodes]
        files = installed_files(s)
        installs = [node.step(
            f"{node.spec.name}-tls-install", parent=self, depends_on=[*args.depends_on, *trusted],
            create=render("tls-install.sh.j2", **context, **configs, files=files),
            delete=render("tls-remove.sh.j2", **context, files=files), stdin=bundle)
            for node in controls]
        # Nothing waits for these: they only take back what the first trust step kept.
        for node in args.nodes:
            node.step(f"{node.spec.name}-tls-trust-prune", parent=self, depends_on=installs,
                      create=render("tls-trust.sh.j2", **context, role=node.spec.role,
                                    prune=True),
                      stdin=ca.cert_pem)
        self.installed = [*trusted, *installs]
        self.register_outputs({"ca_cert_pem": self.ca_cert_pem})
