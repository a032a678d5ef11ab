"""HAProxy under the mock runtime: the config per settings, its copy and install on every node."""
from __future__ import annotations

import re

import pytest

from catalogue import SERVICES, enabled
from components.haproxy import STATS_PORT, STATS_SOCKET, haproxy_config
from settings import parse
from tests.conftest import stack_config
from tools import render
from tools.render import COPY



def listen_blocks(config: str) -> dict[str, list[str]]:
    """`listen` sections of a rendered config: name -> its lines."""
    blocks: dict[str, list[str]] = {}
    current = None
    for line in config.splitlines():
        if line.startswith("listen "):
            current = line.split()[1]
            blocks[current] = []
        elif not line.startswith(" "):
            current = None
        elif current:
            blocks[current].append(line.strip())
    return blocks



def settings_for(stack: str, **overrides):
    raw = stack_config(stack, **overrides)
    return parse({k: v for k, v in raw.items() if not isinstance(v, str)
                  or not v.startswith("placeholder-")}, stack)


@pytest.mark.parametrize("stack", ["dev", "lab", "prod"])
def test_every_enabled_service_balances_over_every_control_node(stack):
    s = settings_for(stack)
    blocks = listen_blocks(haproxy_config(s))
    wanted = {x.name for x in enabled(s.services)}
    assert set(blocks) == wanted | {"stats"}
    for name in wanted:
        service = next(x for x in SERVICES if x.name == name)
        servers = [line for line in blocks[name] if line.startswith("server ")]
        assert servers == [f'server {n.name} {n.ip}:{service.port} check agent-send "{name}\\n"'
                           for n in s.controls]
        assert any(line.startswith(f"bind {s.vip}:{service.port}") for line in blocks[name])
        has_http_check = f"option httpchk GET {service.check_path}" in blocks[name]
        assert has_http_check == (service.check_path is not None)


def test_services_follow_the_switches_and_the_release():
    s = settings_for("dev", services={"nova-ec2": True, "swift": False},
                     release="icehouse", openstack={"install": "none"})
    blocks = listen_blocks(haproxy_config(s))
    assert "nova-ec2" in blocks and "swift" not in blocks
    # Icehouse still had the identity admin port and glance-registry; no placement yet.
    assert {"keystone-admin", "glance-registry"} <= set(blocks) and "placement" not in blocks
    modern = listen_blocks(haproxy_config(settings_for("dev")))
    assert "keystone-admin" not in modern and "nova-ec2" not in modern


