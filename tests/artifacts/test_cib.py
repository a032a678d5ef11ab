"""The stack's rendered CIB layout run with the real pcs, then checked by crm_verify and crm_simulate."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

import settings as stack_settings
from components import cluster_units
from tests.artifacts import cib
from tests.conftest import stack_config
from tools import render

# The image carries the services: the seed's own way, and its releases.
IMAGE_CARRIES = {"openstack": {"install": "none"}}
# Both HAProxy layouts with both broker layouts (RabbitMQ and qpidd); `dev-group` is the seed's.
VARIANTS = {
    "dev-clone": ("dev", {}),
    "dev-group": ("dev", {"cluster": {"haproxyLayout": "group", "broker": "qpid",
                                      "brokerLayout": "group"}, **IMAGE_CARRIES}),
    "lab-broker-group": ("lab", {"cluster": {**render.stack_config("lab")["cluster"],
                                             "brokerLayout": "group"}}),
    "debian-clone": ("debian", {}),
    "dev-two-nodes": ("dev", {"controlNodes": {"count": 2}, "acknowledgeEvenControlCount": True}),
    "dev-havana-haproxy-group": ("dev", {"release": "havana", "cluster": {"haproxyLayout": "group"},
                                         **IMAGE_CARRIES}),
}


def render_variant(stack: str, overrides: dict, out):
    raw = stack_config(stack, **overrides)
    render.write(render.run_program(raw, stack), out)
    return stack_settings.parse(raw, stack)


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def built(request, tmp_path_factory):
    """(settings, rendered dir, CIB with the stack's layout applied, all-up CIB) per variant."""
    stack, overrides = VARIANTS[request.param]
    work = tmp_path_factory.mktemp(request.param)
    settings = render_variant(stack, overrides, work / "rendered")
    nodes = [n.name for n in settings.controls]
    configured = cib.empty_cib(work / "cib.xml", nodes)
    cib.apply_layout(work / "rendered", configured)
    up = work / "up.xml"
    placement = cib.simulate(configured, up, *(f"--node-up={n}" for n in nodes))
    return settings, work, configured, up, placement


def group_members(settings) -> list[str]:
    """The group in its order: MySQL right after the Filesystem holding its datadir (every API
    waits for it; it waits for nothing else), then glance-api (the stack installs it without its
    own Ceph: its image store is on the Filesystem, and it needs the database), then the seed's
    broker."""
    glance = ["glance-api"] if settings.openstack.installs and settings.services["glance-api"] \
        and not settings.images_in_ceph else []
    broker = ["broker"] if settings.cluster.broker_layout == "group" else []
    members = ["vip", "shared-fs", "mysql", *glance, *broker,
               *(s.name for s in settings.cluster.singletons)]
    if settings.cluster.haproxy_layout == "group":
        members.insert(1, "haproxy")
    return members


def holder(settings, placement: cib.ClusterView) -> str:
    (node,) = placement.on("vip")
    return node


def check_together(settings, placement: cib.ClusterView, broker_down: tuple[str, ...] = ()) -> str:
    """Every group member runs exactly once, all on the VIP's node; HAProxy and the broker where
    they belong (a cloned broker on every online node but `broker_down`, the VIP's among them)."""
    node = holder(settings, placement)
    for member in group_members(settings):
        assert placement.on(member) == [node], (member, placement.running)
    if settings.cluster.haproxy_layout == "clone":
        assert sorted(placement.on("haproxy")) == sorted(placement.online)
    if settings.cluster.broker_layout == "clone":
        assert sorted(placement.on("broker")) == \
            sorted(n for n in placement.online if n not in broker_down), placement.running
        assert node in placement.on("broker")
    for control in settings.controls:
        device = placement.on(f"fence-{control.name}")
        # A device never runs on the node it fences; with no other node up it does not run.
        expected = 1 if any(n != control.name for n in placement.online) else 0
        assert len(device) == expected and control.name not in device, (control.name, device)
    return node


def test_crm_verify_is_clean(built):
    _, _, _, up, _ = built
    assert cib.verify(up) == ""


def test_all_nodes_up_every_resource_starts_once(built):
    settings, _, _, _, placement = built
    assert sorted(placement.online) == sorted(n.name for n in settings.controls)
    check_together(settings, placement)


def test_failover_moves_everything_to_one_survivor_for_each_node_in_turn(built):
    """For each node: it holds the VIP (it came up first), fails, everything moves together to
    one survivor; when it comes back nothing moves back."""
    settings, work, configured, _, _ = built
    nodes = [n.name for n in settings.controls]
    for victim in nodes:
        others = [f"--node-up={n}" for n in nodes if n != victim]
        first = cib.simulate(configured, work / f"{victim}-first.xml", f"--node-up={victim}")
        assert holder(settings, first) == victim
        up = cib.simulate(work / f"{victim}-first.xml", work / f"{victim}-up.xml", *others)
        assert check_together(settings, up) == victim
        failed = cib.simulate(work / f"{victim}-up.xml", work / f"{victim}-failed.xml",
                              f"--node-fail={victim}")
        assert victim not in failed.online
        survivor = check_together(settings, failed)
        assert survivor != victim
        back = cib.simulate(work / f"{victim}-failed.xml", work / f"{victim}-back.xml",
                            f"--node-up={victim}")
        assert check_together(settings, back) == survivor, "stickiness: nothing moves back"


def test_rerun_without_changes_pushes_nothing(built):
    _, work, configured, _, _ = built
    before = cib.epoch(configured)
    result = cib.apply_layout(work / "rendered", configured)
    assert "nothing to push" in result.stderr
    assert cib.epoch(configured) == before


def test_two_node_cluster_delays_one_side(built):
    settings, work, configured, _, _ = built
    text = configured.read_text()
    if len(settings.controls) == 2:
        assert text.count('name="pcmk_delay_base"') == 1
    else:
        assert "pcmk_delay_base" not in text


def test_removing_a_resource_from_settings_removes_it_from_the_cib(tmp_path):
    stack = "dev"
    havana = {"release": "havana", **IMAGE_CARRIES}  # two singletons: consoleauth, the L2 agent
    before = render_variant(stack, havana, tmp_path / "before")
    configured = cib.empty_cib(tmp_path / "cib.xml", [n.name for n in before.controls])
    cib.apply_layout(tmp_path / "before", configured)
    assert 'id="nova-consoleauth"' in configured.read_text()
    render_variant(stack, {**havana, "cluster": {"singletons": [
        {"name": "neutron-l2-agent", "unit": "neutron-openvswitch-agent"}]}}, tmp_path / "after")
    cib.apply_layout(tmp_path / "after", configured)
    text = configured.read_text()
    assert 'id="nova-consoleauth"' not in text
    assert 'id="neutron-l2-agent"' in text and 'id="mysql"' in text


def test_fencing_off_disables_stonith_and_creates_no_device(tmp_path):
    settings = render_variant("dev", {"fencing": {"enabled": False, "acknowledgeDisabled": True}},
                              tmp_path / "rendered")
    configured = cib.empty_cib(tmp_path / "cib.xml", [n.name for n in settings.controls])
    cib.apply_layout(tmp_path / "rendered", configured)
    text = configured.read_text()
    assert 'name="stonith-enabled" value="false"' in text and 'class="stonith"' not in text


def test_the_group_holds_the_shared_directory_then_mysql_then_glance(built):
    """The Filesystem mounts cluster.sharedDir; MySQL, whose datadir lies in it, starts right
    after it, then glance-api (when the stack installs it); MySQL runs its init file."""
    settings, _, configured, _, _ = built
    root = ET.parse(configured).getroot()
    (group,) = root.iter("group")
    order = [p.get("id") for p in group.findall("primitive")]
    assert order == group_members(settings)

    def params(resource: str) -> dict[str, str]:
        (primitive,) = [p for p in root.iter("primitive") if p.get("id") == resource]
        return {n.get("name"): n.get("value") for n in primitive.iter("nvpair")
                if n.get("id", "").startswith(f"{resource}-instance_attributes")}
    assert params("shared-fs")["directory"] == settings.cluster.shared_dir
    assert params("mysql")["datadir"] == f"{settings.cluster.shared_dir}/mysql"
    mysqld = params("mysql")["additional_parameters"].split()
    assert "--init-file=/etc/openstack-ha/mysql-init.sql" in mysqld
    # A short crash recovery at the failover: a small redo log, flushed early.
    assert "--innodb-log-file-size=16M" in mysqld
    assert "--innodb-max-dirty-pages-pct-lwm=1" in mysqld
    if "glance-api" in order:
        (glance,) = [p for p in root.iter("primitive") if p.get("id") == "glance-api"]
        unit = cluster_units.installed_single_node_services(settings)["glance-api"]
        assert (glance.get("class"), glance.get("type")) == ("systemd", unit)


def test_a_broker_failure_on_the_vips_node(built):
    """Cloned, the failed broker is left stopped there and the group moves to a node whose broker
    runs; once the failure expires it starts again and nothing moves back. In the group it
    restarts in place, the group stays."""
    settings, work, _, up, placement = built
    node = holder(settings, placement)
    failed = cib.simulate(up, work / "broker-failed.xml", f"--op-inject=broker_monitor_30000@{node}=7")
    if settings.cluster.broker_layout == "group":
        assert check_together(settings, failed) == node
        return
    survivor = check_together(settings, failed, broker_down=(node,))
    assert survivor != node and node not in failed.on("broker")
    expired = cib.simulate(work / "broker-failed.xml", work / "broker-expired.xml",
                           "--set-datetime=2099-01-01T00:00:00Z")
    assert check_together(settings, expired) == survivor
    assert node in expired.on("broker")


def test_a_failed_start_keeps_the_group_off_a_node_only_until_it_expires(built):
    """MySQL's start failed on every node but the VIP's (a fatal failure there): when the VIP's
    node fails, MySQL has nowhere to go (the members before it do start on a survivor); once
    the failures have expired (cluster.failureTimeoutSeconds) the survivors are places to run
    it again, and the whole group runs on one of them by itself."""
    settings, work, _, up, placement = built
    node = holder(settings, placement)
    others = [n for n in placement.online if n != node]
    failed_starts = [f"--op-inject=mysql_start_0@{n}=1" for n in others]
    cib.simulate(up, work / "start-failed.xml", *failed_starts)
    cib.start_failures_fatal(work / "start-failed.xml")
    stranded = cib.simulate(work / "start-failed.xml", work / "stranded.xml",
                            f"--node-fail={node}")
    assert stranded.on("mysql") == [], stranded.running
    expired = cib.simulate(work / "stranded.xml", work / "start-failure-expired.xml",
                           "--set-datetime=2099-01-01T00:00:00Z")
    assert check_together(settings, expired) in others


def test_a_broker_failure_elsewhere_leaves_the_group_where_it_is(built):
    settings, work, _, up, placement = built
    node = holder(settings, placement)
    (other, *_) = [n for n in placement.online if n != node]
    failed = cib.simulate(up, work / "broker-failed-elsewhere.xml",
                          f"--op-inject=broker_monitor_30000@{other}=7")
    down = (other,) if settings.cluster.broker_layout == "clone" else ()
    assert check_together(settings, failed, broker_down=down) == node


def configuration(cib_file) -> str:
    """The CIB's configuration section, canonical (no epoch or status)."""
    (section,) = ET.parse(cib_file).getroot().iter("configuration")
    return ET.canonicalize(ET.tostring(section), strip_text=True)


def test_switching_broker_layouts_converges(tmp_path):
    """Clone -> group -> clone on one CIB: each run leaves what it leaves on an empty CIB, and a
    re-run pushes nothing."""
    settings = render_variant("dev", {"cluster": {"brokerLayout": "clone"}}, tmp_path / "clone")
    render_variant("dev", {"cluster": {"brokerLayout": "group"}}, tmp_path / "group")
    nodes = [n.name for n in settings.controls]
    fresh = cib.empty_cib(tmp_path / "fresh.xml", nodes)
    cib.apply_layout(tmp_path / "group", fresh)
    switched = cib.empty_cib(tmp_path / "switched.xml", nodes)
    cib.apply_layout(tmp_path / "clone", switched)
    cloned = configuration(switched)
    assert "broker-clone" in cloned
    cib.apply_layout(tmp_path / "group", switched)
    assert configuration(switched) == configuration(fresh)
    assert "broker-clone" not in configuration(switched)
    cib.apply_layout(tmp_path / "clone", switched)
    assert configuration(switched) == cloned
    epoch = cib.epoch(switched)
    assert "nothing to push" in cib.apply_layout(tmp_path / "clone", switched).stderr
    assert cib.epoch(switched) == epoch


def test_no_group_member_waits_for_a_clone_instance_to_start(built):
    """The group starts beside running clone instances but never after a clone's start as a
    whole: in a failover, that start includes the broker on the fenced node as it rejoins."""
    settings, work, configured, _, _ = built
    inputs = cib.transition_inputs(configured, work / "graph.xml",
                                   *(f"--node-up={n.name}" for n in settings.controls))
    clones = {id_ for clone in ET.parse(configured).getroot().iter("clone")
              for id_ in (clone.get("id"), clone.find("primitive").get("id"))}
    starts = {m: inputs.get(f"{m}_start_0") for m in group_members(settings)}
    assert None not in starts.values(), sorted(inputs)
    for member, waits in starts.items():
        clone_actions = sorted(w for w in waits if w.rsplit("_", 2)[0] in clones)
        assert not clone_actions, (member, clone_actions)


def test_cinder_volume_runs_once_outside_the_group(built):
    """With a block storage backend, cinder-volume is one primitive outside the group: it runs
    on one node; its failure restarts it there and leaves the group where it is; without its
    node it runs on another one."""
    settings, work, configured, up, placement = built
    root = ET.parse(configured).getroot()
    in_group = {p.get("id") for g in root.iter("group") for p in g.findall("primitive")}
    if not settings.block_storage.enabled:
        assert "cinder-volume" not in {p.get("id") for p in root.iter("primitive")}
        return
    assert "cinder-volume" not in in_group
    (node,) = placement.on("cinder-volume")
    group_node = holder(settings, placement)
    failed = cib.simulate(up, work / "volume-failed.xml",
                          f"--op-inject=cinder-volume_monitor_30000@{node}=7")
    assert failed.on("cinder-volume") == [node]
    assert check_together(settings, failed) == group_node
    others = [n.name for n in settings.controls if n.name != node]
    without = cib.simulate(configured, work / "volume-node-down.xml",
                           *(f"--node-up={n}" for n in others))
    (moved,) = without.on("cinder-volume")
    assert moved in others
