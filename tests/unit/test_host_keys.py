"""No trust on first use: each node's SSH host key comes from the stack and every connection pins it."""
from __future__ import annotations

import shlex

import pytest
import yaml

import settings
from components.fencing import pinned_host_key
from manifest_schema import Manifest
from tests.conftest import stack_config
from tools import render
from tools.render import COPY, LOCAL, REMOTE, SEED, crypto


def node_of(graph: render.Graph, host: str):
    return next((n for n in graph.settings.nodes if str(n.ip) == host), None)


def host_public_key(graph: render.Graph, node_name: str) -> str:
    private = graph.secrets[f"secrets/{node_name}-host-key.key"]
    return crypto.key_outputs(crypto.load_private_key(private))["publicKeyOpenssh"]


def test_every_connection_to_a_node_pins_that_nodes_generated_key(dev_graph):
    connections = [r for r in dev_graph.registrations if r.type in (REMOTE, COPY)]
    assert {r.type for r in connections} == {REMOTE, COPY}
    for registration in connections:
        connection = registration.inputs["connection"]
        node = node_of(dev_graph, connection["host"])
        assert node is not None, registration.name
        assert connection["hostKey"] == host_public_key(dev_graph, node.name), registration.name
        assert connection["hostKey"].startswith("ssh-ed25519 ")
    keys = [host_public_key(dev_graph, n.name) for n in dev_graph.settings.nodes]
    assert len(set(keys)) == len(keys)  # one key per node


def test_the_seed_carries_the_private_half_and_is_secret(dev_graph):
    for node in dev_graph.settings.nodes:
        key = dev_graph.named(f"{node.name}-host-key")
        assert key.inputs["algorithm"] == "ED25519" and key.parent == dev_graph.named(node.name).urn
        user_data = dev_graph.named(f"{node.name}-cloudinit").inputs["userData"]
        assert user_data in dev_graph.secret_inputs
        assert user_data.startswith("#cloud-config\n")
        document = yaml.safe_load(user_data)
        private = dev_graph.secrets[f"secrets/{node.name}-host-key.key"]
        assert document["ssh_keys"] == {
            "ed25519_private": private,
            "ed25519_public": host_public_key(dev_graph, node.name).strip()}
        # The image's keys go and no other type is generated.
        assert document["ssh_deletekeys"] is True and document["ssh_genkeytypes"] == ["ed25519"]
        # Nothing in the rest of the seed is secret.
        seed = dev_graph.named(f"{node.name}-cloudinit")
        assert seed.inputs["metaData"] not in dev_graph.secret_inputs
        assert seed.inputs["networkConfig"] not in dev_graph.secret_inputs


def test_each_nodes_host_key_is_a_stack_output(dev_graph):
    for node in dev_graph.settings.nodes:
        assert dev_graph.outputs["nodes"][node.name]["hostKey"] == \
            host_public_key(dev_graph, node.name)


def test_the_manifest_names_each_hosts_key_and_the_seed_stays_under_secrets(rendered):
    out = rendered("dev")
    manifest = Manifest.load(out)
    graph = render.run_program(render.stack_config("dev"), "dev")
    for resource in manifest.resources:
        host = resource.host
        if host and host.user:
            node = node_of(graph, host.host)
            assert host.host_key == host_public_key(graph, node.name).strip(), resource.name
    for seed in [r for r in manifest.resources if r.type == SEED]:
        secret_path = seed.files["user-data"]
        assert secret_path == f"secrets/{seed.name}/user-data"
        real = (out / secret_path).read_text()
        assert "OPENSSH PRIVATE KEY" in real and (out / secret_path).stat().st_mode & 0o077 == 0
        # The review copy: the same document, the private key shown as [secret].
        review = yaml.safe_load((out / seed.name / "user-data").read_text())
        assert review["ssh_keys"]["ed25519_private"] == "[secret]"
        assert {**yaml.safe_load(real.split("\n", 1)[1]),
                "ssh_keys": review["ssh_keys"]} == review
def fence_targets(graph: render.Graph, node: str) -> list[tuple[str, str, str]]:
    """(address, user, pinned key) of each hypervisor, as the node's fence-key step lists them."""
    script = graph.named(f"{node}-fence-key").inputs["create"]
    (line,) = [l for l in script.splitlines() if l.startswith("hypervisors=(")]
    fields = shlex.split(line[len("hypervisors=("):-1])
    return list(zip(fields[::3], fields[1::3], fields[2::3]))