def test_seed_era_glance_ports_are_not_swapped():
    s = settings_for("dev", release="icehouse", openstack={"install": "none"})
    blocks = listen_blocks(haproxy_config(s))
    assert f"bind {s.vip}:9292 ssl crt /etc/haproxy/certs/glance-api.pem" in blocks["glance-api"]
    assert f"bind {s.vip}:9191" in blocks["glance-registry"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_database_and_broker_are_not_balanced(stack):
    config = haproxy_config(settings_for(stack))
    for port in (3306, 5671, 5672):
        assert not re.search(rf":{port}\b", config)


def test_stats_socket_and_page_on_the_vip():
    s = settings_for("dev")
    config = haproxy_config(s)
    assert f"stats socket {STATS_SOCKET}" in config
    assert f"bind {s.vip}:{STATS_PORT}" in listen_blocks(config)["stats"]


def test_tls_terminates_the_public_apis_and_horizon_only():
    s = settings_for("prod")
    blocks = listen_blocks(haproxy_config(s))
    for service in enabled(s.services):
        tls_binds = [b for b in blocks[service.name] if " ssl crt " in b]
        if service.public:
            port = service.tls_port or service.port
            cert = f"/etc/haproxy/certs/{service.name}.pem"
            assert tls_binds == [f"bind {s.vip}:{port} ssl crt {cert}"]
        else:
            assert not tls_binds
    assert "bind 10.30.0.10:80" in blocks["horizon"]  # redirected to 443
    assert " ssl " not in haproxy_config(settings_for("dev", tls={"enabled": False}))


def test_config_copied_and_installed_on_every_control_node_before_the_layout(dev_graph):
    copies = dev_graph.of_type(COPY)
    controls = dev_graph.settings.controls
    hosts = sorted(c.inputs["connection"]["host"] for c in copies)
    assert hosts == sorted(str(n.ip) for n in controls)
    config = haproxy_config(dev_graph.settings)
    for node in controls:
        copy = dev_graph.named(f"{node.name}-haproxy-config")
        assert copy.inputs["source"].text == config
        install = dev_graph.named(f"{node.name}-haproxy-install")
        waits = dev_graph.waits_for(install)
        assert {f"{node.name}-haproxy-config", "cluster-setup", f"{node.name}-ready"} <= set(waits)
        # In place before Pacemaker first starts HAProxy.
        assert install.name in dev_graph.waits_for(dev_graph.named("cluster-layout"))
        script = install.inputs["create"]
        assert copy.inputs["remotePath"] in script and "haproxy -c" in script
        # Reloaded (never restarted) and only past the unchanged check.
        assert script.index('cmp -s "$staged" "$config"') < script.index("systemctl reload haproxy")
        assert "systemctl restart" not in script
        assert install.inputs.get("delete")


def test_config_change_reaches_the_install_text():
    """A different config changes the install step's text, so the engine runs its update."""
    def install_text(**overrides):
        graph = render.run_program(stack_config("dev", **overrides), "dev")
        return graph.named("ctl1-haproxy-install").inputs["create"]
    assert install_text() != install_text(services={"cinder": False})


def test_clone_layout_relies_on_nonlocal_bind(dev_graph):
    assert dev_graph.settings.cluster.haproxy_layout == "clone"
    sysctl = dev_graph.named("ctl1-sysctl").inputs["create"]
    assert "net.ipv4.ip_nonlocal_bind = 1" in sysctl
    install = dev_graph.named("ctl1-haproxy-install")
    assert "ctl1-sysctl" in dev_graph.upstream(install.name)
    assert "ip_nonlocal_bind" in install.inputs["create"]
    group = render.run_program(stack_config("dev", cluster={"haproxyLayout": "group"}), "dev")
    assert "ip_nonlocal_bind" not in group.named("ctl1-haproxy-install").inputs["create"]


def test_web_served_apis_leave_the_vip_ports_before_haproxy_starts(dev_graph):
    """Apache/httpd's wildcard Listen lines move to the node address before HAProxy binds the VIP."""
    layout = dev_graph.waits_for(dev_graph.named("cluster-layout"))
    for node in dev_graph.settings.controls:
        listen = dev_graph.named(f"{node.name}-api-listen")
        assert f"\naddress={node.ip}\n" in listen.inputs["create"]
        assert "Listen ${address}:" in listen.inputs["create"]
        assert "5000 " in listen.inputs["create"] and listen.inputs.get("delete")
        # Before the install, which the layout (where Pacemaker starts HAProxy) waits for.
        assert listen.name in dev_graph.waits_for(dev_graph.named(f"{node.name}-haproxy-install"))
        assert f"{node.name}-haproxy-install" in layout


def defaults(config: str) -> dict[str, str]:
    """The `defaults` section: first word(s) -> the rest of the line."""
    section = config.split("\ndefaults\n", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in section.splitlines() if not line.strip().startswith("#")]
    return {" ".join(line.split()[:2]) if line.split()[0] in ("option", "timeout")
            else line.split()[0]: line for line in lines}


def test_a_dead_backend_costs_a_request_one_short_connect_and_is_marked_down_by_it():
    """Every retry goes to another server (redispatch at each, not only at the last); a connect
    gives up after a second; the first failed connection marks the server down for everyone. A
    slow server is not one: it gets five seconds to answer a check, and sessions on it are not
    cut."""
    found = defaults(haproxy_config(settings_for("dev")))
    assert found["option redispatch"] == "option redispatch 1"
    assert found["timeout connect"] == "timeout connect 1s"
    assert found["timeout check"] == "timeout check 5s"
    server = found["default-server"].split()
    assert " ".join(server[server.index("observe"):server.index("observe") + 6]) == \
        "observe layer4 error-limit 1 on-error mark-down"
    assert "on-marked-down" not in server
