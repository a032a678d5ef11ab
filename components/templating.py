"""Renders every script and file the stack ships from `templates/`, strictly (and the lab's
libvirt XML, `templates/lab/`).

Each kind of file gets the environment that makes a setting value data, never code:

- shell (`*.sh.j2`): every `{{ }}` value is emitted as one shell-quoted word. The only opt-out is
  `ShellCode`, made by the `words` filter alone (a list as quoted words, each still quoted).
- XML (`*.xsl.j2`, `*.xml.j2`): autoescaped.
- other text (config files): a value must be a plain config word, else rendering fails.
- YAML (cloud-init) is never a template: `yaml_document` dumps Python structures.

Every environment is `StrictUndefined`: an undefined name is an error, not a blank.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Optional

import jinja2
import yaml

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

# Words the shell would read as syntax where a command's argument stands (pcs says "then").
_RESERVED = {"if", "then", "else", "elif", "fi", "case", "esac", "for", "while", "until", "do",
             "done", "in", "function", "select", "time"}
# Characters that never need quoting in a shell word.
_BARE = re.compile(r"[A-Za-z0-9_./:=@%+,-]+")
# What a config file may take as a value: no whitespace, control characters, comment sign,
# quotes or backslash (each would end the value or start syntax in some config format).
_CONFIG_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f#'\"\\]")


class ShellCode(str):
    """Shell text a shell template emits as it is; only the `words` filter makes one."""


class UnsafeConfigValue(ValueError):
    """A config template was handed a value that would not stay one word of the file."""


def shell_quote(value: str) -> str:
    """`value` as one shell word: bare when that is safe, single-quoted otherwise."""
    if _BARE.fullmatch(value) and value not in _RESERVED:
        return value
    return "'" + value.replace("'", "'\"'\"'") + "'"


def _shell_finalize(value: Any) -> str:
    if isinstance(value, ShellCode):
        return value
    if value is None:
        raise TypeError("a shell template was handed None where it emits a value")
    return shell_quote(str(value))


def words(values: Iterable[Any]) -> ShellCode:
    """A list as space-separated words, each quoted: `arr=({{ list | words }})`."""
    if isinstance(values, str):
        raise TypeError(f"words takes a list, not the string {values!r}")
    return ShellCode(" ".join(shell_quote(str(v)) for v in values))


@jinja2.pass_context
def _config_finalize(context: jinja2.runtime.Context, value: Any) -> str:
    text = "" if value is None else str(value)
    if not text or _CONFIG_UNSAFE.search(text):
        raise UnsafeConfigValue(
            f"templates/{context.name}: {text!r} is not a plain config value (no whitespace, "
            "control characters, '#', quotes or backslash, and not empty)")
    return text


def _environment(**options) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        # Shell has `${#array[@]}`: jinja comments get delimiters no script contains.
        comment_start_string="{##",
        comment_end_string="##}",
        **options)


_SHELL = _environment(finalize=_shell_finalize)
_SHELL.filters["words"] = words
_XML = _environment(autoescape=True)
_CONFIG = _environment(finalize=_config_finalize)


def environment_for(name: str) -> jinja2.Environment:
    """The environment a template's file name asks for."""
    if name.endswith(".sh.j2"):
        return _SHELL
    if name.endswith((".xsl.j2", ".xml.j2")):
        return _XML
    if name.endswith((".yaml.j2", ".yml.j2")):
        raise ValueError(f"{name}: YAML is dumped from structures (yaml_document), not templated")
    return _CONFIG


def render(name: str, **context) -> str:
    """Render templates/<name> with `context` in the environment its kind asks for."""
    return environment_for(name).get_template(name).render(**context)


class _BlockDumper(yaml.SafeDumper):
    """safe_dump, with multi-line strings as literal blocks (readable files in user-data) and
    list items indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False):
        return super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


def yaml_document(data: Any, first_line: Optional[str] = None) -> str:
    """`data` as YAML (safe_dump: every value stays data), after `first_line` if given."""
    text = yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=1000)
    return f"{first_line}\n{text}" if first_line is not None else text


def package_list(os_family: str) -> list[str]:
    """templates/packages/<family>.txt without comments and blank lines."""
    lines = (TEMPLATES / "packages" / f"{os_family}.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]