def test_the_local_hypervisors_key_comes_from_its_own_authorize_command(dev_graph):
    """Without hostKey, the local command reads the local sshd's key and the nodes pin its stdout."""
    authorize = dev_graph.named("local-fence-authorize")
    assert authorize.type == LOCAL
    assert "/etc/ssh/ssh_host_ed25519_key.pub" in authorize.inputs["create"]
    stand_in = render.stand_in_stdout("dev", "local-fence-authorize").strip()
    for node in dev_graph.settings.controls:
        assert fence_targets(dev_graph, node.name) == [("10.20.0.1", "root", stand_in)]
        assert "StrictHostKeyChecking=yes" in dev_graph.named(f"{node.name}-fence-key").inputs[
            "create"]


def test_a_hostkey_setting_is_pinned_as_given_and_nothing_is_read(dev_graph):
    key = render.stand_in_stdout("other", "key").strip()
    graph = render.run_program(stack_config("lab", hypervisors=[{
        "name": "local", "uri": "qemu:///system", "fenceAddress": "10.20.0.1",
        "authorizedKeysFile": "/run/osha-lab/authorized_keys", "hostKey": f"{key} root@lab"}]),
        "lab")
    assert "ssh_host_ed25519_key" not in graph.named("local-fence-authorize").inputs["create"]
    for node in graph.settings.controls:
        assert fence_targets(graph, node.name) == [("10.20.0.1", "root", key)]


def test_remote_hypervisors_are_pinned_by_the_nodes_and_by_the_stack():
    graph = render.run_program(stack_config("multihost"), "multihost")
    keys = {h.name: pinned_host_key(h.host_key, h.name) for h in graph.settings.hypervisors}
    for hypervisor in graph.settings.hypervisors:
        authorize = graph.named(f"{hypervisor.name}-fence-authorize")
        assert authorize.type == REMOTE
        assert authorize.inputs["connection"]["hostKey"] == keys[hypervisor.name]
        assert "ssh_host_ed25519_key" not in authorize.inputs["create"]
    expected = sorted((h.fence_address, h.fence_user, keys[h.name])
                      for h in graph.settings.hypervisors)
    for node in graph.settings.controls:
        assert sorted(fence_targets(graph, node.name)) == expected


def test_a_remote_hypervisor_without_hostkey_is_refused():
    config = stack_config("multihost")
    for hypervisor in config["hypervisors"]:
        hypervisor.pop("hostKey")
    with pytest.raises(settings.SettingsError) as caught:
        render.run_program(config, "multihost")
    assert caught.value.problems == [
        f"openstack-ha:hypervisors[{i}].hostKey: None is invalid; required for a remote "
        "hypervisor: its SSH host public key (/etc/ssh/ssh_host_ed25519_key.pub there, not a "
        "scan over the network)" for i in range(3)]


@pytest.mark.parametrize("text", [
    "", "ssh-ed25519", "ssh-ed25519 not-base64!", "not a key at all",
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7 host",
    # An ECDSA key where an ED25519 one is wanted.
    "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7"
    "opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg="])
def test_only_a_well_formed_ed25519_key_is_pinned(text):
    with pytest.raises(ValueError, match="the-source: expected an SSH ED25519 public key"):
        pinned_host_key(text, "the-source")


def test_a_pinned_key_is_canonical_and_one_line():
    key = render.stand_in_stdout("dev", "k").strip()
    assert pinned_host_key(f"  {key} root@hypervisor\n", "s") == key
    # Whatever follows the first line (another known_hosts entry, say) is not taken along.
    assert pinned_host_key(f"{key}\n* ssh-ed25519 AAAA-evil", "s") == key


@pytest.mark.parametrize("stack", ["dev", "lab", "prod", "multihost"])
def test_no_host_key_is_ever_scanned(rendered, stack):
    out = rendered(stack)
    for path in out.rglob("*"):
        if path.is_file():
            assert "ssh-keyscan" not in path.read_text(errors="replace"), path
    for path in render.ROOT.glob("**/*"):
        if path.is_file() and path.suffix in (".py", ".j2", ".sh") and ".venv" not in path.parts \
                and path.name != "test_host_keys.py":
            assert "ssh-keyscan" not in path.read_text(), path
