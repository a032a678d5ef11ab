"""The schemas of the stack's data files, checked whenever one is read: templates/repoint.yaml
(`RepointRules`), templates/openstack/files.yaml (`ConfigFiles`) and
templates/packages/openstack.yaml (`Packages`). A key no schema names (a misspelt `role:` for
`roles:`) is an error naming it, not a line silently ignored. The files' own comments say what
each key means; the loaders go on reading the checked data as it was written.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

Family = Literal["debian", "rhel"]
Role = Literal["control", "compute"]
PerFamily = dict[Family, list[str]]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- templates/repoint.yaml ----------------------------------------------------------------------

Condition = Literal["tls", "no_tls", "rabbitmq", "qpid"]


class Edit(Strict):
    section: str
    key: str
    kind: Literal["set", "url"]
    value: str
    tls_query: Optional[str] = None
    if_present: bool = False
    when: Union[Condition, list[Condition], None] = None
    roles: Optional[list[Role]] = None


class RepointFile(Strict):
    path: str
    roles: list[Role]
    units: PerFamily
    # An edit, or a shared list of them (a YAML alias of one below).
    edits: list[Union[Edit, list[Edit]]]


class RepointRules(Strict):
    # The shared edit lists the files name by YAML anchor.
    database: list[Edit]
    messaging: list[Edit]
    authtoken: list[Edit]
    files: list[RepointFile]


# ---- templates/openstack/files.yaml ------------------------------------------------------------

class ConfigFile(Strict):
    path: str
    template: str
    roles: list[Role] = ["control"]
    services: Optional[list[str]] = None
    family: Optional[Family] = None
    mechanism: Optional[Literal["linuxbridge", "openvswitch"]] = None
    block: Optional[list[Literal["none", "ceph", "rbd"]]] = None
    kind: Literal["ini", "shell", "whole"] = "ini"
    delete: list[tuple[str, str]] = []
    units: PerFamily
    l2_agent: bool = False
    reload: Optional[Literal["systemd"]] = None
    mode: Optional[str] = None
    group: Union[str, dict[Family, str], None] = None


class UwsgiService(Strict):
    name: str
    unit: str
    ini: str
    threads: int
    workers: Literal["api", "daemon"]


class ConfigFiles(Strict):
    files: list[ConfigFile]
    uwsgi: dict[str, UwsgiService]


# ---- templates/packages/openstack.yaml ---------------------------------------------------------

class KeystoneEntry(Strict):
    name: str
    user: Optional[str] = None


class ServiceInstall(Strict):
    packages: PerFamily
    units: Optional[PerFamily] = None
    cluster_unit: Optional[dict[Family, str]] = None
    image_store: bool = False
    databases: list[str] = []
    user: Optional[str] = None
    keystone: Optional[KeystoneEntry] = None
    needs: list[str] = []


class L2Agent(Strict):
    packages: list[str]
    mechanism: Literal["linuxbridge", "openvswitch"]
    units: list[str] = []


class ComputeDriver(Strict):
    nova: str
    packages: PerFamily
    units: PerFamily


class Compute(Strict):
    common: PerFamily
    drivers: dict[str, ComputeDriver]
    units: PerFamily


class Control(Strict):
    common: PerFamily
    common_units: PerFamily


class BlockStorage(Strict):
    volume_unit: dict[Family, str]
    packages: dict[Literal["ceph", "rbd"], PerFamily]
    libvirt_packages: PerFamily


class Packages(Strict):
    sources: dict[Family, dict[str, list[str]]]
    release_package: dict[Family, str]
    control: Control
    services: dict[str, ServiceInstall]
    idle_units: PerFamily
    l2_agents: dict[Family, dict[str, L2Agent]]
    block_storage: BlockStorage
    compute: Compute


class DataFileError(ValueError):
    """A data file that does not follow its schema: one line per problem, naming the key."""


def checked(schema: type[Strict], data: Any, path: Path) -> Any:
    """`data` (read from `path`) unchanged, once `schema` accepts it; DataFileError otherwise."""
    try:
        schema.model_validate(data)
    except ValidationError as error:
        raise DataFileError("\n".join(
            f"{path.name}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in error.errors(include_url=False))) from None
    return data


def load(schema: type[Strict], path: Path) -> Any:
    """`path`'s YAML, checked against `schema`."""
    return checked(schema, yaml.safe_load(path.read_text()), path)
