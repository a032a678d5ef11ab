"""Network probes run inside the lab namespace (`ip netns exec osha-lab python3 lab/probe.py ...`).

    probe.py http HOST PORT PATH     -> prints the HTTP status
    probe.py amqp HOST PORT          -> prints "amqp" when the broker starts an AMQP 0-9-1 handshake
    probe.py tcp HOST PORT           -> prints "open"
    probe.py servers HOST PORT       -> each server's status by proxy on HAProxy's stats page (JSON)
    probe.py keystone HOST PORT USER PROJECT PASSWORD
                                     -> a token, then the endpoints and services listed with it (JSON)
    probe.py --ca CA_FILE KIND ...   -> the same over TLS (1.2 or later), the server's certificate
                                        verified against CA_FILE and HOST
Exits non-zero (printing the reason) when the service does not answer within the timeout.
"""
from __future__ import annotations

import csv
import http.client
import io
import json
import socket
import ssl
import sys
from typing import Optional

TIMEOUT = 5.0
# Issuing a token checks a password hash: over 20 s on a busy emulated node.
KEYSTONE_TIMEOUT = 60.0


def tls_context(ca_file: Optional[str]) -> Optional[ssl.SSLContext]:
    """TLS 1.2 or later, verified against `ca_file` and the host's name; None: plain."""
    if ca_file is None:
        return None
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def connection(host: str, port: int, timeout: float,
               context: Optional[ssl.SSLContext]) -> http.client.HTTPConnection:
    if context is None:
        return http.client.HTTPConnection(host, port, timeout=timeout)
    return http.client.HTTPSConnection(host, port, timeout=timeout, context=context)


def http_status(host: str, port: int, path: str,
                context: Optional[ssl.SSLContext] = None) -> str:
    answer = connection(host, port, TIMEOUT, context)
    answer.request("GET", path)
    return str(answer.getresponse().status)


def amqp_start(host: str, port: int, context: Optional[ssl.SSLContext] = None) -> bytes:
    """The broker's Connection.Start frame, answering an AMQP 0-9-1 protocol header."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as plain, \
            (context.wrap_socket(plain, server_hostname=host) if context else plain) as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        frame = b""
        while len(frame) < 7 or len(frame) < 8 + int.from_bytes(frame[3:7], "big"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            frame += chunk
    # A method frame (type 1) on channel 0, complete with its end octet.
    size = int.from_bytes(frame[3:7], "big") if len(frame) >= 7 else -1
    if 0 <= size and len(frame) >= 8 + size and frame[0] == 1 and frame[1:3] == b"\x00\x00" \
            and frame[7 + size] == 0xCE:
        return frame
    raise OSError(f"not an AMQP 0-9-1 answer: {frame[:16]!r}")


def amqp(host: str, port: int, context: Optional[ssl.SSLContext] = None) -> str:
    amqp_start(host, port, context)
    return "amqp"


def keystone(host: str, port: int, user: str, project: str, password: str,
             context: Optional[ssl.SSLContext] = None) -> str:
    def call(method: str, path: str, headers: dict, body: dict | None = None):
        keystone_connection = connection(host, port, KEYSTONE_TIMEOUT, context)
        keystone_connection.request(method, path, json.dumps(body) if body else None,
                                    {"Content-Type": "application/json", **headers})
        response = keystone_connection.getresponse()
        return response, response.read()

    domain = {"name": "Default"}
    response, body = call("POST", "/v3/auth/tokens", {}, {"auth": {
        "identity": {"methods": ["password"], "password": {
            "user": {"name": user, "domain": domain, "password": password}}},
        "scope": {"project": {"name": project, "domain": domain}}}})
    if response.status != 201:
        raise OSError(f"token: HTTP {response.status} {body[:200]!r}")
    token = {"X-Auth-Token": response.getheader("X-Subject-Token")}
    listed = {}
    for name in ("endpoints", "services"):
        response, body = call("GET", f"/v3/{name}", token)
        if response.status != 200:
            raise OSError(f"{name}: HTTP {response.status}")
        listed[name] = json.loads(body)[name]
    return json.dumps(listed)


def servers(host: str, port: int) -> str:
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    connection.request("GET", "/;csv")
    rows = csv.DictReader(io.StringIO(connection.getresponse().read().decode().lstrip("# ")))
    statuses: dict[str, dict[str, str]] = {}
    for row in rows:
        if row["svname"] not in ("FRONTEND", "BACKEND"):
            statuses.setdefault(row["pxname"], {})[row["svname"]] = row["status"]
    return json.dumps(statuses)


def tcp(host: str, port: int) -> str:
    with socket.create_connection((host, port), timeout=TIMEOUT):
        return "open"


def main(argv: list[str]) -> int:
    ca_file = None
    if argv[0] == "--ca":
        ca_file, argv = argv[1], argv[2:]
    kind, host, port, *rest = argv
    context = tls_context(ca_file)
    probes = {"http": lambda: http_status(host, int(port), rest[0] if rest else "/", context),
              "amqp": lambda: amqp(host, int(port), context), "tcp": lambda: tcp(host, int(port)),
              "servers": lambda: servers(host, int(port)),
              "keystone": lambda: keystone(host, int(port), *rest, context=context)}
    try:
        print(probes[kind]())
    except (OSError, http.client.HTTPException, ValueError) as error:
        print(f"{kind} {host}:{port}: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
