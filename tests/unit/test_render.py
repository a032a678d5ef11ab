"""tools/render's artifacts(): every text the program makes, with its role and kind."""
from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET

import pytest
import yaml

from tests.conftest import STACKS, stack_config
from tools import render


@pytest.mark.parametrize("stack", STACKS)
def test_every_artifact_parses_as_its_kind(stack):
    found = render.artifacts(stack_config(stack), stack)
    kinds = {a.kind for a in found}
    assert kinds == {"shell", "xml", "yaml", "config"}
    for artifact in found:
        if artifact.kind == "shell":
            result = subprocess.run(["bash", "-n"], input=artifact.text, capture_output=True,
                                    text=True)
            assert result.returncode == 0, (artifact.resource, artifact.role, result.stderr)
        elif artifact.kind == "xml":
            ET.fromstring(artifact.text)
        elif artifact.kind == "yaml":
            assert isinstance(yaml.safe_load(artifact.text), dict)
            if artifact.role == "user-data":
                assert artifact.text.startswith("#cloud-config\n")
        else:
            assert artifact.text.strip()
        # The user-data holds the node's host key: the only text secret as a whole.
        assert artifact.secret == (artifact.role == "user-data"), artifact.resource
    assert {a.role for a in found} >= {"create", "delete", "user-data", "meta-data",
                                       "network-config", "xslt", "source"}
