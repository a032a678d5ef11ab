"""A stack with every secret set, RHSM included, renders; each secret reaches only stdin, the
cloud-init seed (itself a secret) or the SSH connection's key, never command text; and every
secret the settings accept is consumed by some step.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

import settings
from manifest_schema import Manifest
from tools import render

PASSWORDS = {"haclusterPassword": "hacluster-Secret-7f3a", "rhsmPassword": "rhsm-Secret-91c2",
             "keystoneAdminPassword": "keystone-Secret-5d0e",
             "mysqlRootPassword": "mysql-Secret-c4b8", "brokerPassword": "broker-Secret-2a6f",
             "cephClientKey": "AQBceph+Secret/83d1=="}
ADMIN_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(
    hashlib.sha256(b"test-admin-key").digest()).private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
    serialization.NoEncryption()).decode()
SECRETS = {**PASSWORDS, "adminSshPrivateKey": ADMIN_KEY}
# README: OSHA_RENDER_<NAME>, the key's words in upper case joined by '_'.
ENVIRONMENT = {"OSHA_RENDER_HACLUSTER_PASSWORD": "haclusterPassword",
               "OSHA_RENDER_RHSM_PASSWORD": "rhsmPassword",
               "OSHA_RENDER_KEYSTONE_ADMIN_PASSWORD": "keystoneAdminPassword",
               "OSHA_RENDER_MYSQL_ROOT_PASSWORD": "mysqlRootPassword",
               "OSHA_RENDER_BROKER_PASSWORD": "brokerPassword",
               "OSHA_RENDER_CEPH_CLIENT_KEY": "cephClientKey",
               "OSHA_RENDER_ADMIN_SSH_PRIVATE_KEY": "adminSshPrivateKey"}
COMMANDS = (render.REMOTE, render.LOCAL)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """dev with RHSM, an external Ceph for the volumes and every secret as a secure value (values
    from OSHA_RENDER_*), written out."""
    work = tmp_path_factory.mktemp("secrets")
    document = yaml.safe_load((render.ROOT / "Pulumi.dev.yaml").read_text())
    document["config"]["openstack-ha:rhsmUsername"] = "rhsm-user"
    document["config"]["openstack-ha:blockStorage"] = {"backend": "rbd",
                                                       "monitors": ["10.20.0.5"]}
    for key in settings.SECRET_KEYS:
        document["config"][f"openstack-ha:{key}"] = {"secure": "v1:AAAA"}
    stack_file = work / "Pulumi.dev.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    with pytest.MonkeyPatch.context() as patch:
        for variable, key in ENVIRONMENT.items():
            patch.setenv(variable, SECRETS[key])
        graph = render.run_program(render.stack_config("dev", stack_file), "dev")
    out = work / "out"
    render.write(graph, out)
    return graph, out


def test_every_secret_key_is_covered():
    assert set(SECRETS) == set(ENVIRONMENT.values()) == set(settings.SECRET_KEYS)


def test_the_render_holds_every_given_secret(rendered):
    graph, out = rendered
    assert graph.settings.rhsm_username == "rhsm-user"
    for key, value in SECRETS.items():
        assert (out / "secrets" / key).read_text().strip() == value.strip()


def test_no_secret_in_any_command_text(rendered):
    graph, _ = rendered
    for registration in graph.registrations:
        if registration.type in COMMANDS:
            text = json.dumps({k: registration.inputs.get(k)
                               for k in ("create", "update", "delete", "environment")})
            leaked = [k for k, v in SECRETS.items() if v.strip() in text]
            assert not leaked, f"{registration.name} carries {leaked} in its command text"


def test_each_secret_reaches_only_stdin_or_the_secret_seed(rendered):
    graph, out = rendered
    holders = {key: set() for key in SECRETS}
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text()
            for key, value in SECRETS.items():
                if value.strip() in text:
                    holders[key].add(str(path.relative_to(out)))
    nodes = [n.name for n in graph.settings.nodes]
    controls = [n.name for n in graph.settings.controls]
    assert holders["haclusterPassword"] == {"secrets/haclusterPassword",
                                            "secrets/cluster-setup.stdin",
                                            *(f"secrets/{n}-cluster-prep.stdin" for n in controls)}
    assert holders["keystoneAdminPassword"] == {"secrets/keystoneAdminPassword",
                                                "secrets/keystone-endpoints.stdin",
                                                "secrets/openstack-bootstrap.stdin"}
    # The seed holds it whole under secrets/; its review copy next to the scripts shows [secret].
    assert holders["rhsmPassword"] == {"secrets/rhsmPassword",
                                       *(f"secrets/{n}-cloudinit/user-data" for n in nodes)}
    # The admin key is the SSH client's, in no file but its own (the manifest points at it).
    assert holders["adminSshPrivateKey"] == {"secrets/adminSshPrivateKey"}
    # MySQL's root: every control node's init file, and the bootstrap's databases.
    assert holders["mysqlRootPassword"] == {"secrets/mysqlRootPassword",
                                            "secrets/openstack-bootstrap.stdin",
                                            *(f"secrets/{n}-cluster-users.stdin" for n in controls)}
    # The broker's user: every control node's definitions file, every node's transport URL.
    assert holders["brokerPassword"] == {"secrets/brokerPassword",
                                         *(f"secrets/{n}-cluster-users.stdin" for n in controls),
                                         *(f"secrets/{n}-openstack-install.stdin" for n in nodes)}
    for files in holders.values():
        for relative in files:
            assert (out / relative).stat().st_mode & 0o077 == 0, f"{relative} is readable by all"


def test_the_seed_is_a_pulumi_secret_and_the_given_key_logs_in(rendered):
    graph, _ = rendered
    for node in graph.settings.nodes:
        user_data = graph.named(f"{node.name}-cloudinit").inputs["userData"]
        assert PASSWORDS["rhsmPassword"] in user_data and user_data in graph.secret_inputs
    remote = graph.of_type(render.REMOTE)
    assert remote and all(r.inputs["connection"]["privateKey"] == ADMIN_KEY for r in remote)


def strings(value) -> list[str]:
    """Every string in a resource's inputs."""
    if isinstance(value, dict):
        return [t for v in value.values() for t in strings(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in strings(v)]
    return [value] if isinstance(value, str) else []


def test_every_accepted_secret_is_consumed_by_a_step(rendered):
    graph, _ = rendered
    for key, value in SECRETS.items():
        consumers = [r.name for r in graph.registrations
                     if any(value.strip() in text for text in strings(r.inputs))]
        assert consumers, f"{key} is accepted but no step consumes it"


def test_the_manifest_names_the_given_admin_key(rendered):
    _, out = rendered
    manifest = Manifest.load(out)
    assert manifest.ssh.private_key_file == "secrets/adminSshPrivateKey"
    assert Path(out / manifest.ssh.private_key_file).read_text().strip() == ADMIN_KEY.strip()


def test_render_main_takes_a_secret_the_stack_file_lacks(tmp_path, monkeypatch, capsys):
    document = yaml.safe_load((render.ROOT / "Pulumi.dev.yaml").read_text())
    document["config"]["openstack-ha:rhsmUsername"] = "rhsm-user"
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    arguments = ["--stack", "dev", "--config-file", str(stack_file), "--out", str(tmp_path / "o")]
    assert render.main(arguments) == 2
    assert "openstack-ha:rhsmPassword: None is invalid; required with rhsmUsername" in \
        capsys.readouterr().err
    monkeypatch.setenv("OSHA_RENDER_RHSM_PASSWORD", PASSWORDS["rhsmPassword"])
    assert render.main([*arguments, "--secret", "rhsmPassword"]) == 0
    seed = tmp_path / "o" / "secrets" / "ctl1-cloudinit" / "user-data"
    assert PASSWORDS["rhsmPassword"] in seed.read_text()


def test_a_generated_secret_given_through_the_environment_is_checked_like_a_setting(
        monkeypatch, capsys, tmp_path):
    """OSHA_RENDER_<NAME> for a password the stack generates is refused with a newline in it,
    naming the variable and never the value."""
    monkeypatch.setenv("OSHA_RENDER_HACLUSTER_PASSWORD", "first line\n:>MARKER")
    assert render.main(["--stack", "dev", "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err
    assert "OSHA_RENDER_HACLUSTER_PASSWORD: [secret] is invalid; a password without newlines" \
        in error and "MARKER" not in error
