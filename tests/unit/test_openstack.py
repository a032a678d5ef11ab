"""The OpenStack install, bootstrap and start steps under the mock runtime: where they run, in
which order, what reaches them on stdin, and what the image-carries-the-services mode leaves out."""
from __future__ import annotations

import re

import pytest

import openstack_packages
import settings as stack_settings
from catalogue import endpoints
from components.openstack import bootstrap_plans, bootstrap_secrets
from components.openstack_config import PLACEHOLDER, node_plan
from components.templating import shell_quote
from tests.conftest import stack_config
from tools import render
from tools.render import REMOTE


@pytest.fixture(scope="module")
def debian() -> render.Graph:
    return render.run_program(stack_config("debian"), "debian")


def host_of(graph: render.Graph, name: str) -> str:
    return graph.named(name).inputs["connection"]["host"]


def test_each_node_installs_after_its_package_step(debian):
    s = debian.settings
    for node in s.controls:
        waits = debian.waits_for(debian.named(f"{node.name}-openstack-install"))
        assert f"{node.name}-cluster-prep" in waits and f"{node.name}-ready" in waits
        assert host_of(debian, f"{node.name}-openstack-install") == str(node.ip)
    commands = {r.name for r in debian.of_type(REMOTE)}
    for node in s.computes:
        waits = debian.waits_for(debian.named(f"{node.name}-openstack-install"))
        assert [w for w in waits if w in commands] == [f"{node.name}-ready"]


def test_the_layout_and_apache_wait_for_every_control_install(debian):
    installs = {f"{n.name}-openstack-install" for n in debian.settings.controls}
    # glance-api is a cluster resource: its unit must exist on every node first.
    assert installs <= set(debian.waits_for(debian.named("cluster-layout")))
    for node in debian.settings.controls:
        # Apache comes with the install; api-listen moves it off the VIP's ports afterwards.
        assert f"{node.name}-openstack-install" in debian.waits_for(
            debian.named(f"{node.name}-api-listen"))


def test_bootstrap_once_after_the_layout_then_starts_then_repoint(debian):
    s = debian.settings
    bootstrap = debian.named("openstack-bootstrap")
    assert host_of(debian, "openstack-bootstrap") == str(s.controls[0].ip)
    assert len([r for r in debian.registrations if r.name == "openstack-bootstrap"]) == 1
    waits = set(debian.waits_for(bootstrap))
    assert {"cluster-layout", *(f"{n.name}-openstack-install" for n in s.nodes),
            *(f"{n.name}-haproxy-install" for n in s.controls)} <= waits
    # One node after the other, control nodes first: nova-compute reports to conductors that
    # already run.
    order = [f"{n.name}-openstack-start" for n in [*s.controls, *s.computes]]
    for index, start in enumerate(order):
        waits = debian.waits_for(debian.named(start))
        assert "openstack-bootstrap" in waits
        assert {w for w in waits if w.endswith("-openstack-start")} == set(order[index - 1:index])
    starts = set(order)
    for node in s.nodes:
        assert starts <= set(debian.waits_for(debian.named(f"{node.name}-repoint")))
    assert starts <= set(debian.waits_for(debian.named("keystone-endpoints")))


def test_install_stdin_carries_exactly_what_the_files_name(debian):
    secrets = debian.secret_values()
    for node in debian.settings.nodes:
        step = debian.named(f"{node.name}-openstack-install")
        plan = node_plan(debian.settings, node)
        names = [line.split("=", 1)[0] for line in step.inputs["stdin"].splitlines()]
        assert names == plan.secrets
        placeholders = {m.group(2) for m in PLACEHOLDER.finditer(step.inputs["create"])
                        if m.group(1) == "SECRET"}
        assert placeholders <= set(names)
        assert not [v for v in secrets if v in step.inputs["create"]]
        assert "read_bundle 'OpenStack secrets' value SECRET_" in step.inputs["create"]
    compute = debian.named("cmp1-openstack-install").inputs["stdin"]
    assert sorted(line.split("=")[0] for line in compute.splitlines()) == ["broker", "ks_nova"]


def test_bootstrap_stdin_and_plans(debian):
    s = debian.settings
    step = debian.named("openstack-bootstrap")
    names = [line.split("=", 1)[0] for line in step.inputs["stdin"].splitlines()]
    assert names == bootstrap_secrets(s)
    assert {"mysql_root", "keystone_admin", "db_nova", "ks_nova", "ks_heat_domain_admin"} <= \
        set(names)
    databases, catalogue = bootstrap_plans(s)
    assert ["nova_cell0", "nova"] in databases["databases"]
    # The bootstrap makes the very endpoints keystone-endpoints wants: it then changes nothing.
    wanted = endpoints(s.services, s.vip_fqdn, s.tls_enabled)
    assert [tuple(row) for row in catalogue["endpoints"]] == wanted
    script = debian.named("keystone-endpoints").inputs["create"]
    assert all(f"\n  {t} {i} {shell_quote(u)}\n" in script for t, i, u in wanted)
    assert {t for t, _ in catalogue["services"]} == {t for t, _, _ in wanted}


def test_fernet_keys_are_random_bytes_in_fernets_encoding(debian):
    stdin = debian.named("ctl1-openstack-install").inputs["stdin"]
    keys = dict(line.split("=", 1) for line in stdin.splitlines() if line.startswith(
        ("fernet_", "credential_")))
    assert sorted(keys) == ["credential_0", "credential_1", "fernet_0", "fernet_1"]
    for key in keys.values():
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}=", key)
    # Every control node gets the same keys: a token one issues validates on the others.
    assert {debian.named(f"{n.name}-openstack-install").inputs["stdin"]
            for n in debian.settings.controls} == {stdin}


