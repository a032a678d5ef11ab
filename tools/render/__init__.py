"""The render: the real program under Pulumi's mock runtime, with everything the stack would run
or ship written out (`python -m tools.render`; what it writes: cli.py). A module per job:

- crypto: deterministic stand-ins for the keys, certificates and local output the stack gets;
- config: the stack file's config as handed to the program, secrets as placeholders;
- mocks: the provider stand-ins and the monitor recording every registration;
- graph: one run as a graph to query (the tests'), and every text it runs or ships;
- manifest: DIR, its files and its manifest.json;
- cli: the command line.

Below: the names the tests and the lab use.
"""
from tools.render.cli import main
from tools.render.config import ROOT, config_secret, stack_config
from tools.render.crypto import EPOCH, stand_in_stdout
from tools.render.graph import Artifact, Graph, artifacts, artifacts_of, run_mocked, run_program
from tools.render.manifest import write
from tools.render.mocks import (COPY, DOMAIN, LOCAL, NETWORK, PROVIDER, REMOTE, SEED, VOLUME,
                                RecordingMonitor, Registration, RenderMocks)

__all__ = ["COPY", "DOMAIN", "EPOCH", "LOCAL", "NETWORK", "PROVIDER", "REMOTE", "ROOT", "SEED",
           "VOLUME", "Artifact", "Graph", "RecordingMonitor", "Registration", "RenderMocks",
           "artifacts", "artifacts_of", "config_secret", "main", "run_mocked", "run_program",
           "stack_config", "stand_in_stdout", "write"]
