"""The repoint and keystone steps under the mock runtime: placement, order, data, secrets."""
from __future__ import annotations

import pytest

from catalogue import endpoints
from components.endpoints import load_rules, node_edits, node_restarts
from components.templating import shell_quote
from tests.conftest import stack_config
from tools import render
from tools.render import LOCAL, REMOTE

COMMANDS = (REMOTE, LOCAL)
ADMIN_PASSWORD = "keystone-admin-Secret-42"


@pytest.fixture(scope="module")
def prod_graph() -> render.Graph:
    """TLS on, and the keystone admin password given as a secret."""
    return render.run_program(stack_config("prod", keystoneAdminPassword=ADMIN_PASSWORD), "prod")


def test_every_node_is_repointed_after_haproxy(dev_graph):
    for node in dev_graph.settings.nodes:
        step = dev_graph.named(f"{node.name}-repoint")
        assert step.inputs["connection"]["host"] == str(node.ip)
        waits = dev_graph.waits_for(step)
        assert "cluster-layout" in waits and f"{node.name}-ready" in waits
        assert {f"{c.name}-haproxy-install" for c in dev_graph.settings.controls} <= set(waits)
        assert step.inputs.get("delete")


def test_keystone_step_runs_once_on_the_first_control_node_last(dev_graph):
    steps = [r for r in dev_graph.registrations if r.name == "keystone-endpoints"]
    assert len(steps) == 1
    (step,) = steps
    assert step.inputs["connection"]["host"] == str(dev_graph.settings.controls[0].ip)
    waits = set(dev_graph.waits_for(step))
    assert {f"{n.name}-repoint" for n in dev_graph.settings.nodes} <= waits
    assert {f"{n.name}-haproxy-install" for n in dev_graph.settings.controls} <= waits
    assert "cluster-layout" in waits


def test_keystone_endpoints_all_at_the_vip(dev_graph):
    s = dev_graph.settings
    script = dev_graph.named("keystone-endpoints").inputs["create"]
    rows = endpoints(s.services, s.vip_fqdn, s.tls_enabled)
    for service_type, interface, url in rows:
        assert url.startswith(f"https://{s.vip_fqdn}:")
        assert f"\n  {service_type} {interface} {shell_quote(url)}\n" in script  # `wanted` row
    assert ("compute", "public", f"https://{s.vip_fqdn}:8774/v2.1") in rows
    assert ("image", "internal", f"https://{s.vip_fqdn}:9292") in rows
    assert len(rows) == 3 * len({t for t, _, _ in rows})


def test_identity_admin_interface_on_35357_while_the_release_has_it():
    graph = render.run_program(stack_config("dev", release="icehouse",
                                            openstack={"install": "none"}), "dev")
    s = graph.settings
    rows = {(t, i): u for t, i, u in endpoints(s.services, s.vip_fqdn, False)}
    assert rows[("identity", "admin")] == f"http://{s.vip_fqdn}:35357/v3"
    assert rows[("identity", "public")] == f"http://{s.vip_fqdn}:5000/v3"


def test_tls_endpoints_use_https_on_the_public_port(prod_graph):
    s = prod_graph.settings
    rows = {(t, i): u for t, i, u in endpoints(s.services, s.vip_fqdn, True)}
    assert rows[("identity", "public")] == f"https://{s.vip_fqdn}:5000/v3"
    script = prod_graph.named("keystone-endpoints").inputs["create"]
    assert "OS_CACERT=" in script


def test_admin_password_only_on_stdin(prod_graph, dev_graph):
    step = prod_graph.named("keystone-endpoints")
    assert step.inputs["stdin"].strip() == ADMIN_PASSWORD
    assert ADMIN_PASSWORD not in step.inputs["create"]
    assert "OS_PASSWORD=$(read_secret " in step.inputs["create"]
    # The stack installs OpenStack: its generated admin password, on stdin.
    generated = dev_graph.named("keystone-endpoints")
    assert generated.inputs["stdin"].strip() == dev_graph.secrets["secrets/keystone-admin-password"]
    assert "OS_PASSWORD=$(read_secret " in generated.inputs["create"]
    # The image's own install without the secret: its openrc file, and nothing on stdin.
    lab = render.run_program(stack_config("lab", openstack={"install": "none"},
                                          blockStorage={}), "lab")
    plain = lab.named("keystone-endpoints")
    assert not plain.inputs.get("stdin")
    assert lab.settings.keystone.openrc_file in plain.inputs["create"]


