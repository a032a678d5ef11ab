"""Building blocks of the settings schema (settings.py), on pydantic v2.

- typed values: strings constrained to what they are (addresses, names, paths, URIs, keys), each
  saying what it expects when a value is not;
- `Section`, `setting()` and `rule()`: how a section, a key and a cross-field rule are declared;
- `describe()`: pydantic's errors as one line each, `<project>:<key.path>: <value> is invalid;
  <remedy>`, with "did you mean" for near misses and secrets masked;
- `project_keys()`, `decode()`: a project's keys of Pulumi's config, as the engine hands them over.
"""
import json
import os
import re
import types
import typing
from contextlib import suppress
from difflib import get_close_matches
from ipaddress import IPv4Address, IPv4Network
from typing import Annotated, Any, Callable, Literal, Optional, TypeVar
from urllib.parse import parse_qsl, urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError,
                      ValidationInfo, field_validator, model_validator)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError
from typing_extensions import is_typeddict

USER = r"[a-z_][a-z0-9_-]{0,31}"  # a POSIX user name
# Parameters a libvirt URI may carry (libvirt.org/uri.html).
URI_PARAMETERS = ("keyfile", "known_hosts", "known_hosts_verify", "no_verify", "no_tty",
                  "sshauth", "socket", "command", "netcat", "proxy", "mode")


class Kind(str):
    """What a typed value is (README's settings table shows it)."""


def invalid(remedy: str) -> PydanticCustomError:
    return PydanticCustomError("invalid", "{remedy}", {"remedy": remedy})


def typed(base: type, convert: Callable[[str], Any], kind: str) -> Any:
    """`base` holding only strings `convert` turns into a value (it returns None otherwise), or a
    `base` itself (a schema default such as an IPv4Network)."""
    def validate(value: Any) -> Any:
        if isinstance(value, base) and base is not str:
            return value
        converted = convert(value) if isinstance(value, str) else None
        if converted is None:
            raise invalid(f"expected {kind}")
        return converted
    return Annotated[base, BeforeValidator(validate), Kind(kind)]


def pattern(regex: str, kind: str) -> Any:
    compiled = re.compile(regex, re.ASCII)
    return typed(str, lambda v: v if compiled.fullmatch(v) else None, kind)


def _ipv4(value: str) -> Optional[IPv4Address]:
    with suppress(ValueError):
        return IPv4Address(value)
    return None


def _cidr(value: str) -> Optional[IPv4Network]:
    with suppress(ValueError):
        if re.fullmatch(r"[0-9.]+/[0-9]{1,2}", value):
            network = IPv4Network(value)  # strict: host bits must be zero
            return network if network.num_addresses >= 8 else None
    return None


def is_domain(value: str) -> bool:
    label = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?", re.ASCII)
    return len(value) <= 253 and all(label.fullmatch(part) for part in value.split("."))


def is_host(value: str) -> bool:
    return _ipv4(value) is not None or (is_domain(value) and not value.replace(".", "").isdigit())


def _is_host_port(value: str) -> bool:
    host, colon, port = value.partition(":")
    port_ok = re.fullmatch(r"[1-9][0-9]{0,4}", port) is not None and int(port) <= 65535
    return is_host(host) and (not colon or port_ok)


def _split_uri(value: str, schemes: tuple[str, ...]) -> Optional[Any]:
    """The parts of an ASCII URI of one of `schemes`, without password or fragment, whose port
    (if any) is a number from 1 to 65535."""
    if not re.fullmatch(r"[A-Za-z0-9._~:/?\[\]@!$&()*+,;=%-]+", value) or \
            not value.startswith(tuple(f"{s}://" for s in schemes)):
        return None
    with suppress(ValueError):
        parts = urlsplit(value)
        if parts.port != 0 and parts.password is None and not parts.fragment:  # .port may raise
            return parts
    return None


