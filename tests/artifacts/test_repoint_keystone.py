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

# Keeps a catalogue in a JSON file (keystone's shape: endpoints name their service by id) and
# answers as python3-openstackclient 6.x does: `service list` and `endpoint list` in `-f json`
# with its column names, `endpoint create` resolving the service by id, name or type, and
# `endpoint delete` of one or more ids. Every invocation is logged, argv joined by spaces.
FAKE_OPENSTACK = r'''#!/usr/bin/env python3
import json, os, sys
path = os.environ["FAKE_KEYSTONE"]
state = json.load(open(path))
args = sys.argv[1:]
with open(os.environ["OSHA_TEST_LOG"], "a") as log:
    log.write(" ".join(args) + "\n")
assert os.environ.get("OS_PASSWORD") == os.environ["EXPECTED_PASSWORD"], "not authenticated"
services = {s["ID"]: s for s in state["services"]}
def save():
    json.dump(state, open(path, "w"))
if args == ["service", "list", "-f", "json"]:
    print(json.dumps(state["services"], indent=2))
elif args == ["endpoint", "list", "-f", "json"]:
    print(json.dumps([{"ID": e["id"], "Region": e["region"],
                       "Service Name": services[e["service_id"]]["Name"],
                       "Service Type": services[e["service_id"]]["Type"],
                       "Enabled": True, "Interface": e["interface"], "URL": e["url"]}
                      for e in state["endpoints"]], indent=2))
elif args[:2] == ["endpoint", "create"] and args[2] == "--region" and len(args) == 7:
    region, service, interface, url = args[3:]
    found = [s["ID"] for s in state["services"] if service in (s["ID"], s["Name"], s["Type"])]
    if len(found) != 1:
        sys.exit("No service with a type, name or ID of '%s' exists." % service)
    state["next"] += 1
    state["endpoints"].append({"id": "e%d" % state["next"], "service_id": found[0],
                               "interface": interface, "region": region, "url": url})
    save()
    print("| id | e%d |" % state["next"])
elif args[:2] == ["endpoint", "delete"] and len(args) > 2:
    known = {e["id"] for e in state["endpoints"]}
    missing = [i for i in args[2:] if i not in known]
    state["endpoints"] = [e for e in state["endpoints"] if e["id"] not in args[2:]]
    save()
    if missing:
        sys.exit("%d of %d endpoints failed to delete." % (len(missing), len(args) - 2))
else:
    sys.exit("unexpected: %s" % args)
'''

LISTING = ["service list -f json", "endpoint list -f json"]


def prepare(tmp_path: Path, graph: render.Graph, password: str) -> tuple[dict, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "openstack").write_text(FAKE_OPENSTACK)
    (bin_dir / "curl").write_text("#!/bin/bash\nexit 0\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    s = graph.settings
    wanted = endpoints(s.services, s.vip_fqdn, s.tls_enabled)
    types = sorted({t for t, _, _ in wanted})
    # Keystone lacks the last wanted service type (skipped, not created) and has ec2, not wanted.
    services = [{"ID": f"svc-{t}", "Name": f"{t}-svc", "Type": t} for t in types[:-1]]
    services.append({"ID": "svc-ec2", "Name": "ec2", "Type": "ec2"})
    old = [{"id": f"old{i}", "service_id": f"svc-{t}", "interface": i_,
            "region": s.keystone.region, "url": u.replace(s.vip_fqdn, "10.20.0.11")}
           for i, (t, i_, u) in enumerate(wanted) if t != types[-1]]
    # One already right, one duplicated; another region's endpoint and ec2's are not ours.
    old[0]["url"] = wanted[0][2]
    old.append({**old[1], "id": "dup"})
    old.append({**old[2], "id": "elsewhere", "region": "RegionTwo"})
    old.append({"id": "ec2", "service_id": "svc-ec2", "interface": "public",
                "region": s.keystone.region, "url": "http://10.20.0.11:8773/"})
    state = {"services": services, "endpoints": old, "next": 0}
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


def catalogue_state(tmp_path: Path) -> dict[str, dict]:
    return {e["id"]: e for e in json.loads((tmp_path / "keystone.json").read_text())["endpoints"]}


def check_catalogue(graph: render.Graph, tmp_path: Path) -> None:
    """Exactly the wanted endpoints of the services keystone knows; other endpoints untouched."""
    s = graph.settings
    wanted = endpoints(s.services, s.vip_fqdn, s.tls_enabled)
    skipped = max(t for t, _, _ in wanted)
    state = catalogue_state(tmp_path)
    found = sorted((e["service_id"].removeprefix("svc-"), e["interface"], e["url"])
                   for e in state.values()
                   if e["region"] == s.keystone.region and e["service_id"] != "svc-ec2")
    assert found == sorted(row for row in wanted if row[0] != skipped)
    assert {"elsewhere", "ec2"} <= set(state)
    assert state["elsewhere"]["url"].startswith(("http://10.20.0.11:", "https://10.20.0.11:"))


def test_openrc_run_fixes_the_catalogue_and_a_second_run_changes_nothing(tmp_path):
    openrc = tmp_path / "keystonerc_admin"
    openrc.write_text("export OS_USERNAME=admin\nexport OS_PASSWORD=FromOpenrc-1\n")
    graph = render.run_program(stack_config("dev", keystone={"openrcFile": str(openrc)},
                                            openstack={"install": "none"}), "dev")
    script = graph.named("keystone-endpoints").inputs["create"]
    env, log = prepare(tmp_path, graph, "FromOpenrc-1")
    before = catalogue_state(tmp_path)
    output = run(script, env)
    check_catalogue(graph, tmp_path)
    calls = log.read_text().splitlines()
    s = graph.settings
    wanted = endpoints(s.services, s.vip_fqdn, False)
    skipped = max(t for t, _, _ in wanted)
    known = [row for row in wanted if row[0] != skipped]
    # The catalogue is read once, up front; then every create, then one delete of the rest.
    assert calls[:2] == LISTING
    creates = [c for c in calls[2:] if c.startswith("endpoint create ")]
    deletes = [c for c in calls[2:] if c.startswith("endpoint delete ")]
    assert calls[2:] == creates + deletes and len(deletes) == 1
    # Every endpoint but the one already right is re-created, none for the unknown service.
    assert len(creates) == len(known) - 1 and not [c for c in creates if f" {skipped} " in c]
    deleted = deletes[0].split()[2:]
    stale = {i for i in before if i.startswith("old") and i != "old0"} | {"dup"}
    assert sorted(deleted) == sorted(stale)
    assert f"no {skipped} service in keystone: skipped" in output
    assert f"{len(known) - 1} endpoint(s) re-created" in output
    ids = set(catalogue_state(tmp_path))
    assert "old0" in ids
    # A second run reads the catalogue and changes nothing: the same endpoints, the same ids.
    log.write_text("")
    output = run(script, env)
    assert log.read_text().splitlines() == LISTING
    assert "0 endpoint(s) re-created" in output
    assert set(catalogue_state(tmp_path)) == ids


def test_admin_password_comes_from_stdin(tmp_path):
    password = "Stdin-Admin-Pw-9"
    graph = render.run_program(stack_config("prod", keystoneAdminPassword=password), "prod")
    step = graph.named("keystone-endpoints")
    assert password not in step.inputs["create"]
    env, log = prepare(tmp_path, graph, password)
    run(step.inputs["create"], env, stdin=step.inputs["stdin"])
    check_catalogue(graph, tmp_path)
    # Never on a command line.
    assert password not in log.read_text()
