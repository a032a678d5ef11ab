#!/usr/bin/env python3
"""Run the real program under Pulumi's mock runtime and write out everything the stack would do.

    python tools/render.py --stack dev --out DIR

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
import base64
import datetime
import hashlib
import ipaddress
import json
import os
import re
import runpy
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pulumi  # noqa: E402
import yaml  # noqa: E402
from pydantic import TypeAdapter, ValidationError  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519  # noqa: E402
from pulumi.runtime import mocks as pulumi_mocks  # noqa: E402
from pulumi.runtime import rpc  # noqa: E402
from pulumi.runtime.sync_await import _sync_await  # noqa: E402

import settings as stack_settings  # noqa: E402
import settings_schema  # noqa: E402
from components.templating import yaml_document  # noqa: E402

PROJECT = stack_settings.PROJECT
# The fixed instant mock certificates start from, so renders do not drift with the clock.
EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
COMMAND_FILES = ("create", "update", "delete")
# The top-level keys of a Pulumi stack file.
STACK_FILE_KEYS = ("config", "environment", "secretsprovider", "encryptedkey", "encryptionsalt")
# Resource type tokens as the engine reports them (the tests use these too).
DOMAIN = "libvirt:index/domain:Domain"
VOLUME = "libvirt:index/volume:Volume"
SEED = "libvirt:index/cloudInitDisk:CloudInitDisk"
NETWORK = "libvirt:index/network:Network"
PROVIDER = "pulumi:providers:libvirt"
REMOTE = "command:remote:Command"
LOCAL = "command:local:Command"
COPY = "command:remote:CopyToRemote"
CLOUD_INIT_FILES = {"userData": "user-data", "metaData": "meta-data",
                    "networkConfig": "network-config"}


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
        return _key_outputs(_private_key(stack, key, "ED25519", ""))["privateKeyOpenssh"]
    return value


def _seed(*parts: str) -> bytes:
    return hashlib.sha256("/".join(parts).encode()).digest()


def _private_key(stack: str, name: str, algorithm: str, curve: str):
    seed = _seed(stack, name)
    if algorithm == "ED25519":
        return ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    if algorithm == "ECDSA":
        curves = {"P256": (ec.SECP256R1(), 256), "P384": (ec.SECP384R1(), 384),
                  "P521": (ec.SECP521R1(), 521)}
        chosen, bits = curves[curve]
        # Below 2**(bits-1), hence below the curve order: a valid, reproducible scalar.
        wide = hashlib.sha512(seed).digest() + hashlib.sha512(seed + b"2").digest()
        return ec.derive_private_key(int.from_bytes(wide, "big") % 2 ** (bits - 1) + 1, chosen)
    raise ValueError(f"render mocks generate ED25519 and ECDSA keys, not {algorithm}")


def stand_in_stdout(stack: str, name: str) -> str:
    """What the render shows as a local Command's stdout: an ED25519 public key line (see the
    module's docstring), derived from the stack and the command's name."""
    key = _private_key(stack, f"{name}/stdout", "ED25519", "")
    return _key_outputs(key)["publicKeyOpenssh"]


def _stable_openssh(pem: str) -> str:
    """OpenSSH's private key format opens its private part with a random check number (twice):
    fix it, so that the same key renders the same text (a stable stdin, a stable re-render)."""
    lines = pem.strip().splitlines()
    blob = bytearray(base64.b64decode("".join(lines[1:-1])))
    offset = len(b"openssh-key-v1\0")
    for _ in range(3):  # cipher name, KDF name, KDF options
        offset += 4 + int.from_bytes(blob[offset:offset + 4], "big")
    offset += 4  # number of keys (one)
    offset += 4 + int.from_bytes(blob[offset:offset + 4], "big")  # the public key
    offset += 4  # the private part's length; its first 8 bytes are the check number, twice
    blob[offset:offset + 8] = hashlib.sha256(bytes(blob[:offset])).digest()[:4] * 2
    body = base64.b64encode(bytes(blob)).decode()
    return "\n".join([lines[0], *(body[i:i + 70] for i in range(0, len(body), 70)),
                      lines[-1]]) + "\n"


def _key_outputs(key) -> dict[str, str]:
    public = key.public_key()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    openssh = _stable_openssh(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()).decode())
    public_openssh = public.public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode() + "\n"
    return {
        "privateKeyPem": pem, "privateKeyOpenssh": openssh, "privateKeyPemPkcs8": pem,
        "publicKeyPem": public.public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
        "publicKeyOpenssh": public_openssh,
    }


def _load_private_key(pem: str):
    data = pem.encode()
    if b"OPENSSH PRIVATE KEY" in data:
        return serialization.load_ssh_private_key(data, None)
    return serialization.load_pem_private_key(data, None)


def _name_attributes(subject: dict) -> x509.Name:
    oids = {"commonName": x509.NameOID.COMMON_NAME, "organization": x509.NameOID.ORGANIZATION_NAME,
            "organizationalUnit": x509.NameOID.ORGANIZATIONAL_UNIT_NAME,
            "country": x509.NameOID.COUNTRY_NAME}
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in (subject or {}).items()
                      if k in oids and v])


def _sign(builder: x509.CertificateBuilder, signer) -> x509.Certificate:
    algorithm = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    extra = {"ecdsa_deterministic": True} if isinstance(signer, ec.EllipticCurvePrivateKey) else {}
    try:
        return builder.sign(signer, algorithm, **extra)
    except TypeError:  # cryptography without deterministic ECDSA
        return builder.sign(signer, algorithm)


def _certificate(inputs: dict, subject_key, issuer_key, issuer_name: Optional[x509.Name],
                 seed: bytes) -> str:
    subject = _name_attributes((inputs.get("subject") or {}))
    hours = int(inputs.get("validityPeriodHours", 8760))
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer_name or subject)
               .public_key(subject_key)
               .serial_number(int.from_bytes(seed[:16], "big") >> 1)
               .not_valid_before(EPOCH)
               .not_valid_after(EPOCH + datetime.timedelta(hours=hours)))
    is_ca = bool(inputs.get("isCaCertificate"))
    builder = builder.add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    sans = [x509.DNSName(d) for d in inputs.get("dnsNames") or []]
    sans += [x509.IPAddress(ipaddress.ip_address(a))
             for a in inputs.get("ipAddresses") or []]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    uses = set(inputs.get("allowedUses") or [])
    if is_ca or uses & {"cert_signing", "digital_signature", "key_encipherment"}:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature="digital_signature" in uses or not is_ca,
            content_commitment=False, key_encipherment="key_encipherment" in uses,
            data_encipherment=False, key_agreement=False,
            key_cert_sign=is_ca or "cert_signing" in uses, crl_sign=is_ca or "crl_signing" in uses,
            encipher_only=False, decipher_only=False), critical=True)
    extended = [oid for use, oid in (("server_auth", x509.ExtendedKeyUsageOID.SERVER_AUTH),
                                     ("client_auth", x509.ExtendedKeyUsageOID.CLIENT_AUTH))
                if use in uses]
    if extended:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
    return _sign(builder, issuer_key).public_bytes(serialization.Encoding.PEM).decode()


class RenderMocks(pulumi_mocks.Mocks):
    """Providers stand-ins: libvirt and command echo their inputs; tls and random make values."""

    def __init__(self, stack: str):
        self.stack = stack
        # Every secret value handed to the program, by the file it is written to.
        self.secrets: dict[str, str] = {}
        self.csrs: dict[str, dict] = {}

    def new_resource(self, args: pulumi_mocks.MockResourceArgs):
        outputs = dict(args.inputs)
        # Secret inputs (a key's PEM passed on) arrive wrapped; the generators need plain values.
        inputs = _unwrap_secrets(args.inputs, set())
        if args.typ == "tls:index/privateKey:PrivateKey":
            key = _private_key(self.stack, args.name, inputs.get("algorithm", "RSA"),
                               inputs.get("ecdsaCurve", "P256"))
            outputs.update(_key_outputs(key))
            self.secrets[f"secrets/{args.name}.key"] = outputs["privateKeyOpenssh"] \
                if isinstance(key, ed25519.Ed25519PrivateKey) else outputs["privateKeyPem"]
        elif args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = secret_placeholder(args.name)
            self.secrets[f"secrets/{args.name}"] = outputs["result"]
        elif args.typ == "random:index/randomBytes:RandomBytes":
            raw = b"".join(_seed(self.stack, args.name, str(i))
                           for i in range(int(inputs["length"]) // 32 + 1))[:int(inputs["length"])]
            outputs.update(base64=base64.b64encode(raw).decode(), hex=raw.hex())
            self.secrets[f"secrets/{args.name}"] = outputs["base64"]
        elif args.typ == "tls:index/selfSignedCert:SelfSignedCert":
            key = _load_private_key(inputs["privateKeyPem"])
            outputs["certPem"] = _certificate(inputs, key.public_key(), key, None,
                                              _seed(self.stack, args.name))
        elif args.typ == LOCAL:
            outputs["stdout"] = stand_in_stdout(self.stack, args.name)
        elif args.typ == "tls:index/certRequest:CertRequest":
            outputs["certRequestPem"] = f"mock-csr:{args.name}"
            self.csrs[outputs["certRequestPem"]] = inputs
        elif args.typ == "tls:index/locallySignedCert:LocallySignedCert":
            request = self.csrs[inputs["certRequestPem"]]
            ca_key = _load_private_key(inputs["caPrivateKeyPem"])
            ca_cert = x509.load_pem_x509_certificate(inputs["caCertPem"].encode())
            subject_key = _load_private_key(request["privateKeyPem"]).public_key()
            outputs["certPem"] = _certificate({**request, **inputs}, subject_key, ca_key,
                                              ca_cert.subject, _seed(self.stack, args.name))
        return f"{args.name}-id", outputs

    def call(self, args: pulumi_mocks.MockCallArgs):
        if args.token == "tls:index/getPublicKey:getPublicKey":
            pem = args.args.get("privateKeyOpenssh") or args.args.get("privateKeyPem")
            return _key_outputs(_load_private_key(pem)), []
        raise NotImplementedError(f"render mocks do not answer {args.token}")


@dataclass
class Registration:
    urn: str
    name: str
    type: str
    parent: str
    custom: bool
    dependencies: list[str]
    provider: str
    inputs: dict = field(default_factory=dict)
    # Which resources each input came from (a policy pack sees these too).
    property_dependencies: dict = field(default_factory=dict)


def _unwrap_secrets(value: Any, found: set[str]) -> Any:
    """Plain values with the secret markers removed; every secret string is added to `found`."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            inner = _unwrap_secrets(value["value"], found)
            # A whole object turns secret when one field is: only a secret string counts.
            if isinstance(inner, str):
                found.add(inner)
            return inner
        return {k: _unwrap_secrets(v, found) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap_secrets(v, found) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, also keeping each registration's parent and dependencies."""

    def __init__(self, mocks: RenderMocks):
        super().__init__(mocks)
        self.registrations: list[Registration] = []
        # Every input value the program marked secret.
        self.secret_inputs: set[str] = set()

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(Registration(
                urn=response.urn, name=request.name, type=request.type, parent=request.parent,
                custom=request.custom, dependencies=list(request.dependencies),
                provider=request.provider,
                inputs=_unwrap_secrets(rpc.deserialize_properties(request.object),
                                       self.secret_inputs),
                property_dependencies={k: list(v.urns)
                                       for k, v in request.propertyDependencies.items()}))
        return response


class _StackFileLoader(yaml.SafeLoader):
    """YAML as Pulumi reads a stack file: a key given twice is an error, not the last one wins;
    merge keys (`<<: *anchor`) merge, and a key given beside them overrides theirs."""

    def construct_mapping(self, node, deep=False):
        seen = []
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} given twice",
                                                        key_node.start_mark)
            seen.append(key)
        return super().construct_mapping(node, deep)


