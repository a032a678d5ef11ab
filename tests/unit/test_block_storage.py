"""blockStorage: the backend follows the install, each backend's keys are checked before any
resource exists, and the Ceph steps run in the order a quorum needs, before Pacemaker first
starts cinder-volume."""
from __future__ import annotations

import base64
import re
import struct

import pytest

import openstack_packages
import settings
from components.block_storage import cephx_key, libvirt_secret_uuid
from components.node import node_apis
from components.openstack_config import node_plan
from tests.conftest import stack_config
from tests.unit.test_settings import problems
from tools import render

RBD = {"backend": "rbd", "monitors": ["10.30.0.5", "ceph2.example.net:6789"], "user": "osha"}


def parse(stack: str = "debian", **overrides) -> settings.Settings:
    return settings.parse(stack_config(stack, **overrides), stack)


def test_the_backend_follows_the_install_and_cinder():
    assert parse().block_storage.backend == "ceph"
    assert parse(openstack={"install": "none"}).block_storage.backend == "none"
    debian = stack_config("debian")
    assert parse(services={**debian.get("services", {}), "cinder": False}) \
        .block_storage.backend == "none"


def test_each_backend_refuses_what_does_not_apply():
    assert any("cephClientKey" in p and "required with blockStorage.backend rbd" in p
               for p in problems("debian", blockStorage=RBD))
    assert any("monitors" in p and "required with backend rbd" in p
               for p in problems("debian", blockStorage={"backend": "rbd"},
                                 cephClientKey="AQB1"))
    assert any("cephClientKey" in p and "applies with blockStorage.backend rbd only" in p
               for p in problems("debian", cephClientKey="AQB1"))
    assert any("osdSizeGib" in p and "applies with backend ceph only" in p
               for p in problems("debian", blockStorage={"backend": "none", "osdSizeGib": 8}))
    assert any("cinder-volume is installed with openstack.install packages" in p
               for p in problems("dev", openstack={"install": "none"},
                                 blockStorage={"backend": "ceph"}))
    # The OSD's file leaves the root disk room for the system.
    assert any("osdSizeGib" in p and "controlSize.diskGib 8" in p
               for p in problems("lab", blockStorage={"osdSizeGib": 6}))
    assert parse(blockStorage=RBD, cephClientKey="AQB1").block_storage.monitors == \
        tuple(RBD["monitors"])


def test_a_generated_key_is_a_cephx_key():
    raw = bytes(range(16))
    key = base64.b64decode(cephx_key(base64.b64encode(raw).decode()))
    # What `ceph-authtool --gen-print-key` prints: type 1 (AES), a time, the length, the secret.
    assert struct.unpack("<HIIH", key[:12]) == (1, 0, 0, 16) and key[12:] == raw
    assert cephx_key(base64.b64encode(raw).decode()).startswith("AQ")


@pytest.fixture(scope="module")
def lab() -> render.Graph:
    return render.run_program(stack_config("lab"), "lab")


def test_the_osds_wait_for_every_monitor_and_pacemaker_for_the_osds(lab):
    controls = [n.name for n in lab.settings.controls]
    for name in controls:
        assert f"{name}-openstack-install" in lab.waits_for(lab.named(f"{name}-ceph-mon"))
        assert {f"{n}-ceph-mon" for n in controls} <= \
            set(lab.waits_for(lab.named(f"{name}-ceph-osd")))
    assert {f"{n}-ceph-osd" for n in controls} <= set(lab.waits_for(lab.named("cluster-layout")))
    assert not [r for r in lab.registrations if r.name.startswith("cmp1-ceph")]


def test_each_step_gets_only_the_keys_it_uses(lab):
    def names(step: str) -> set[str]:
        return {line.split("=", 1)[0] for line in
                lab.named(step).inputs["stdin"].splitlines()}
    assert names("ctl2-ceph-osd") == {"ceph_mgr_ctl2", "ceph_osd_ctl2", "ceph_images"}
    assert names("ctl2-ceph-mon") == {"ceph_client", "ceph_mon", "ceph_admin", "ceph_mgr_ctl1",
                                      "ceph_mgr_ctl2", "ceph_mgr_ctl3"}
    # cinder's and glance's client keys reach the install, the OSDs' keys do not.
    install = names("ctl1-openstack-install")
    assert {"ceph_client", "ceph_images"} <= install
    assert not [n for n in install if n.startswith("ceph_osd")]


