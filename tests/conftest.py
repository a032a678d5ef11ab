"""Shared fixtures: the program's resource graph under Pulumi's mock runtime, and rendered dirs."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from tools import render


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
    """render.py's output directory per stack, written once per session."""
    cache: dict[str, Path] = {}

    def get(stack: str) -> Path:
        if stack not in cache:
            out = tmp_path_factory.mktemp(f"rendered-{stack}")
            render.write(render.run_program(stack_config(stack), stack), out)
            cache[stack] = out
        return cache[stack]

    return get