def read_stack_file(path: Path) -> dict[str, Any]:
    """A stack file's `config` (every namespace), or SettingsError, one line per problem."""
    def fail(key: tuple, value: Any, remedy: str) -> stack_settings.SettingsError:
        return stack_settings.SettingsError(
            [settings_schema.line(PROJECT, (path.name, *key), value, remedy)])

    try:
        document = yaml.load(path.read_text(), Loader=_StackFileLoader)
    except OSError as error:
        raise fail((), str(path), f"cannot read it: {error.strerror}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        text = " ".join(str(getattr(error, "problem", None) or error).split())
        raise fail((), str(path), f"not valid YAML: {where}{text}") from None
    document = {} if document is None else document
    if not isinstance(document, dict):
        raise fail((), document, "expected a mapping with a `config:` key")
    for key in document:
        if key not in STACK_FILE_KEYS:
            raise fail((key,), document[key], "not a key of a Pulumi stack file" + (
                settings_schema.did_you_mean(key, list(STACK_FILE_KEYS)) or
                f"; known keys: {', '.join(STACK_FILE_KEYS)}"))
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise fail(("config",), config, "expected a mapping of namespace:key to values")
    return config


def stack_config(stack: str, config_file: Optional[Path] = None,
                 secrets: tuple[str, ...] = ()) -> dict[str, Any]:
    """Pulumi.<stack>.yaml's config for this project, without the prefix; secure values and the
    `secrets` the file lacks filled in (config_secret)."""
    raw, problems = stack_settings.project_config(
        read_stack_file(config_file or ROOT / f"Pulumi.{stack}.yaml"))
    if problems:
        raise stack_settings.SettingsError(problems)
    for key in secrets:
        raw.setdefault(key, {"secure": "given with --secret"})
    return {k: config_secret(stack, k) if isinstance(v, dict) and "secure" in v else v
            for k, v in raw.items()}


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
            for role, text in _files_of(registration).items() if role != "stdin"]


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


