"""Shared fixtures: the program's resource graph under Pulumi's mock runtime, and rendered dirs."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
from hypothesis import Phase
from hypothesis import settings as hypothesis_settings

from tools import render

# Every stack file's name: Pulumi.<stack>.yaml.
STACKS = sorted(p.name.split(".")[1] for p in render.ROOT.glob("Pulumi.*.yaml"))

# Property tests: `ci` (the default) draws the same examples every run, keeps no database and
# reports a failing example as found (shrinking one that renders the stack takes many minutes);
# HYPOTHESIS_PROFILE=explore searches longer, at random, shrinks, and remembers failures.
hypothesis_settings.register_profile("ci", max_examples=8, derandomize=True, database=None,
                                     deadline=None, print_blob=True,
                                     phases=[Phase.explicit, Phase.generate])
hypothesis_settings.register_profile("explore", max_examples=100, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def stack_config(stack: str, **overrides) -> dict:
    """Pulumi.<stack>.yaml's config with top-level keys replaced by `overrides`."""
    raw = copy.deepcopy(render.stack_config(stack))
    raw.update(overrides)
    return raw


@pytest.fixture(scope="session")
def dev_graph() -> render.Graph:
    return render.run_program(stack_config("dev"), "dev")


@pytest.fixture(scope="session")
def rendered(tmp_path_factory):
    """The render's output directory per stack, written once per session."""
    cache: dict[str, Path] = {}

    def get(stack: str) -> Path:
        if stack not in cache:
            out = tmp_path_factory.mktemp(f"rendered-{stack}")
            render.write(render.run_program(stack_config(stack), stack), out)
            cache[stack] = out
        return cache[stack]

    return get
