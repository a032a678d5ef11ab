"""Network probes run inside the lab namespace (`ip netns exec osha-lab python3 lab/probe.py ...`).

    probe.py http HOST PORT PATH     -> prints the HTTP status
    probe.py amqp HOST PORT          -> prints "amqp" when the broker starts an AMQP 0-9-1 handshake
    probe.py tcp HOST PORT           -> prints "open"
Exits non-zero (printing the reason) when the service does not answer within the timeout.
"""
from __future__ import annotations

import http.client
import socket
import sys

TIMEOUT = 5.0


def http_status(host: str, port: int, path: str) -> str:
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    connection.request("GET", path)
    return str(connection.getresponse().status)


def amqp(host: str, port: int) -> str:
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        frame = sock.recv(7)
    # A method frame (type 1) on channel 0: the broker's Connection.Start.
    if len(frame) == 7 and frame[0] == 1 and frame[1:3] == b"\x00\x00":
        return "amqp"
    raise OSError(f"not an AMQP 0-9-1 answer: {frame!r}")


def tcp(host: str, port: int) -> str:
    with socket.create_connection((host, port), timeout=TIMEOUT):
        return "open"


def main(argv: list[str]) -> int:
    kind, host, port, *rest = argv
    probes = {"http": lambda: http_status(host, int(port), rest[0] if rest else "/"),
              "amqp": lambda: amqp(host, int(port)), "tcp": lambda: tcp(host, int(port))}
    try:
        print(probes[kind]())
    except (OSError, http.client.HTTPException) as error:
        print(f"{kind} {host}:{port}: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
