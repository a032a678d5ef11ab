#!/usr/bin/env python3
"""Replay a rendered stack (tools/render's DIR) on real hosts, as the Pulumi engine would.

    python tools/replay.py DIR --phase create|update|delete [--only NAME ...] [--wrap CMD]

Remote Commands run over SSH exactly as rendered: the text goes to the login shell of the
connection user, stdin comes from the rendered stdin file (where the stack puts its secrets).
CopyToRemote copies its source over SFTP as that user. Local Commands run on this machine, the
hypervisor side, with their interpreter (pulumi-command's default: `/bin/sh -c`). `create` runs
every step once its dependencies are done, independent steps in parallel; `delete` runs in reverse dependency order, as `pulumi destroy`
does; `update` runs the update script of the chosen steps, in dependency order.
`--wrap` prefixes every process (e.g. `ip netns exec osha-lab` to reach hosts in a namespace).
SSH trusts no host on first use: DIR/known_hosts is written from the host keys the manifest pins
(each `host`'s `host_key`), and ssh checks every host against it (StrictHostKeyChecking=yes).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from manifest_schema import Host, Manifest, Resource  # noqa: E402

REMOTE = "command:remote:Command"
RUNNABLE = (REMOTE, "command:remote:CopyToRemote", "command:local:Command")
# Keepalives end a session whose host died (a fenced node) within a minute instead of hanging.
SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
               "-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
               "-o", "ConnectTimeout=20", "-o", "ServerAliveInterval=15",
               "-o", "ServerAliveCountMax=4")


def _known_host_name(host: Host) -> str:
    port = host.port or 22
    return host.host if port == 22 else f"[{host.host}]:{port}"


def pinned_ssh_options(known_hosts_file: Path, hosts: Iterable[Host]) -> tuple[str, ...]:
    """ssh and scp options that trust exactly the given host keys and no other.

    `hosts` are the manifest's host entries; the keys they pin are written to
    `known_hosts_file`, atomically, since several replayers may share one."""
    lines = {f"{_known_host_name(h)} {h.host_key.strip()}" for h in hosts if h.host_key}
    with tempfile.NamedTemporaryFile("w", dir=known_hosts_file.parent, delete=False) as staged:
        staged.write("".join(f"{line}\n" for line in sorted(lines)))
    os.replace(staged.name, known_hosts_file)
    return (*SSH_OPTIONS, "-o", f"UserKnownHostsFile={known_hosts_file}")


def ssh_options(root: Path, manifest: Manifest) -> tuple[str, ...]:
    """pinned_ssh_options for every host of a render, with ROOT/known_hosts."""
    return pinned_ssh_options(root / "known_hosts",
                              [r.host for r in manifest.resources if r.host])


@dataclass(frozen=True)
class SshTarget:
    """A user on a host that ssh and scp log in to with a private key, trusting only the host
    keys `options` pin (pinned_ssh_options); `port` None leaves it to ssh (22)."""

    user: str
    host: str
    key_file: Path
    options: tuple[str, ...]
    port: Optional[int] = None

    @property
    def login(self) -> str:
        return f"{self.user}@{self.host}"

    def ssh(self, *command: str) -> list[str]:
        return ["ssh", *self.options, *self._port("-p"), "-i", str(self.key_file), self.login,
                *command]

    def scp(self, source: Path, remote_path: str) -> list[str]:
        return ["scp", "-s", *self.options, *self._port("-P"), "-i", str(self.key_file),
                str(source), f"{self.login}:{remote_path}"]

    def _port(self, flag: str) -> tuple[str, ...]:
        return () if self.port is None else (flag, str(self.port))


# Set when the run is being stopped (SIGTERM, Ctrl-C): nothing dials again.
STOP = threading.Event()


class StepFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Interruption:
    """The engine killed mid-run (SIGKILL): `seconds` after `step` starts, every step's process
    is killed and nothing more starts. A step's run on its node goes on without its session
    (until it next writes output), as under a killed `pulumi up`."""

    step: str
    seconds: float


class Interrupted(RuntimeError):
    """A replay stopped by its Interruption; `in_flight`: the steps whose processes it killed."""

    def __init__(self, interruption: Interruption, in_flight: list[str]):
        super().__init__(f"killed {interruption.seconds:.1f}s into {interruption.step}; "
                         f"in flight: {', '.join(in_flight) or 'nothing'}")
        self.interruption, self.in_flight = interruption, in_flight


@dataclass
class Result:
    name: str
    phase: str
    returncode: int
    seconds: float
    stdout: str
    stderr: str


@dataclass
class Rendered:
    """One render directory: its manifest and the steps a replay can run."""

    root: Path
    manifest: Manifest
    steps: dict[str, Resource] = field(init=False)

    def __post_init__(self):
        self.steps = {r.name: r for r in self.manifest.resources if r.type in RUNNABLE}
        self.ssh_options = ssh_options(self.root, self.manifest)

    @classmethod
    def load(cls, root: Path) -> "Rendered":
        return cls(root, Manifest.load(root))

    def dependencies(self, name: str) -> list[str]:
        """Steps that finish before `name` starts (libvirt and key resources already exist)."""
        return [d for d in self.steps[name].waits_for if d in self.steps]

    def ancestors(self, name: str) -> set[str]:
        """Steps that finish before `name` starts, directly or through others: a partial run
        (an update of changed steps) keeps the order unchanged steps between them impose, as
        the engine does."""
        found: set[str] = set()
        pending = list(self.dependencies(name))
        while pending:
            step = pending.pop()
            if step not in found:
                found.add(step)
                pending += self.dependencies(step)
        return found

    def order(self) -> list[str]:
        """All steps, each after its dependencies (stable: manifest order among equals)."""
        done: list[str] = []
        pending = list(self.steps)
        while pending:
            ready = [n for n in pending if all(d in done for d in self.dependencies(n))]
            if not ready:
                raise ValueError(f"dependency cycle among {pending}")
            done += ready
            pending = [n for n in pending if n not in ready]
        return done

    def text(self, name: str, role: str) -> Optional[str]:
        path = self.steps[name].files.get(role)
        return (self.root / path).read_text() if path else None

    def fingerprint(self, name: str) -> str:
        """Everything of a step the engine diffs: its files' contents and its other inputs."""
        step = self.steps[name]
        files = {role: (self.root / path).read_text() for role, path in step.files.items()}
        return json.dumps([files, step.inputs], sort_keys=True)


