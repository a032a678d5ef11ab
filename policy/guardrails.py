"""openstack-ha guardrails: stack validations over the resources the program registers.

The program records its facts (environment, fencing and TLS switches, control domains, shared
disk, VIP, the cluster layout Command's URN) as the keepers of the RandomId "stack-facts"; each
policy cross-checks them against the Domains, Volumes, Network and Commands themselves. This
module imports nothing of the program: a policy pack runs in its own virtualenv.
"""
from __future__ import annotations

import ipaddress
import json
import re
from typing import Any, Callable, Iterable, Optional

from pulumi_policy import (EnforcementLevel, PolicyResource, ReportViolation,
                           StackValidationArgs, StackValidationPolicy)

FACTS_TYPE = "random:index/randomId:RandomId"
FACTS_NAME = "stack-facts"
DOMAIN = "libvirt:index/domain:Domain"
VOLUME = "libvirt:index/volume:Volume"
NETWORK = "libvirt:index/network:Network"
COMMANDS = ("command:remote:Command", "command:local:Command")
COMMAND_TEXTS = ("create", "update", "delete")
GENERATED_SECRETS = {"random:index/randomPassword:RandomPassword": ("result",),
                     "tls:index/privateKey:PrivateKey": ("privateKeyPem", "privateKeyOpenssh",
                                                         "privateKeyPemPkcs8")}
# Shorter fragments (a "yes", a PEM armour line) would match harmless text.
MIN_SECRET_LENGTH = 8


class Facts:
    """The stack-facts keepers, decoded."""

    def __init__(self, keepers: dict[str, str]):
        self.environment = keepers.get("environment", "")
        self.fencing = json.loads(keepers.get("fencing", "false"))
        self.tls = json.loads(keepers.get("tls", "false"))
        self.control_domains: list[str] = json.loads(keepers.get("controlDomains", "[]"))
        self.shared_volume = keepers.get("sharedVolume", "")
        self.shared_host_device = keepers.get("sharedHostDevice", "")
        self.cidr = keepers.get("cidr", "")
        self.vip = keepers.get("vip", "")
        self.layout_urn = keepers.get("layoutCommand", "")


def _facts(args: StackValidationArgs) -> Optional[tuple[PolicyResource, Facts]]:
    record = next((r for r in args.resources
                   if r.resource_type == FACTS_TYPE and r.name == FACTS_NAME), None)
    if record is None:
        return None
    return record, Facts(dict(record.props.get("keepers") or {}))


def _is_prod(args: StackValidationArgs, facts: Facts) -> bool:
    """Tagged prod in the stack config (tags.environment) or as a Pulumi stack tag."""
    return "prod" in (facts.environment, args.stack_tags.get("environment"))


def _of_type(args: StackValidationArgs, type_token: str) -> list[PolicyResource]:
    return [r for r in args.resources if r.resource_type == type_token]


def _layout_text(args: StackValidationArgs, facts: Facts) -> str:
    layout = next((r for r in args.resources if r.urn == facts.layout_urn), None)
    return str(layout.props.get("create") or "") if layout is not None else ""


def _prod_only(check: Callable[[StackValidationArgs, Facts, PolicyResource, ReportViolation],
                               None]) -> Callable[[StackValidationArgs, ReportViolation], None]:
    """Run `check` on prod-tagged stacks of this program; anything else is not its business."""
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        found = _facts(args)
        if found is None:
            report_violation(f"no {FACTS_TYPE} named {FACTS_NAME}: the program's facts are "
                             "missing, so the guardrails cannot check this stack")
            return
        record, facts = found
        if _is_prod(args, facts):
            check(args, facts, record, report_violation)
    return validate


def check_fencing(args, facts, record, report_violation) -> None:
    if not facts.fencing:
        report_violation("prod stacks must fence: set fencing.enabled true (without fencing the "
                         "shared MySQL filesystem can be mounted twice)", record.urn)
        return
    layout = _layout_text(args, facts)
    if "stonith-enabled=true" not in layout:
        report_violation("the cluster layout does not set stonith-enabled=true", facts.layout_urn)
    for domain in facts.control_domains:
        if not re.search(rf"\bstonith create \S+ \S+ .*\b(plug|port)={re.escape(domain)}\b",
                         layout):
            report_violation(f"no stonith device fences control domain {domain}",
                             facts.layout_urn)


def check_control_count(args, facts, record, report_violation) -> None:
    count = len(facts.control_domains)
    if count < 3 or count % 2 == 0:
        report_violation(f"prod stacks need an odd number of control nodes, at least 3 "
                         f"(this one has {count})", record.urn)
    names = {str(d.props.get("name")) for d in _of_type(args, DOMAIN)}
    for missing in [d for d in facts.control_domains if d not in names]:
        report_violation(f"control domain {missing} has no libvirt Domain", record.urn)


