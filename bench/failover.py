#!/usr/bin/env python3
"""The failover drill on the lab, for both HAProxy layouts in one run; prints a table, writes JSON.

    python bench/failover.py [--out bench/results/failover.json] [--layouts clone group]

Boots the lab stack (lab/session.py), converges it with the stack's own steps (keystone
bootstrapped before the repoint, lab/keystone.py), then for each
layout kills each control node in turn while it holds the VIP (lab/drill.py). The layout is
switched the way a user would: a changed setting, re-rendered, and only the changed steps run.
Everything it started is ended when it stops.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab import drill, session  # noqa: E402
from tools import render  # noqa: E402
from tools import replay  # noqa: E402


def converge(lab: session.Lab, rendered: Path, previous: replay.Rendered | None) -> None:
    """Run every stack step new or changed since `previous` (the whole stack the first time)."""
    if previous is None:
        lab.converge()
        return
    steps = replay.Rendered.load(rendered)
    lab.replayer(rendered).run("update", replay.changed_steps(previous, steps))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "failover.json")
    parser.add_argument("--layouts", nargs="+", default=["clone", "group"])
    parser.add_argument("--work", type=Path, default=Path("/var/tmp/osha-bench"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    first = session.render_stack(args.work / f"rendered-{args.layouts[0]}",
                                 cluster=layout_cluster(args.layouts[0]))
    lab = session.Lab(first, session.build_image())
    results: list[drill.Failover] = []
    try:
        lab.up()
        previous = None
        for layout in args.layouts:
            rendered = session.render_stack(args.work / f"rendered-{layout}",
                                            cluster=layout_cluster(layout))
            converge(lab, rendered, previous)
            previous = replay.Rendered.load(rendered)
            for node in lab.controls:
                results.append(drill.run_drill(lab, layout, node,
                                               first_row=10_000 * (len(results) + 1)))
        drill.report(results, args.out)
    finally:
        session.ensure_down()
    return 0


def layout_cluster(layout: str) -> dict:
    """Pulumi.lab.yaml's cluster settings with `haproxyLayout` set."""
    return {**render.stack_config(session.STACK)["cluster"], "haproxyLayout": layout}


if __name__ == "__main__":
    sys.exit(main())
