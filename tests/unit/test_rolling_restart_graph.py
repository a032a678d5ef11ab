"""The rolling restart under the mock runtime: one step per node after the steps that leave it
restarts, one node after the other, run again whenever one of those steps would; every control
node's HAProxy agent, and HAProxy asking it."""
from __future__ import annotations

import re

import pytest

from components.haproxy import AGENT_PORT, haproxy_config
from components.rolling_restart import PENDING_RESTARTS
from tests.conftest import stack_config
from tools import render

IMAGE_CARRIES = {"install": "none"}


@pytest.fixture(scope="module")
def image_graph() -> render.Graph:
    """The seed's way: the image carries OpenStack, the stack only repoints it."""
    return render.run_program(stack_config("dev", openstack=IMAGE_CARRIES), "dev")


def restart_steps(graph: render.Graph) -> list[render.Registration]:
    return [r for r in graph.registrations if r.name.endswith("-rolling-restart")]


def nodes(graph: render.Graph) -> list[str]:
    return [n.name for n in graph.settings.controls + graph.settings.computes]


@pytest.mark.parametrize("graph_name", ["dev_graph", "image_graph"])
def test_each_node_restarts_after_its_own_steps_and_after_the_node_before(graph_name, request):
    graph = request.getfixturevalue(graph_name)
    names = nodes(graph)
    assert [r.name for r in restart_steps(graph)] == [f"{n}-rolling-restart" for n in names]
    installs = graph.settings.openstack.installs
    for index, node in enumerate(names):
        waits = graph.waits_for(graph.named(f"{node}-rolling-restart"))
        assert f"{node}-repoint" in waits
        assert (f"{node}-openstack-install" in waits) == installs
        assert {w for w in waits if w.endswith("-rolling-restart")} == \
            ({f"{names[index - 1]}-rolling-restart"} if index else set()), (node, waits)


def restart_if_changed(script: str) -> str:
    """The body of the script's restart_if_changed function."""
    return re.search(r"^restart_if_changed\(\) \{\n(.*?)^\}", script, re.M | re.S).group(1)


def test_the_steps_that_leave_restarts_record_them_for_it_and_their_undo_restarts_at_once(
        dev_graph):
    for node in nodes(dev_graph):
        for step in (f"{node}-openstack-install", f"{node}-repoint"):
            create = dev_graph.named(step).inputs["create"]
            body = restart_if_changed(create)
            assert "add_pending unit" in body and "add_pending resource" in body, step
            assert "try_restart" not in body and "restart_here" not in body, step
            assert PENDING_RESTARTS in create, step
        undo = restart_if_changed(dev_graph.named(f"{node}-repoint").inputs["delete"])
        assert "add_pending" not in undo and "try_restart" in undo and "restart_here" in undo


def test_its_trigger_changes_with_what_the_install_runs_and_nothing_else(tmp_path):
    base = render.run_program(stack_config("dev"), "dev")
    # A changed install (another worker count) on every node; the cluster's layout alone
    # (another monitor interval) changes no install.
    workers = render.run_program(stack_config("dev", openstack={"workers": 3}), "dev")
    layout = render.run_program(stack_config("dev", cluster={"haproxyLayout": "group"}), "dev")

    def triggers(graph):
        return {r.name: r.inputs["triggers"] for r in restart_steps(graph)}

    assert all(t[0] for t in triggers(base).values())
    changed = {n for n, t in triggers(workers).items() if t != triggers(base)[n]}
    assert changed == {f"{n}-rolling-restart" for n in
                       [c.name for c in base.settings.controls]}, changed
    assert triggers(layout) == triggers(base)


def test_every_control_node_runs_the_agent_haproxy_asks(dev_graph):
    config = haproxy_config(dev_graph.settings)
    (defaults,) = [line for line in config.splitlines() if line.startswith("  default-server ")]
    assert re.search(rf"\bagent-check agent-port {AGENT_PORT} agent-inter \d+s\b", defaults)
    # Each server names its proxy to the agent, which drains only the proxies it was told to.
    proxy = None
    servers = 0
    for line in config.splitlines():
        if line.startswith("listen "):
            proxy = line.split()[1]
        elif line.startswith("  server "):
            servers += 1
            assert line.endswith(f' check agent-send "{proxy}\\n"'), line
    assert servers == len(dev_graph.settings.controls) * (config.count("\nlisten ") - 1)
    for node in dev_graph.settings.controls:
        agent = dev_graph.named(f"{node.name}-haproxy-agent")
        lines = agent.inputs["create"].splitlines()
        assert f"address={node.ip}" in lines and f"port={AGENT_PORT}" in lines
        assert agent.inputs["delete"]
        assert agent.name in dev_graph.waits_for(dev_graph.named(f"{node.name}-haproxy-install"))
    assert not [r for r in dev_graph.registrations
                if r.name.startswith(tuple(n.name for n in dev_graph.settings.computes))
                and r.name.endswith("-haproxy-agent")]
