"""Node maintenance: a control node an operator patches or reboots takes no request meanwhile.

Each control node has a `<node>-maintenance` step whose script follows the `maintenance` setting
(templates/maintenance.sh.j2). Listed: the node's HAProxy agent drains it from every HAProxy (a
flag file that outlives a reboot), the requests under way finish, then Pacemaker standby moves
the core group and the VIP off it. Not listed: out of standby, its APIs answer, the agent stops
draining it. A changed list changes the script, so the step runs again; nodes coming back run
before nodes going out, so a swap never has both out at once. The steps follow the rolling
restarts: a change and a maintenance in one `pulumi up` restart first, then take the node out.
"""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_command as command

from components.haproxy import MAINTENANCE_FLAG, stats_url
from components.node import ClusterNode, node_apis
from components.templating import render
from settings import Settings


@dataclass
class MaintenanceArgs:
    settings: Settings
    controls: list[ClusterNode]
    depends_on: list[pulumi.Resource]


class Maintenance(pulumi.ComponentResource):
    """`steps`: each control node's maintenance step, by node name."""

    def __init__(self, name: str, args: MaintenanceArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("openstack-ha:index:Maintenance", name, None, opts)
        s = args.settings
        self.steps: dict[str, command.remote.Command] = {}
        back = [node for node in args.controls if node.spec.name not in s.maintenance]
        out = [node for node in args.controls if node.spec.name in s.maintenance]
        for node in back + out:
            in_maintenance = node in out
            after = [*self.steps.values()] if in_maintenance else []
            self.steps[node.spec.name] = node.step(
                f"{node.spec.name}-maintenance", parent=self,
                depends_on=[*args.depends_on, *after],
                create=render("maintenance.sh.j2", node=node.spec, in_maintenance=in_maintenance,
                              apis=node_apis(s, node.spec), maintenance_flag=MAINTENANCE_FLAG,
                              stats_url=stats_url(s)))
        self.register_outputs({"inMaintenance": list(s.maintenance)})
