"""The cluster's remote steps under the mock runtime: placement, order, delete scripts, secrets."""
from __future__ import annotations

import pytest

from tests.conftest import stack_config
from tools import render
from tools.render import LOCAL, REMOTE



def steps(graph: render.Graph) -> dict[str, render.Registration]:
    return {r.name: r for r in graph.registrations
            if r.type in (REMOTE, LOCAL)}


def host_of(registration: render.Registration) -> str:
    return registration.inputs["connection"]["host"]


def test_every_control_node_is_prepared_and_compute_nodes_are_not(dev_graph):
    found = steps(dev_graph)
    for node in dev_graph.settings.controls:
        for step in ("cluster-prep", "sysctl", "fence-key"):
            assert host_of(found[f"{node.name}-{step}"]) == str(node.ip)
    clustering = [r for component in ("cluster", "fencing", "cluster-resources")
                  for r in dev_graph.descendants(dev_graph.named(component).urn)
                  if r.type == REMOTE]
    assert clustering
    computes = {str(n.ip) for n in dev_graph.settings.computes}
    assert not [r.name for r in clustering if host_of(r) in computes]


def test_once_per_cluster_steps_run_on_the_first_control_node(dev_graph):
    first = str(dev_graph.settings.controls[0].ip)
    for name in ("cluster-setup", "shared-storage-prepare", "cluster-layout"):
        assert host_of(dev_graph.named(name)) == first


def test_dependency_order(dev_graph):
    controls = [n.name for n in dev_graph.settings.controls]
    setup = dev_graph.waits_for(dev_graph.named("cluster-setup"))
    for node in controls:
        assert {f"{node}-cluster-prep", f"{node}-sysctl"} <= set(setup)
        assert "local-fence-authorize" in dev_graph.waits_for(dev_graph.named(f"{node}-fence-key"))
    assert "cluster-setup" in dev_graph.waits_for(dev_graph.named("shared-storage-prepare"))
    layout = set(dev_graph.waits_for(dev_graph.named("cluster-layout")))
    # HAProxy's config is installed before Pacemaker first starts HAProxy.
    assert {"cluster-setup", "shared-storage-prepare"} | {f"{n}-fence-key" for n in controls} \
        | {f"{n}-haproxy-install" for n in controls} <= layout


def commands(script: str) -> str:
    """A script without its comments: what it runs."""
    return "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))


def test_destroy_unwinds_the_cluster(dev_graph):
    destroy = commands(dev_graph.named("cluster-setup").inputs["delete"])
    assert "pcs cluster destroy --all" in destroy and "--skip-offline" in destroy
    assert "pcs resource delete" in commands(dev_graph.named("cluster-layout").inputs["delete"])
    assert "osha-fence:dev" in commands(dev_graph.named("local-fence-authorize").inputs["delete"])
    for node in dev_graph.settings.controls:
        assert dev_graph.named(f"{node.name}-sysctl").inputs["delete"]
        assert dev_graph.named(f"{node.name}-fence-key").inputs["delete"]


def test_hacluster_password_travels_only_on_stdin(dev_graph):
    password = dev_graph.secrets["secrets/hacluster-password"]
    for name in ["cluster-setup", *(f"{n.name}-cluster-prep" for n in dev_graph.settings.controls)]:
        step = dev_graph.named(name)
        assert step.inputs["stdin"] == password
        assert "hacluster_password=$(read_secret " in step.inputs["create"]
    # Nor as a command's argument (the process list shows those): pcs reads it on stdin.
    auth, = [line for line in dev_graph.named("cluster-setup").inputs["create"].splitlines()
             if line.startswith("pcs host auth")]
    assert " -p " not in auth and auth.endswith('<<<"$hacluster_password"')


def test_fence_key_private_half_on_nodes_public_half_on_the_hypervisor(dev_graph):
    private = dev_graph.secrets["secrets/fence-ssh-key.key"]
    for node in dev_graph.settings.controls:
        assert dev_graph.named(f"{node.name}-fence-key").inputs["stdin"] == private
    authorize = dev_graph.named("local-fence-authorize")
    assert authorize.inputs["interpreter"] == ["/bin/bash", "-c"]
    assert "ssh-ed25519 " in authorize.inputs["create"] and "/root/.ssh/authorized_keys" in \
        authorize.inputs["create"]


def test_each_fence_device_targets_its_own_node_domain_and_hypervisor(dev_graph):
    layout = dev_graph.named("cluster-layout").inputs["create"]
    for node in dev_graph.settings.controls:
        assert (f"stonith create fence-{node.name} fence_virsh ip=10.20.0.1 username=root "
                f"identity_file=/etc/pacemaker/osha-fence.key plug=dev-{node.name} "
                f"pcmk_host_list={node.name}") in layout
        assert f"constraint location fence-{node.name} avoids {node.name}" in layout


