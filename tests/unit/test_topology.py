"""The libvirt topology under Pulumi's mock runtime: counts, parents, disks, cloud-init, ordering."""
from __future__ import annotations

import pytest
import yaml

from manifest_schema import Manifest
from tests.conftest import stack_config
from tools import render
from tools.render import DOMAIN, NETWORK, PROVIDER, REMOTE, SEED, VOLUME, crypto



@pytest.fixture(scope="module")
def big_graph() -> render.Graph:
    config = stack_config("dev", controlNodes={"count": 5, "firstIp": "10.20.0.31"},
                          computeNodes={"count": 3, "firstIp": "10.20.0.51"})
    return render.run_program(config, "dev")


def shared_volume(graph: render.Graph) -> render.Registration:
    return graph.named("shared-disk-volume")


@pytest.mark.parametrize("controls,computes", [(3, 1), (5, 3)])
def test_resource_counts(dev_graph, big_graph, controls, computes):
    graph = dev_graph if controls == 3 else big_graph
    nodes = controls + computes
    assert len(graph.of_type(DOMAIN)) == nodes
    assert len(graph.of_type(SEED)) == nodes
    # base image + one root per node + the shared disk
    assert len(graph.of_type(VOLUME)) == 1 + nodes + 1
    assert len(graph.of_type(NETWORK)) == 1 and len(graph.of_type(PROVIDER)) == 1
    ready = [r for r in graph.of_type(REMOTE) if r.name.endswith("-ready")]
    assert len(ready) == nodes


def test_every_resource_has_a_component_parent(dev_graph):
    urns = dev_graph.by_urn()
    for registration in dev_graph.registrations:
        if registration.custom:
            parent = urns.get(registration.parent)
            assert parent is not None and not parent.custom, registration.name
            assert parent.type.startswith("openstack-ha:index:"), registration.name


def test_node_children_are_parented_to_their_node(dev_graph):
    for node in ("ctl1", "cmp1"):
        parent = dev_graph.named(node)
        children = {r.name for r in dev_graph.descendants(parent.urn)}
        assert {f"{node}-root", f"{node}-cloudinit", f"{node}-domain", f"{node}-ready"} <= children


@pytest.mark.parametrize("graph_name", ["dev_graph", "big_graph"])
def test_shared_disk_in_every_control_domain_and_no_compute(request, graph_name):
    graph = request.getfixturevalue(graph_name)
    shared = shared_volume(graph)
    assert shared.inputs["format"] == "raw"
    shared_id = f"{shared.name}-id"
    for domain in graph.of_type(DOMAIN):
        disks = [d.get("volumeId") for d in domain.inputs["disks"]]
        node = graph.settings.nodes[[f"{n.name}-domain" for n in graph.settings.nodes]
                                    .index(domain.name)]
        if node.role == "control":
            assert disks.count(shared_id) == 1, domain.name
            assert "<shareable/>" in domain.inputs["xml"]["xslt"]
            assert shared.urn in domain.dependencies
        else:
            assert shared_id not in disks, domain.name
            assert not (domain.inputs.get("xml") or {}).get("xslt")
    assert len(graph.of_type(VOLUME)) - len(graph.settings.nodes) - 1 == 1  # one shared volume


def test_root_volumes_are_copy_on_write_of_the_base_image(dev_graph):
    base = dev_graph.named("local-image-volume")
    assert base.inputs["source"] == dev_graph.settings.image.source
    for node in dev_graph.settings.nodes:
        root = dev_graph.named(f"{node.name}-root")
        assert root.inputs["baseVolumeId"] == f"{base.name}-id"
        assert root.inputs["size"] == node.sizing.disk_gib * 1024 ** 3


def test_domains_have_static_address_agent_and_sizing(dev_graph):
    for node in dev_graph.settings.nodes:
        domain = dev_graph.named(f"{node.name}-domain")
        assert domain.inputs["name"] == f"dev-{node.name}"
        assert domain.inputs["qemuAgent"] is True
        assert domain.inputs["memory"] == node.sizing.memory_mib
        assert domain.inputs["vcpu"] == node.sizing.vcpu
        (nic,) = domain.inputs["networkInterfaces"]
        assert nic["mac"] == node.mac and "addresses" not in nic
        network_config = yaml.safe_load(dev_graph.named(f"{node.name}-cloudinit")
                                        .inputs["networkConfig"])
        assert network_config["ethernets"]["primary"]["match"]["macaddress"] == nic["mac"]
        assert domain.inputs["cloudinit"] == f"{node.name}-cloudinit-id"


