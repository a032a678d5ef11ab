"""A peer's test suite against the lab's cloud: Debian's Tempest, on the machine running the lab,
configured from the rendered stack (the VIP's name, the admin, the stack's CA, the lab's image
and flavors, neutron's extensions as the cloud lists them), its smoke selection run from the lab
network with the tests the lab cannot serve excluded by `EXCLUDED`.
"""
from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from catalogue import browser_url, by_name
from lab.hypervisor import in_namespace
from lab.openstack import ADMIN_PROJECT, ADMIN_USER, FLAVOR, KEYSTONE_PORT, Cloud

# Tests that need what the lab's cloud cannot have, by regular expression over the test id:
# none of the smoke selection. (Tests needing a guest that boots, with its network reachable,
# skip themselves by the configuration: `run_validation` and `project_networks_reachable` off.)
EXCLUDED: dict[str, str] = {}
CONCURRENCY = 2
# The smoke selection took 403 s at concurrency 2 on a converged lab; the bound stops a hung run.
RUN_SECONDS = 1800
ALT_FLAVOR = f"{FLAVOR}-alt"
IMAGE = "lab-tempest"
_TOTAL = re.compile(r"^ - (Passed|Skipped|Failed|Expected Fail|Unexpected Success): (\d+)$",
                    re.MULTILINE)
_FAILED = re.compile(r"^\{\d+\} (\S+) \[[\d.]+s\] \.\.\. FAILED$", re.MULTILINE)


@dataclass
class Outcome:
    counts: dict[str, int]
    failed: list[str] = field(default_factory=list)
    output_tail: str = ""

    @property
    def ran(self) -> int:
        return sum(self.counts.values())


def ensure_alt_flavor(cloud: Cloud) -> None:
    if ALT_FLAVOR not in cloud.run("flavor", "list", "-f", "value", "-c", "Name").split():
        cloud.run("flavor", "create", ALT_FLAVOR, "--ram", "128", "--disk", "1", "--vcpus", "1",
                  "-f", "value", "-c", "id")


def ensure_public_image(cloud: Cloud) -> None:
    """The image Tempest's servers boot from: public, for its tests run in projects of their
    own (the admin's private images are not theirs to see)."""
    if IMAGE not in cloud.run("image", "list", "--public", "-f", "value", "-c", "Name").split():
        cloud.upload(IMAGE)
        cloud.run("image", "set", "--public", IMAGE)


def tempest_conf(cloud: Cloud, work: Path, image: str) -> configparser.ConfigParser:
    """tempest.conf for `cloud`, Tempest's state under `work`, servers booted from `image`."""
    def id_of(kind: str, name: str) -> str:
        return cloud.run(kind, "show", name, "-f", "value", "-c", "id").strip()

    image_id = id_of("image", image)
    extensions = cloud.run("extension", "list", "--network", "-f", "value", "-c", "Alias")
    horizon = browser_url(by_name("horizon"), cloud.fqdn, cloud.tls) + "/"
    conf = configparser.ConfigParser()
    conf.read_dict({
        "DEFAULT": {"log_dir": str(work / "logs"), "log_file": "tempest.log"},
        "oslo_concurrency": {"lock_path": str(work / "locks")},
        "auth": {"admin_username": ADMIN_USER, "admin_password": cloud.password,
                 "admin_project_name": ADMIN_PROJECT, "admin_domain_name": "Default",
                 "use_dynamic_credentials": "true"},
        "identity": {"uri_v3": f"{cloud.scheme}://{cloud.fqdn}:{KEYSTONE_PORT}/v3",
                     "auth_version": "v3", "region": cloud.region,
                     "v3_endpoint_type": "public",
                     **({"ca_certificates_file": str(cloud.ca_file)} if cloud.ca_file else {})},
        "identity-feature-enabled": {"api_v2": "false"},
        "compute": {"image_ref": image_id, "image_ref_alt": image_id,
                    "flavor_ref": id_of("flavor", FLAVOR),
                    "flavor_ref_alt": id_of("flavor", ALT_FLAVOR),
                    "min_compute_nodes": "1"},
        "network": {"project_networks_reachable": "false"},
        "network-feature-enabled": {"api_extensions": ",".join(extensions.split())},
        "validation": {"run_validation": "false"},
        "volume": {"catalog_type": "volumev3", "volume_size": "1"},
        "volume-feature-enabled": {"backup": "false"},
        "service_available": {
            "cinder": str(bool(cloud.volumes)).lower(),
            "neutron": str(bool(cloud.services.get("neutron"))).lower(),
            "glance": str(bool(cloud.services.get("glance-api"))).lower(),
            "nova": str(bool(cloud.services.get("nova-api"))).lower(),
            "horizon": str(bool(cloud.services.get("horizon"))).lower(),
            "swift": "false"},
        "dashboard": {"dashboard_url": horizon},
    })
    return conf


