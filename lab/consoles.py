"""Every lab container's console read into a file, boot after boot: `python -m lab.consoles DIR`.

libvirt's LXC driver gives each container a pty console (the only kind it supports) and nothing
reads its host end. Once its buffers hold about 40 KB (a boot's and a shutdown's status lines,
more under load), the container's PID 1 blocks writing to /dev/console and the node hangs,
typically half-way through a reboot, for good. The lab's hypervisor runs this process beside its
libvirtd: it reads each container's console, boot after boot, into DIR/<domain>.log.
"""
from __future__ import annotations

import argparse
import os
import threading
import termios
import time
import tty
from pathlib import Path

from lab.hypervisor import virsh

# libvirt's LXC driver writes each running container's controller PID here; a new PID is a new
# boot, with a new console (an in-container reboot emits no lifecycle event to wait on).
CONTROLLERS = Path("/run/libvirt/lxc")


def controllers() -> dict[str, str]:
    """Each running container's controller PID, by domain."""
    found = {}
    for pid_file in CONTROLLERS.glob("*.pid"):
        try:
            found[pid_file.stem] = pid_file.read_text().split()[0]
        except (OSError, IndexError):
            pass  # written or removed right now: seen on the next look
    return found


def read_console(path: str, log_path: Path) -> None:
    """Append the console at `path` to `log_path` until its domain stops (its pty closes)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOCTTY)
    try:
        # Raw: nothing echoed back into the container's console as if typed there. TCSANOW, not
        # the default TCSAFLUSH: that would drop what the boot wrote before this open.
        tty.setraw(descriptor, termios.TCSANOW)
        with log_path.open("ab") as log:
            while chunk := os.read(descriptor, 65536):
                log.write(chunk)
                log.flush()
    except OSError:
        pass  # EIO: the domain stopped and its controller closed the pty
    finally:
        os.close(descriptor)


def drain(out: Path, interval: float = 1.0) -> None:
    """Read each container's console from each of its boots on, until killed."""
    out.mkdir(parents=True, exist_ok=True)
    reading: dict[str, str] = {}
    while True:
        for domain, controller in controllers().items():
            if reading.get(domain) == controller:
                continue
            console = virsh("ttyconsole", domain, check=False, timeout=60).stdout.strip()
            if console:  # else not set up yet: looked up again on the next round
                reading[domain] = controller
                threading.Thread(target=read_console, args=(console, out / f"{domain}.log"),
                                 daemon=True).start()
        time.sleep(interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="directory for <domain>.log")
    drain(parser.parse_args().out)


if __name__ == "__main__":
    main()