@pytest.mark.parametrize("graph_name", ["dev_graph", "prod_graph"])
def test_no_secret_in_any_command_text_or_copied_file(request, graph_name):
    graph = request.getfixturevalue(graph_name)
    secrets = graph.secret_values()
    # The TLS keys, the generated passwords and the given admin password are all known secrets.
    assert any("PRIVATE KEY" in v for v in secrets)
    if graph_name == "prod_graph":
        assert ADMIN_PASSWORD in secrets
        assert any(k.startswith("secrets/tls-") for k in graph.secrets)
    for registration in graph.registrations:
        texts = [registration.inputs.get(k) or "" for k in ("create", "update", "delete")]
        source = registration.inputs.get("source")
        texts.append(getattr(source, "text", "") or "")
        texts.append(str(registration.inputs.get("environment") or ""))
        for text in texts:
            leaked = [v[:12] for v in secrets if v in text]
            assert not leaked, (registration.name, leaked)


def test_repoint_data_names_no_credentials():
    """Database and broker URLs are rewritten on the node, never given whole."""
    for entry in load_rules():
        for rule in entry["edits"]:
            assert rule["kind"] in ("set", "url"), rule
            assert "@" not in rule["value"] and "password" not in rule["value"].lower()
            if rule["key"] in ("connection", "sql_connection", "transport_url"):
                assert rule["kind"] == "url", rule


def test_compute_nodes_get_client_edits_only(dev_graph):
    s = dev_graph.settings
    (compute,) = s.computes
    edits = node_edits(s, compute)
    paths = {e.path for e in edits}
    assert paths == {"/etc/nova/nova.conf", "/etc/neutron/neutron.conf",
                     "/etc/ceilometer/ceilometer.conf"}
    assert not [e for e in edits if e.value == str(compute.ip)]  # no API listens on a compute
    control_edits = node_edits(s, s.controls[1])
    assert any(e.key == "osapi_compute_listen" and e.value == str(s.controls[1].ip)
               for e in control_edits)


def test_broker_edits_follow_the_broker_and_tls():
    s = render.run_program(stack_config("dev", cluster={"broker": "qpid"},
                                        openstack={"install": "none"}), "dev").settings
    edits = {(e.section, e.key): e for e in node_edits(s, s.controls[0])}
    assert ("DEFAULT", "qpid_hostname") in edits and ("DEFAULT", "transport_url") not in edits
    prod = render.run_program(stack_config("prod"), "prod").settings
    edits = {(e.path, e.section, e.key): e for e in node_edits(prod, prod.controls[0])}
    transport = edits[("/etc/nova/nova.conf", "DEFAULT", "transport_url")]
    assert (transport.kind, transport.value) == ("url", f"{prod.vip_fqdn}:5671")
    assert edits[("/etc/nova/nova.conf", "oslo_messaging_rabbit", "ssl")].value == "true"
    assert edits[("/etc/nova/nova.conf", "database", "connection")].query.startswith("ssl_ca=")


@pytest.mark.parametrize("release,consoleauth", [("stein", True), (None, False)])
def test_pacemaker_managed_units_restart_through_pacemaker(release, consoleauth):
    """A repointed file read by a cluster-managed unit restarts it through Pacemaker, never with
    systemctl: nova-consoleauth while the release ships it (up to stein), not after."""
    overrides = {"release": release, "openstack": {"install": "none"}} if release else {}
    s = render.run_program(stack_config("dev", **overrides), "dev").settings
    managed = {x.unit for x in s.cluster.singletons}
    assert managed
    for restart in node_restarts(s, s.controls[0]):
        assert not managed & set(restart.units)
    nova = next(r for r in node_restarts(s, s.controls[0]) if r.path == "/etc/nova/nova.conf")
    assert ("nova-consoleauth" in nova.resources) is consoleauth
