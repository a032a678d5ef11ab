"""Fencing: every control node can be powered off through its own hypervisor.

fence_virsh logs in to the node's hypervisor over SSH with a key the stack generates: the public
half goes into the hypervisor user's authorized_keys, the private half onto every control node.
Each node gets one stonith device that only kills that node and never runs on it.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

import pulumi
import pulumi_command as command

from components.credentials import Credentials
from components.node import ClusterNode
from components.templating import render
from settings import Hypervisor, Settings

KEY_FILE = "/etc/pacemaker/osha-fence.key"
XVM_KEY_FILE = "/etc/cluster/fence_xvm.key"


@dataclass(frozen=True)
class StonithDevice:
    id: str
    node: str
    agent: str
    params: tuple[tuple[str, str], ...]


def stonith_devices(settings: Settings, controls: list[ClusterNode]) -> list[StonithDevice]:
    """One device per control node, aimed at that node's own hypervisor and domain."""
    devices = []
    for index, control in enumerate(controls):
        node = control.spec
        hypervisor = settings.hypervisor(node.hypervisor)
        if settings.fencing.agent == "fence_virsh":
            params = [("ip", hypervisor.fence_address), ("username", hypervisor.fence_user),
                      ("identity_file", KEY_FILE), ("plug", control.domain_name)]
        else:
            params = [("key_file", XVM_KEY_FILE), ("port", control.domain_name)]
        params.append(("pcmk_host_list", node.name))
        if settings.fencing.action != "reboot":
            params.append(("pcmk_reboot_action", settings.fencing.action))
        # Two nodes: the first one's device waits, so both cannot shoot each other at once.
        if len(controls) == 2 and index == 0 and settings.fencing.delay_base_seconds:
            params.append(("pcmk_delay_base", f"{settings.fencing.delay_base_seconds}s"))
        devices.append(StonithDevice(f"fence-{node.name}", node.name, settings.fencing.agent,
                                     tuple(params)))
    return devices


def hypervisor_connection(hypervisor: Hypervisor) -> command.remote.ConnectionArgs:
    """SSH to a qemu+ssh:// hypervisor as its URI says, with the operator's ssh-agent."""
    uri = urlparse(hypervisor.uri)
    return command.remote.ConnectionArgs(host=uri.hostname, port=uri.port or 22,
                                         user=uri.username or "root")


@dataclass
class FencingArgs:
    settings: Settings
    controls: list[ClusterNode]
    credentials: Credentials


class Fencing(pulumi.ComponentResource):
    """`devices` go into the CIB; `ready` finishes once every node can reach its hypervisor."""

    def __init__(self, name: str, args: FencingArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("openstack-ha:index:Fencing", name, None, opts)
        s = args.settings
        self.devices = stonith_devices(s, args.controls) if s.fencing.enabled else []
        self.ready: list[pulumi.Resource] = []
        if not s.fencing.enabled:
            pulumi.log.warn("fencing is off: a node that stops answering can keep the shared "
                            "MySQL filesystem mounted while another mounts it too, corrupting it",
                            self)
        elif s.fencing.agent == "fence_virsh":
            self._virsh(s, args)
        else:
            pulumi.log.warn("fence_xvm: fence_virtd must run on every hypervisor with the key "
                            f"the nodes hold at {XVM_KEY_FILE}; the stack does not configure it",
                            self)
        self.register_outputs({"devices": [d.id for d in self.devices]})

    def _virsh(self, s: Settings, args: FencingArgs) -> None:
        hosts = sorted({c.spec.hypervisor for c in args.controls})
        authorized = [self._authorize(s.hypervisor(h), args.credentials, s.stack) for h in hosts]
        addresses = sorted({s.hypervisor(h).fence_address for h in hosts})
        for control in args.controls:
            self.ready.append(control.step(
                f"{control.spec.name}-fence-key", parent=self, depends_on=authorized,
                create=render("fencing-node-key.sh.j2", key_file=KEY_FILE, addresses=addresses),
                delete=render("fencing-node-key-delete.sh.j2", key_file=KEY_FILE,
                              addresses=addresses),
                stdin=args.credentials.fence_private_key))

    def _authorize(self, hypervisor: Hypervisor, credentials: Credentials,
                   stack: str) -> pulumi.Resource:
        """Install the nodes' public key for fence_user on the hypervisor (removed on destroy)."""
        marker = f"osha-fence:{stack}"
        scripts = credentials.fence_public_key.apply(lambda key: {
            phase: render(f"fencing-authorize-{phase}.sh.j2", hypervisor=hypervisor,
                          line=f"{key.strip()} {marker}", marker=marker)
            for phase in ("create", "delete")})
        name = f"{hypervisor.name}-fence-authorize"
        options = pulumi.ResourceOptions(parent=self)
        if hypervisor.is_local:
            return command.local.Command(name, create=scripts["create"], delete=scripts["delete"],
                                         interpreter=["/bin/bash", "-c"], opts=options)
        return command.remote.Command(name, connection=hypervisor_connection(hypervisor),
                                      create=scripts["create"], delete=scripts["delete"],
                                      opts=options)
