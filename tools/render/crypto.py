"""Deterministic stand-ins for what the tls and random providers make and for a local step's
output: keys and bytes derived from the stack and a name, certificates dated from a fixed instant,
so that every render of a stack is the same, byte for byte."""
from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
from typing import Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

# The fixed instant mock certificates start from, so renders do not drift with the clock.
EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def seed_of(*parts: str) -> bytes:
    """32 bytes derived from `parts`: the same parts, the same key or random value."""
    return hashlib.sha256("/".join(parts).encode()).digest()


def private_key(stack: str, name: str, algorithm: str, curve: str):
    seed = seed_of(stack, name)
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
    key = private_key(stack, f"{name}/stdout", "ED25519", "")
    return key_outputs(key)["publicKeyOpenssh"]


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


def key_outputs(key) -> dict[str, str]:
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


def load_private_key(pem: str):
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


def certificate(inputs: dict, subject_key, issuer_key, issuer_name: Optional[x509.Name],
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