# Tempest's own option list, by group, from the installed Tempest (oslo.log's and
# oslo.concurrency's groups are not Tempest's).
_LIST_OPTIONS = """
import json
from tempest.config import list_opts
found = {}
for group, opts in list_opts():
    name = group if isinstance(group, str) or group is None else group.name
    found.setdefault(name or "DEFAULT", []).extend(o.name for o in opts)
print(json.dumps(found))
"""
NOT_TEMPESTS = ("DEFAULT", "oslo_concurrency")


def unknown_options(conf: configparser.ConfigParser, work: Path) -> list[str]:
    """`group.option` of every option `conf` sets that the installed Tempest does not know
    (oslo.config would ignore it, and the setting would silently not apply). Run in `work`:
    Tempest's config module logs to tempest.log in the current directory."""
    # The interpreter the `tempest` command runs under (Debian's python3, not a venv's).
    interpreter = Path(shutil.which("tempest")).read_text().splitlines()[0].removeprefix("#!")
    known = json.loads(subprocess.run([*interpreter.split(), "-c", _LIST_OPTIONS], check=True,
                                      capture_output=True, text=True, timeout=120,
                                      cwd=work).stdout)
    return [f"{group}.{option}" for group in conf.sections() if group not in NOT_TEMPESTS
            for option in conf[group] if option not in known.get(group, ())
            and option not in conf.defaults()]


def parse(output: str) -> Outcome:
    counts = {name.lower().replace(" ", "_"): int(n) for name, n in _TOTAL.findall(output)}
    return Outcome(counts, _FAILED.findall(output), output[-3000:])


def run_smoke(cloud: Cloud, work: Path) -> Outcome:
    """Tempest's smoke selection against `cloud` from the lab network."""
    ensure_alt_flavor(cloud)
    ensure_public_image(cloud)
    # A workspace file of its own: Tempest's global one (~/.tempest) refuses a second
    # workspace of the same name, as a later lab's would be. Run beside the workspace: Tempest
    # logs to tempest.log in the current directory.
    init = subprocess.run(["tempest", "init", "--workspace-path",
                           str(work.parent / "tempest-workspace.yaml"), str(work)],
                          capture_output=True, text=True, timeout=120, cwd=work.parent)
    if init.returncode != 0:
        raise RuntimeError(f"tempest init: {init.stdout}{init.stderr}")
    conf = tempest_conf(cloud, work, IMAGE)
    unknown = unknown_options(conf, work)
    if unknown:
        raise ValueError(f"options this Tempest does not know: {unknown}")
    with open(work / "etc" / "tempest.conf", "w") as file:
        conf.write(file)
    excluded = work / "excluded.txt"
    excluded.write_text("".join(f"{pattern}  # {why}\n" for pattern, why in EXCLUDED.items()))
    # The dashboard scenario's urllib client trusts the system's store only.
    env = {**os.environ, **({"SSL_CERT_FILE": str(cloud.ca_file)} if cloud.ca_file else {})}
    result = subprocess.run(
        in_namespace("tempest", "run", "--smoke", "--concurrency", str(CONCURRENCY),
                     "--exclude-list", str(excluded)),
        cwd=work, env=env, capture_output=True, text=True, timeout=RUN_SECONDS)
    return parse(result.stdout + result.stderr)
