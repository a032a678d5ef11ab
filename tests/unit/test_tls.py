"""The stack CA and service certificates under the mock runtime, and how they reach the nodes."""
from __future__ import annotations

import pytest

import settings as stack_settings
from catalogue import enabled
from components.tls import certificate_names, installed_files, subject_names
from tests.conftest import STACKS, stack_config
from tools import render

KEY = "tls:index/privateKey:PrivateKey"
SIGNED = "tls:index/locallySignedCert:LocallySignedCert"
REQUEST = "tls:index/certRequest:CertRequest"
COMMAND = "command:remote:Command"


@pytest.fixture(scope="module")
def prod_graph() -> render.Graph:
    return render.run_program(stack_config("prod"), "prod")


@pytest.mark.parametrize("stack", STACKS)
def test_tls_and_mysql_refusing_plain_connections_are_on_by_default(stack):
    s = stack_settings.parse(stack_config(stack), stack)
    assert (s.tls_enabled, s.mysql_require_tls) == (True, True)


def test_tls_off_asks_no_plain_mysql_refusal_and_makes_no_tls_resources():
    s = stack_settings.parse(stack_config("dev", tls={"enabled": False}), "dev")
    assert (s.tls_enabled, s.mysql_require_tls) == (False, False)
    graph = render.run_program(stack_config("dev", tls={"enabled": False}), "dev")
    assert not [r for r in graph.registrations if r.type.startswith("tls:index/")
                and r.name.startswith("tls-")]
    assert not [r for r in graph.registrations if "-tls-" in r.name]
    assert "caCertificate" not in graph.outputs


def test_compute_nodes_get_the_ca_only_before_their_services_start(prod_graph):
    ca = prod_graph.outputs["caCertificate"]
    for node in prod_graph.settings.computes:
        assert not [r for r in prod_graph.registrations if r.name == f"{node.name}-tls-install"]
        for step in (f"{node.name}-tls-trust", f"{node.name}-tls-trust-prune"):
            trust = prod_graph.named(step)
            assert trust.inputs["stdin"].strip() == ca.strip()
            # No MySQL or broker to reload: a compute node runs neither.
            assert "reload_here" not in trust.inputs["create"]
        assert f"{node.name}-tls-trust" in prod_graph.upstream(f"{node.name}-openstack-start")


def test_every_node_trusts_the_new_ca_before_any_certificate_it_signed_is_installed(prod_graph):
    """The three phases of a CA change, across nodes: trust added everywhere, then the control
    nodes' certificates, then the old CA pruned everywhere."""
    nodes = [*prod_graph.settings.controls, *prod_graph.settings.computes]
    trusts = {f"{n.name}-tls-trust" for n in nodes}
    installs = {f"{n.name}-tls-install" for n in prod_graph.settings.controls}
    for install in installs:
        assert trusts <= set(prod_graph.upstream(install)), install
    for node in nodes:
        prune = prod_graph.named(f"{node.name}-tls-trust-prune")
        assert installs <= set(prod_graph.upstream(prune.name)), prune.name
        # The first reads what the node trusted, to keep it; the prune writes the stack CA alone.
        keeps = 'awk -v dir="$work"'
        assert keeps in prod_graph.named(f"{node.name}-tls-trust").inputs["create"]
        assert keeps not in prune.inputs["create"]


def test_a_compute_nodes_trust_step_is_its_former_tls_install(prod_graph):
    """Stacks that began with one `<node>-tls-install` (the CA alone) on a compute node update it
    in place: deleting it after the trust step's create would take the CA away again."""
    for node in prod_graph.settings.computes:
        aliases = prod_graph.named(f"{node.name}-tls-trust").aliases
        assert [a.rsplit("::", 1)[-1] for a in aliases] == [f"{node.name}-tls-install"], aliases


def test_a_new_ca_generation_issues_a_new_ca_and_every_certificate_and_trust_step(prod_graph):
    rotated = render.run_program(stack_config("prod", tls={"enabled": True, "caGeneration": 2}),
                                 "prod")
    assert rotated.outputs["caCertificate"] != prod_graph.outputs["caCertificate"]
    assert sorted(r.name for r in rotated.registrations if r.name.startswith("tls-ca-")) == \
        ["tls-ca-cert-2", "tls-ca-key-2"]
    # A client trusting both during the change tells them apart by name.
    assert rotated.named("tls-ca-cert-2").inputs["subject"]["commonName"] != \
        prod_graph.named("tls-ca-cert").inputs["subject"]["commonName"]
    changed = {r.name for r in rotated.of_type(COMMAND)
               if r.inputs != prod_graph.named(r.name).inputs}
    nodes = [*rotated.settings.controls, *rotated.settings.computes]
    assert changed == {f"{n.name}-tls-{phase}" for n in nodes for phase in ("trust", "trust-prune")
                       } | {f"{n.name}-tls-install" for n in rotated.settings.controls}


