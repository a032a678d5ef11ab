"""The guardrail policies (policy/guardrails.py) on the resources of real mock runs.

Each stack validation gets what the engine would hand it: every registration of the program as a
PolicyResource with its properties, parent, dependencies and property dependencies, and the
generated secrets (random passwords, private keys) as those resources' outputs. Pass cases are
the unmodified stacks; fail cases change the stack config or one resource's properties.
"""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import grpc
import pulumi
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime import rpc
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import PolicyResource, StackValidationArgs

from policy import guardrails
from tests.conftest import stack_config
from tools import render

PROD_POLICIES = ["prod-fencing-on", "prod-odd-control-count",
                 "prod-shared-disk-raw-on-every-control-node", "prod-tls-on"]


def generated_outputs(graph: render.Graph, registration: render.Registration) -> dict:
    """What the engine reports for a generator: its value (written by render under secrets/)."""
    if registration.type == "random:index/randomPassword:RandomPassword":
        return {"result": graph.secrets[f"secrets/{registration.name}"]}
    if registration.type == "tls:index/privateKey:PrivateKey":
        key = graph.secrets[f"secrets/{registration.name}.key"]
        return {"privateKeyOpenssh" if "OPENSSH" in key else "privateKeyPem": key}
    return {}


def policy_resources(graph: render.Graph) -> dict[str, PolicyResource]:
    """Fresh PolicyResources for every registration (tests may change them), by name."""
    resources = {r.urn: PolicyResource(
        r.type, {**copy.deepcopy(r.inputs), **generated_outputs(graph, r)}, r.urn, r.name,
        None, None, None, [], {}) for r in graph.registrations}
    for registration in graph.registrations:
        resource = resources[registration.urn]
        resource.parent = resources.get(registration.parent)
        resource.dependencies = [resources[u] for u in registration.dependencies
                                 if u in resources]
        resource.property_dependencies = {
            key: [resources[u] for u in urns if u in resources]
            for key, urns in registration.property_dependencies.items()}
    return {r.name: r for r in resources.values()}


def violations(resources: dict[str, PolicyResource], stack_tags=None) -> dict[str, list[str]]:
    """Policy name -> the messages it reported."""
    args = StackValidationArgs(list(resources.values()), stack_tags=stack_tags or {})
    found: dict[str, list[str]] = {}
    for policy in guardrails.POLICIES:
        messages = found.setdefault(policy.name, [])
        policy.validate(args, lambda message, urn=None, messages=messages: messages.append(message))
    return {name: messages for name, messages in found.items() if messages}


def graph_of(stack: str, **overrides) -> render.Graph:
    return render.run_program(stack_config(stack, **overrides), stack)


@pytest.fixture(scope="module")
def prod() -> render.Graph:
    return graph_of("prod")


@pytest.fixture(scope="module")
def dev() -> render.Graph:
    return graph_of("dev")


@pytest.fixture(scope="module")
def multihost_prod() -> render.Graph:
    """Three hosts, an iSCSI LUN as the shared disk, tagged prod with TLS on."""
    return graph_of("multihost", tags={"environment": "prod"}, tls={"enabled": True})


def test_every_policy_is_a_mandatory_stack_policy():
    assert len({p.name for p in guardrails.POLICIES}) == len(guardrails.POLICIES) == 6
    assert all(p.enforcement_level.value == "mandatory" for p in guardrails.POLICIES)


@pytest.mark.parametrize("graph_name", ["prod", "dev", "multihost_prod"])
def test_the_example_stacks_pass(request, graph_name):
    assert violations(policy_resources(request.getfixturevalue(graph_name))) == {}


def test_prod_policies_apply_to_a_stack_tagged_prod_by_pulumi():
    """dev with TLS off, tagged environment=prod with `pulumi stack tag set`."""
    plain = graph_of("dev", tls={"enabled": False})
    found = violations(policy_resources(plain), stack_tags={"environment": "prod"})
    assert list(found) == ["prod-tls-on"]


def test_a_program_without_its_facts_is_flagged(dev):
    resources = policy_resources(dev)
    del resources[guardrails.FACTS_NAME]
    found = violations(resources)
    assert set(found) == set(PROD_POLICIES)
    assert all("facts are missing" in m[0] for m in found.values())


def test_prod_without_fencing_fails():
    graph = graph_of("prod", fencing={"enabled": False, "acknowledgeDisabled": True})
    found = violations(policy_resources(graph))
    assert list(found) == ["prod-fencing-on"] and len(found["prod-fencing-on"]) == 1
    assert "set fencing.enabled true" in found["prod-fencing-on"][0]


def test_dev_without_fencing_passes():
    graph = graph_of("dev", fencing={"enabled": False, "acknowledgeDisabled": True})
    assert violations(policy_resources(graph)) == {}