def changed_steps(old: Rendered, new: Rendered) -> list[str]:
    """Steps `pulumi up` would run after going from `old` to `new`: new ones and changed ones."""
    return [n for n in new.order()
            if n not in old.steps or old.fingerprint(n) != new.fingerprint(n)]


class Replayer:
    def __init__(self, rendered: Rendered, wrap: tuple[str, ...] = (), jobs: int = 4,
                 log_dir: Optional[Path] = None, interruption: Optional[Interruption] = None):
        self.rendered = rendered
        self.wrap = tuple(wrap)
        self.jobs = jobs
        self.log_dir = log_dir
        self.interruption = interruption
        self.results: list[Result] = []
        # Each running step's process, for the interruption to kill.
        self._running: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._killed: Optional[list[str]] = None

    # -- one step ---------------------------------------------------------------------------
    def _target(self, host: Host) -> SshTarget:
        return SshTarget(host.user, host.host, self.rendered.root / host.private_key_file,
                         self.rendered.ssh_options, host.port or 22)

    def _argv(self, name: str, script: str) -> list[str]:
        step = self.rendered.steps[name]
        if step.type == "command:local:Command":
            # pulumi-command's local default is /bin/sh -c unless the step names an interpreter.
            return [*self.wrap, *(step.inputs.get("interpreter") or ["/bin/sh", "-c"]), script]
        # ssh joins its arguments into the one command string the remote shell runs.
        return [*self.wrap, *self._target(step.host).ssh(script)]

    def _copy(self, name: str) -> subprocess.CompletedProcess:
        step = self.rendered.steps[name]
        copy = self._target(step.host).scp(self.rendered.root / step.files["source"],
                                           step.inputs["remotePath"])
        return self._process(name, [*self.wrap, *copy], "")

    def _dial(self, name: str, script: str, stdin: str) -> subprocess.CompletedProcess:
        """Run the step; like pulumi-command, keep dialling while the host does not answer."""
        step = self.rendered.steps[name]
        connection = step.inputs.get("connection") or {}
        attempts = connection.get("dialErrorLimit", 10) if step.type == REMOTE else 1
        for attempt in range(1, attempts + 1):
            completed = self._process(name, self._argv(name, script), stdin)
            # ssh exits 255 when it cannot connect; anything else is the script's own answer.
            if completed.returncode != 255 or attempt == attempts or STOP.is_set() \
                    or self._killed is not None:
                return completed
            STOP.wait(min(connection.get("perDialTimeout", 15), 10))
        raise AssertionError("unreachable")

    def _process(self, name: str, argv: list[str], stdin: str) -> subprocess.CompletedProcess:
        """`argv` with `stdin`; its output goes to files, not pipes, so that the step ends when
        its process does (a process it started may outlive it, as on a node)."""
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            with self._lock:
                if self._killed is not None:
                    return subprocess.CompletedProcess(argv, -signal.SIGKILL, "", "")
                process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=err,
                                           text=True)
                self._running[name] = process
            try:
                try:
                    process.stdin.write(stdin)
                    process.stdin.close()
                except BrokenPipeError:
                    pass  # it ended, or stopped reading: its exit status tells
                process.wait(timeout=1800)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise
            finally:
                with self._lock:
                    self._running.pop(name, None)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(argv, process.returncode, out.read(), err.read())

    def _kill_all(self) -> None:
        """The interruption: every running step's process killed, nothing more starts."""
        with self._lock:
            self._killed = sorted(self._running)
            for process in self._running.values():
                process.kill()

    def run_step(self, name: str, phase: str) -> Result:
        step = self.rendered.steps[name]
        started = time.monotonic()
        if self.interruption and self.interruption.step == name:
            timer = threading.Timer(self.interruption.seconds, self._kill_all)
            timer.daemon = True
            timer.start()
        if step.type == "command:remote:CopyToRemote":
            # CopyToRemote has no delete: the file stays, as with the real provider.
            completed = self._copy(name) if phase != "delete" else None
        else:
            script = self.rendered.text(name, phase)
            if phase == "update" and script is None:
                script = self.rendered.text(name, "create")
            completed = None
            if script is not None:
                stdin_path = step.files.get("stdin")
                stdin = (self.rendered.root / stdin_path).read_text() if stdin_path else ""
                completed = self._dial(name, script, stdin)
        result = Result(name, phase, completed.returncode if completed else 0,
                        time.monotonic() - started,
                        completed.stdout if completed else "", completed.stderr if completed else "")
        self._log(result)
        if self._killed is not None:
            raise Interrupted(self.interruption, self._killed)
        if result.returncode != 0:
            raise StepFailed(f"{name} {phase} exited {result.returncode}:\n{result.stderr[-3000:]}")
        return result

    def _log(self, result: Result) -> None:
        self.results.append(result)
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            path = self.log_dir / f"{result.name}.{result.phase}.log"
            path.write_text(f"rc={result.returncode} seconds={result.seconds:.1f}\n"
                            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}\n")
        print(f"[{result.phase}] {result.name}: rc={result.returncode} "
              f"{result.seconds:.1f}s", file=sys.stderr, flush=True)

    # -- many steps -------------------------------------------------------------------------
    def run(self, phase: str, only: Optional[list[str]] = None) -> list[Result]:
        """Run `phase` for `only` (default: every step), honouring dependencies among them."""
        names = [n for n in self.rendered.order() if only is None or n in only]
        before = {n: self.rendered.ancestors(n) & set(names) for n in names}
        if phase == "delete":
            before = {n: {m for m in names if n in before[m]} for n in names}
        return self._schedule(names, before.__getitem__, phase)

    def _schedule(self, names: list[str], blockers, phase: str) -> list[Result]:
        done: set[str] = set()
        results: list[Result] = []
        running: dict[Future, str] = {}
        pending = list(names)
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            while pending or running:
                for name in [n for n in pending
                             if all(b in done or b not in names for b in blockers(n))]:
                    pending.remove(name)
                    running[pool.submit(self.run_step, name, phase)] = name
                if not running:
                    raise ValueError(f"nothing can start among {pending}")
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    name = running.pop(future)
                    results.append(future.result())  # a failure stops the replay here
                    done.add(name)
                if self._killed is not None:
                    # Killed between steps: the steps that finished are done, nothing starts.
                    raise Interrupted(self.interruption, self._killed)
        return results


def run_resumed(replayer: Callable[[Optional[Interruption]], Replayer], phase: str,
                names: list[str], interruption: Interruption) -> list[Result]:
    """`names` run once with `interruption`, then again for every step the killed run did not
    finish (the engine keeps a finished step's new state): both runs' results, in the order
    they ended. `replayer(interruption)` makes each run's Replayer."""
    first = replayer(interruption)
    try:
        first.run(phase, names)
    except Interrupted as killed:
        print(f"first run: {killed}", file=sys.stderr, flush=True)
    finished = {r.name for r in first.results if r.returncode == 0}
    return first.results + replayer(None).run(phase, [n for n in names if n not in finished])


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--phase", choices=("create", "update", "delete"), default="create")
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--wrap", default="", help="command prefix, e.g. 'ip netns exec NS'")
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--log-dir", type=Path)
    args = parser.parse_args(argv)
    replayer = Replayer(Rendered.load(args.dir), tuple(shlex.split(args.wrap)), args.jobs,
                        args.log_dir)
    try:
        replayer.run(args.phase, args.only)
    except StepFailed as failure:
        print(failure, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