# libvirt's ssh transports skip the host's key with these (libvirt.org/uri.html): a key taken on
# first use, or none at all.
UNVERIFIED_HOST_KEYS = {"no_verify": "0", "known_hosts_verify": "normal"}


def _query(parts) -> Optional[list[tuple[str, str]]]:
    """A URI's query as (key, value) pairs; None when it is not a well-formed query."""
    with suppress(ValueError):
        return parse_qsl(parts.query, strict_parsing=True) if parts.query else []
    return None


def _libvirt_uri(value: str) -> Optional[str]:
    parts = _split_uri(value, ("qemu", "qemu+ssh"))
    query = _query(parts) if parts else None
    for key, given in query or []:
        if UNVERIFIED_HOST_KEYS.get(key, given) != given:
            raise invalid(f"`{key}` switches off the check of the host's key; put the host's key "
                          "in known_hosts instead (no key is trusted on first use)")
    if query is None or parts.path not in ("/system", "/session") or any(
            k not in URI_PARAMETERS or not re.fullmatch(r"[A-Za-z0-9_./:,@+-]*", v)
            for k, v in query):
        return None
    if parts.scheme == "qemu":
        return value if parts.netloc == "" else None
    with suppress(ValueError):  # .username and .hostname may raise
        user_ok = parts.username is None or re.fullmatch(USER, parts.username)
        return value if user_ok and is_host(parts.hostname or "") else None
    return None


def _image_source(value: str) -> Optional[str]:
    if value.startswith(("http://", "https://")):
        parts = _split_uri(value, ("http", "https"))
        ok = parts is not None and parts.username is None and is_host(parts.hostname or "")
        return value if ok else None
    if not is_path(value):
        return None
    if not os.path.isfile(value):
        raise invalid("the image file does not exist on this machine; give an existing path "
                      "or an http(s) URL")
    return value


def _ed25519_public_key(value: str) -> Optional[str]:
    with suppress(ValueError, UnsupportedAlgorithm):
        if re.fullmatch(r"[\x20-\x7e]+", value):  # one line: the parser ignores what follows
            key = serialization.load_ssh_public_key(value.encode())
            return value if isinstance(key, ed25519.Ed25519PublicKey) else None
    return None


# The key file as ssh-keygen writes it, and nothing else: the parser alone skips text around the
# block and stray characters inside it.
OPENSSH_PRIVATE_KEY = re.compile(r"\s*-----BEGIN OPENSSH PRIVATE KEY-----\r?\n"
                                 r"(?:[A-Za-z0-9+/=]+\r?\n)+-----END OPENSSH PRIVATE KEY-----\s*",
                                 re.ASCII)


def _ssh_private_key(value: str) -> Optional[SecretStr]:
    with suppress(ValueError, TypeError, UnsupportedAlgorithm):
        if OPENSSH_PRIVATE_KEY.fullmatch(value):
            serialization.load_ssh_private_key(value.encode(), password=None)
            return SecretStr(value)
    return None


T = TypeVar("T")
# A YAML list, kept as a tuple (settings are read-only).
ListOf = Annotated[tuple[T, ...], BeforeValidator(lambda v: tuple(v) if isinstance(v, list) else v)]
PATH = re.compile(r"/[A-Za-z0-9._:@+,=%-][A-Za-z0-9._:@+,=%/-]{0,4094}", re.ASCII)  # not "/"
IPv4 = typed(IPv4Address, _ipv4, "an IPv4 address such as 10.20.0.10")
Cidr = typed(IPv4Network, _cidr,
             "an IPv4 network such as 10.20.0.0/24 (host bits zero, /29 or larger)")
Label = pattern(r"[a-z][a-z0-9-]{0,30}[a-z0-9]",
                "a lowercase DNS label (a-z, 0-9, '-'), 2-32 characters")
NamePrefix = pattern(r"[a-z][a-z0-9-]{0,29}", "the start of a lowercase DNS label, 1-30 characters")
Domain = typed(str, lambda v: v if is_domain(v) else None,
               "a DNS domain of ASCII labels such as osha.internal")
