"""Pulumi's mock runtime as the render runs it: provider stand-ins that make deterministic values,
and a monitor that records every registration with its parent, dependencies and inputs."""
from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc

from tools.render.config import secret_placeholder
from tools.render.crypto import (certificate, key_outputs, load_private_key, private_key,
                                 seed_of, stand_in_stdout)

# Resource type tokens as the engine reports them (the tests use these too).
DOMAIN = "libvirt:index/domain:Domain"
VOLUME = "libvirt:index/volume:Volume"
SEED = "libvirt:index/cloudInitDisk:CloudInitDisk"
NETWORK = "libvirt:index/network:Network"
PROVIDER = "pulumi:providers:libvirt"
REMOTE = "command:remote:Command"
LOCAL = "command:local:Command"
COPY = "command:remote:CopyToRemote"


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
            key = private_key(self.stack, args.name, inputs.get("algorithm", "RSA"),
                              inputs.get("ecdsaCurve", "P256"))
            outputs.update(key_outputs(key))
            self.secrets[f"secrets/{args.name}.key"] = outputs["privateKeyOpenssh"] \
                if isinstance(key, ed25519.Ed25519PrivateKey) else outputs["privateKeyPem"]
        elif args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = secret_placeholder(args.name)
            self.secrets[f"secrets/{args.name}"] = outputs["result"]
        elif args.typ == "random:index/randomBytes:RandomBytes":
            raw = b"".join(seed_of(self.stack, args.name, str(i))
                           for i in range(int(inputs["length"]) // 32 + 1))[:int(inputs["length"])]
            outputs.update(base64=base64.b64encode(raw).decode(), hex=raw.hex())
            self.secrets[f"secrets/{args.name}"] = outputs["base64"]
        elif args.typ == "tls:index/selfSignedCert:SelfSignedCert":
            key = load_private_key(inputs["privateKeyPem"])
            outputs["certPem"] = certificate(inputs, key.public_key(), key, None,
                                             seed_of(self.stack, args.name))
        elif args.typ == LOCAL:
            outputs["stdout"] = stand_in_stdout(self.stack, args.name)
        elif args.typ == "tls:index/certRequest:CertRequest":
            outputs["certRequestPem"] = f"mock-csr:{args.name}"
            self.csrs[outputs["certRequestPem"]] = inputs
        elif args.typ == "tls:index/locallySignedCert:LocallySignedCert":
            request = self.csrs[inputs["certRequestPem"]]
            ca_key = load_private_key(inputs["caPrivateKeyPem"])
            ca_cert = x509.load_pem_x509_certificate(inputs["caCertPem"].encode())
            subject_key = load_private_key(request["privateKeyPem"]).public_key()
            outputs["certPem"] = certificate({**request, **inputs}, subject_key, ca_key,
                                             ca_cert.subject, seed_of(self.stack, args.name))
        return f"{args.name}-id", outputs

    def call(self, args: pulumi_mocks.MockCallArgs):
        if args.token == "tls:index/getPublicKey:getPublicKey":
            pem = args.args.get("privateKeyOpenssh") or args.args.get("privateKeyPem")
            return key_outputs(load_private_key(pem)), []
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
    # The URNs this resource was known by before (an alias makes a rename an update).
    aliases: list = field(default_factory=list)


def _unwrap_secrets(value: Any, found: set[str]) -> Any:
    """Plain values with the secret markers removed; every secret string is added to `found`."""
    if isinstance(value, dict):
        if rpc.is_rpc_secret(value):
            inner = _unwrap_secrets(rpc.unwrap_rpc_secret(value), found)
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
                                       for k, v in request.propertyDependencies.items()},
                aliases=[*request.aliasURNs, *(a.urn or a.spec.name for a in request.aliases)]))
        return response