@pytest.mark.parametrize("layout,clone", [("clone", True), ("group", False)])
def test_haproxy_layouts(layout, clone):
    graph = render.run_program(stack_config("dev", cluster={"haproxyLayout": layout}), "dev")
    script = graph.named("cluster-layout").inputs["create"]
    assert ("resource create haproxy systemd:haproxy op monitor interval=10s clone" in script) \
        == clone
    assert ("--group osha-core" in script.split("create haproxy", 1)[1].split("\n", 1)[0]) \
        == (not clone)
    assert "qpidd" not in script.split("create haproxy", 1)[1].split("\n", 1)[0]
    sysctl = graph.named("ctl1-sysctl").inputs["create"]
    assert ("net.ipv4.ip_nonlocal_bind = 1" in sysctl) == clone


@pytest.mark.parametrize("broker,unit", [("rabbitmq", "rabbitmq-server"), ("qpid", "qpidd")])
@pytest.mark.parametrize("haproxy", ["clone", "group"])
def test_broker_layouts(broker, unit, haproxy):
    """Cloned: the broker on every node, the group beside it (no order), a failed
    instance not restarted in place, the clone tagged; in the group: after MySQL, as the seed."""
    install = {} if broker == "rabbitmq" else {"openstack": {"install": "none"}}
    commands = {}
    for layout in ("clone", "group"):
        graph = render.run_program(stack_config("dev", cluster={
            "broker": broker, "brokerLayout": layout, "haproxyLayout": haproxy}, **install), "dev")
        commands[layout] = graph.named("cluster-layout").inputs["create"].splitlines()
    (cloned,) = [c for c in commands["clone"] if "resource create broker " in c]
    assert cloned.startswith(f"shadow resource create broker systemd:{unit} op start timeout=300s")
    assert cloned.endswith("meta migration-threshold=1 clone "
                           '"${force[@]}"') and "--group" not in cloned
    assert "shadow constraint colocation add osha-core with broker-clone INFINITY" in \
        commands["clone"]
    # No order: it would hold the group's start behind a rejoining node's broker start.
    assert not [c for c in commands["clone"] if c.startswith("shadow constraint order")]
    (tag,) = [c for c in commands["clone"] if c.startswith("shadow tag create")]
    assert " broker-clone " in tag
    (grouped,) = [c for c in commands["group"] if "resource create broker " in c]
    assert grouped.endswith('--group osha-core "${force[@]}"') and "meta" not in grouped
    assert not [c for c in commands["group"] if "broker-clone" in c]
    created = [c.split()[3] for c in commands["group"] if c.startswith("shadow resource create")]
    # The seed's layout: in the group after MySQL (and glance-api, which needs only MySQL).
    assert created[created.index("mysql") + 1:created.index("broker")] in ([], ["glance-api"])
    # The HAProxy layout's own lines are the same under either broker layout.
    def haproxy_lines(layout: str) -> list[str]:
        return [c for c in commands[layout] if "haproxy" in c and "tag create" not in c]
    assert haproxy_lines("clone") == haproxy_lines("group")


def test_fencing_off_installs_nothing_and_warns(caplog):
    graph = render.run_program(stack_config("dev", fencing={"enabled": False,
                                                             "acknowledgeDisabled": True}), "dev")
    names = {r.name for r in graph.registrations}
    assert not {n for n in names if "fence" in n and n != "fence-ssh-key"}
    assert "stonith-enabled=false" in graph.named("cluster-layout").inputs["create"]
    assert any(r.levelname == "WARNING" and "fencing is off" in r.getMessage()
               for r in caplog.records)


def test_no_secret_in_any_command_text_or_file(rendered):
    """Secrets reach nodes only on stdin; no rendered script, config or input carries one."""
    for stack in ("dev", "lab"):
        out = rendered(stack)
        graph = render.run_program(stack_config(stack), stack)
        secrets = graph.secret_values()
        assert secrets
        for path in out.rglob("*"):
            if path.is_file() and "secrets" not in path.relative_to(out).parts:
                text = path.read_text()
                leaked = [s[:12] for s in secrets if s in text]
                assert not leaked, f"{path.relative_to(out)} carries a secret starting {leaked}"


def test_failover_settings_reach_corosync_pacemaker_and_the_fence_devices():
    raw = stack_config("dev", cluster={"tokenMs": 1000, "loadThresholdPercent": 400},
                       fencing={"action": "off"})
    graph = render.run_program(raw, "dev")
    setup = graph.named("cluster-setup").inputs["create"]
    assert "token_ms=1000\n" in setup and 'totem token="$token_ms"' in setup
    layout = graph.named("cluster-layout").inputs["create"]
    assert "load-threshold=400%" in layout
    assert layout.count("pcmk_reboot_action=off") == len(graph.settings.controls)


@pytest.mark.parametrize("seconds", [60, 0, 900])
def test_every_resources_failures_expire_after_the_setting(seconds):
    cluster = {**stack_config("dev")["cluster"], "failureTimeoutSeconds": seconds}
    graph = render.run_program(stack_config("dev", cluster=cluster), "dev")
    lines = graph.named("cluster-layout").inputs["create"].splitlines()
    assert ("shadow resource defaults update resource-stickiness=100 "
            f"failure-timeout={seconds}s") in lines
    assert not [line for line in lines if "meta" in line and "failure-timeout" in line]
