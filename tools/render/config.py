"""The stack's config as the render hands it to the program: the stack file's, with each secret an
obvious placeholder or the value OSHA_RENDER_<NAME> gives (see tools/render/cli.py)."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Optional

from pydantic import TypeAdapter, ValidationError

import settings as stack_settings
import settings_schema
from tools.render.crypto import key_outputs, private_key

# The project's directory: its stack files and the program, __main__.py.
ROOT = Path(__file__).resolve().parents[2]

RENDER_ENVIRONMENT = "OSHA_RENDER_"


def secret_placeholder(name: str) -> str:
    """A secret's render value: OSHA_RENDER_<NAME> from the environment, or a placeholder."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    env = RENDER_ENVIRONMENT + re.sub(r"[^A-Z0-9]", "_", words.upper())
    return os.environ.get(env, f"placeholder-{name}")


def check_render_environment() -> None:
    """Every OSHA_RENDER_* value is what its secret must be, as in a stack file: a password (the
    admin's key is checked as the adminSshPrivateKey setting); SettingsError names the variable,
    never its value."""
    password = TypeAdapter(settings_schema.Password)
    problems = []
    for name, value in sorted(os.environ.items()):
        if name.startswith(RENDER_ENVIRONMENT) and name != "OSHA_RENDER_ADMIN_SSH_PRIVATE_KEY":
            try:
                password.validate_python(value)
            except ValidationError:
                problems.append(f"{name}: [secret] is invalid; a password without newlines or "
                                "other control characters")
    if problems:
        raise stack_settings.SettingsError(problems)


def config_secret(stack: str, key: str) -> str:
    """A config secret's render value; the admin key's placeholder is a key derived from the stack."""
    value = secret_placeholder(key)
    if key == "adminSshPrivateKey" and value == f"placeholder-{key}":
        return key_outputs(private_key(stack, key, "ED25519", ""))["privateKeyOpenssh"]
    return value


def stack_config(stack: str, config_file: Optional[Path] = None,
                 secrets: tuple[str, ...] = ()) -> dict[str, Any]:
    """Pulumi.<stack>.yaml's config for this project, without the prefix; secure values and the
    `secrets` the file lacks filled in (config_secret)."""
    raw, problems = stack_settings.project_config(
        stack_settings.read_stack_file(config_file or ROOT / f"Pulumi.{stack}.yaml"))
    if problems:
        raise stack_settings.SettingsError(problems)
    for key in secrets:
        raw.setdefault(key, {"secure": "given with --secret"})
    return {k: config_secret(stack, k) if isinstance(v, dict) and "secure" in v else v
            for k, v in raw.items()}
