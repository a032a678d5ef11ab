#!/usr/bin/env python3
"""The maintenance bench: each control node's maintenance with a reboot, the core group's holder
first, every API called throughout.

    python bench/maintenance.py [--profile fast] [--rounds 1]
    python bench/maintenance.py --show bench/results/maintenance-PROFILE.json   # the table

Converges a fresh lab, then per round takes out the node holding the VIP and the core group
(its standby moves them, MySQL restarts on another node), then a node holding neither, each with
lab/maintenance.py: `maintenance: [node]` through the update path, the node rebooted, the
setting without it applied again. Per scenario (`maintenance-holder`, `maintenance`): how long
it took, each API's calls and failed calls by kind, the host's CPU meanwhile; written to
bench/results/maintenance-PROFILE.json. Everything it started is ended when it stops.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import options  # noqa: E402
from lab import drill, evidence, maintenance, openstack, session  # noqa: E402


def markdown(results: list[dict]) -> str:
    apis = sorted({api for r in results for api in r["apis"]})
    lines = ["| scenario | seconds | " + " | ".join(apis)
             + " | host CPU busy (median, during timeouts) |",
             "|---|---|" + "---|" * len(apis) + "---|"]
    for r in results:
        cells = [f"{r['apis'][api]['failed']}/{r['apis'][api]['calls']}" if api in r["apis"]
                 else "-" for api in apis]
        busy = r.get("host_busy") or {}
        lines.append(f"| {r['scenario']} | {r['seconds']} | " + " | ".join(cells)
                     + f" | {busy.get('median')}, {busy.get('median_during_timeouts')} |")
    return "\n".join(lines)


def main() -> int:
    parser = options.parser(__doc__, "fast", "/var/tmp/osha-bench-maintenance")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if args.show:
        print(markdown(json.loads(args.show.read_text())["scenarios"]))
        return 0
    session.exit_on_signals()
    path = args.out / f"maintenance-{args.profile}.json"
    lab = session.Lab(session.render_stack(args.work / "rendered", args.profile), args.substrate)
    cloud = openstack.CloudChecks(openstack.Cloud.of(lab), schedulers=len(lab.controls))
    results: list[drill.PlannedWork] = []
    try:
        lab.up()
        lab.converge()
        for round_index in range(args.rounds):
            for scenario in ("maintenance-holder", "maintenance"):
                drill.wait_settled(lab)
                holder = lab.holder_of_vip()
                others = [n for n in lab.controls if n.name != holder.name]
                node = holder if scenario == "maintenance-holder" else \
                    others[round_index % len(others)]
                work = args.work / f"out-{round_index}-{scenario}"
                results.append(maintenance.rebooted_in_maintenance(
                    lab, cloud, node, work, scenario)[0])
                drill.report_planned(results, path, drill.machine())
    except Exception:
        print(f"cluster state and node logs: {evidence.save(lab, 'bench-maintenance')}",
              file=sys.stderr, flush=True)
        raise
    finally:
        session.ensure_down()
    print(markdown([r.as_dict() for r in results]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
