"""A careless or hostile user's mistakes, one row per class: each is refused in ONE line that names
the full key path and says what to do, never with a traceback and never showing a secret.

The settings rows go through `settings.parse`; the stack-file rows through render's reader (YAML
as the Pulumi CLI reads it); the JSON rows through `settings.from_pulumi`, the way the engine
hands config over (every top-level value as text, structured ones as JSON).
"""
from __future__ import annotations

import copy
import json

import pulumi
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pulumi.errors import RunError
from pulumi.runtime import config as runtime_config
from pulumi.runtime import mocks as pulumi_mocks

import settings
from tests.conftest import stack_config
from tools import render

SECRET = "s3cret-Value-Never-Shown"
ADMIN_KEY = render.config_secret("dev", "adminSshPrivateKey")
ECDSA_HOST_KEY = ec.derive_private_key(7, ec.SECP256R1()).public_key().public_bytes(
    serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def multihost(edit):
    """Pulumi.multihost.yaml's config with `edit(raw)` applied."""
    raw = stack_config("multihost")
    edit(raw)
    return raw


def dev(**overrides):
    return stack_config("dev", **overrides)


def nodes(*entries):
    return {"nodes": [{"name": f"ctl{i + 1}", "ip": f"10.20.0.{11 + i}", **entry}
                      for i, entry in enumerate(entries)]}


NO_INSTALL = {"install": "none"}


def hypervisor(**entry):
    return [{"name": "local", "uri": "qemu:///system", **entry}]


MISTAKES = {
    # Unknown keys are typos at every level, with the near miss named.
    "tls-typo": (dev(tls={"enable": True}), "tls.enable", "did you mean `enabled`?"),
    "network-typo": (dev(network={"cidr": "10.20.0.0/24", "mdoe": "nat"}), "network.mdoe",
                     "did you mean `mode`?"),
    "cluster-typo": (dev(cluster={"nmae": "osha"}), "cluster.nmae", "did you mean `name`?"),
    "size-typo": (dev(controlSize={"memory": 4096}), "controlSize.memory", "unknown key"),
    "node-typo": (dev(controlNodes=nodes({"hypervisr": "local"}, {}, {})),
                  "controlNodes.nodes[0].hypervisr", "did you mean `hypervisor`?"),
    "hypervisor-typo": (dev(hypervisors=hypervisor(fenceAdress="10.20.0.1")),
                        "hypervisors[0].fenceAdress", "did you mean `fenceAddress`?"),
    "source-typo": (multihost(lambda r: r["sharedStorage"]["source"].update(
        portl=r["sharedStorage"]["source"].pop("portal"))), "sharedStorage.source.portl",
        "did you mean `portal`?"),
    "top-level-typo": (dev(controlNode={"count": 3}), "controlNode",
                       "did you mean `controlNodes`?"),
    # A key that is not a plain name is shown as a JSON string: the line stays one line.
    "newline-in-an-unknown-key": (dev(tls={"enabled": True, "x\n$(:>MARKER)": 1}),
                                  'tls["x\\n$(:>MARKER)"]', "unknown key"),
    "terminal-escape-in-a-tag-name": (dev(tags={"env\x1b[2J": "dev"}),
                                      'tags["env\\u001b[2J"]', "tag name"),
    # Strings are not booleans or integers.
    "no-is-not-false": (dev(controlNodes={"count": 4}, acknowledgeEvenControlCount="no"),
                        "acknowledgeEvenControlCount", "expected true or false"),
    "false-string": (dev(fencing={"enabled": False, "acknowledgeDisabled": "false"}),
                     "fencing.acknowledgeDisabled", "expected true or false"),
    "service-switch-string": (dev(services={"horizon": "true"}), "services.horizon",
                              "expected true or false"),
    "count-string": (dev(controlNodes={"count": "3"}), "controlNodes.count",
                     "expected an integer"),
    # URIs are parsed, not prefix-checked.
    "ssh-uri-without-host": (dev(hypervisors=hypervisor(uri="qemu+ssh:///system")),
                             "hypervisors[0].uri", "qemu+ssh://[user@]host[:port]/system"),
    "uri-trailing-garbage": (dev(hypervisors=hypervisor(uri="qemu:///system; rm -rf /")),
                             "hypervisors[0].uri", "expected qemu:///system"),
    "uri-port-zero": (multihost(lambda r: r["hypervisors"][0].update(
        uri="qemu+ssh://root@kvm1.lan:0/system")), "hypervisors[0].uri", "host[:port]"),
    "uri-port-out-of-range": (multihost(lambda r: r["hypervisors"][0].update(
        uri="qemu+ssh://root@kvm1.lan:65536/system")), "hypervisors[0].uri", "host[:port]"),
    "uri-port-not-numeric": (multihost(lambda r: r["hypervisors"][0].update(
        uri="qemu+ssh://root@kvm1.lan:ssh/system")), "hypervisors[0].uri", "host[:port]"),
    "local-scheme-with-host": (dev(libvirtUri="qemu://kvm1/system"), "libvirtUri",
                               "expected qemu:///system"),
    "remote-libvirt-uri-alone": (dev(libvirtUri="qemu+ssh://root@kvm1.lan/system"),
                                 "libvirtUri", "describe it under hypervisors"),
    "remote-host-without-host-key": (multihost(lambda r: r["hypervisors"][1].pop("hostKey")),
                                     "hypervisors[1].hostKey", "required for a remote"),
    "host-key-not-a-key": (dev(hypervisors=hypervisor(hostKey="ssh-ed25519 AAAA root@kvm")),
                           "hypervisors[0].hostKey", "ED25519 public key line"),
    "host-key-not-ed25519": (multihost(lambda r: r["hypervisors"][2].update(
        hostKey=ECDSA_HOST_KEY)), "hypervisors[2].hostKey", "ED25519 public key"),
    "host-key-two-lines": (multihost(lambda r: r["hypervisors"][0].update(
        hostKey=r["hypervisors"][0]["hostKey"] + "\nssh-rsa AAAA")), "hypervisors[0].hostKey",
        "one ED25519 public key line"),
    # Values that reach nodes are what they claim to be.
    "iscsi-portal": (multihost(lambda r: r["sharedStorage"]["source"].update(
        portal="192.168.50.5:3260; reboot")), "sharedStorage.source.portal", "host:port"),
    "iscsi-name": (multihost(lambda r: r["sharedStorage"]["source"].update(iqn="my disk")),
                   "sharedStorage.source.iqn", "iSCSI name"),
    "image-source-scheme": (dev(image={"source": "ftp://mirror/image.qcow2"}), "image.source",
                            "http(s) URL"),
    "image-source-relative": (dev(image={"source": "images/base.qcow2"}), "image.source",
                              "absolute path"),
    "non-ascii-domain": (dev(network={"domain": "osha.intérieur"}), "network.domain",
                         "ASCII labels"),
    "newline-in-a-name": (dev(controlNodes=nodes({"name": "ctl1\n"}, {}, {})),
                          "controlNodes.nodes[0].name", "DNS label"),
    "whitespace-in-a-path": (dev(cluster={"sharedDir": "/var/lib/my sql"}),
                             "cluster.sharedDir", "absolute path"),
    "root-as-the-shared-directory": (dev(cluster={"sharedDir": "/"}), "cluster.sharedDir",
                                     "absolute path"),
    # The shared filesystem over the system's own files; one directory, one spelling.
    "shared-directory-over-etc": (dev(cluster={"sharedDir": "/etc"}), "cluster.sharedDir",
                                  "hide the system's own files"),
    "shared-directory-over-var-lib": (dev(cluster={"sharedDir": "/var/lib"}),
                                      "cluster.sharedDir", "hide the system's own files"),
    "shared-directory-inside-usr": (dev(cluster={"sharedDir": "/usr/share/osha"}),
                                    "cluster.sharedDir", "hide the system's own files"),
    "dot-dot-in-a-path": (dev(cluster={"sharedDir": "/var/lib/osha/../../../etc"}),
                          "cluster.sharedDir", "normal form"),
    "double-slash-in-a-path": (dev(cluster={"sharedDir": "/var//lib/osha"}),
                               "cluster.sharedDir", "normal form"),
    "trailing-slash-in-a-path": (dev(keystone={"openrcFile": "/root/keystonerc_admin/"}),
                                 "keystone.openrcFile", "normal form"),
    # Nothing trusts a host key on first use, nor skips the check.
    "libvirt-uri-without-host-key-check": (multihost(lambda r: r["hypervisors"][1].update(
        uri=r["hypervisors"][1]["uri"] + "?no_verify=1")), "hypervisors[1].uri",
        "switches off the check of the host's key"),
    "libvirt-uri-trusting-new-host-keys": (multihost(lambda r: r["hypervisors"][1].update(
        uri=r["hypervisors"][1]["uri"] + "?known_hosts_verify=auto")), "hypervisors[1].uri",
        "no key is trusted on first use"),
    "unit-name": (dev(cluster={"singletons": [{"name": "agent", "unit": "agent; reboot"}]},
                      openstack=NO_INSTALL), "cluster.singletons[0].unit", "systemd unit name"),
    # A comment of the local authorize command, an entry of the nodes' address array.
    "fence-user-ends-a-comment": (dev(hypervisors=hypervisor(fenceUser="root\n:>MARKER #")),
                                  "hypervisors[0].fenceUser", "user name"),
    "fence-address-leaves-an-array": (dev(hypervisors=hypervisor(
        fenceAddress="10.20.0.1) ; :>MARKER ; x=(")), "hypervisors[0].fenceAddress",
        "an IPv4 address or an ASCII DNS name"),
    "quote-in-the-host-device": (multihost(lambda r: r["sharedStorage"]["source"].update(
        hostDevice='/dev/disk/by-path/a"b')), "sharedStorage.source.hostDevice",
        "block device path"),
    "control-character-in-a-tag": (dev(tags={"environment": "prod\x1b[2J"}), "tags.environment",
                                   "without control characters"),
    # Cross-field rules.
    "fence-address-is-the-vip": (dev(hypervisors=hypervisor(fenceAddress="10.20.0.10")),
                                 "hypervisors[0].fenceAddress", "the VIP's address"),
    "fence-address-is-a-node": (dev(hypervisors=hypervisor(fenceAddress="10.20.0.12")),
                                "hypervisors[0].fenceAddress", "ctl2's address"),
    "gateway-outside-the-network": (dev(network={"cidr": "10.20.0.0/24", "gateway": "10.9.0.1"}),
                                    "network.gateway", "inside network.cidr"),
    "vip-name-is-a-node": (dev(vipName="ctl1"), "vipName", "the VIP needs its own"),
    "service-the-release-dropped": (dev(services={"nova-ec2": True}), "services.nova-ec2",
                                    "antelope ships no nova-ec2"),
    "service-unknown": (dev(services={"nova-ap": True}), "services.nova-ap",
                        "did you mean `nova-api`?"),
    "keystone-off": (dev(services={"keystone": False}), "services.keystone",
                     "keystone stays on"),
    "singleton-the-release-dropped": (dev(cluster={"singletons": [
        {"name": "nova-consoleauth", "unit": "openstack-nova-consoleauth"}]},
        openstack=NO_INSTALL), "cluster.singletons[0].unit", "antelope ships no nova-consoleauth"),
    "singleton-takes-a-stack-id": (dev(cluster={"singletons": [{"name": "mysql", "unit": "x"}]},
                                       openstack=NO_INSTALL), "cluster.singletons[0].name",
                                   "resource ids"),
    # What the stack installs: the release its packages provide, and what it knows to install.
    "install-typo": (dev(openstack={"install": "package"}), "openstack.install",
                     "did you mean `packages`?"),
    "release-the-packages-lack": (dev(release="havana"), "release",
                                  "rhel 9's packages provide yoga, zed"),
    "image-version-unknown": (dev(image={"source": "https://mirror.example/os.qcow2"}),
                              "image.osVersion", "required with openstack.install packages"),
    "service-the-install-lacks": (dev(services={"swift": True}), "services.swift",
                                  "does not install swift"),
    "service-without-what-it-needs": (dev(services={"placement": False}), "services.placement",
                                      "nova-api needs placement"),
    "l2-agent-the-install-lacks": (dev(cluster={"singletons": [
        {"name": "neutron-l2-agent", "unit": "my-agent"}]}), "cluster.singletons[0].unit",
        "installs no such unit"),
    "broker-layout-typo": (dev(cluster={"brokerLayout": "clones"}), "cluster.brokerLayout",
                           "did you mean `clone`?"),
    "qpid-with-the-install": (dev(cluster={"broker": "qpid"}), "cluster.broker",
                              "speaks to RabbitMQ"),
    "control-too-small-for-openstack": (dev(controlSize={"memoryMib": 2048}),
                                        "controlSize.memoryMib", "needs at least 4096"),
    "install-settings-without-install": (dev(openstack={"install": "none", "workers": 4}),
                                         "openstack.workers", "with install packages only"),
    "shared-directory-over-the-nodes-own-state": (
        dev(cluster={"sharedDir": "/var/lib/openstack-ha-node"}), "cluster.sharedDir",
        "each node's own state"),
    # Maintenance: a control node, once, and never so many that the cluster stops.
    "maintenance-of-an-unknown-node": (dev(maintenance=["ctl9"]), "maintenance[0]",
                                       "is no control node (ctl1, ctl2, ctl3)"),
    "maintenance-of-a-compute-node": (dev(computeNodes={"count": 1}, maintenance=["cmp1"]),
                                      "maintenance[0]", "is no control node"),
    "maintenance-twice": (dev(maintenance=["ctl2", "ctl2"]), "maintenance[1]", "listed twice"),
    "maintenance-without-quorum": (dev(maintenance=["ctl1", "ctl3"]), "maintenance",
                                   "without quorum or a node for the core group"),
    "broker-password-for-qpid": (dev(openstack=NO_INSTALL, cluster={"broker": "qpid"},
                                     brokerPassword=SECRET), "brokerPassword",
                                 "cluster.broker rabbitmq only"),
    "mysql-tls-without-tls": (dev(tls={"enabled": False, "requireMysqlTls": True}),
                              "tls.requireMysqlTls",
                              "needs tls.enabled: true"),
    "rhsm-on-debian": (stack_config("lab", rhsmUsername="me", rhsmPassword=SECRET),
                       "rhsmUsername", "osFamily rhel only"),
    "rhsm-without-password": (dev(rhsmUsername="me"), "rhsmPassword", "required with"),
    "rhsm-password-alone": (dev(rhsmPassword=SECRET), "rhsmPassword", "with rhsmUsername only"),
    "majority-on-one-host": (multihost(lambda r: r["controlNodes"]["nodes"][1].update(
        hypervisor="kvm1")), "controlNodes", "acknowledgeHypervisorMajority"),
    "volume-across-hosts": (multihost(lambda r: r.update(sharedStorage={"sizeGib": 4})),
                            "sharedStorage.kind", "cannot be attached across hosts"),
    "size-of-a-lun": (multihost(lambda r: r["sharedStorage"].update(sizeGib=8)),
                      "sharedStorage.sizeGib", "kind volume only"),
    "list-and-count": (dev(controlNodes={**nodes({}, {}, {}), "count": 3}), "controlNodes.count",
                       "without nodes only"),
    "no-hypervisor": (dev(hypervisors=[]), "hypervisors", "at least one"),
    "hypervisors-and-another-uri": (multihost(lambda r: r.update(
        libvirtUri="qemu:///session")), "libvirtUri", "only without hypervisors"),
    # Shapes that used to end in a traceback.
    "list-for-a-mapping": (dev(network=["10.20.0.0/24"]), "network", "expected a mapping"),
    "list-for-keepalives": (dev(cluster={"tcpKeepalive": [60, 10, 6]}), "cluster.tcpKeepalive",
                            "expected a mapping"),
    "plan-past-the-last-address": (dev(network={"cidr": "255.255.255.0/24"},
                                       controlNodes={"count": 3, "firstIp": "255.255.255.254"},
                                       vip="255.255.255.10", computeNodes={"count": 0}),
                                   "controlNodes.firstIp", "past 255.255.255.255"),
    "default-plan-past-the-last-address": (dev(network={"cidr": "255.255.255.248/29"},
                                               controlNodes={"count": 3},
                                               vip="255.255.255.250", computeNodes={"count": 0}),
                                           "controlNodes.firstIp", "past 255.255.255.255"),
    "config-not-a-mapping": (["vip", "10.20.0.10"], "config", "expected a mapping"),
    # Secrets whole or refused, and never shown.
    "newline-in-a-password": (dev(haclusterPassword=SECRET + "\nsecond line"), "haclusterPassword",
                              "without newlines"),
    "control-character-in-a-password": (dev(brokerPassword=SECRET + "\x00"), "brokerPassword",
                                        "control character"),
    "empty-password": (dev(mysqlRootPassword=""), "mysqlRootPassword", "password"),
    # A secret under a misspelt or unknown key named like one is not shown either.
    "misspelt-secret-key": (dev(mysqlRootPasword=SECRET), "mysqlRootPasword",
                            "did you mean `mysqlRootPassword`?"),
    "unknown-key-named-like-a-secret": (dev(tls={"enabled": True, "keyPassword": SECRET}),
                                        "tls.keyPassword", "unknown key"),
    "admin-key-not-a-key": (dev(adminSshPrivateKey=SECRET), "adminSshPrivateKey",
                            "OpenSSH private key"),
    # The key parser alone skips whatever stands around the key block.
    "admin-key-with-text-around-it": (dev(adminSshPrivateKey=f"$(:>MARKER){ADMIN_KEY}{SECRET}"),
                                      "adminSshPrivateKey", "OpenSSH private key"),
}


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_each_mistake_is_one_line_naming_key_and_remedy(name):
    raw, key, remedy = MISTAKES[name]
    with pytest.raises(settings.SettingsError) as caught:
        settings.parse(copy.deepcopy(raw), "dev")
    assert len(caught.value.problems) == 1, caught.value.problems
    (line,) = caught.value.problems
    assert line.startswith(f"openstack-ha:{key}: ") and " is invalid; " in line, line
    assert remedy in line and line.isprintable(), line
    assert SECRET not in line


def test_a_value_is_shown_by_its_start_only():
    """A long value pasted under a key (a certificate, a whole file) is shown by its first
    characters, so the line stays short."""
    with pytest.raises(settings.SettingsError) as caught:
        settings.parse(dev(vip="10.20.0.10" + "0" * 500), "dev")
    (line,) = caught.value.problems
    assert line.startswith("openstack-ha:vip: '10.20.0.10") and "..." in line
    assert len(line) < 200, line


def test_the_rows_are_valid_without_their_mistake():
    """Each row starts from a valid stack file, so the one line is the mistake's."""
    for stack in ("dev", "lab", "multihost"):
        assert settings.parse(stack_config(stack), stack)


# ---- the stack file, read as the Pulumi CLI reads it -------------------------------------------

STACK_FILES = {
    "yaml-syntax": ("config:\n  openstack-ha:vip: [10.20.0.10\n", "Pulumi.x.yaml",
                    "not valid YAML"),
    "key-given-twice": ("config:\n  openstack-ha:vip: 10.20.0.10\n  openstack-ha:vip: 10.20.0.11\n",
                        "Pulumi.x.yaml", "given twice"),
    "configs-for-config": ("configs:\n  openstack-ha:vip: 10.20.0.10\n", "Pulumi.x.yaml.configs",
                           "did you mean `config`?"),
    "not-a-mapping": ("- openstack-ha:vip\n", "Pulumi.x.yaml", "expected a mapping"),
    "config-not-a-mapping": ("config: [vip]\n", "Pulumi.x.yaml.config", "expected a mapping"),
    "newline-in-a-key": ('config: {}\n"conf\\nig": {}\n', 'Pulumi.x.yaml["conf\\nig"]',
                         "did you mean `config`?"),
}


@pytest.mark.parametrize("name", sorted(STACK_FILES))
def test_a_broken_stack_file_is_one_line(name, tmp_path):
    text, key, remedy = STACK_FILES[name]
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text(text)
    with pytest.raises(settings.SettingsError) as caught:
        render.stack_config("x", path)
    (line,) = caught.value.problems
    assert line.startswith(f"openstack-ha:{key}: ") and remedy in line and line.isprintable()


def test_a_key_outside_the_project_namespace_is_a_typo(tmp_path):
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text("config:\n  openstack_ha:vip: 10.20.0.10\n  libvirt:uri: qemu:///system\n")
    with pytest.raises(settings.SettingsError) as caught:
        render.stack_config("x", path)
    assert caught.value.problems == [
        "openstack_ha:vip: '10.20.0.10' is invalid; not a key of this stack (its keys are "
        "openstack-ha:<key>); did you mean `openstack-ha:vip`?"]


def test_a_key_outside_the_namespace_is_shown_on_one_line():
    problems = settings.project_config({"openstack_ha:vip\n\x1b[2J": "10.20.0.10"})[1]
    assert problems == ['"openstack_ha:vip\\n\\u001b[2J": \'10.20.0.10\' is invalid; not a key '
                        'of this stack (its keys are openstack-ha:<key>); did you mean '
                        '`openstack-ha:vip`?']


def test_render_reports_a_broken_stack_file_without_a_traceback(tmp_path, capsys):
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text("config:\n  openstack-ha:vip: [\n")
    assert render.main(["--stack", "x", "--config-file", str(path), "--out",
                        str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "openstack-ha:Pulumi.x.yaml: " in err and "Traceback" not in err


# ---- the config as the engine hands it over -----------------------------------------------------

@pytest.fixture
def engine_config():
    """Set the runtime config as the engine would (every value text), then restore it."""
    def set_config(config: dict[str, str]) -> None:
        runtime_config.set_all_config(config)

    yield set_config
    runtime_config.set_all_config({})


def as_engine(raw: dict) -> dict[str, str]:
    return {f"openstack-ha:{k}": v if isinstance(v, str) else json.dumps(v)
            for k, v in raw.items()}


def test_json_text_is_decoded_except_for_text_settings(engine_config):
    engine_config(as_engine(dev(controlNodes={"count": 4}, acknowledgeEvenControlCount=True,
                                storagePool="2024", adminUser="osha")))
    parsed = settings.from_pulumi("dev")
    assert len(parsed.controls) == 4 and parsed.acknowledge_even_control_count is True
    assert parsed.storage_pool == "2024"  # a pool named like a number stays a name


@pytest.mark.parametrize("text,key,remedy", [
    ('{"cidr": "10.20.0.0/24"', "network", "expected a mapping"),  # cut-off JSON
    ('["10.20.0.0/24"]', "network", "expected a mapping"),
    ('{"count": "3"}', "controlNodes.count", "expected an integer"),
    ("no", "acknowledgeEvenControlCount", "expected true or false"),
])
def test_bad_json_text_is_one_line(engine_config, text, key, remedy):
    config = as_engine(dev())
    config[f"openstack-ha:{key.split('.')[0]}"] = text
    engine_config(config)
    with pytest.raises(settings.SettingsError) as caught:
        settings.from_pulumi("dev")
    (line,) = caught.value.problems
    assert line.startswith(f"openstack-ha:{key}: ") and remedy in line


def test_a_typo_in_the_namespace_is_reported_with_the_rest(engine_config):
    config = {**as_engine(dev(vip="10.30.0.10")), "openstack_ha:vipName": "api"}
    engine_config(config)
    with pytest.raises(settings.SettingsError) as caught:
        settings.from_pulumi("dev")
    assert [p.split(":")[0] + ":" + p.split(":")[1] for p in caught.value.problems] == [
        "openstack_ha:vipName", "openstack-ha:vip"]


def test_secrets_are_validated_then_handed_on_as_pulumi_secrets(engine_config):
    engine_config({**as_engine(dev()), "openstack-ha:haclusterPassword": SECRET})

    def resolved(values):
        assert values == [True, SECRET]

    @pulumi_mocks.test
    def check():
        secrets = settings.from_pulumi("dev").secrets
        assert secrets["rhsmPassword"] is None
        password = secrets["haclusterPassword"]
        return pulumi.Output.all(password.is_secret(), password).apply(resolved)

    pulumi.runtime.set_mocks(render.RenderMocks("dev"), project="openstack-ha", stack="dev",
                             preview=False)
    check()


def test_a_bad_secret_stops_the_program_before_any_resource(engine_config):
    monitor = render.RecordingMonitor(render.RenderMocks("dev"))
    with pytest.raises(RunError) as caught:
        render.run_mocked(dev(haclusterPassword=SECRET + "\n"), "dev", monitor)
    assert "openstack-ha:haclusterPassword: [secret] is invalid" in str(caught.value)
    assert SECRET not in str(caught.value) and monitor.registrations == []


def test_merge_keys_merge_as_pulumis_reader_merges_them(tmp_path):
    """`<<: *anchor` (which Pulumi's YAML reader accepts) merges; a key beside it overrides the
    merged one, and a key given twice is still refused."""
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text("config:\n  openstack-ha:cluster: &cluster {name: osha, stickiness: 100}\n"
                    "  openstack-ha:fencing:\n    <<: {enabled: true, action: off}\n"
                    "    action: reboot\n")
    assert settings.read_stack_file(path) == {
        "openstack-ha:cluster": {"name": "osha", "stickiness": 100},
        "openstack-ha:fencing": {"enabled": True, "action": "reboot"}}
    path.write_text("config:\n  openstack-ha:fencing:\n    <<: {enabled: true}\n"
                    "    action: reboot\n    action: off\n")
    with pytest.raises(settings.SettingsError) as caught:
        settings.read_stack_file(path)
    assert "given twice" in caught.value.problems[0]
