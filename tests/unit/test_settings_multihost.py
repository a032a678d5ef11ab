"""Settings for more than one hypervisor: what Pulumi.multihost.yaml allows and each rejection."""
from __future__ import annotations

import copy

import pytest

import settings
from tests.conftest import stack_config

KVM1_MAJORITY = {"nodes": [{"name": "ctl1", "ip": "192.168.50.11", "hypervisor": "kvm1"},
                           {"name": "ctl2", "ip": "192.168.50.12", "hypervisor": "kvm1"},
                           {"name": "ctl3", "ip": "192.168.50.13", "hypervisor": "kvm3"}]}


def multihost(**overrides) -> dict:
    return stack_config("multihost", **overrides)


def problems(raw: dict) -> list[str]:
    with pytest.raises(settings.SettingsError) as caught:
        settings.parse(raw, "multihost")
    return caught.value.problems


def only_problem(raw: dict) -> str:
    found = problems(raw)
    assert len(found) == 1, found
    return found[0]


def test_the_three_host_example_is_valid():
    parsed = settings.parse(multihost(), "multihost")
    assert [h.name for h in parsed.hypervisors] == ["kvm1", "kvm2", "kvm3"]
    assert [n.hypervisor for n in parsed.controls] == ["kvm1", "kvm2", "kvm3"]
    assert parsed.network.mode == "bridge" and parsed.network.bridge == "br0"
    assert parsed.shared_storage.kind == "iscsi"
    assert parsed.hypervisor("kvm2").fence_address == "192.168.50.3"


def test_a_majority_of_control_nodes_on_one_host_is_rejected():
    message = only_problem(multihost(controlNodes=KVM1_MAJORITY))
    assert message.startswith("openstack-ha:controlNodes:") and "2 of 3 on kvm1" in message
    assert "acknowledgeHypervisorMajority" in message


def test_an_acknowledged_majority_is_accepted():
    parsed = settings.parse(multihost(controlNodes=KVM1_MAJORITY,
                                      acknowledgeHypervisorMajority=True), "multihost")
    assert [n.hypervisor for n in parsed.controls].count("kvm1") == 2


def test_a_node_on_an_unknown_hypervisor_is_rejected():
    nodes = copy.deepcopy(KVM1_MAJORITY)
    nodes["nodes"][1]["hypervisor"] = "kvm9"
    message = only_problem(multihost(controlNodes=nodes))
    assert message.startswith("openstack-ha:controlNodes.nodes[1].hypervisor: 'kvm9'")
    assert "kvm1, kvm2, kvm3" in message


def test_a_pool_volume_across_hosts_is_rejected_with_the_remedy():
    message = only_problem(multihost(sharedStorage={"kind": "volume", "sizeGib": 4}))
    assert message.startswith("openstack-ha:sharedStorage.kind: 'volume'")
    assert "cannot be attached across hosts" in message
    assert "iscsi" in message and "rbd" in message and "hostDevice" in message


def test_a_pool_volume_is_fine_when_every_control_node_shares_one_host():
    """Compute nodes elsewhere do not need the disk."""
    raw = multihost(sharedStorage={"kind": "volume", "sizeGib": 4},
                    acknowledgeHypervisorMajority=True,
                    controlNodes={"nodes": [{**n, "hypervisor": "kvm1"}
                                            for n in KVM1_MAJORITY["nodes"]]})
    assert settings.parse(raw, "multihost").shared_storage.kind == "volume"


@pytest.mark.parametrize("kind,fields", [("iscsi", ("portal", "iqn", "lun", "hostDevice")),
                                         ("rbd", ("pool", "image", "monitors", "hostDevice"))])
def test_a_shared_block_device_must_be_described(kind, fields):
    found = problems(multihost(sharedStorage={"kind": kind, "source": {}}))
    assert sorted(found) == sorted(
        f"openstack-ha:sharedStorage.source.{f}: None is invalid; required for kind {kind}"
        for f in fields)


def test_a_host_device_must_be_a_device_path():
    storage = multihost()["sharedStorage"]
    storage["source"]["hostDevice"] = "osha-mysql-lun-0"
    message = only_problem(multihost(sharedStorage=storage))
    assert message.startswith("openstack-ha:sharedStorage.source.hostDevice:")
    assert "/dev/" in message


@pytest.mark.parametrize("mode", ["nat", "isolated"])
def test_more_than_one_hypervisor_needs_a_bridged_network(mode):
    network = {**multihost()["network"], "mode": mode}
    network.pop("bridge")
    message = only_problem(multihost(network=network))
    assert message.startswith(f"openstack-ha:network.mode: '{mode}'")
    assert "does not join hypervisors" in message and "mode bridge" in message


def test_a_single_hypervisor_keeps_its_nat_network():
    assert settings.parse(stack_config("dev"), "dev").network.mode == "nat"


def test_bridge_mode_needs_a_bridge_name():
    network = {**multihost()["network"]}
    network.pop("bridge")
    message = only_problem(multihost(network=network))
    assert message.startswith("openstack-ha:network.bridge: None")


def test_a_bridge_name_without_bridge_mode_is_rejected():
    message = only_problem(stack_config("dev", network={**stack_config("dev")["network"],
                                                        "bridge": "br0"}))
    assert message.startswith("openstack-ha:network.bridge: 'br0'") and "mode bridge" in message


def test_bridged_hypervisors_need_a_fence_address():
    """On a bridged LAN the default (the gateway) is the router, not the hypervisor."""
    hypervisors = [{"name": "local", "uri": "qemu:///system"}]
    network = multihost()["network"]
    raw = multihost(hypervisors=hypervisors, network=network, sharedStorage={"sizeGib": 4},
                    controlNodes={"count": 3, "firstIp": "192.168.50.11"},
                    computeNodes={"count": 0})
    message = only_problem(raw)
    assert message.startswith("openstack-ha:hypervisors[0].fenceAddress: None")
    assert "network.mode bridge" in message


def test_a_remote_hypervisor_needs_a_fence_address():
    hypervisors = multihost()["hypervisors"]
    del hypervisors[1]["fenceAddress"]
    message = only_problem(multihost(hypervisors=hypervisors))
    assert message.startswith("openstack-ha:hypervisors[1].fenceAddress: None")


@pytest.mark.parametrize("field", ["name", "uri"])
def test_hypervisor_names_and_uris_must_be_unique(field):
    hypervisors = multihost()["hypervisors"]
    hypervisors[2][field] = hypervisors[0][field]
    found = problems(multihost(hypervisors=hypervisors))
    assert f"openstack-ha:hypervisors: {hypervisors[0][field]!r} is invalid; " \
           f"hypervisor {field}s must be unique" in found


def test_a_non_libvirt_uri_is_rejected():
    hypervisors = multihost()["hypervisors"]
    hypervisors[0]["uri"] = "ssh://kvm1.lan"
    message = only_problem(multihost(hypervisors=hypervisors))
    assert message.startswith("openstack-ha:hypervisors[0].uri: 'ssh://kvm1.lan'")