Host = typed(str, lambda v: v if is_host(v) else None, "an IPv4 address or an ASCII DNS name")
HostPort = typed(str, lambda v: v if _is_host_port(v) else None,
                 "host or host:port (an IPv4 address or an ASCII DNS name)")
UserName = pattern(USER, "a user name (a-z, 0-9, '_', '-'), at most 32")
Word = pattern(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}", "a name of letters, digits and '_.@+-'")
UnitName = pattern(r"[A-Za-z0-9][A-Za-z0-9:_.@-]{0,254}", "a systemd unit name")
def is_path(value: str) -> bool:
    """An absolute path of safe characters in normal form: no `.` or `..` step, no `//`, no
    trailing `/` (so one directory has one spelling)."""
    return bool(PATH.fullmatch(value)) and not value.endswith("/") and all(
        step not in ("", ".", "..") for step in value[1:].split("/"))


Path = typed(str, lambda v: v if is_path(v) else None,
             "an absolute path in normal form (no '.', '..', '//' or trailing '/') of letters, "
             "digits and '._:@+,=%/-'")
DevicePath = pattern(r"/dev/[A-Za-z0-9._:@+,=%/-]{1,4090}",
                     "a block device path under /dev/, such as /dev/disk/by-path/...")
BridgeName = pattern(r"(?!\.\.?$)[A-Za-z0-9_.-]{1,15}", "an interface name such as br0")
PoolName = pattern(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}", "a libvirt pool name")
Iqn = pattern(r"iqn\.[0-9]{4}-[0-9]{2}\.[a-z0-9][a-z0-9.-]*(:[A-Za-z0-9._:-]+)?|eui\.[0-9A-F]{16}",
              "an iSCSI name such as iqn.2026-01.lan.storage:osha-mysql")
LibvirtUri = typed(str, _libvirt_uri,
                   "qemu:///system (this host) or qemu+ssh://[user@]host[:port]/system")
ImageSource = typed(str, _image_source, "an http(s) URL or an absolute path of a qcow2 image")
# Nodes pin ED25519 host keys only (components/fencing.py).
SshHostKey = typed(str, _ed25519_public_key, "one ED25519 public key line (ssh-ed25519 AAAA... "
                   "[comment]), the content of /etc/ssh/ssh_host_ed25519_key.pub")
TagKey = pattern(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,62}", "a tag name (letters, digits, '_.:/-')")
Text = typed(str, lambda v: v if len(v) <= 255 and v.isprintable() else None,
             "text without control characters, at most 255")
# Secrets: a SecretStr is never in a repr or a message.
Password = typed(SecretStr, lambda v: SecretStr(v) if v and v.isprintable() else None,
                 "a password without newlines or other control characters")
SshPrivateKey = typed(SecretStr, _ssh_private_key,
                      "an unencrypted OpenSSH private key (ssh-keygen -t ed25519 -N '')")


# ---- declaring a schema -------------------------------------------------------------------------

class Section(BaseModel):
    """A mapping of settings: camelCase keys, nothing unknown, no coercion, read-only; defaults
    are validated too, so every rule runs whether a key is given or not."""

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", strict=True, frozen=True,
                              validate_default=True)


def setting(default: Any = ..., doc: str = "", *, derived: Optional[Callable] = None,
            shown: Optional[str] = None, **constraints) -> Any:
    """A key: its default (a Section class or `dict`: a fresh one each time), its README text,
    `derived`: the function that finds a default following from other keys (its rule calls it
    when the key is unset; README shows its docstring), or `shown`: how README shows a default
    too long for the table."""
    if derived:
        default, shown = None, derived.__doc__
    extra = {"json_schema_extra": {"shown": shown}} if shown else {}
    if isinstance(default, type):
        return Field(default_factory=default, description=doc, **extra, **constraints)
    return Field(default, description=doc, **extra, **constraints)


