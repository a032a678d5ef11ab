# openstack-ha: `make up` deploys the dev stack, `make test` runs the test suite.
SHELL := /bin/bash
STACK ?= dev
VENV := .venv
PYTHON := $(VENV)/bin/python
# The embedded default backend (Pulumi.yaml) keeps state in ~/.pulumi-openstack-ha.
STATE_DIR := $(HOME)/.pulumi-openstack-ha

.PHONY: deps venv test lab lab-deps lab-vms lab-deps-vms bench bench-interrupted bench-maintenance up preview destroy render settings-doc pulumi-cli ephemeral render-diff

# Debian packages the tests run (listed in .ci/packages.txt); installs only what is missing.
deps:
	bash .ci/install-deps .ci/packages.txt

$(VENV)/.installed: requirements.txt requirements-test.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements.txt -r requirements-test.txt
	touch $@

venv: $(VENV)/.installed

# The fast suite: mock-runtime graph tests and every rendered artifact through its real tool,
# one pytest-xdist worker per CPU (most of it is `pcs` and rendered scripts, one process each).
test: deps venv
	$(PYTHON) -m pytest -q -n auto

# The lab: the stack's own steps on libvirt LXC containers in a private network namespace
# (tests/lab; converge, checks, Tempest's smoke selection, a failover round per layout, re-run,
# delete). `make lab-vms` runs the same tests on qemu VMs under software emulation (slow).
# PROFILE=fast for the quick failover settings (lab/session.py).
PROFILE ?= default
lab-deps: deps
	bash .ci/install-deps lab/host-packages.txt

lab-deps-vms: lab-deps
	bash .ci/install-deps lab/host-packages-vms.txt

lab: lab-deps venv
	OSHA_LAB_PROFILE=$(PROFILE) $(PYTHON) -m pytest -q -s -m lab tests/lab --durations=0

lab-vms: lab-deps-vms venv
	OSHA_LAB_SUBSTRATE=vms OSHA_LAB_PROFILE=$(PROFILE) $(PYTHON) -m pytest -q -s -m lab tests/lab --durations=0

# The failover drill bench: 3 rounds of every fault on every control node, both HAProxy layouts;
# a table, bench/results/failover-$(PROFILE).json and .png.
bench: lab-deps venv
	$(PYTHON) bench/failover.py --profile $(PROFILE)

# The interrupted-converge bench: a clean converge, then RUNS fresh labs each killed at a seeded
# step and converged again, every one judged (bench/results/interrupted-fast.json; ~12 min each).
RUNS ?= 10
bench-interrupted: lab-deps venv
	$(PYTHON) bench/interrupted.py --profile fast --runs $(RUNS)

# The maintenance bench: the core group's holder, then another control node, each taken out,
# rebooted and brought back with every API probed (bench/results/maintenance-fast.json).
bench-maintenance: lab-deps venv
	$(PYTHON) bench/maintenance.py --profile fast

render: venv
	$(PYTHON) -m tools.render --stack $(STACK) --out rendered/$(STACK)

# README's settings table, written from the schema in settings.py.
settings-doc: venv
	$(PYTHON) tools/settings_reference.py

pulumi-cli:
	@command -v pulumi >/dev/null || { echo "the Pulumi CLI is required: https://www.pulumi.com/docs/install/" >&2; exit 1; }
	@[ -n "$${PULUMI_CONFIG_PASSPHRASE+set}" ] || { echo "export PULUMI_CONFIG_PASSPHRASE (the file backend encrypts stack secrets with it)" >&2; exit 1; }
	mkdir -p $(STATE_DIR)

# Deploy: local file state backend, qemu:///system, stack $(STACK).
up: pulumi-cli venv
	pulumi stack select --create $(STACK)
	pulumi up --yes --stack $(STACK)

preview: pulumi-cli venv
	pulumi stack select --create $(STACK)
	pulumi preview --diff --stack $(STACK)

destroy: pulumi-cli
	pulumi destroy --yes --stack $(STACK)

# A throw-away stack from Pulumi.$(BASE).yaml: up, smoke checks, then always destroy + stack rm.
BASE ?= $(STACK)
ephemeral: pulumi-cli venv
	$(PYTHON) tools/ephemeral.py --base $(BASE)

# What a change does to the rendered scripts: make render-diff FROM=origin/main TO=HEAD
FROM ?= origin/main
TO ?= HEAD
render-diff: venv
	mkdir -p rendered
	PYTHON=$(PYTHON) tools/render_diff.sh $(FROM) $(TO) rendered/render.diff
