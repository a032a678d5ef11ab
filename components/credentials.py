"""Keys and passwords: taken from config secrets when given, generated otherwise; always secret."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_random as random
import pulumi_tls as tls

from settings import Settings


def stdin_lines(values: dict[str, pulumi.Output]) -> pulumi.Output[str]:
    """Secrets as NAME=value lines sorted by name, a Pulumi secret: how a step that needs several
    gets them on stdin."""
    names = sorted(values)
    return pulumi.Output.secret(pulumi.Output.all(*(values[n] for n in names)).apply(
        lambda texts: "".join(f"{n}={t}\n" for n, t in zip(names, texts))))


@dataclass
class CredentialsArgs:
    settings: Settings


class Credentials(pulumi.ComponentResource):
    """The admin SSH key, the fencing SSH key and the service passwords of one stack."""

    def __init__(self, name: str, args: CredentialsArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("openstack-ha:index:Credentials", name, None, opts)
        self._child = pulumi.ResourceOptions(parent=self)
        secrets = args.settings.secrets
        given_key = secrets.get("adminSshPrivateKey")
        if given_key is None:
            admin = tls.PrivateKey("admin-ssh-key", algorithm="ED25519", opts=self._child)
            self.admin_private_key = admin.private_key_openssh
            self.admin_public_key = admin.public_key_openssh
        else:
            self.admin_private_key = given_key
            self.admin_public_key = tls.get_public_key_output(
                private_key_openssh=given_key).public_key_openssh
        # fence_virsh logs in to the hypervisor with this key; only the nodes and the host see it.
        fence = tls.PrivateKey("fence-ssh-key", algorithm="ED25519", opts=self._child)
        self.fence_private_key = fence.private_key_openssh
        self.fence_public_key = fence.public_key_openssh
        self.hacluster_password = self._password("haclusterPassword", "hacluster-password", secrets)
        self.mysql_root_password = self._password("mysqlRootPassword", "mysql-root-password",
                                                  secrets)
        self.broker_password = self._password("brokerPassword", "broker-password", secrets)
        # The stack bootstraps keystone's admin when it installs OpenStack; otherwise the image's
        # installer made the admin, and only a given password is known.
        self.keystone_admin_password: Optional[pulumi.Output[str]] = \
            self._password("keystoneAdminPassword", "keystone-admin-password", secrets) \
            if args.settings.openstack.installs else secrets.get("keystoneAdminPassword")
        self.register_outputs({"admin_public_key": self.admin_public_key,
                               "fence_public_key": self.fence_public_key})

    def _password(self, key: str, name: str, secrets: dict) -> pulumi.Output[str]:
        if secrets.get(key) is not None:
            return pulumi.Output.secret(secrets[key])
        # Alphanumeric: these land in config files and pcs prompts without quoting trouble.
        return random.RandomPassword(name, length=32, special=False, opts=self._child).result