def test_a_layout_without_stonith_fails(prod):
    resources = policy_resources(prod)
    layout = resources["cluster-layout"]
    layout.props["create"] = layout.props["create"].replace("stonith-enabled=true",
                                                            "stonith-enabled=false")
    layout.props["create"] = layout.props["create"].replace("plug=prod-ctl2", "plug=prod-ctl9")
    found = violations(resources)
    assert list(found) == ["prod-fencing-on"]
    assert sorted(found["prod-fencing-on"]) == [
        "no stonith device fences control domain prod-ctl2",
        "the cluster layout does not set stonith-enabled=true"]


@pytest.mark.parametrize("count", [2, 4])
def test_prod_with_an_even_control_count_fails(count):
    graph = graph_of("prod", controlNodes={"count": count, "firstIp": "10.30.0.11"},
                     acknowledgeEvenControlCount=True)
    found = violations(policy_resources(graph))
    assert list(found) == ["prod-odd-control-count"]
    assert f"(this one has {count})" in found["prod-odd-control-count"][0]


def test_dev_with_an_even_control_count_passes():
    graph = graph_of("dev", controlNodes={"count": 2, "firstIp": "10.20.0.11"},
                     acknowledgeEvenControlCount=True)
    assert violations(policy_resources(graph)) == {}


def test_a_control_domain_that_does_not_exist_fails(prod):
    resources = policy_resources(prod)
    resources["ctl3-domain"].props["name"] = "prod-elsewhere"
    found = violations(resources)
    assert found["prod-odd-control-count"] == ["control domain prod-ctl3 has no libvirt Domain"]


def test_a_qcow2_shared_volume_fails(prod):
    resources = policy_resources(prod)
    resources["shared-disk-volume"].props["format"] = "qcow2"
    assert violations(resources) == {"prod-shared-disk-raw-on-every-control-node": [
        "the shared volume must be raw (two guests writing a qcow2 image corrupt it)"]}


def test_a_control_node_without_the_shared_volume_fails(prod):
    resources = policy_resources(prod)
    domain = resources["ctl2-domain"]
    domain.props["disks"] = domain.props["disks"][:1]
    domain.property_dependencies["disks"] = [
        r for r in domain.property_dependencies["disks"] if r.name != "shared-disk-volume"]
    assert violations(resources) == {"prod-shared-disk-raw-on-every-control-node": [
        "control domain prod-ctl2 does not attach the shared disk shareable"]}


def test_a_shared_disk_without_shareable_fails(prod):
    resources = policy_resources(prod)
    resources["ctl1-domain"].props["xml"] = {}
    assert list(violations(resources)) == ["prod-shared-disk-raw-on-every-control-node"]


def test_a_control_node_missing_the_shared_block_device_fails(multihost_prod):
    resources = policy_resources(multihost_prod)
    for disk in resources["ctl3-domain"].props["disks"]:
        disk.pop("blockDevice", None)
    assert violations(resources) == {"prod-shared-disk-raw-on-every-control-node": [
        "control domain multihost-ctl3 does not attach the shared disk shareable"]}


def test_prod_without_tls_fails():
    graph = graph_of("prod", tls={"enabled": False})
    assert violations(policy_resources(graph)) == {
        "prod-tls-on": ["prod stacks must secure services: set tls.enabled true"]}


def test_a_vip_outside_the_control_subnet_fails(dev):
    resources = policy_resources(dev)
    layout = resources["cluster-layout"]
    layout.props["create"] = layout.props["create"].replace("IPaddr2 ip=10.20.0.10",
                                                            "IPaddr2 ip=10.99.0.10")
    assert violations(resources) == {"vip-in-control-subnet": [
        "the VIP 10.99.0.10 lies outside the control subnet 10.20.0.0/24"]}


def test_a_network_serving_another_subnet_fails(dev):
    resources = policy_resources(dev)
    resources["local-network-libvirt"].props["addresses"] = ["10.21.0.0/24"]
    found = violations(resources)
    assert list(found) == ["vip-in-control-subnet"]
    assert "serves 10.21.0.0/24, not the control subnet 10.20.0.0/24" in \
        found["vip-in-control-subnet"][0]


@pytest.mark.parametrize("field", ["create", "update", "delete"])
def test_a_password_in_command_text_fails(dev, field):
    resources = policy_resources(dev)
    password = dev.secrets["secrets/hacluster-password"]
    resources["cluster-setup"].props[field] = f"echo {password} | passwd --stdin hacluster"
    assert violations(resources) == {"no-secret-in-command-text": [
        f"cluster-setup: its {field} text holds a secret; pass it on stdin and read it with "
        "`read -r`"]}


