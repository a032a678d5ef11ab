"""restart_here (templates/restart-here.sh.j2) run by bash against stub cluster tools: a resource
restarts only on the node that runs it; a cloned one under systemd with the node in maintenance,
never through Pacemaker's ban. reload_here (templates/reload-here.sh.j2): a reload in place, only
where the resource runs."""
from __future__ import annotations

import os
import subprocess

import pytest

from components.templating import render

PRIMITIVES = {
    "clone": '<clone id="broker-clone">\n  <primitive id="broker" class="systemd" '
             'type="rabbitmq-server">\n    <operations/>\n  </primitive>\n</clone>',
    "group": "",  # a group member: the clone query finds nothing
}
STUBS = {
    "crm_node": '[ -z "$OSHA_NO_CLUSTER" ] || exit 1\necho ctl1',
    "crm_resource": 'if [ "$1" = --locate ]; then printf "resource %s is running on: %s\\n" '
                    '"$3" "$OSHA_RUNS_ON"; exit 0; fi\necho "crm_resource $*" >> "$OSHA_TEST_LOG"',
    "cibadmin": '[ -n "$OSHA_CLONED" ] || exit 105\nprintf "%s\\n" "$OSHA_CLONED"',
    "crm_attribute": 'echo "crm_attribute $*" >> "$OSHA_TEST_LOG"\n'
                     '[[ " $* " == *" --query "* ]] && printf "%s\\n" "$OSHA_MAINTENANCE"; exit 0',
    "systemctl": 'echo "systemctl $*" >> "$OSHA_TEST_LOG"\nexit "${OSHA_SYSTEMCTL_RC:-0}"',
}


def run(tmp_path, stubs: dict[str, str], call: str, **env: str) -> tuple[int, list[str]]:
    """`call` after restart-here.sh.j2, by bash with `stubs` (a tool's name: its body) first on
    PATH; the return code and the lines the stubs logged to $OSHA_TEST_LOG."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool, text in stubs.items():
        (bin_dir / tool).write_text(f"#!/bin/bash\n{text}\n")
        (bin_dir / tool).chmod(0o755)
    log = tmp_path / "log"
    log.write_text("")
    script = "set -euo pipefail\n" + render("restart-here.sh.j2") + render("reload-here.sh.j2") \
        + call + "\n"
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
                                 "OSHA_TEST_LOG": str(log), **env})
    return result.returncode, log.read_text().splitlines()


def restart(tmp_path, layout: str, runs_on: str = "ctl1", maintenance: str = "",
            systemctl_rc: int = 0, no_cluster: str = "") -> tuple[int, list[str]]:
    return run(tmp_path, STUBS, "restart_here broker", OSHA_RUNS_ON=runs_on,
               OSHA_CLONED=PRIMITIVES[layout], OSHA_MAINTENANCE=maintenance,
               OSHA_SYSTEMCTL_RC=str(systemctl_rc), OSHA_NO_CLUSTER=no_cluster)


def test_a_grouped_resource_restarts_through_pacemaker(tmp_path):
    assert restart(tmp_path, "group") == (
        0, ["crm_resource --restart --resource broker --timeout=300s"])


@pytest.mark.parametrize("layout", sorted(PRIMITIVES))
def test_nothing_restarts_on_a_node_that_does_not_run_it(tmp_path, layout):
    assert restart(tmp_path, layout, runs_on="ctl2") == (0, [])
    assert restart(tmp_path, layout, no_cluster="yes") == (0, [])


def test_a_cloned_resource_restarts_under_systemd_with_the_node_in_maintenance(tmp_path):
    rc, calls = restart(tmp_path, "clone")
    assert rc == 0
    assert calls == ["crm_attribute --node ctl1 --name maintenance --query --quiet",
                     "crm_attribute --node ctl1 --name maintenance --update true",
                     "systemctl try-restart rabbitmq-server.service",
                     "crm_attribute --node ctl1 --name maintenance --delete"]


def test_a_failed_restart_still_ends_maintenance_and_fails(tmp_path):
    rc, calls = restart(tmp_path, "clone", systemctl_rc=1)
    assert rc == 1 and calls[-1] == "crm_attribute --node ctl1 --name maintenance --delete"


def test_a_node_already_in_maintenance_stays_in_it(tmp_path):
    rc, calls = restart(tmp_path, "clone", maintenance="true")
    assert rc == 0 and calls == ["crm_attribute --node ctl1 --name maintenance --query --quiet",
                                 "systemctl try-restart rabbitmq-server.service"]


LOGGED_SYSTEMCTL = 'echo "systemctl $*" >> "$OSHA_TEST_LOG"\n'


def try_restart(tmp_path, systemctl: str) -> tuple[int, list[str]]:
    """try_restart of unit.service against a stub systemctl (`systemctl` is its body)."""
    return run(tmp_path, {"systemctl": LOGGED_SYSTEMCTL + systemctl}, "try_restart unit.service",
               OSHA_STATE=str(tmp_path / "n"))


# A unit whose start fails once, then runs after its restart policy's second try.
FAILS_ONCE = ('case $1 in try-restart) exit 1;; show) echo "$OSHA_RESTART";;\n'
              '  is-active) n=$(cat "$OSHA_STATE" 2>/dev/null || echo 0); echo $((n + 1)) '
              '> "$OSHA_STATE"; [ "$n" -ge 2 ];; esac')


def test_a_unit_whose_start_fails_once_is_done_when_its_restart_policy_runs_it(tmp_path):
    rc, calls = try_restart(tmp_path, FAILS_ONCE.replace("$OSHA_RESTART", "on-failure"))
    assert rc == 0
    assert calls.count("systemctl is-active --quiet unit.service") == 3


def test_a_failed_start_without_a_restart_policy_fails_at_once(tmp_path):
    rc, calls = try_restart(tmp_path, FAILS_ONCE.replace("$OSHA_RESTART", "no"))
    assert rc == 1 and not [c for c in calls if "is-active" in c]


def test_a_unit_that_restarts_cleanly_is_not_waited_for(tmp_path):
    assert try_restart(tmp_path, "exit 0") == (0, ["systemctl try-restart unit.service"])


RELOAD = {**STUBS, "mysql": 'echo "mysql $*" >> "$OSHA_TEST_LOG"'}


@pytest.mark.parametrize("runs_on, reloaded", [("ctl1", ["mysql -e FLUSH SSL"]), ("ctl2", [])])
def test_a_reload_runs_only_where_the_resource_runs_and_restarts_nothing(tmp_path, runs_on,
                                                                          reloaded):
    assert run(tmp_path, RELOAD, "reload_here mysql mysql -e 'FLUSH SSL'",
               OSHA_RUNS_ON=runs_on) == (0, reloaded)
