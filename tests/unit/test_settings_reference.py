"""README's settings table is the schema's own: regenerated, it reads the same."""
from __future__ import annotations

from tools import settings_reference


def test_readme_table_matches_the_schema():
    readme = settings_reference.README.read_text()
    assert settings_reference.current(readme) == settings_reference.reference(), \
        "README.md's settings table is out of date: run make settings-doc"


def test_every_key_has_a_row_with_a_meaning():
    rows = list(settings_reference.rows())
    keys = [key.strip("`") for key, *_ in rows]
    assert len(keys) == len(set(keys))
    assert {"libvirtUri", "network.cidr", "hypervisors[].hostKey", "controlNodes.nodes[].ip",
            "sharedStorage.source.hostDevice", "cluster.tcpKeepalive.probes",
            "tls.requireMysqlTls", "rhsmPassword"} <= set(keys)
    assert [key for key, _, allowed, meaning in rows if not allowed or not meaning] == []


def test_the_table_shows_defaults_choices_and_ranges():
    rows = {key.strip("`"): (default, allowed) for key, default, allowed, _ in
            settings_reference.rows()}
    assert rows["network.mode"] == ("`nat`", "`nat`, `isolated`, `bridge`")
    assert rows["controlSize.memoryMib"] == ("`4096`", "an integer from 2048 to 16777216")
    assert rows["vip"][0] == "`.10` of network.cidr"
    assert rows["haclusterPassword"][1].endswith("(secret)")


def test_check_finds_a_stale_table_and_writing_fixes_it(tmp_path, monkeypatch):
    original = settings_reference.README.read_text()
    stale = tmp_path / "README.md"
    stale.write_text(original.replace("| `vip` |", "| `vipp` |"))
    monkeypatch.setattr(settings_reference, "README", stale)
    assert settings_reference.main(["--check"]) == 1
    assert settings_reference.main([]) == 0
    assert settings_reference.main(["--check"]) == 0
    assert stale.read_text() == original