def rule(*fields: str) -> Callable:
    """A cross-field rule: a generator of problems, (key path relative to the model, value,
    remedy). Without `fields` it checks the model (`self`); with them it is called as
    `(cls, value, the valid fields above it)` and returns the field's value, defaults resolved."""
    def wrap(check: Callable) -> Any:
        def run(steps) -> Any:
            found = []
            try:
                while True:
                    found.append(next(steps))
            except StopIteration as done:
                if found:
                    raise PydanticCustomError("found", "{count} problems", {
                        "count": len(found), "problems": found, "field": bool(fields)})
                return done.value

        if not fields:
            def model_rule(self):
                run(check(self))
                return self
            return model_validator(mode="after")(model_rule)

        def field_rule(cls, value, info: ValidationInfo):
            return run(check(cls, value, info.data))
        return field_validator(*fields)(classmethod(field_rule))
    return wrap


def unwrap(annotation: Any) -> Any:
    """The type under Annotated[...] and Optional[...]."""
    while True:
        if typing.get_origin(annotation) is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif typing.get_origin(annotation) in (typing.Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        else:
            return annotation


def keys_at(root: type, path: tuple) -> list[str]:
    """The keys `root`'s schema allows at `path` (a key path; ints index lists)."""
    annotation: Any = root
    for part in path:
        annotation = unwrap(annotation)
        if isinstance(part, int) or typing.get_origin(annotation) is dict:
            annotation = typing.get_args(annotation)[-1 if typing.get_origin(annotation) is dict
                                                     else 0]
        elif is_typeddict(annotation):
            annotation = typing.get_type_hints(annotation, include_extras=True)[part]
        else:
            annotation = next(f.annotation for f in annotation.model_fields.values()
                              if f.alias == part)
    annotation = unwrap(annotation)
    if is_typeddict(annotation):
        return list(typing.get_type_hints(annotation))
    return [f.alias for f in annotation.model_fields.values()]


# ---- one line per problem -----------------------------------------------------------------------

REMEDIES = {"bool_type": "expected true or false", "int_type": "expected an integer",
            "string_type": "expected a string", "model_type": "expected a mapping",
            "dict_type": "expected a mapping", "tuple_type": "expected a list",
            "list_type": "expected a list", "missing": "required",
            "too_short": "expected at least one entry",
            "greater_than_equal": "expected an integer >= {ge}",
            "less_than_equal": "expected an integer <= {le}"}


def did_you_mean(given: Any, known: list[str]) -> str:
    close = get_close_matches(str(given), known, n=1)
    return f"; did you mean `{close[0]}`?" if close else ""


# A key shown as it is; any other (a typo holding a newline, quotes, a terminal escape) is shown
# as a JSON string, so a problem stays one printable line.
PLAIN_KEY = re.compile(r"[A-Za-z0-9_.:/@+-]+", re.ASCII)


def key_name(key: Any) -> str:
    return key if isinstance(key, str) and PLAIN_KEY.fullmatch(key) else json.dumps(str(key))


def key_path(path: tuple) -> str:
    """`a.b[0].c`, a key that is not a plain name as `["..."]`."""
    steps = (f"[{p}]" if isinstance(p, int) and not isinstance(p, bool) else
             f".{p}" if key_name(p) == p else f"[{key_name(p)}]" for p in path)
    return "".join(steps).removeprefix(".")


# A value is shown by its start only: enough to find it, never a whole pasted blob.
SHOWN_CHARACTERS = 80
# An unknown key named like a secret (a misspelt one, or any *password*, *secret*, *token*, *key*)
# may hold one: its value is not shown.
SECRET_WORDS = re.compile(r"pass|secret|token|key", re.IGNORECASE)


def shown_value(value: Any, secret: bool = False) -> str:
    if secret and value is not None:
        return "[secret]"
    text = repr(value)
    return text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS] + "..."


