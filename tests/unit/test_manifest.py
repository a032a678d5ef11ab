"""manifest_schema.py: the render's manifest is written and read through one schema."""
from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

import manifest_schema
from manifest_schema import Manifest


def test_a_written_manifest_loads_and_writes_back_the_same_text(rendered, tmp_path):
    out = rendered("dev")
    manifest = Manifest.load(out)
    # Nodes' hosts name their port, the local one has none: both must write back as they were.
    assert {r.host.port is None for r in manifest.resources if r.host} == {True, False}
    manifest.write(tmp_path)
    assert (tmp_path / manifest_schema.FILE).read_text() == \
        (out / manifest_schema.FILE).read_text()
    assert Manifest.load(tmp_path) == manifest


@pytest.mark.parametrize("where", ["top", "resource", "host", "node"])
def test_a_misspelt_key_is_refused_by_name(rendered, tmp_path, where):
    document = json.loads((rendered("dev") / manifest_schema.FILE).read_text())
    remote = next(r for r in document["resources"] if r["host"] and r["host"].get("user"))
    parent, key, misspelt = {"top": (document, "vip", "vip_address"),
                             "resource": (remote, "waits_for", "wait_for"),
                             "host": (remote["host"], "host_key", "hostkey"),
                             "node": (document["nodes"][0], "memory_mib", "memory")}[where]
    parent[misspelt] = parent.pop(key)
    (tmp_path / manifest_schema.FILE).write_text(json.dumps(document))
    with pytest.raises(ValidationError) as refused:
        Manifest.load(tmp_path)
    assert misspelt in str(refused.value) and "Extra inputs are not permitted" in str(refused.value)
