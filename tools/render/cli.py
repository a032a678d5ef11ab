"""Run the real program under Pulumi's mock runtime and write out everything the stack would do.

    python -m tools.render --stack dev --out DIR

DIR receives one file per script, config file and cloud-init part the stack would run or copy,
the private keys the mock generated under DIR/secrets/, and DIR/manifest.json: every resource with
its type, parent, dependencies, the host it runs on, its files and its remaining inputs (secret
values masked). No Pulumi CLI or provider plugin is needed.

Secrets: a secure value in the stack file, a secret the file lacks but `--secret KEY` names (as
if the file set it), and a generated password are each an obvious placeholder unless the
environment gives OSHA_RENDER_<NAME> (NAME in upper case with words joined by '_', e.g.
OSHA_RENDER_HACLUSTER_PASSWORD for haclusterPassword and the generated hacluster-password,
OSHA_RENDER_RHSM_PASSWORD). They are validated like any config value; a placeholder for
adminSshPrivateKey is a real key. Keys are real and derived from the stack and resource name, so
re-renders are stable. A file that is a secret as a whole (a node's user-data: it holds the node's
SSH host key) is written under DIR/secrets/ (the manifest points there) and, for review, in its
usual place with each secret value shown as `[secret]`.

Every SSH host in the manifest carries the host key its connection pins (`host_key`). A local
Command's stdout is a stand-in: the program's only local step (`<hypervisor>-fence-authorize`)
prints the local sshd's ED25519 host key, read on the operator's machine during `pulumi up`; the
render shows an ED25519 key derived from the stack and step name instead. A hypervisor's
`hostKey` setting replaces both, and then the render shows the real key.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

import manifest_schema
import settings as stack_settings
from tools.render.config import stack_config
from tools.render.graph import run_program
from tools.render.manifest import write


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.render",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--config-file", type=Path,
                        help="a stack file other than Pulumi.<stack>.yaml")
    parser.add_argument("--secret", action="append", default=[],
                        choices=stack_settings.SECRET_KEYS, metavar="KEY",
                        help="render as if the stack file set this secret (repeatable); its value "
                             "is OSHA_RENDER_<KEY> or a placeholder")
    args = parser.parse_args(argv)
    try:
        graph = run_program(stack_config(args.stack, args.config_file, tuple(args.secret)),
                            args.stack)
    except stack_settings.SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    manifest = write(graph, args.out)
    print(f"{len(manifest.resources)} resources, {len(manifest.nodes)} nodes -> "
          f"{args.out / manifest_schema.FILE}")
    return 0
