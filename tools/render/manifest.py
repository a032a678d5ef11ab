"""DIR as the render writes it: every file a resource runs or ships, the secrets under
DIR/secrets/, and DIR/manifest.json (manifest_schema.py)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Optional

import pulumi
import yaml

import manifest_schema
from components.templating import yaml_document
from settings import Settings
from tools.render.graph import CLOUD_INIT_FILES, COMMAND_FILES, Graph, files_of
from tools.render.mocks import DOMAIN, LOCAL, Registration


def _mask(value: Any, secrets: set[str]) -> Any:
    if isinstance(value, str):
        return "[secret]" if any(s in value for s in secrets) else value
    if isinstance(value, dict):
        return {k: _mask(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask(v, secrets) for v in value]
    if isinstance(value, (pulumi.StringAsset, pulumi.FileAsset)):
        return {"asset": getattr(value, "path", None) or "string"}
    return value


_FILE_INPUTS = {"create", "update", "delete", "stdin", "source", *CLOUD_INIT_FILES}


def _host_of(registration: Registration,
             key_files: dict[str, str]) -> Optional[manifest_schema.Host]:
    if registration.type == LOCAL:
        return manifest_schema.Host(host="localhost")
    connection = registration.inputs.get("connection")
    if not connection:
        return None
    key_file = next((path for path, value in key_files.items()
                     if value == connection.get("privateKey")), None)
    port = {"port": connection["port"]} if connection.get("port") is not None else {}
    return manifest_schema.Host(host=connection.get("host"), user=connection.get("user"),
                                private_key_file=key_file,
                                host_key=(connection.get("hostKey") or "").strip() or None,
                                **port)


def _masked_copy(role: str, text: str, secrets: set[str]) -> str:
    """A secret file for review: the same YAML document with each secret value as `[secret]`."""
    if role not in CLOUD_INIT_FILES.values():
        raise ValueError(f"{role} is a secret file and the render has no review copy for it")
    first, _, body = text.partition("\n") if text.startswith("#") else ("", "", text)
    return yaml_document(_mask(yaml.safe_load(body), secrets), first_line=first or None)


def _file_name(role: str, registration: Registration) -> str:
    if role in COMMAND_FILES:
        return f"{role}.sh"
    if role == "xslt":
        return "shared-disk.xsl"
    if role == "source":
        return Path(registration.inputs.get("remotePath", "source")).name
    return role


def _write_files(graph: Graph, registration: Registration, out: Path,
                 secrets: set[str]) -> dict[str, str]:
    """Write the texts `registration` runs or ships; their paths under `out`, by role. Stdin and
    secret files go under secrets/, a secret file with its review copy in the usual place."""
    files = {}
    for role, text in files_of(registration).items():
        relative = f"{registration.name}/{_file_name(role, registration)}"
        if role == "stdin":
            relative = f"secrets/{registration.name}.stdin"
        elif text in graph.secret_inputs:
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            (out / relative).write_text(_masked_copy(role, text, secrets))
            relative = f"secrets/{relative}"
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        if role in COMMAND_FILES:
            target.chmod(0o755)
        if relative.startswith("secrets/"):
            target.chmod(0o600)
        files[role] = relative
    return files


def _resource(graph: Graph, urns: dict[str, Registration], registration: Registration,
              out: Path, secrets: set[str]) -> manifest_schema.Resource:
    """The manifest's entry for `registration` (`urns`: the graph's registrations by URN), its
    files written."""
    inputs = {k: v for k, v in registration.inputs.items() if k not in _FILE_INPUTS}
    if registration.type == DOMAIN and "xml" in inputs:
        inputs["xml"] = {k: v for k, v in inputs["xml"].items() if k != "xslt"}
    parent = urns.get(registration.parent)
    return manifest_schema.Resource(
        name=registration.name,
        type=registration.type,
        parent=parent.name if parent else None,
        depends_on=[urns[u].name for u in registration.dependencies if u in urns],
        waits_for=graph.waits_for(registration),
        host=_host_of(registration, graph.secrets),
        files=_write_files(graph, registration, out, secrets),
        inputs=_mask(inputs, secrets),
    )


def _nodes(settings: Settings) -> list[manifest_schema.Node]:
    return [manifest_schema.Node(
        name=n.name, role=n.role, ip=str(n.ip), mac=n.mac, domain=f"{settings.stack}-{n.name}",
        vcpu=n.sizing.vcpu, memory_mib=n.sizing.memory_mib, disk_gib=n.sizing.disk_gib,
        hypervisor=n.hypervisor, shared_disk=n.role == "control") for n in settings.nodes]


def write(graph: Graph, out: Path) -> manifest_schema.Manifest:
    """Write every file and the manifest under `out` (emptied first); return the manifest."""
    if out.exists():
        shutil.rmtree(out)
    (out / "secrets").mkdir(parents=True)
    for relative, value in graph.secrets.items():
        path = out / relative
        path.write_text(value if value.endswith("\n") or "KEY" not in value else value + "\n")
        path.chmod(0o600)
    names = [r.name for r in graph.registrations]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise SystemExit(f"resource names must be unique for the manifest: {sorted(duplicates)}")
    secrets = graph.secret_values()
    urns = graph.by_urn()
    s = graph.settings
    manifest = manifest_schema.Manifest(
        stack=graph.stack,
        vip=str(s.vip),
        network=manifest_schema.Network(
            name=s.network.name, cidr=str(s.network.cidr), gateway=str(s.network.gateway),
            domain=s.network.domain, mode=s.network.mode),
        nodes=_nodes(s),
        ssh=manifest_schema.Ssh(
            user=s.admin_user, private_key_file="secrets/adminSshPrivateKey"
            if "secrets/adminSshPrivateKey" in graph.secrets else "secrets/admin-ssh-key.key"),
        outputs=_mask(graph.outputs, secrets),
        resources=[_resource(graph, urns, r, out, secrets) for r in graph.registrations],
    )
    manifest.write(out)
    return manifest
