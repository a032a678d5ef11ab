#!/usr/bin/env python3
"""Write README.md's settings table from the schema in settings.py.

    python tools/settings_reference.py           # rewrite the table between the markers
    python tools/settings_reference.py --check   # exit 1 when README and schema disagree

One row per key (nested keys dotted, list items as `[]`): its default, what it allows (the typed
value's own description, choices, integer ranges) and what it means (the field's description).
"""
from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path
from typing import Any, Iterator, Literal

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from annotated_types import Ge, Le, MinLen  # noqa: E402
from pydantic import BaseModel, SecretStr  # noqa: E402
from pydantic.fields import FieldInfo  # noqa: E402
from pydantic_core import PydanticUndefined  # noqa: E402
from typing_extensions import is_typeddict  # noqa: E402

import settings  # noqa: E402
from settings_schema import Kind, unwrap  # noqa: E402

README = ROOT / "README.md"
BEGIN = "<!-- settings-reference: written by tools/settings_reference.py (make settings-doc) -->"
END = "<!-- /settings-reference -->"


def _fields(annotation: Any) -> list[tuple[str, FieldInfo]]:
    """(key, field) of a model or a TypedDict."""
    if is_typeddict(annotation):
        hints = typing.get_type_hints(annotation, include_extras=True)
        # A TypedDict section's keys are optional; its rules say which a value needs.
        return [(k, FieldInfo.from_annotated_attribute(hint, None)) for k, hint in hints.items()]
    return [(field.alias, field) for field in annotation.model_fields.values()]


def _is_section(annotation: Any) -> bool:
    model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return model or is_typeddict(annotation)


def _item(annotation: Any) -> Any:
    """The entry type of a list of sections, else None."""
    inner = unwrap(annotation)
    if typing.get_origin(inner) is tuple and _is_section(unwrap(typing.get_args(inner)[0])):
        return unwrap(typing.get_args(inner)[0])
    return None


def _metadata(field: FieldInfo) -> list[Any]:
    """Every constraint and Kind on the field, also those inside Optional[Annotated[...]]."""
    found, annotation = list(field.metadata), field.annotation
    while annotation is not None:
        if typing.get_origin(annotation) is typing.Annotated:
            found += typing.get_args(annotation)[1:]
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 or typing.get_origin(annotation) is \
            typing.Annotated else None
    return found


def _allowed(field: FieldInfo) -> str:
    inner, metadata = unwrap(field.annotation), _metadata(field)
    kinds = [m for m in metadata if isinstance(m, Kind)]
    if typing.get_origin(inner) is Literal:
        choices = [f"`{c}`" for c in typing.get_args(inner)]
        return f"{choices[0]} ... {choices[-1]} (in order)" if len(choices) > 20 \
            else ", ".join(choices)
    if typing.get_origin(inner) is dict:
        key, value = (FieldInfo.from_annotation(a) for a in typing.get_args(inner))
        return f"{{{_allowed(key)}: {_allowed(value)}}}"
    if _item(field.annotation) is not None:
        return "a list of {" + ", ".join(k for k, _ in _fields(_item(field.annotation))) + "}"
    if inner is bool:
        return "`true`, `false`"
    if inner is int:
        low = next((m.ge for m in metadata if isinstance(m, Ge)), None)
        high = next((m.le for m in metadata if isinstance(m, Le)), None)
        return f"an integer from {low} to {high}" if high is not None else "an integer"
    if typing.get_origin(inner) in (list, tuple):
        entry = _allowed(FieldInfo.from_annotation(typing.get_args(inner)[0]))
        least = next((m.min_length for m in metadata if isinstance(m, MinLen)), 0)
        return f"a list of {entry}" + (f" (at least {least})" if least else "")
    text = kinds[0] if kinds else "a string"
    return f"{text} (secret)" if inner is SecretStr else text


def _default(field: FieldInfo) -> str:
    shown = (field.json_schema_extra or {}).get("shown")
    if shown:
        return shown
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default_factory() if field.default_factory else field.default
    if value is None or value == {}:
        return "none"
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def rows(annotation: Any = settings.Settings, prefix: str = "") -> Iterator[tuple[str, ...]]:
    """(key, default, allowed, meaning) for every key under `annotation`."""
    for key, field in _fields(annotation):
        inner = unwrap(field.annotation)
        if _is_section(inner):
            yield from rows(inner, f"{prefix}{key}.")
            continue
        meaning = field.description or ""
        if inner is SecretStr:
            meaning = f"a secret (`pulumi config set --secret {key} ...`): {meaning}"
        yield f"`{prefix}{key}`", _default(field), _allowed(field), meaning
        if _item(field.annotation) is not None:
            yield from rows(_item(field.annotation), f"{prefix}{key}[].")


def reference() -> str:
    lines = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
              for row in rows()]
    return "\n".join([BEGIN, *lines, END])


def current(readme: str) -> str:
    """The generated block README holds now."""
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    return readme[start:end]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when README's table differs from the schema")
    args = parser.parse_args(argv)
    readme, table = README.read_text(), reference()
    if args.check:
        if current(readme) != table:
            print("README.md's settings table is out of date: run make settings-doc",
                  file=sys.stderr)
            return 1
        return 0
    README.write_text(readme.replace(current(readme), table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