def test_an_external_cluster_runs_no_ceph_daemons_and_uses_the_given_key():
    graph = render.run_program(stack_config("debian", blockStorage=RBD, cephClientKey="AQB1"),
                               "debian")
    assert not [r for r in graph.registrations if "ceph-mon" in r.name or "ceph-osd" in r.name]
    install = graph.named("ctl1-openstack-install")
    assert "ceph_client=AQB1" in install.inputs["stdin"].splitlines()
    script = install.inputs["create"]
    assert "mon_host = 10.30.0.5,ceph2.example.net:6789" in script
    assert "ceph-mon" not in script and "cinder-volume" in script
    assert "shadow resource create cinder-volume systemd:cinder-volume" in \
        graph.named("cluster-layout").inputs["create"]


def libvirt_packages(s: settings.Settings) -> list[str]:
    return openstack_packages.data()["block_storage"]["libvirt_packages"][s.image.os_family]


@pytest.mark.parametrize("overrides", [{}, {"blockStorage": RBD, "cephClientKey": "AQB1"}],
                         ids=["ceph", "rbd"])
def test_libvirt_compute_nodes_hold_cinders_key_as_the_secret_nova_and_cinder_name(overrides):
    """nova's libvirt driver attaches a Ceph volume by the libvirt secret cinder names: each
    compute node with a libvirt driver gets qemu's RBD driver and cinder's client key as that
    secret, once its libvirtd runs; nova.conf and cinder.conf name the one uuid."""
    graph = render.run_program(stack_config("dev", **overrides), "dev")
    secret_uuid = libvirt_secret_uuid(graph.settings)
    cinder = graph.named("ctl1-openstack-install").inputs["create"]
    assert f"rbd_secret_uuid = {secret_uuid}" in cinder
    for node in graph.settings.computes:
        step = graph.named(f"{node.name}-ceph-secret")
        assert f"{node.name}-openstack-start" in graph.waits_for(step)
        assert [line.split("=", 1)[0] for line in step.inputs["stdin"].splitlines()] == \
            ["ceph_client"]
        assert secret_uuid in step.inputs["create"] and secret_uuid in step.inputs["delete"]
        install = graph.named(f"{node.name}-openstack-install").inputs["create"]
        assert f"rbd_secret_uuid = {secret_uuid}" in install
        assert all(f" {p}" in install for p in libvirt_packages(graph.settings))
    if overrides:
        assert "ceph_client=AQB1" in graph.named("cmp1-ceph-secret").inputs["stdin"]


def test_compute_nodes_without_libvirt_get_no_secret(lab):
    assert not [r for r in lab.registrations if r.name.endswith("-ceph-secret")]
    assert lab.settings.computes and not lab.settings.attaches_volumes_with_libvirt
    install = lab.named("cmp1-openstack-install").inputs["create"]
    assert "rbd_secret_uuid" not in install
    assert not [p for p in libvirt_packages(lab.settings) if f" {p}" in install]


@pytest.mark.parametrize("overrides, in_ceph", [
    ({}, True), ({"blockStorage": RBD, "cephClientKey": "AQB1"}, False),
    ({"blockStorage": {"backend": "none"}}, False)], ids=["ceph", "rbd", "none"])
def test_glance_serves_from_every_control_node_with_its_images_in_the_stacks_ceph(overrides,
                                                                                   in_ceph):
    """With the stack's Ceph, glance's images are in its `images` pool (glance's own client,
    made by the OSD step) and every control node runs glance-api behind HAProxy, drained like the
    other APIs; else they are on the shared disk and glance-api is a group member, on the node
    that mounts it."""
    graph = render.run_program(stack_config("debian", **overrides), "debian")
    ctl1 = graph.settings.controls[0]
    plan = node_plan(graph.settings, ctl1)
    install = graph.named("ctl1-openstack-install").inputs["create"]
    assert ("glance-api" in plan.run_units) == in_ceph
    assert ("glance-api" in plan.cluster_units) != in_ceph
    assert ("shadow resource create glance-api" in graph.named("cluster-layout").inputs["create"]) \
        != in_ceph
    assert (f"{ctl1.ip}:9292" in node_apis(graph.settings, ctl1)) == in_ceph
    restart = graph.named("ctl1-rolling-restart").inputs["create"]
    assert (f"{ctl1.ip}:9292" in restart) == in_ceph
    (proxies,) = re.findall(r"^proxies=\((.*)\)$", restart, re.M)
    assert ("glance-api" in proxies.split()) == in_ceph and "keystone" in proxies.split()
    assert ("default_store = rbd" in install) == in_ceph
    assert ("filesystem_store_datadir" in install) != in_ceph
    assert ("AssertPathIsMountPoint" in install) != in_ceph
    assert ("ceph_images=" in graph.named("ctl1-openstack-install").inputs["stdin"]) == in_ceph
    if in_ceph:
        osd = graph.named("ctl1-ceph-osd").inputs["create"]
        assert "pools=(volumes images)" in osd and "ceph auth import" in osd
        assert "[client.glance]\nkeyring = /etc/ceph/openstack-ha-images.keyring" in install
