"""The data files the stack reads follow their schemas (data_schema.py): a key no schema names is
an error naming it, not a line silently ignored."""
from __future__ import annotations

import copy

import pytest
import yaml

import data_schema
import openstack_packages
from components import endpoints, openstack_config

FILES = {
    "repoint": (data_schema.RepointRules, endpoints.TEMPLATES / "repoint.yaml"),
    "config-files": (data_schema.ConfigFiles, openstack_config.FILES),
    "packages": (data_schema.Packages, openstack_packages.DATA),
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_data_file_follows_its_schema(name):
    schema, path = FILES[name]
    assert data_schema.load(schema, path)


# One misspelling per file, and where it would have been ignored.
MISSPELT = {
    "repoint": (lambda d: d["files"][0].update(role=d["files"][0].pop("roles")),
                "files.0.role"),
    "config-files": (lambda d: d["files"][0].update(servics=d["files"][0].pop("services")),
                     "files.0.servics"),
    "packages": (lambda d: d["services"]["keystone"].update(need=["glance-api"]),
                 "services.keystone.need"),
}


@pytest.mark.parametrize("name", sorted(MISSPELT))
def test_a_misspelt_key_is_an_error_naming_it(name):
    schema, path = FILES[name]
    data = copy.deepcopy(yaml.safe_load(path.read_text()))
    misspell, key = MISSPELT[name]
    misspell(data)
    with pytest.raises(data_schema.DataFileError) as caught:
        data_schema.checked(schema, data, path)
    assert f"{path.name}: {key}: Extra inputs are not permitted" in str(caught.value)


def test_a_value_outside_its_set_is_an_error():
    schema, path = FILES["config-files"]
    data = yaml.safe_load(path.read_text())
    data["files"][0]["kind"] = "toml"
    with pytest.raises(data_schema.DataFileError, match="files.0.kind"):
        data_schema.checked(schema, data, path)
