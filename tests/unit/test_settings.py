"""Every invalid setting is rejected before any resource exists, naming key, value and remedy."""
from __future__ import annotations

import pytest
from pulumi.errors import RunError

import settings
from tests.conftest import stack_config
from tools import render


def problems(stack: str = "dev", **overrides) -> list[str]:
    raw = stack_config(stack, **overrides)
    with pytest.raises(settings.SettingsError) as caught:
        settings.parse(raw, stack)
    return caught.value.problems


def only_problem(**overrides) -> str:
    found = problems(**overrides)
    assert len(found) == 1, found
    return found[0]


def test_dev_and_lab_stack_files_are_valid():
    dev = settings.parse(stack_config("dev"), "dev")
    assert [n.name for n in dev.controls] == ["ctl1", "ctl2", "ctl3"]
    assert [str(n.ip) for n in dev.computes] == ["10.20.0.21"]
    assert str(dev.vip) == "10.20.0.10" and dev.libvirt_uri == "qemu:///system"
    lab = settings.parse(stack_config("lab"), "lab")
    assert lab.image.os_family == "debian" and lab.cluster.broker == "rabbitmq"


def test_defaults_cover_an_empty_config():
    parsed = settings.parse({}, "empty")
    assert parsed.libvirt_uri == "qemu:///system"
    assert parsed.image.source == settings.DEFAULT_IMAGE and parsed.image.os_family == "rhel"
    assert len(parsed.controls) == 3 and parsed.fencing.enabled
    assert parsed.cluster.haproxy_layout == "clone" and parsed.cluster.broker_layout == "clone"


@pytest.mark.parametrize("cidr", ["10.20.0.0/33", "10.20.0.1/24", "not-a-network"])
def test_malformed_cidr(cidr):
    message = only_problem(network={"cidr": cidr})
    assert message.startswith("openstack-ha:network.cidr:") and repr(cidr) in message
    assert "IPv4 network" in message


def test_malformed_ip():
    message = only_problem(vip="10.20.0.300")
    assert message.startswith("openstack-ha:vip:") and "'10.20.0.300'" in message
    assert "IPv4 address" in message


def test_malformed_node_ip():
    message = problems(controlNodes={"nodes": [{"name": "a1", "ip": "x"},
                                               {"name": "a2", "ip": "10.20.0.12"},
                                               {"name": "a3", "ip": "10.20.0.13"}]})[0]
    assert message.startswith("openstack-ha:controlNodes.nodes[0].ip:") and "'x'" in message


def test_vip_outside_subnet():
    message = only_problem(vip="10.30.0.10")
    assert "openstack-ha:vip: '10.30.0.10'" in message and "inside network.cidr 10.20.0.0/24" in message


def test_vip_equal_to_a_node():
    message = only_problem(vip="10.20.0.12")
    assert "openstack-ha:vip: '10.20.0.12'" in message and "ctl2" in message


def test_vip_equal_to_gateway():
    message = only_problem(vip="10.20.0.1")
    assert "openstack-ha:vip: '10.20.0.1'" in message and "gateway" in message


def test_duplicate_names():
    nodes = [{"name": "ctl1", "ip": "10.20.0.11"}, {"name": "ctl1", "ip": "10.20.0.12"},
             {"name": "ctl3", "ip": "10.20.0.13"}]
    message = only_problem(controlNodes={"nodes": nodes})
    assert "'ctl1'" in message and "names must be unique" in message


def test_duplicate_ips_across_roles():
    message = only_problem(computeNodes={"count": 1, "firstIp": "10.20.0.13"})
    assert "'10.20.0.13'" in message and "addresses must be unique" in message


def test_fewer_than_two_control_nodes():
    message = only_problem(controlNodes={"count": 1})
    assert message.startswith("openstack-ha:controlNodes: 1") and "at least 2" in message


def test_even_control_count_needs_acknowledgement():
    message = only_problem(controlNodes={"count": 4})
    assert message.startswith("openstack-ha:controlNodes: 4") and "acknowledgeEvenControlCount" in message
    acknowledged = settings.parse(stack_config("dev", controlNodes={"count": 4},
                                               acknowledgeEvenControlCount=True), "dev")
    assert len(acknowledged.controls) == 4


@pytest.mark.parametrize("count, taken_out, refused", [
    (3, ["ctl2"], False), (3, ["ctl1", "ctl2"], True), (5, ["ctl1", "ctl5"], False),
    (5, ["ctl1", "ctl2", "ctl3"], True),
    # Two nodes keep quorum with one (corosync's two_node), not with none.
    (2, ["ctl1"], False), (2, ["ctl1", "ctl2"], True)])