def test_network_is_static_with_dns_for_every_node_and_the_vip(dev_graph):
    (network,) = dev_graph.of_type(NETWORK)
    assert network.inputs["addresses"] == ["10.20.0.0/24"] and network.inputs["mode"] == "nat"
    assert network.inputs["dhcp"] == {"enabled": False}
    hosts = {h["hostname"]: h["ip"] for h in network.inputs["dns"]["hosts"]}
    assert hosts["openstack.osha.internal"] == "10.20.0.10"
    for node in dev_graph.settings.nodes:
        assert hosts[f"{node.name}.osha.internal"] == str(node.ip)


def test_isolated_network_mode_maps_to_libvirt_none():
    graph = render.run_program(stack_config("lab"), "lab")
    (network,) = graph.of_type(NETWORK)
    assert network.inputs["mode"] == "none"


def test_cloud_init_per_node(dev_graph):
    key = dev_graph.named("admin-ssh-key")
    public_key = crypto.key_outputs(crypto.private_key("dev", key.name, "ED25519", ""))[
        "publicKeyOpenssh"].strip()
    for node in dev_graph.settings.nodes:
        seed = dev_graph.named(f"{node.name}-cloudinit")
        user_data = yaml.safe_load(seed.inputs["userData"])
        assert user_data["hostname"] == node.name
        (user,) = user_data["users"]
        assert user["name"] == "osha" and user["ssh_authorized_keys"] == [public_key]
        network = yaml.safe_load(seed.inputs["networkConfig"])
        (nic,) = network["ethernets"].values()
        assert nic["addresses"] == [f"{node.ip}/24"] and nic["match"]["macaddress"] == node.mac
        assert yaml.safe_load(seed.inputs["metaData"])["local-hostname"] == node.name


def test_every_node_command_runs_after_its_readiness_gate(dev_graph):
    """Nothing runs on a node before cloud-init finished there (covers every later step too)."""
    manifest_like = {r.name: r for r in dev_graph.registrations}
    for registration in dev_graph.of_type(REMOTE):
        host = registration.inputs["connection"]["host"]
        node = next(n for n in dev_graph.settings.nodes if str(n.ip) == host)
        if registration.name == f"{node.name}-ready":
            assert manifest_like[f"{node.name}-domain"].urn in registration.dependencies
            continue
        assert f"{node.name}-ready" in dev_graph.waits_for(registration), registration.name


def test_readiness_gate_reruns_when_the_domain_is_replaced(dev_graph):
    for node in dev_graph.settings.nodes:
        ready = dev_graph.named(f"{node.name}-ready")
        assert ready.inputs["triggers"] == [f"{node.name}-domain-id"]
        assert "cloud-init status --wait" in ready.inputs["create"]


def test_stack_outputs(dev_graph):
    outputs = dev_graph.outputs
    assert outputs["vip"] == "10.20.0.10"
    assert outputs["domains"] == ["dev-ctl1", "dev-ctl2", "dev-ctl3", "dev-cmp1"]
    assert outputs["nodes"]["ctl2"]["ip"] == "10.20.0.12"
    assert outputs["nodes"]["ctl2"]["ssh"].endswith("osha@10.20.0.12")
    assert "adminPrivateKey" not in outputs  # secret: not printed by default


def test_rendered_manifest_shape(rendered):
    out = rendered("dev")
    manifest = Manifest.load(out)
    assert manifest.stack == "dev"
    domains = [r for r in manifest.resources if r.type == DOMAIN]
    shared = [r for r in domains if "xslt" in r.files]
    assert len(shared) == 3 and all((out / r.files["xslt"]).is_file() for r in shared)
    for resource in manifest.resources:
        for path in resource.files.values():
            assert (out / path).is_file(), path
    ready = [r for r in manifest.resources if r.name.endswith("-ready")]
    assert {r.host.host for r in ready} == {n.ip for n in manifest.nodes}
    assert (out / manifest.ssh.private_key_file).read_text().startswith(
        "-----BEGIN OPENSSH PRIVATE KEY-----")
