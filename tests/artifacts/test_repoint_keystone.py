"""The rendered keystone endpoint script against a stand-in `openstack` CLI, run twice."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from catalogue import endpoints
from components.node import ROOT_PROLOGUE
from tests.conftest import stack_config
from tools import render

# Keeps a catalogue in a JSON file and answers the few `openstack` calls the script makes.
FAKE_OPENSTACK = r'''#!/usr/bin/env python3
import json, os, sys
path = os.environ["FAKE_KEYSTONE"]
state = json.load(open(path))
args = sys.argv[1:]
def opt(name):
    return args[args.index(name) + 1]
def save(action):
    json.dump(state, open(path, "w"))
    with open(os.environ["OSHA_TEST_LOG"], "a") as log:
        log.write(action + "\n")
assert os.environ.get("OS_PASSWORD") == os.environ["EXPECTED_PASSWORD"], "not authenticated"
if args[:2] == ["service", "show"]:
    sys.exit(0 if args[2] in state["services"] else 1)
if args[:2] == ["endpoint", "list"]:
    for e in state["endpoints"]:
        if (e["type"], e["interface"], e["region"]) == (opt("--service"), opt("--interface"),
                                                         opt("--region")):
            print(e["id"], e["url"])
elif args[:2] == ["endpoint", "delete"]:
    state["endpoints"] = [e for e in state["endpoints"] if e["id"] != args[2]]
    save("delete " + args[2])
elif args[:2] == ["endpoint", "create"]:
    service, interface, url = args[4:7]
    state["next"] += 1
    state["endpoints"].append({"id": "e%d" % state["next"], "type": service,
                               "interface": interface, "region": opt("--region"), "url": url})
    save("create %s %s %s" % (service, interface, url))
else:
    sys.exit("unexpected: %s" % args)
'''


def prepare(tmp_path: Path, graph: render.Graph, password: str) -> tuple[dict, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "openstack").write_text(FAKE_OPENSTACK)
    (bin_dir / "curl").write_text("#!/bin/bash\nexit 0\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    s = graph.settings
    wanted = endpoints(s.services, s.vip_fqdn, s.tls_enabled)
    old = [{"id": f"old{i}", "type": t, "interface": i_, "region": s.keystone.region,
            "url": u.replace(s.vip_fqdn, "10.20.0.11")} for i, (t, i_, u) in enumerate(wanted)]
    # One already right, one duplicated, and a service keystone does not know (ec2) left out.
    old[0]["url"] = wanted[0][2]
    old.append({**old[1], "id": "dup"})
    state = {"services": sorted({t for t, _, _ in wanted}), "endpoints": old, "next": 0}
    (tmp_path / "keystone.json").write_text(json.dumps(state))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "FAKE_KEYSTONE": str(tmp_path / "keystone.json"),
           "OSHA_TEST_LOG": str(tmp_path / "log"), "EXPECTED_PASSWORD": password}
    return env, tmp_path / "log"


def run(script: str, env: dict, stdin: str = "") -> str:
    result = subprocess.run(["bash", "-c", script.replace(ROOT_PROLOGUE, "")], input=stdin,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def check_catalogue(graph: render.Graph, tmp_path: Path) -> None:
    s = graph.settings
    state = json.loads((tmp_path / "keystone.json").read_text())
    found = sorted((e["type"], e["interface"], e["url"]) for e in state["endpoints"])
    assert found == sorted(endpoints(s.services, s.vip_fqdn, s.tls_enabled))


def test_openrc_run_fixes_the_catalogue_and_a_second_run_changes_nothing(tmp_path):
    openrc = tmp_path / "keystonerc_admin"
    openrc.write_text("export OS_USERNAME=admin\nexport OS_PASSWORD=FromOpenrc-1\n")
    graph = render.run_program(stack_config("dev", keystone={"openrcFile": str(openrc)}), "dev")
    script = graph.named("keystone-endpoints").inputs["create"]
    env, log = prepare(tmp_path, graph, "FromOpenrc-1")
    run(script, env)
    check_catalogue(graph, tmp_path)
    actions = log.read_text().splitlines()
    wanted = endpoints(graph.settings.services, graph.settings.vip_fqdn, False)
    # Every endpoint but the one already right is re-created; the old ones and the duplicate go.
    assert len([a for a in actions if a.startswith("create")]) == len(wanted) - 1
    assert "delete dup" in actions and "delete old0" not in actions
    log.write_text("")
    output = run(script, env)
    assert log.read_text() == "" and "0 endpoint(s) re-created" in output


def test_admin_password_comes_from_stdin(tmp_path):
    password = "Stdin-Admin-Pw-9"
    graph = render.run_program(stack_config("prod", keystoneAdminPassword=password), "prod")
    step = graph.named("keystone-endpoints")
    env, _ = prepare(tmp_path, graph, password)
    run(step.inputs["create"], env, stdin=step.inputs["stdin"])
    check_catalogue(graph, tmp_path)