def _attaches_shared_disk(domain: PolicyResource, volume: Optional[PolicyResource],
                          host_device: str) -> bool:
    disks = list(domain.props.get("disks") or [])
    if volume is not None:
        # The Domain's disks input is built from the shared Volume's id.
        attached = volume in domain.property_dependencies.get("disks", [])
    else:
        attached = any(d.get("blockDevice") == host_device for d in disks)
    xslt = str((domain.props.get("xml") or {}).get("xslt") or "")
    return attached and "<shareable/>" in xslt


def check_shared_disk(args, facts, record, report_violation) -> None:
    volume = None
    if facts.shared_volume:
        volume = next((v for v in _of_type(args, VOLUME)
                       if v.props.get("name") == facts.shared_volume), None)
        if volume is None:
            report_violation(f"the shared volume {facts.shared_volume} does not exist",
                             record.urn)
            return
        if volume.props.get("format") != "raw":
            report_violation(f"the shared volume must be raw (two guests writing a "
                             f"{volume.props.get('format')} image corrupt it)", volume.urn)
    elif not facts.shared_host_device.startswith("/dev/"):
        report_violation("the stack names neither a shared volume nor a shared block device",
                         record.urn)
        return
    domains = {str(d.props.get("name")): d for d in _of_type(args, DOMAIN)}
    for name in facts.control_domains:
        domain = domains.get(name)
        if domain is not None and not _attaches_shared_disk(domain, volume,
                                                            facts.shared_host_device):
            report_violation(f"control domain {name} does not attach the shared disk "
                             "shareable", domain.urn)


def check_tls(args, facts, record, report_violation) -> None:
    if not facts.tls:
        report_violation("prod stacks must secure services: set tls.enabled true", record.urn)
    elif not _of_type(args, "tls:index/locallySignedCert:LocallySignedCert"):
        report_violation("tls is on but the stack issues no service certificate", record.urn)


def validate_vip_in_control_subnet(args: StackValidationArgs,
                                   report_violation: ReportViolation) -> None:
    """Every stack: the VIP the cluster configures lies in the control network's subnet."""
    found = _facts(args)
    if found is None:
        return
    record, facts = found
    subnet = ipaddress.ip_network(facts.cidr)
    for network in _of_type(args, NETWORK):
        for address in network.props.get("addresses") or []:
            if ipaddress.ip_network(address, strict=False) != subnet:
                report_violation(f"network {network.props.get('name')} serves {address}, not the "
                                 f"control subnet {subnet}", network.urn)
    layout = _layout_text(args, facts)
    configured = re.findall(r"ocf:heartbeat:IPaddr2 ip=(\S+)", layout) or [facts.vip]
    for vip in configured:
        if ipaddress.ip_address(vip) not in subnet:
            report_violation(f"the VIP {vip} lies outside the control subnet {subnet}",
                             facts.layout_urn or record.urn)


def _secret_fragments(resources: Iterable[PolicyResource]) -> set[str]:
    """Every line of every generated secret and of every Command's stdin (the secret channel)."""
    values: list[Any] = []
    for resource in resources:
        values += [resource.props.get(k) for k in GENERATED_SECRETS.get(resource.resource_type,
                                                                         ())]
        if resource.resource_type in COMMANDS:
            values.append(resource.props.get("stdin"))
    return {line.strip() for value in values if isinstance(value, str)
            for line in value.splitlines()
            if len(line.strip()) >= MIN_SECRET_LENGTH and not line.startswith("-----")}


def validate_no_secret_in_command_text(args: StackValidationArgs,
                                       report_violation: ReportViolation) -> None:
    """pulumi-command prints a failed command's text: secrets belong on stdin only."""
    secrets = _secret_fragments(args.resources)
    for command in [r for r in args.resources if r.resource_type in COMMANDS]:
        environment = command.props.get("environment") or {}
        texts = {**{k: command.props.get(k) for k in COMMAND_TEXTS},
                 **{f"environment.{k}": v for k, v in environment.items()}}
        for field, text in texts.items():
            if not isinstance(text, str):
                continue
            if "PRIVATE KEY-----" in text or any(s in text for s in secrets):
                report_violation(f"{command.name}: its {field} text holds a secret; pass it on "
                                 "stdin and read it with `read -r`", command.urn)


def _policy(name: str, description: str, validate) -> StackValidationPolicy:
    return StackValidationPolicy(name=name, description=description, validate=validate,
                                 enforcement_level=EnforcementLevel.MANDATORY)


POLICIES = [
    _policy("prod-fencing-on", "Prod stacks fence every control node through its hypervisor.",
            _prod_only(check_fencing)),
    _policy("prod-odd-control-count", "Prod stacks run an odd number (>= 3) of control nodes.",
            _prod_only(check_control_count)),
    _policy("prod-shared-disk-raw-on-every-control-node",
            "Prod stacks attach one raw, shareable disk to every control node.",
            _prod_only(check_shared_disk)),
    _policy("prod-tls-on", "Prod stacks serve the APIs over TLS.", _prod_only(check_tls)),
    _policy("vip-in-control-subnet", "The VIP lies inside the control network's subnet.",
            validate_vip_in_control_subnet),
    _policy("no-secret-in-command-text",
            "No Command's text or environment holds a secret (stdin only).",
            validate_no_secret_in_command_text),
]
