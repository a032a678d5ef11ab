"""Rolling restarts: services re-read a changed file without a failed API call.

The install and repoint steps restart nothing on a node that already serves: they add each unit
(or Pacemaker resource) that reads a file they changed, and runs there, to the node's pending
file. `<node>-rolling-restart` follows them, one node after the other (control nodes in order,
then compute nodes), and runs again whenever one of them would (its trigger is their scripts and
inputs): the node's HAProxy agent says "drain" until the node's requests under way have finished,
the services restart, and the node serves again once each of its APIs answers and is up at the
VIP (templates/rolling-restart.sh.j2).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import pulumi
import pulumi_command as command

from components.haproxy import AGENT_STATE, stats_url
from components.node import ClusterNode, node_apis, node_services
from components.templating import render
from settings import NODE_STATE_DIR, Settings

PENDING_RESTARTS = f"{NODE_STATE_DIR}/pending-restarts"


@dataclass
class RollingRestartArgs:
    settings: Settings
    # In the order they restart.
    nodes: list[ClusterNode]
    # The steps that leave restarts pending, by node name: each node's repoint and, when the
    # stack installs OpenStack, its install.
    repointed: dict[str, command.remote.Command]
    installed: dict[str, command.remote.Command]


def trigger(steps: list[command.remote.Command]) -> pulumi.Output[str]:
    """A digest of what the steps run: it changes whenever one of them runs again. (Their stdin
    holds secrets; its digest does not.)"""
    parts = [part for step in steps for part in (step.create, step.stdin)]
    return pulumi.Output.unsecret(pulumi.Output.all(*parts).apply(
        lambda values: hashlib.sha256(json.dumps(values).encode()).hexdigest()))


class RollingRestart(pulumi.ComponentResource):
    """`restarted`: each node's rolling restart step, by node name."""

    def __init__(self, name: str, args: RollingRestartArgs,
                 opts: pulumi.ResourceOptions = None):
        super().__init__("openstack-ha:index:RollingRestart", name, None, opts)
        s = args.settings
        self.restarted: dict[str, command.remote.Command] = {}
        previous: list[pulumi.Resource] = []
        for node in args.nodes:
            steps = [args.repointed[node.spec.name]]
            if node.spec.name in args.installed:
                steps.insert(0, args.installed[node.spec.name])
            step = node.step(
                f"{node.spec.name}-rolling-restart", parent=self,
                depends_on=[*steps, *previous], triggers=[trigger(steps)],
                create=render("rolling-restart.sh.j2", node=node.spec,
                              apis=node_apis(s, node.spec),
                              proxies=[api.name for api in node_services(s, node.spec)],
                              pending_restarts=PENDING_RESTARTS,
                              state_file=AGENT_STATE, stats_url=stats_url(s)))
            self.restarted[node.spec.name] = step
            previous = [step]
        self.register_outputs({"order": list(self.restarted)})
