"""Node maintenance under the mock runtime: one step per control node after every rolling
restart, its script following the `maintenance` setting; nodes coming back go before nodes going
out; a changed list changes the scripts of the nodes it moves, and only theirs."""
from __future__ import annotations

import pytest

from components.haproxy import MAINTENANCE_FLAG
from tests.conftest import stack_config
from tools import render


@pytest.fixture(scope="module")
def ctl2_out() -> render.Graph:
    return render.run_program(stack_config("dev", maintenance=["ctl2"]), "dev")


def maintenance_scripts(graph: render.Graph) -> dict[str, str]:
    return {r.name.removesuffix("-maintenance"): r.inputs["create"]
            for r in graph.registrations if r.name.endswith("-maintenance")}


def scripts(registration: render.Registration) -> tuple:
    return tuple(registration.inputs.get(phase) for phase in ("create", "update", "delete"))


def takes_out(script: str) -> bool:
    return "pcs node standby" in script


def test_every_control_node_has_a_step_after_every_rolling_restart(dev_graph):
    controls = [n.name for n in dev_graph.settings.controls]
    scripts = maintenance_scripts(dev_graph)
    assert sorted(scripts) == sorted(controls)
    for node in controls:
        waits = set(dev_graph.waits_for(dev_graph.named(f"{node}-maintenance")))
        assert {f"{n.name}-rolling-restart" for n in dev_graph.settings.nodes} <= waits, waits
        # Nothing listed: each node serves, out of standby, its drain flag gone.
        assert not takes_out(scripts[node])
        assert 'pcs node unstandby "$node"' in scripts[node]
        assert MAINTENANCE_FLAG in scripts[node] and 'rm -f "$flag"' in scripts[node]


def test_a_listed_node_is_drained_then_in_standby_after_the_others_came_back(ctl2_out):
    scripts = maintenance_scripts(ctl2_out)
    assert takes_out(scripts["ctl2"]) and not takes_out(scripts["ctl1"])
    script = scripts["ctl2"]
    assert script.index("at_vip drained") < script.index("pcs node standby")
    waits = set(ctl2_out.waits_for(ctl2_out.named("ctl2-maintenance")))
    assert {"ctl1-maintenance", "ctl3-maintenance"} <= waits, waits
    assert "ctl2-maintenance" not in ctl2_out.waits_for(ctl2_out.named("ctl1-maintenance"))


def test_a_changed_list_changes_only_the_steps_of_the_nodes_it_moves(dev_graph, ctl2_out):
    before, after = maintenance_scripts(dev_graph), maintenance_scripts(ctl2_out)
    assert [n for n in before if before[n] != after[n]] == ["ctl2"]
    # Every other remote step runs the same scripts.
    others = {r.name: scripts(r) for r in dev_graph.registrations
              if not r.name.endswith("-maintenance")}
    assert [r.name for r in ctl2_out.registrations
            if r.name in others and scripts(r) != others[r.name]] == []


def test_every_control_nodes_agent_drains_it_while_its_flag_is_there(dev_graph):
    for node in dev_graph.settings.controls:
        agent = dev_graph.named(f"{node.name}-haproxy-agent").inputs["create"]
        assert f"maintenance_flag={MAINTENANCE_FLAG}" in agent
        assert "$state_file $maintenance_flag" in agent
