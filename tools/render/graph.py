"""One mock run of the program, as a graph to query: what it registered, its outputs and secrets,
which steps wait for which, and every text it runs or ships (the tests' view of the stack)."""
from __future__ import annotations

import json
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime.sync_await import _sync_await

import settings as stack_settings
from tools.render.config import ROOT, check_render_environment
from tools.render.mocks import (COPY, DOMAIN, LOCAL, REMOTE, SEED, RecordingMonitor, Registration,
                                RenderMocks)

PROJECT = stack_settings.PROJECT
COMMAND_FILES = ("create", "update", "delete")
CLOUD_INIT_FILES = {"userData": "user-data", "metaData": "meta-data",
                    "networkConfig": "network-config"}


@dataclass
class Graph:
    """What one mock run of the program registered."""

    stack: str
    settings: Any
    registrations: list[Registration]
    outputs: dict[str, Any]
    # Secret files written under DIR/secrets/, by relative path.
    secrets: dict[str, str]
    secret_inputs: set[str] = field(default_factory=set)

    def by_urn(self) -> dict[str, Registration]:
        return {r.urn: r for r in self.registrations}

    def of_type(self, type_token: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_token]

    def named(self, name: str) -> Registration:
        return next(r for r in self.registrations if r.name == name)

    def descendants(self, urn: str) -> list[Registration]:
        children = [r for r in self.registrations if r.parent == urn]
        return children + [d for c in children for d in self.descendants(c.urn)]

    def waits_for(self, registration: Registration) -> list[str]:
        """Custom resources that finish before this one starts (components expanded)."""
        urns = self.by_urn()
        names: list[str] = []
        for urn in registration.dependencies:
            dependency = urns.get(urn)
            if dependency is None:
                continue
            group = [dependency] if dependency.custom else self.descendants(urn)
            names += [d.name for d in group if d.custom and d.name not in names]
        return names

    def upstream(self, name: str) -> set[str]:
        """Every custom resource that finishes before `name` starts, directly or through others."""
        seen: set[str] = set()
        todo = [name]
        while todo:
            for before in self.waits_for(self.named(todo.pop())):
                if before not in seen:
                    seen.add(before)
                    todo.append(before)
        return seen

    def secret_values(self) -> set[str]:
        """Every secret value, for masking and for proving none leaks into command text."""
        values = {v.strip() for v in self.secrets.values()} | self.secret_inputs
        return {v for v in values if len(v.strip()) >= 8}


@dataclass(frozen=True)
class Artifact:
    """One text the stack runs or ships: a script, the XSLT, a cloud-init part, a copied file."""

    resource: str
    role: str  # create, update, delete, xslt, user-data, meta-data, network-config, source
    kind: str  # shell, xml, yaml, config
    text: str
    # A Pulumi secret as a whole (a node's user-data): written under DIR/secrets/.
    secret: bool = False


ARTIFACT_KINDS = {**{role: "shell" for role in COMMAND_FILES}, "xslt": "xml", "source": "config",
                  **{part: "yaml" for part in CLOUD_INIT_FILES.values()}}


def artifacts(raw_config: dict[str, Any], stack: str) -> list[Artifact]:
    """Every script, XML, YAML and config text the program makes for `raw_config` (stdin, the
    secret channel, aside), each with its role and kind: for checks over many configs."""
    return artifacts_of(run_program(raw_config, stack))


def artifacts_of(graph: Graph) -> list[Artifact]:
    """`artifacts` of a graph already run."""
    return [Artifact(registration.name, role, ARTIFACT_KINDS[role], text,
                     text in graph.secret_inputs)
            for registration in graph.registrations
            for role, text in files_of(registration).items() if role != "stdin"]


def run_mocked(raw_config: dict[str, Any], stack: str,
               monitor: Optional[RecordingMonitor] = None) -> RecordingMonitor:
    """Run __main__.py under mocks with `raw_config` exactly as the engine would hand it over."""
    monitor = monitor or RecordingMonitor(RenderMocks(stack))
    pulumi.runtime.settings.reset_options()
    pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    secret_keys = [k for k in stack_settings.SECRET_KEYS if k in raw_config]
    pulumi.runtime.set_all_config(
        {f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v)
         for k, v in raw_config.items()},
        [f"{PROJECT}:{k}" for k in secret_keys])
    pulumi_mocks.test(lambda: runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__"))()
    return monitor


def run_program(raw_config: dict[str, Any], stack: str) -> Graph:
    """The program's resource graph for `raw_config`; a bad config raises SettingsError."""
    check_render_environment()
    parsed = stack_settings.parse(raw_config, stack)
    monitor = run_mocked(raw_config, stack)
    given = {f"secrets/{k}": str(raw_config[k])
             for k in stack_settings.SECRET_KEYS if k in raw_config}
    return Graph(stack=stack, settings=parsed, registrations=monitor.registrations,
                 outputs=_stack_outputs(), secrets={**monitor.mocks.secrets, **given},
                 secret_inputs=monitor.secret_inputs)


def _stack_outputs() -> dict[str, Any]:
    """The program's exports, resolved; secret ones are left out."""
    outputs = {}
    for name, value in pulumi.runtime.settings.get_root_resource().outputs.items():
        output = pulumi.Output.from_input(value)
        if not _sync_await(output.is_secret()):
            outputs[name] = _sync_await(output.future())
    return outputs


def files_of(registration: Registration) -> dict[str, str]:
    """The texts this resource runs or ships, by role."""
    inputs = registration.inputs
    files: dict[str, str] = {}
    if registration.type in (REMOTE, LOCAL):
        files = {k: inputs[k] for k in COMMAND_FILES if inputs.get(k)}
        if inputs.get("stdin"):
            files["stdin"] = inputs["stdin"]
    elif registration.type == COPY:
        source = inputs.get("source")
        if isinstance(source, pulumi.StringAsset):
            files["source"] = source.text
        elif isinstance(source, pulumi.FileAsset):
            files["source"] = Path(source.path).read_text()
    elif registration.type == SEED:
        files = {part: inputs[key] for key, part in CLOUD_INIT_FILES.items() if inputs.get(key)}
    elif registration.type == DOMAIN and (inputs.get("xml") or {}).get("xslt"):
        files["xslt"] = inputs["xml"]["xslt"]
    return files