def named_like_a_secret(key: Any, known: list[str], secret_keys: tuple[str, ...]) -> bool:
    """Whether an unknown `key` is a secret's name, or the closest of the `known` keys and the
    secrets' to it is a secret's (a misspelt one), or it names a password, secret, token or key."""
    name = str(key)
    closest = get_close_matches(name, [*known, *secret_keys], n=1)
    return name in secret_keys or bool(SECRET_WORDS.search(name)) or (
        bool(closest) and closest[0] in secret_keys)


def line(project: str, path: tuple, value: Any, remedy: str, secret: bool = False) -> str:
    """`<project>:<key.path>: <value> is invalid; <remedy>`; a secret value is never shown, any
    other by its start only."""
    return f"{project}:{key_path(path) or 'config'}: {shown_value(value, secret)} is invalid; {remedy}"


def describe(error: ValidationError, root: type, project: str,
             secret_keys: tuple[str, ...]) -> list[str]:
    """One line per problem of `root`'s validation `error`."""
    def one(path: tuple, value: Any, remedy: str) -> str:
        return line(project, path, value, remedy, bool(path) and path[0] in secret_keys)

    lines = []
    for e in error.errors(include_url=False):
        loc, ctx = tuple(p for p in e["loc"] if p != "[key]"), e.get("ctx", {})
        if e["type"] == "found":
            base = loc[:-1] if ctx["field"] else loc
            lines += [one(base + (tuple(p.split(".")) if isinstance(p, str) else p), v, r)
                      for p, v, r in ctx["problems"]]
        elif e["type"] == "extra_forbidden":
            known = keys_at(root, loc[:-1])
            lines.append(line(project, loc, e["input"], "unknown key" + (
                did_you_mean(loc[-1], known) or f"; known keys: {', '.join(known)}"),
                named_like_a_secret(loc[-1], known, secret_keys)))
        elif e["type"] == "literal_error":
            allowed = re.findall(r"'([^']*)'", ctx["expected"])
            lines.append(one(loc, e["input"], f"allowed: {', '.join(allowed)}"
                             + did_you_mean(e["input"], allowed)))
        else:
            remedy = ctx.get("remedy") or REMEDIES.get(e["type"], e["msg"]).format(**ctx)
            lines.append(one(loc, None if e["type"] == "missing" else e["input"], remedy))
    return lines


# ---- Pulumi's config ----------------------------------------------------------------------------

def project_keys(config: dict[str, Any], project: str, root: type, namespaces: tuple[str, ...],
                 secret_keys: tuple[str, ...]) -> tuple[dict[str, Any], list[str]]:
    """`project`'s keys of a Pulumi config, without the prefix, and a problem for each key of a
    namespace neither the project's nor one of `namespaces` (a typo there would be ignored)."""
    raw, problems = {}, []
    known = [f"{project}:{f.alias}" for f in root.model_fields.values()]
    for key, value in config.items():
        namespace, colon, name = str(key).partition(":")
        if namespace == project and colon:
            raw[name] = value
        elif namespace not in namespaces or not colon:
            value_shown = shown_value(value, named_like_a_secret(
                name or namespace, [k.partition(":")[2] for k in known], secret_keys))
            problems.append(f"{key_name(key)}: {value_shown} is invalid; not a key of this stack "
                            f"(its keys are {project}:<key>)" + did_you_mean(
                                key if colon else f"{project}:{key}", known))
    return raw, problems


def decode(root: type, key: str, value: Any) -> Any:
    """Pulumi hands every top-level value over as text, structured ones (`true`, `3`, objects) as
    JSON: decode it unless `root`'s field `key` is text itself."""
    field = next((f for f in root.model_fields.values() if f.alias == key), None)
    kind = unwrap(field.annotation) if field else None
    if isinstance(value, str) and kind not in (str, SecretStr, IPv4Address, IPv4Network) and \
            typing.get_origin(kind) is not Literal:
        with suppress(ValueError):
            return json.loads(value)
    return value