def test_one_certificate_per_public_service_plus_mysql_and_broker(prod_graph):
    s = prod_graph.settings
    public = [x.name for x in enabled(s.services) if x.public]
    assert certificate_names(s) == public + ["mysql", "broker"]
    assert sorted(r.name for r in prod_graph.of_type(SIGNED)) == \
        sorted(f"tls-{n}-cert" for n in certificate_names(s))
    for key in prod_graph.of_type(KEY):
        if key.name.startswith("tls-"):
            assert (key.inputs["algorithm"], key.inputs["ecdsaCurve"]) == ("ECDSA", "P256")


def test_requests_name_the_vip_its_dns_name_and_every_control_node(prod_graph):
    s = prod_graph.settings
    dns, ips = subject_names(s)
    assert s.vip_fqdn in dns and str(s.vip) in ips
    assert all(n.name in dns and str(n.ip) in ips for n in s.controls)
    for request in prod_graph.of_type(REQUEST):
        assert request.inputs["dnsNames"] == dns and request.inputs["ipAddresses"] == ips


def test_install_on_every_control_node_after_the_cluster_before_haproxy(prod_graph):
    layout = prod_graph.waits_for(prod_graph.named("cluster-layout"))
    for node in prod_graph.settings.controls:
        install = prod_graph.named(f"{node.name}-tls-install")
        assert install.inputs["connection"]["host"] == str(node.ip)
        assert "cluster-setup" in prod_graph.waits_for(install)
        # MySQL and the broker read their TLS files when Pacemaker first starts them.
        assert install.name in layout
        assert install.inputs.get("delete")
        haproxy = prod_graph.named(f"{node.name}-haproxy-install")
        assert install.name in prod_graph.waits_for(haproxy)


def test_private_keys_reach_nodes_only_through_stdin(prod_graph):
    keys = {name: value.strip() for name, value in prod_graph.secrets.items()
            if name.startswith("secrets/tls-")}
    assert len(keys) == len(certificate_names(prod_graph.settings)) + 1
    for node in prod_graph.settings.controls:
        install = prod_graph.named(f"{node.name}-tls-install")
        stdin = install.inputs["stdin"]
        for name, key in keys.items():
            # The CA's key signs and stays in the stack's state; every service key is shipped.
            assert (key in stdin) == (name != "secrets/tls-ca-key.key"), name
            assert key not in install.inputs["create"]
        blocks = [line.split()[1] for line in stdin.splitlines() if line.startswith("### ")]
        assert sorted(set(blocks)) == sorted({f.name for f in installed_files(prod_graph.settings)})


def test_key_files_are_private(prod_graph):
    for f in installed_files(prod_graph.settings):
        if f.name.endswith(("-key", "-bundle")):
            assert f.mode in ("0600", "0640"), f


def test_mysql_requires_tls_only_when_asked(prod_graph):
    script = prod_graph.named("ctl1-tls-install").inputs["create"]
    assert prod_graph.settings.mysql_require_tls and "require_secure_transport=ON" in script
    relaxed = render.run_program(
        stack_config("prod", tls={"enabled": True, "requireMysqlTls": False}), "prod")
    assert "require_secure_transport" not in relaxed.named("ctl1-tls-install").inputs["create"]


def test_the_broker_listens_on_its_tls_port_only(prod_graph):
    script = prod_graph.named("ctl1-tls-install").inputs["create"]
    assert "listeners.ssl.default = 5671" in script and "listeners.tcp = none" in script


def test_a_new_certificate_lifetime_reissues_them_and_changes_only_the_control_nodes_install(
        prod_graph):
    days = prod_graph.settings.tls.certificate_days + 1
    renewed = render.run_program(stack_config("prod", tls={"enabled": True,
                                                           "certificateDays": days}), "prod")
    for cert in renewed.of_type(SIGNED):
        assert (cert.inputs["validityPeriodHours"], cert.inputs["earlyRenewalHours"]) == \
            (days * 24, 30 * 24)
    changed = [r.name for r in renewed.of_type(COMMAND)
               if r.inputs != prod_graph.named(r.name).inputs]
    assert sorted(changed) == sorted(f"{n.name}-tls-install" for n in renewed.settings.controls)


def test_new_certificates_alone_are_loaded_in_place_and_a_changed_setting_restarts(prod_graph):
    script = prod_graph.named("ctl1-tls-install").inputs["create"]
    assert "reload_here mysql mysql -e 'FLUSH SSL'" in script
    assert "reload_here broker rabbitmqctl eval 'ssl:clear_pem_cache().'" in script
    for f in installed_files(prod_graph.settings):
        if f.name in ("mysql-cert", "mysql-key", "broker-cert", "broker-key"):
            assert f.consumer == f.name.rsplit("-", 1)[0] + "-certificate", f
