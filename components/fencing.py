"""Fencing: every control node can be powered off through its own hypervisor.

fence_virsh logs in to the node's hypervisor over SSH with a key the stack generates: the public
half goes into the hypervisor user's authorized_keys, the private half onto every control node.
Each node gets one stonith device that only kills that node and never runs on it.

Nodes never trust a hypervisor's host key on first use: it comes from the hypervisor's `hostKey`
setting or, for the local hypervisor without one, from the local authorize command, which reads
the local sshd's key from disk and prints it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlparse

import pulumi
import pulumi_command as command
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

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


def pinned_host_key(text: str, source: str) -> str:
    """`ssh-ed25519 <base64>` from the first line of `text` (a public key line), or an error
    naming `source`: only a well-formed ED25519 key reaches a node's known_hosts."""
    fields = (text or "").strip().split("\n")[0].split()
    try:
        key = serialization.load_ssh_public_key(" ".join(fields[:2]).encode())
    except (ValueError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ValueError(f"{source}: expected an SSH ED25519 public key "
                         f"('ssh-ed25519 AAAA...'), got {text!r}")
    return key.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).decode()


def hypervisor_connection(hypervisor: Hypervisor) -> command.remote.ConnectionArgs:
    """SSH to a qemu+ssh:// hypervisor as its URI says, with the operator's ssh-agent, pinning
    its host key."""
    uri = urlparse(hypervisor.uri)
    return command.remote.ConnectionArgs(host=uri.hostname, port=uri.port or 22,
                                         user=uri.username or "root",
                                         host_key=configured_host_key(hypervisor))


def _setting(hypervisor: Hypervisor) -> str:
    return f"hypervisors[{hypervisor.name}].hostKey"


def configured_host_key(hypervisor: Hypervisor) -> Optional[str]:
    """The hypervisor's pinned key from its hostKey setting; None for a local hypervisor without
    one (its authorize command reads the key); an error for a remote one without."""
    if hypervisor.host_key is None:
        if hypervisor.is_local:
            return None
        raise pulumi.RunError(
            f"{_setting(hypervisor)} is required for fence_virsh on a remote hypervisor: the "
            "ED25519 host key its sshd answers with, as in /etc/ssh/ssh_host_ed25519_key.pub "
            "on that host")
    return pinned_host_key(hypervisor.host_key, _setting(hypervisor))


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
        hypervisors = [s.hypervisor(h) for h in sorted({c.spec.hypervisor for c in args.controls})]
        # Checked before any fencing resource is registered.
        configured = [configured_host_key(h) for h in hypervisors]
        authorized, host_keys = [], []
        for hypervisor, key in zip(hypervisors, configured):
            authorize = self._authorize(hypervisor, args.credentials, s.stack)
            authorized.append(authorize)
            if key is not None:
                host_keys.append(pulumi.Output.from_input(key))
            else:
                # The local authorize command prints the local sshd's key, read from its file.
                host_keys.append(authorize.stdout.apply(lambda out, h=hypervisor: pinned_host_key(
                    out, f"{h.name}-fence-authorize's stdout")))
        addresses = sorted({h.fence_address for h in hypervisors})
        create = pulumi.Output.all(*host_keys).apply(lambda keys: render(
            "fencing-node-key.sh.j2", key_file=KEY_FILE,
            hypervisors=[field for h, key in zip(hypervisors, keys)
                         for field in (h.fence_address, h.fence_user, key)]))
        for control in args.controls:
            self.ready.append(control.step(
                f"{control.spec.name}-fence-key", parent=self, depends_on=authorized,
                create=create,
                delete=render("fencing-node-key-delete.sh.j2", key_file=KEY_FILE,
                              addresses=addresses),
                stdin=args.credentials.fence_private_key))

    def _authorize(self, hypervisor: Hypervisor, credentials: Credentials,
                   stack: str) -> command.local.Command | command.remote.Command:
        """Install the nodes' public key for fence_user on the hypervisor (removed on destroy).

        The local one without a hostKey setting also prints the local sshd's host key."""
        marker = f"osha-fence:{stack}"
        print_host_key = hypervisor.is_local and hypervisor.host_key is None
        scripts = credentials.fence_public_key.apply(lambda key: {
            phase: render(f"fencing-authorize-{phase}.sh.j2", hypervisor=hypervisor,
                          line=f"{key.strip()} {marker}", marker=marker,
                          print_host_key=print_host_key)
            for phase in ("create", "delete")})
        name = f"{hypervisor.name}-fence-authorize"
        options = pulumi.ResourceOptions(parent=self)
        if hypervisor.is_local:
            return command.local.Command(name, create=scripts["create"], delete=scripts["delete"],
                                         interpreter=["/bin/bash", "-c"], opts=options)
        return command.remote.Command(name, connection=hypervisor_connection(hypervisor),
                                      create=scripts["create"], delete=scripts["delete"],
                                      opts=options)
