"""The openstack-ha policy pack: `pulumi preview --policy-pack policy` enforces the guardrails."""
from pulumi_policy import PolicyPack

from guardrails import POLICIES

PolicyPack(name="openstack-ha-guardrails", policies=POLICIES)
