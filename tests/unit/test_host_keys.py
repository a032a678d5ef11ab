"""No trust on first use: each node's SSH host key comes from the stack and every connection pins it."""
from __future__ import annotations

import json

import pytest
import yaml

from tools import render
from tools.render import COPY, REMOTE, SEED


def node_of(graph: render.Graph, host: str):
    return next((n for n in graph.settings.nodes if str(n.ip) == host), None)


def host_public_key(graph: render.Graph, node_name: str) -> str:
    private = graph.secrets[f"secrets/{node_name}-host-key.key"]
    return render._key_outputs(render._load_private_key(private))["publicKeyOpenssh"]


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
    manifest = json.loads((out / "manifest.json").read_text())
    graph = render.run_program(render.stack_config("dev"), "dev")
    for resource in manifest["resources"]:
        host = resource["host"] or {}
        if host.get("user"):
            node = node_of(graph, host["host"])
            assert host["host_key"] == host_public_key(graph, node.name).strip(), resource["name"]
    for seed in [r for r in manifest["resources"] if r["type"] == SEED]:
        secret_path = seed["files"]["user-data"]
        assert secret_path == f"secrets/{seed['name']}/user-data"
        real = (out / secret_path).read_text()
        assert "OPENSSH PRIVATE KEY" in real and (out / secret_path).stat().st_mode & 0o077 == 0
        # The review copy: the same document, the private key shown as [secret].
        review = yaml.safe_load((out / seed["name"] / "user-data").read_text())
        assert review["ssh_keys"]["ed25519_private"] == "[secret]"
        assert {**yaml.safe_load(real.split("\n", 1)[1]),
                "ssh_keys": review["ssh_keys"]} == review
