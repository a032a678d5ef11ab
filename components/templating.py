"""Renders every script and file the stack ships from `templates/`, strictly."""
from __future__ import annotations

import re
from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    # Shell has `${#array[@]}`: jinja comments get delimiters no script contains.
    comment_start_string="{##",
    comment_end_string="##}",
)
_ENV.filters["shquote"] = lambda value: shell_quote(str(value))


# Words the shell would read as syntax where a command's argument stands (pcs says "then").
_RESERVED = {"if", "then", "else", "elif", "fi", "case", "esac", "for", "while", "until", "do",
             "done", "in", "function", "select", "time"}


def shell_quote(value: str) -> str:
    """`value` as one shell word: bare when that is safe, single-quoted otherwise."""
    if re.fullmatch(r"[A-Za-z0-9_./:=@%+,-]+", value) and value not in _RESERVED:
        return value
    return "'" + value.replace("'", "'\"'\"'") + "'"


def render(name: str, **context) -> str:
    """Render templates/<name> with `context`; an undefined name is an error, not a blank."""
    return _ENV.get_template(name).render(**context)


def package_list(os_family: str) -> list[str]:
    """templates/packages/<family>.txt without comments and blank lines."""
    lines = (TEMPLATES / "packages" / f"{os_family}.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]
