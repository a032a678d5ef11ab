"""The stack's facts where a policy pack can read them (policy/ checks them against the resources).

A policy sees resources' properties only, not the stack config: the environment tag, the fencing
and TLS switches, the control domains and the shared disk's identity travel as the `keepers` of a
RandomId, a resource that does nothing else. The policies cross-check each fact against the
Domains, Volumes, Network and the cluster layout Command it names.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_random as random

from components.node import ClusterNode
from components.shared_disk import SharedDisk
from settings import Settings

# The policy pack finds this resource by its type and this name.
FACTS_NAME = "stack-facts"


@dataclass
class StackFactsArgs:
    settings: Settings
    controls: list[ClusterNode]
    shared_disk: SharedDisk
    # The Command that writes the Pacemaker layout (VIP, fencing) into the CIB.
    layout: pulumi.Resource


def facts(args: StackFactsArgs, layout_urn: str) -> dict[str, str]:
    """Keepers are strings: structured facts are JSON."""
    s = args.settings
    return {
        "environment": s.tags.get("environment", ""),
        "fencing": json.dumps(s.fencing.enabled),
        "tls": json.dumps(s.tls_enabled),
        "controlDomains": json.dumps([c.domain_name for c in args.controls]),
        "sharedVolume": args.shared_disk.volume_name or "",
        "sharedHostDevice": args.shared_disk.host_device or "",
        "cidr": str(s.network.cidr),
        "vip": str(s.vip),
        "layoutCommand": layout_urn,
    }


class StackFacts(pulumi.ComponentResource):
    def __init__(self, name: str, args: StackFactsArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("openstack-ha:index:StackFacts", name, None, opts)
        self.record = random.RandomId(
            FACTS_NAME, byte_length=4, keepers=args.layout.urn.apply(lambda urn: facts(args, urn)),
            opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({})
