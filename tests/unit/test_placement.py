"""Placement across three hypervisors (Pulumi.multihost.yaml) under the mock runtime.

Every libvirt resource of a node goes through the explicit provider of the host the node names,
each host gets its own copy of the bridged network and the base image, the shared disk is the
same block device in every control Domain, and each node's fence device targets its own host.
"""
from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import stack_config
from tools import render
from tools.render import NETWORK, PROVIDER, VOLUME

LIBVIRT = "libvirt:index/"


@pytest.fixture(scope="module")
def graph() -> render.Graph:
    return render.run_program(stack_config("multihost"), "multihost")


def provider_urn(reference: str) -> str:
    """A provider reference is "<urn>::<id>"."""
    return reference.rsplit("::", 1)[0]


def host_of(graph: render.Graph, registration: render.Registration) -> str:
    """The hypervisor name whose provider creates `registration`."""
    return graph.by_urn()[provider_urn(registration.provider)].name.removesuffix("-libvirt")


def test_one_explicit_provider_per_hypervisor(graph):
    providers = {p.name: p.inputs["uri"] for p in graph.of_type(PROVIDER)}
    assert providers == {f"{h.name}-libvirt": h.uri for h in graph.settings.hypervisors}
    assert len(set(providers.values())) == 3


def test_every_libvirt_resource_goes_through_an_explicit_provider(graph):
    libvirt_resources = [r for r in graph.registrations if r.type.startswith(LIBVIRT)]
    assert libvirt_resources
    for registration in libvirt_resources:
        # The default provider would be "pulumi:providers:libvirt::default..."; none may be used.
        assert "::default" not in registration.provider, registration.name
        assert graph.by_urn()[provider_urn(registration.provider)].type == PROVIDER


def test_each_node_is_placed_on_its_own_hypervisor(graph):
    placed = {n.name: n.hypervisor for n in graph.settings.nodes}
    assert sorted(placed[c.name] for c in graph.settings.controls) == ["kvm1", "kvm2", "kvm3"]
    for node, hypervisor in placed.items():
        resources = [r for r in graph.descendants(graph.named(node).urn)
                     if r.type.startswith(LIBVIRT)]
        assert {r.name for r in resources} == {f"{node}-root", f"{node}-cloudinit",
                                               f"{node}-domain"}
        assert {host_of(graph, r) for r in resources} == {hypervisor}, node
        # Its NIC joins the network of the same host, its root layers on that host's image.
        domain = graph.named(f"{node}-domain")
        assert domain.inputs["networkInterfaces"][0]["networkId"] == \
            f"{hypervisor}-network-libvirt-id"
        assert graph.named(f"{node}-root").inputs["baseVolumeId"] == \
            f"{hypervisor}-image-volume-id"


def test_each_host_bridges_the_nodes_onto_the_shared_lan(graph):
    networks = graph.of_type(NETWORK)
    assert sorted(host_of(graph, n) for n in networks) == ["kvm1", "kvm2", "kvm3"]
    for network in networks:
        assert network.inputs["mode"] == "bridge" and network.inputs["bridge"] == "br0"
        # libvirt serves no DHCP or DNS on a host bridge: the LAN's router is the gateway.
        assert "addresses" not in network.inputs and "dns" not in network.inputs


def test_the_shared_disk_is_one_block_device_in_every_control_domain(graph):
    device = graph.settings.shared_storage.source["hostDevice"]
    assert not [v for v in graph.of_type(VOLUME)
                if v.inputs.get("format") == "raw"], "no pool volume on one host"
    for node in graph.settings.nodes:
        disks = graph.named(f"{node.name}-domain").inputs["disks"]
        attached = [d for d in disks if d.get("blockDevice") == device]
        assert len(attached) == (1 if node.role == "control" else 0), node.name


def test_the_block_device_becomes_shareable_through_xsltproc(graph, tmp_path):
    """The XSLT marks the provider's <disk type='block'> shareable (real xsltproc)."""
    device = graph.settings.shared_storage.source["hostDevice"]
    domain = graph.named("ctl2-domain")
    (tmp_path / "shared.xsl").write_text(domain.inputs["xml"]["xslt"])
    (tmp_path / "domain.xml").write_text(f"""<domain type='kvm'><name>x</name><devices>
  <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
    <source file='/var/lib/libvirt/images/ctl2-root.qcow2'/><target dev='vda' bus='virtio'/></disk>
  <disk type='block' device='disk'><driver name='qemu' type='raw'/>
    <source dev='{device}'/><target dev='vdb' bus='virtio'/></disk>
</devices></domain>""")
    result = subprocess.run(["xsltproc", str(tmp_path / "shared.xsl"), str(tmp_path / "domain.xml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    shareable = [d for d in ET.fromstring(result.stdout).findall("./devices/disk")
                 if d.find("shareable") is not None]
    assert [d.find("source").get("dev") for d in shareable] == [device]


def test_fence_devices_target_each_nodes_own_hypervisor(graph):
    layout = graph.named("cluster-layout").inputs["create"]
    for node in graph.settings.controls:
        hypervisor = graph.settings.hypervisor(node.hypervisor)
        line = next(l for l in layout.splitlines() if f"stonith create fence-{node.name} " in l)
        assert re.search(rf"\bip={re.escape(hypervisor.fence_address)}\b", line), line
        assert f"plug=multihost-{node.name}" in line and f"pcmk_host_list={node.name}" in line
    addresses = {graph.settings.hypervisor(n.hypervisor).fence_address
                 for n in graph.settings.controls}
    assert len(addresses) == 3


def test_the_fencing_key_is_authorised_on_every_hypervisor_over_ssh(graph):
    for hypervisor in graph.settings.hypervisors:
        step = graph.named(f"{hypervisor.name}-fence-authorize")
        assert step.type == "command:remote:Command"
        assert step.inputs["connection"]["host"] == f"{hypervisor.name}.lan"
        assert "osha-fence:multihost" in step.inputs["delete"]


def test_each_sites_network_and_image_use_that_hosts_provider(graph):
    for hypervisor in graph.settings.hypervisors:
        for name in (f"{hypervisor.name}-network-libvirt", f"{hypervisor.name}-image-volume"):
            assert host_of(graph, graph.named(name)) == hypervisor.name, name


def test_a_pool_shared_volume_is_created_on_the_control_nodes_host():
    """All control nodes on kvm2 (acknowledged): the raw volume lives in kvm2's pool."""
    config = stack_config(
        "multihost", sharedStorage={"kind": "volume", "sizeGib": 4},
        acknowledgeHypervisorMajority=True,
        controlNodes={"nodes": [{"name": f"ctl{i}", "ip": f"192.168.50.1{i}",
                                 "hypervisor": "kvm2"} for i in (1, 2, 3)]})
    graph = render.run_program(config, "multihost")
    volume = graph.named("shared-disk-volume")
    assert volume.inputs["format"] == "raw" and host_of(graph, volume) == "kvm2"
    for node in graph.settings.controls:
        assert host_of(graph, graph.named(f"{node.name}-domain")) == "kvm2"