def test_maintenance_leaves_a_quorate_cluster_serving(count, taken_out, refused):
    raw = stack_config("dev", controlNodes={"count": count}, maintenance=taken_out,
                       acknowledgeEvenControlCount=count % 2 == 0)
    if refused:
        with pytest.raises(settings.SettingsError, match="without quorum"):
            settings.parse(raw, "dev")
    else:
        assert settings.parse(raw, "dev").maintenance == tuple(taken_out)


def test_memory_too_small():
    message = only_problem(controlSize={"memoryMib": 1024})
    assert message.startswith("openstack-ha:controlSize.memoryMib: 1024")
    assert f">= {settings.MIN_CONTROL_MEMORY_MIB}" in message


def test_unknown_os_family():
    message = only_problem(image={"source": settings.DEFAULT_IMAGE, "osFamily": "suse"})
    assert "openstack-ha:image.osFamily: 'suse'" in message and "rhel, debian" in message


def test_unknown_broker():
    message = only_problem(cluster={"broker": "kafka"})
    assert "openstack-ha:cluster.broker: 'kafka'" in message and "qpid, rabbitmq" in message


def test_qpid_is_rejected_on_debian():
    message = only_problem(image={"source": settings.DEFAULT_IMAGE, "osFamily": "debian"},
                           cluster={"broker": "qpid"}, openstack={"install": "none"})
    assert "cluster.broker: 'qpid'" in message and "rabbitmq" in message


def test_shared_disk_too_small():
    message = only_problem(sharedStorage={"sizeGib": 1})
    assert message.startswith("openstack-ha:sharedStorage.sizeGib: 1")
    assert f">= {settings.MIN_SHARED_DISK_GIB}" in message


def test_image_missing(tmp_path):
    missing = str(tmp_path / "nope.qcow2")
    message = only_problem(image={"source": missing, "osFamily": "rhel"})
    assert f"openstack-ha:image.source: {missing!r}" in message and "does not exist" in message


def test_existing_local_image_is_accepted(tmp_path):
    image = tmp_path / "base.qcow2"
    image.write_bytes(b"QFI\xfb")
    parsed = settings.parse(stack_config("dev", image={"source": str(image), "osVersion": 9}),
                            "dev")
    assert parsed.image.source == str(image) and not parsed.image.is_url


def test_fencing_off_needs_acknowledgement():
    message = only_problem(fencing={"enabled": False})
    assert "openstack-ha:fencing.enabled: False" in message and "acknowledgeDisabled" in message
    off = settings.parse(stack_config("dev", fencing={"enabled": False,
                                                       "acknowledgeDisabled": True}), "dev")
    assert not off.fencing.enabled


def test_unknown_key_is_a_typo():
    message = only_problem(controlNode={"count": 3})
    assert message.startswith("openstack-ha:controlNode:") and "unknown key" in message


def test_every_problem_is_reported_at_once():
    found = problems(vip="10.30.0.1", controlSize={"memoryMib": 512}, sharedStorage={"sizeGib": 0})
    assert sorted(p.split(":")[1] for p in found) == ["controlSize.memoryMib",
                                                      "sharedStorage.sizeGib", "vip"]


def test_a_bad_config_registers_no_resource():
    """The program itself stops before its first resource, with the settings message."""
    monitor = render.RecordingMonitor(render.RenderMocks("dev"))
    with pytest.raises(RunError) as caught:
        render.run_mocked(stack_config("dev", vip="10.30.0.1"), "dev", monitor)
    assert "openstack-ha:vip: '10.30.0.1'" in str(caught.value)
    assert monitor.registrations == []


def test_consoleauth_singleton_follows_the_release():
    havana = settings.parse(stack_config("dev", release="havana", openstack={"install": "none"}),
                            "dev")
    assert [s.unit for s in havana.cluster.singletons] == ["openstack-nova-consoleauth",
                                                          "neutron-openvswitch-agent"]
    modern = settings.parse(stack_config("dev", release="antelope"), "dev")
    assert [s.name for s in modern.cluster.singletons] == ["neutron-l2-agent"]


def test_failover_settings_default_to_corosync_and_pacemaker_defaults():
    parsed = settings.parse({}, "empty")
    assert parsed.cluster.token_ms == 3000 and parsed.cluster.load_threshold_percent == 80
    assert parsed.fencing.action == "reboot"


@pytest.mark.parametrize("section, key, value, word", [
    ("cluster", "tokenMs", 100, "cluster.tokenMs"),
    ("cluster", "loadThresholdPercent", 0, "cluster.loadThresholdPercent"),
    ("cluster", "failureTimeoutSeconds", -1, "cluster.failureTimeoutSeconds"),
    ("fencing", "action", "cycle", "fencing.action"),
])
def test_failover_settings_rejections(section, key, value, word):
    base = stack_config("dev")[section] if section in stack_config("dev") else {}
    assert word in only_problem(**{section: {**base, key: value}})
