#!/usr/bin/env python3
"""The interrupted-converge bench: the stack's create path killed part-way, then run again.

    python bench/interrupted.py [--profile fast] [--runs 10] [--first-seed 1] [--keep]
    python bench/interrupted.py --show bench/results/interrupted-PROFILE.json   # the table

A clean converge of a fresh lab first: its CIB is the reference. Then, per seed, a fresh lab
whose first converge is killed where the seed draws (lab/session.py `drawn_interruption`: a step
another one waits for, at a point within the seconds that step took in the clean run; every
running step's process gets SIGKILL), converged by a second, full run and judged: the cluster
settles, the real client's checks pass at the VIP, keystone lists no user, service or endpoint
twice, the shared disk holds one filesystem signature, and the CIB's configuration equals the
clean run's. One record per run (its stop point, what was in flight, how long the second run
took, what was wrong) in bench/results/interrupted-PROFILE.json, and a Markdown table. With
--keep the runs already in that file stay and the new ones are added (seeds recorded there are
not run again), so the points can be gathered over several sittings, each with its own clean run.
Everything it started is ended when it stops.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import options  # noqa: E402
from lab import checks, drill, openstack, session  # noqa: E402
from tools import replay  # noqa: E402


@dataclass
class Run:
    """One converge: `seed` None for the clean reference run."""
    seed: Optional[int]
    step: Optional[str] = None
    seconds: Optional[float] = None
    in_flight: list[str] = field(default_factory=list)
    second_run_seconds: Optional[float] = None
    problems: list[str] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return not self.problems


@dataclass
class Reference:
    """What the clean run left: the CIB's configuration and each step's seconds."""
    cib: str
    durations: dict[str, float]


def problems_of(lab: session.Lab, reference_cib: Optional[str]) -> tuple[list[str], str]:
    """What is wrong with the converged lab (nothing, when it converged), and its CIB."""
    try:
        drill.wait_settled(lab)
    except RuntimeError as error:
        return [f"not settled: {str(error).splitlines()[0]}"], ""
    cloud = openstack.CloudChecks(openstack.Cloud.of(lab), schedulers=len(lab.controls))
    passed, errors = cloud.until_all_pass(time.monotonic(), 600)
    problems = [f"{check} never passed: {errors.get(check, '')[:200]}"
                for check, seconds in passed.items() if seconds is None]
    problems += [f"prepare: {errors['prepare'][:200]}"] if "prepare" in errors else []
    twice = {kind: keys for kind, keys in openstack.listed_twice(cloud.cloud).items() if keys}
    problems += [f"keystone lists twice: {twice}"] if twice else []
    signatures = checks.filesystem_signatures(lab, lab.controls[0])
    problems += [f"shared disk signatures: {signatures}"] if len(signatures) != 1 else []
    cib = checks.cib_configuration(lab, lab.controls[0])
    if reference_cib is not None and cib != reference_cib:
        problems.append("the CIB's configuration differs from the clean run's")
    return problems, cib


def converge(work: Path, profile: str, substrate: str, seed: Optional[int],
             reference: Optional[Reference]) -> tuple[Run, Reference]:
    """A fresh lab converged (killed first where `seed` draws in the `reference` run's step
    times), judged, and ended; what it left, as a reference for the next."""
    run = Run(seed)
    lab = session.Lab(session.render_stack(work / "rendered", profile), substrate)
    try:
        lab.up()
        rendered = replay.Rendered.load(lab.rendered)
        steps = [name for group in session.steps_of(rendered) for name in group]
        if seed is not None:
            interruption = session.drawn_interruption(rendered, steps, seed,
                                                      reference.durations)
            run.step, run.seconds = interruption.step, interruption.seconds
            try:
                lab.replayer(interruption=interruption).run("create", steps)
                run.problems.append("the first run ended before its interruption")
            except replay.Interrupted as killed:
                run.in_flight = killed.in_flight
        started = time.monotonic()
        try:
            results = lab.replayer().run("create", steps)
        except replay.StepFailed as failed:
            run.problems.append(str(failed).splitlines()[0])
            return run, Reference("", {})
        run.second_run_seconds = round(time.monotonic() - started, 1)
        problems, cib = problems_of(lab, reference.cib if reference else None)
        run.problems += problems
        return run, Reference(cib, {r.name: r.seconds for r in results})
    finally:
        session.ensure_down()


def markdown(runs: list[Run]) -> str:
    lines = ["| seed | killed at | in flight | (second) run | outcome |", "|---|---|---|---|---|"]
    for r in runs:
        point = f"{r.step} +{r.seconds:.0f} s" if r.step else "clean run (the reference)"
        outcome = "converged" if r.converged else "; ".join(r.problems)
        run = "-" if r.second_run_seconds is None else f"{r.second_run_seconds} s"
        lines.append(f"| {r.seed if r.seed is not None else '-'} | {point} | "
                     f"{', '.join(r.in_flight) or '-'} | {run} | {outcome} |")
    return "\n".join(lines)


def save(runs: list[Run], path: Path, machine: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine, "runs": [asdict(r) for r in runs]},
                               indent=2) + "\n")


def load(path: Path) -> list[Run]:
    return [Run(**r) for r in json.loads(path.read_text())["runs"]]


def main() -> int:
    parser = options.parser(__doc__, "fast", "/var/tmp/osha-bench-interrupted")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true",
                        help="add to the runs already in the results file")
    args = parser.parse_args()
    if args.show:
        print(markdown(load(args.show)))
        return 0
    session.exit_on_signals()
    path = args.out / f"interrupted-{args.profile}.json"
    earlier = load(path) if args.keep and path.exists() else []
    done = {r.seed for r in earlier}
    clean, reference = converge(args.work, args.profile, args.substrate, None, None)
    runs = [*earlier, clean]
    save(runs, path, drill.machine())
    if clean.converged:
        for seed in range(args.first_seed, args.first_seed + args.runs):
            if seed in done:
                continue
            runs.append(converge(args.work, args.profile, args.substrate, seed, reference)[0])
            save(runs, path, drill.machine())
            print(markdown(runs[-1:]).splitlines()[-1], flush=True)
    print(markdown(runs))
    return 0 if all(r.converged for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
