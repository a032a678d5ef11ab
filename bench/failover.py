#!/usr/bin/env python3
"""The failover drill bench: every fault, every control node as victim, both HAProxy layouts.

    python bench/failover.py [--profile default|fast] [--rounds 3] [--substrate containers|vms]
                             [--layouts clone group] [--faults destroy kill cut]
    python bench/failover.py --show bench/results/failover-*.json     # the README's table

Boots the lab stack (lab/session.py) with the chosen failover profile, converges it with the
stack's own steps, then per layout runs `rounds` rounds; in a round every fault takes down every
control node once (lab/drill.py) and then a node without the VIP, the real `openstack` client's
checks timed after each fault (lab/openstack.py) and every API called throughout (per API: its
outage, failed calls, longest gap, slowest answer), then the core group visits every control
node (each must take it back). The victim is the node that holds the VIP when it is free to be
chosen, so the core group is moved only when needed. The layout is switched the way a user
would: a changed setting, re-rendered, and only the changed steps run. Prints the table (median
and max per column), writes every drill to bench/results/failover-PROFILE.json and draws
bench/results/failover-PROFILE.png. Everything it started is ended when it stops.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import options  # noqa: E402
from lab import drill, openstack, session  # noqa: E402
from lab.substrate import FAULTS  # noqa: E402


def drills(lab: session.Lab, layout: str, rounds: int, faults: list[str],
           profile: str, cloud: openstack.CloudChecks) -> list[drill.Failover]:
    """Each round: every fault on every control node holding the VIP, victims taken as the VIP
    moves, then once on a node without it (another one each round)."""
    results = []
    for round_index in range(rounds):
        for fault in faults:
            pending = list(lab.controls)
            while pending:
                drill.wait_settled(lab)
                holder = lab.holder_of_vip()
                victim = holder if holder in pending else pending[0]
                pending.remove(victim)
                results.append(drill.run_drill(lab, layout, victim, fault, profile, cloud))
            drill.wait_settled(lab)
            holder = lab.holder_of_vip()
            bystanders = [n for n in lab.controls if n is not holder]
            results.append(drill.run_drill(lab, layout, bystanders[round_index % len(bystanders)],
                                           fault, profile, cloud, vip_holder=False))
            # Every victim rejoined: each control node must take the group back.
            drill.take_the_group_everywhere(lab)
    return results


def main() -> int:
    parser = options.parser(__doc__, "default", "/var/tmp/osha-bench", show_several=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--layouts", nargs="+", default=["clone", "group"])
    parser.add_argument("--faults", nargs="+", choices=FAULTS, default=list(FAULTS))
    args = parser.parse_args()
    if args.show:
        results = [r for path in args.show for r in drill.load(path)[1]]
        print(drill.markdown(results))
        return 0
    session.exit_on_signals()
    results: list[drill.Failover] = []
    lab = session.Lab(session.render_stack(args.work / f"rendered-{args.layouts[0]}",
                                           profile=args.profile, layout=args.layouts[0]),
                      args.substrate)
    cloud = openstack.CloudChecks(openstack.Cloud.of(lab), schedulers=len(lab.controls))
    try:
        lab.up()
        for index, layout in enumerate(args.layouts):
            rendered = session.render_stack(args.work / f"rendered-{layout}",
                                            profile=args.profile, layout=layout)
            if index == 0:
                lab.converge()
            else:
                lab.update_to(rendered)
            results += drills(lab, layout, args.rounds, args.faults, args.profile, cloud)
    finally:
        session.ensure_down()
        if results:
            name = f"failover-{args.profile}"
            drill.report(results, args.out / f"{name}.json", drill.machine())
            drill.chart(results, args.out / f"{name}.png", drill.machine())
    return 0


if __name__ == "__main__":
    sys.exit(main())