# ---- writing DIR ---------------------------------------------------------------------------

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


def _files_of(registration: Registration) -> dict[str, str]:
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


_FILE_INPUTS = {"create", "update", "delete", "stdin", "source", *CLOUD_INIT_FILES}


def _host_of(registration: Registration, key_files: dict[str, str]) -> Optional[dict]:
    if registration.type == LOCAL:
        return {"host": "localhost"}
    connection = registration.inputs.get("connection")
    if not connection:
        return None
    key_file = next((path for path, value in key_files.items()
                     if value == connection.get("privateKey")), None)
    host = {"host": connection.get("host"), "user": connection.get("user"),
            "private_key_file": key_file, "host_key": (connection.get("hostKey") or "").strip()
            or None}
    if connection.get("port") is not None:
        host["port"] = connection["port"]
    return host


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


def write(graph: Graph, out: Path) -> dict:
    """Write every file and the manifest under `out` (emptied first); return the manifest."""
    if out.exists():
        shutil.rmtree(out)
    (out / "secrets").mkdir(parents=True)
    for relative, value in graph.secrets.items():
        path = out / relative
        path.write_text(value if value.endswith("\n") or "KEY" not in value else value + "\n")
        path.chmod(0o600)
    secrets = graph.secret_values()
    key_files = {path: value for path, value in graph.secrets.items()}
    names = [r.name for r in graph.registrations]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise SystemExit(f"resource names must be unique for the manifest: {sorted(duplicates)}")
    urns = graph.by_urn()
    resources = []
    for registration in graph.registrations:
        files = {}
        for role, text in _files_of(registration).items():
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
        inputs = {k: v for k, v in registration.inputs.items() if k not in _FILE_INPUTS}
        if registration.type == DOMAIN and "xml" in inputs:
            inputs["xml"] = {k: v for k, v in inputs["xml"].items() if k != "xslt"}
        parent = urns.get(registration.parent)
        resources.append({
            "name": registration.name,
            "type": registration.type,
            "parent": parent.name if parent else None,
            "depends_on": [urns[u].name for u in registration.dependencies if u in urns],
            "waits_for": graph.waits_for(registration),
            "host": _host_of(registration, key_files),
            "files": files,
            "inputs": _mask(inputs, secrets),
        })
    s = graph.settings
    manifest = {
        "stack": graph.stack,
        "vip": str(s.vip),
        "network": {"name": s.network.name, "cidr": str(s.network.cidr),
                    "gateway": str(s.network.gateway), "domain": s.network.domain,
                    "mode": s.network.mode},
        "nodes": [{"name": n.name, "role": n.role, "ip": str(n.ip), "mac": n.mac,
                   "domain": f"{s.stack}-{n.name}", "vcpu": n.sizing.vcpu,
                   "memory_mib": n.sizing.memory_mib, "disk_gib": n.sizing.disk_gib,
                   "hypervisor": n.hypervisor, "shared_disk": n.role == "control"}
                  for n in s.nodes],
        "ssh": {"user": s.admin_user, "private_key_file": "secrets/adminSshPrivateKey"
                if "secrets/adminSshPrivateKey" in graph.secrets else "secrets/admin-ssh-key.key"},
        "outputs": _mask(graph.outputs, secrets),
        "resources": resources,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return manifest


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
    print(f"{len(manifest['resources'])} resources, {len(manifest['nodes'])} nodes -> "
          f"{args.out / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