def test_start_enables_what_runs_and_waits_on_the_apis(debian):
    s = debian.settings
    script = debian.named("ctl1-openstack-start").inputs["create"]
    assert "\nrun_units=(memcached keystone " in script
    # glance-api too: its images are in the stack's Ceph.
    assert " glance-api)\n" in script and f"{s.controls[0].ip}:9292" in script
    assert "neutron-linuxbridge-agent" not in script  # Pacemaker's
    assert f"{s.controls[0].ip}:5000" in script
    assert "systemctl restart" not in script
    compute = debian.named("cmp1-openstack-start").inputs["create"]
    assert "\nrun_units=(nova-compute neutron-linuxbridge-agent)\n" in compute


def test_every_compute_node_runs_the_l2_agent_without_the_servers_secrets(debian):
    """neutron binds a server's port only to a host whose L2 agent reports: each compute node
    runs the agent the control nodes run as a cluster resource, as a plain unit, with the
    broker and no database or keystone credentials."""
    for node in debian.settings.computes:
        plan = node_plan(debian.settings, node)
        assert "neutron-linuxbridge-agent" in plan.packages
        assert plan.cluster_units == ()
        by_path = {f.path: f.text for f in plan.files}
        conf = by_path["/etc/neutron/neutron.conf"]
        assert "transport_url = rabbit://" in conf and "[experimental]\nlinuxbridge = true" in conf
        assert "[database]" not in conf and "keystone_authtoken" not in conf
        assert "local_ip = " + str(node.ip) in by_path[
            "/etc/neutron/plugins/ml2/linuxbridge_agent.ini"]
        agent = [r for r in plan.restarts if r.path == "/etc/neutron/neutron.conf"]
        assert [(r.units, r.resources) for r in agent] == [(("neutron-linuxbridge-agent",), ())]
        assert set(plan.secrets) == {"broker", "ks_nova"}


def test_the_install_keeps_units_stopped_and_cluster_units_disabled(debian):
    script = debian.named("ctl1-openstack-install").inputs["create"]
    assert "\ncluster_units=(neutron-linuxbridge-agent cinder-volume)\n" in script
    assert "exit 101" in script and "--no-install-recommends" in script
    assert "systemctl start" not in script and "systemctl restart" not in script


# The lab stack as it would be with an image that carries the services (no volume service: the
# stack installs none).
IMAGE_CARRIES = {"install": "none"}
NO_BLOCK_STORAGE: dict = {}


def test_image_carrying_the_services_installs_nothing():
    lab = render.run_program(stack_config("lab", openstack=IMAGE_CARRIES, blockStorage=NO_BLOCK_STORAGE), "lab")
    names = {r.name for r in lab.registrations}
    assert not [n for n in names if "openstack" in n and n != "openstack-ha"]
    assert "adminOpenrc" not in lab.outputs and "dashboardUrl" not in lab.outputs
    layout = lab.named("cluster-layout").inputs["create"]
    assert "glance-api" not in layout


def test_outputs(debian):
    assert debian.outputs["dashboardUrl"] == "https://openstack.osha.internal/"
    assert debian.outputs["caCertificate"].startswith("-----BEGIN CERTIFICATE-----")
    # The admin's openrc holds its password: a secret output, left out of the plain ones.
    assert "adminOpenrc" not in debian.outputs


def test_rhel_takes_rdo_of_the_release(dev_graph):
    script = dev_graph.named("ctl1-openstack-install").inputs["create"]
    assert "\n  release_package=centos-release-openstack-antelope\n" in script
    assert "dnf -y -q install" in script and "apt-get" not in script
    assert "openstack-glance" in script and " openstack-glance-api)\n" in script


def test_services_switched_off_are_not_installed():
    graph = render.run_program(stack_config("debian", services={"heat": False,
                                                                "heat-cfn": False}), "debian")
    script = graph.named("ctl1-openstack-install").inputs["create"]
    packages = script.split("\npackages=(", 1)[1].split(")", 1)[0].split()
    assert not {"heat-api", "heat-engine", "heat-api-cfn"} & set(packages)
    assert "/etc/heat/heat.conf" not in {f.path for f in node_plan(
        graph.settings, graph.settings.controls[0]).files}
    assert "heat-manage" not in graph.named("openstack-bootstrap").inputs["create"]


@pytest.mark.parametrize("source,family,version", [
    ("https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2",
     "debian", 12),
    ("https://cloud.centos.org/centos/9-stream/x86_64/images/"
     "CentOS-Stream-GenericCloud-9-latest.x86_64.qcow2", "rhel", 9),
    ("https://example.org/Rocky-8-GenericCloud.latest.x86_64.qcow2", "rhel", 8),
    ("https://example.org/rhel-9.4-x86_64-kvm.qcow2", "rhel", 9),
    ("https://example.org/disk.qcow2", "rhel", None),
])
def test_the_image_names_its_version(source, family, version):
    assert stack_settings.image_version(source, family) == version


def test_install_defaults_follow_the_node_and_the_family():
    dev = stack_settings.parse(stack_config("dev"), "dev")
    assert dev.openstack.workers == 2 and dev.cluster.broker == "rabbitmq"
    small = stack_settings.parse(stack_config(
        "dev", controlSize={"vcpu": 1, "memoryMib": 4096}), "dev")
    assert small.openstack.workers == 1
    # What the install does not know is off unless asked for; what the image carries is not.
    assert not dev.services["swift"]
    assert stack_settings.parse(stack_config("lab", openstack=IMAGE_CARRIES, blockStorage=NO_BLOCK_STORAGE),
                                "lab").services["swift"]
    assert set(openstack_packages.installable()) >= {s for s, on in dev.services.items() if on}