def test_a_secret_in_a_command_environment_fails(dev):
    resources = policy_resources(dev)
    key = dev.secrets["secrets/fence-ssh-key.key"]
    resources["ctl1-sysctl"].props["environment"] = {"KEY_LINE": key.splitlines()[1]}
    found = violations(resources)
    assert list(found) == ["no-secret-in-command-text"]
    assert "its environment.KEY_LINE text" in found["no-secret-in-command-text"][0]


def test_a_private_key_block_in_command_text_fails(dev):
    resources = policy_resources(dev)
    resources["ctl2-sysctl"].props["create"] += (
        "\ncat > /root/k <<'EOF'\n-----BEGIN RSA PRIVATE KEY-----\nabc\nEOF\n")
    assert list(violations(resources)) == ["no-secret-in-command-text"]


def test_secrets_do_reach_commands_on_stdin(dev):
    """The check is not vacuous: secrets are there, on stdin, where they belong."""
    fragments = guardrails._secret_fragments(policy_resources(dev).values())
    assert dev.secrets["secrets/hacluster-password"] in fragments
    stdins = [r.inputs["stdin"] for r in dev.registrations if r.inputs.get("stdin")]
    assert any(dev.secrets["secrets/hacluster-password"] in s for s in stdins)


def test_the_policy_pack_imports_nothing_of_the_program():
    source = (render.ROOT / "policy" / "guardrails.py").read_text()
    for module in ("settings", "components", "catalogue", "tools"):
        assert f"import {module}" not in source and f"from {module}" not in source


# ---- the pack as the Pulumi CLI runs it: its own process, spoken to over the analyzer gRPC API ---

SECRET_SIG = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}


@pytest.fixture(scope="module")
def analyzer():
    """policy/__main__.py serving; the engine reads the port from its first stdout line."""
    process = subprocess.Popen([sys.executable, "__main__.py"], cwd=render.ROOT / "policy",
                               stdout=subprocess.PIPE, text=True)
    try:
        port = int(process.stdout.readline())
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def wire_asset(value):
    """Assets (CopyToRemote sources) as the engine sends them."""
    if isinstance(value, pulumi.StringAsset):
        return {rpc._special_sig_key: rpc._special_asset_sig, "text": value.text}
    if isinstance(value, pulumi.FileAsset):
        return {rpc._special_sig_key: rpc._special_asset_sig, "path": value.path}
    raise TypeError(f"no wire form for {value!r}")


def analyzer_resources(graph: render.Graph, change=None) -> list:
    """The engine's view: properties as a Struct, generated values wrapped as secrets."""
    resources = []
    for registration in graph.registrations:
        properties = copy.deepcopy(registration.inputs)
        properties.update({k: {**SECRET_SIG, "value": v}
                           for k, v in generated_outputs(graph, registration).items()})
        if change is not None:
            change(registration.name, properties)
        struct = struct_pb2.Struct()
        struct.update(json.loads(json.dumps(properties, default=wire_asset)))
        resources.append(analyzer_pb2.AnalyzerResource(
            type=registration.type, properties=struct, urn=registration.urn,
            name=registration.name, parent=registration.parent,
            dependencies=registration.dependencies,
            propertyDependencies={k: analyzer_pb2.AnalyzerPropertyDependencies(urns=v)
                                  for k, v in registration.property_dependencies.items()}))
    return resources


def analyze(analyzer, resources) -> dict[str, list[str]]:
    response = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources))
    found: dict[str, list[str]] = {}
    for diagnostic in response.diagnostics:
        found.setdefault(diagnostic.policyName, []).append(diagnostic.message)
    return found


def test_the_served_pack_lists_every_policy_as_mandatory(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "openstack-ha-guardrails"
    assert {p.name for p in info.policies} == {p.name for p in guardrails.POLICIES}
    assert {p.enforcementLevel for p in info.policies} == {analyzer_pb2.MANDATORY}


def test_the_served_pack_passes_prod_and_flags_a_leaked_password(analyzer, prod):
    """Prod passing over gRPC also proves the Domains' property dependencies (the shared
    volume) and the secret-wrapped generator values reach the policies."""
    assert analyze(analyzer, analyzer_resources(prod)) == {}
    password = prod.secrets["secrets/mysql-root-password"]

    def leak(name, properties):
        if name == "cluster-setup":
            properties["create"] += f"\necho {password}\n"
    found = analyze(analyzer, analyzer_resources(prod, leak))
    assert list(found) == ["no-secret-in-command-text"]
    assert "cluster-setup: its create text holds a secret" in found["no-secret-in-command-text"][0]


def test_the_served_pack_flags_a_qcow2_shared_volume(analyzer, prod):
    def qcow2(name, properties):
        if name == "shared-disk-volume":
            properties["format"] = "qcow2"
    found = analyze(analyzer, analyzer_resources(prod, qcow2))
    assert list(found) == ["prod-shared-disk-raw-on-every-control-node"]
