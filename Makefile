# The two commands in README: `make demo` and `make test`. Both set up a fresh machine first.
SHELL := /bin/bash
VENV := .build/venv
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.build
export PATH := $(CURDIR)/$(VENV)/bin:/usr/local/sbin:/usr/sbin:/sbin:$(PATH)

.PHONY: setup engine demo demo-clean test unit golden netns e2e sanity units integration galaxy docs release lint ee bench-setup bench bench-ansible bench-dind clean molecule molecule-all compat fresh

setup:
	scripts/setup.sh

engine: setup
	scripts/dockerd.sh start
	images/target/build.sh hotport/target

DEMO := ansible-playbook -i localhost, -c local -e ansible_python_interpreter=$(CURDIR)/$(VENV)/bin/python scripts/demo.yml

demo: engine
	$(DEMO)

# The demo's rules, container and client namespace, in whatever state they are; a no-op once gone (issue 29).
demo-clean: engine
	$(DEMO) --tags cleanup

unit: setup
	python -m pytest -q tests/unit

# After a deliberate change of what a publisher renders: rewrite the golden rulesets, then review their diff.
golden: setup
	python tests/mapping_shapes.py

# pytest suites against real iptables and nft in throwaway network namespaces (no engine).
netns: setup
	python -m pytest -q tests/netns

# Most on this host's engine; the nftables backend's (with and without firewalld) on a Docker 29.7.2 DinD host.
e2e: engine
	images/dind/build.sh sid-29
	python -m pytest -q tests/e2e

# ansible-test on every ansible-core line requires_ansible admits (tests/ansible-test/run.sh), or LINE=2.21.
LINE ?= all
sanity: setup
	tests/ansible-test/run.sh $(LINE) sanity

units: setup
	tests/ansible-test/run.sh $(LINE) units

# ansible-test integration (tests/integration/targets/) against this machine's engine and firewall.
integration: engine
	tests/ansible-test/run.sh 2.19 integration --allow-destructive

# galaxy-importer on the built tarball, as Galaxy runs it on an upload.
galaxy: setup
	tests/galaxy/run.sh

# The docsite (modules, role, guides in docs/docsite/rst/) built by antsibull-docs and Sphinx.
docs: setup
	tests/docs/run.sh

# Cut the release galaxy.yml names: the fragments into changelogs/changelog.yaml and CHANGELOG.rst.
release: setup
	"$$(scripts/venv.sh .build/venv-release requirements-release.txt)/bin/antsibull-changelog" release

lint: setup
	ansible-lint

# The execution environment's build context (building the image needs a registry: see CONTRIBUTING.md).
ee: setup
	rm -rf .build/collection .build/ee
	ansible-galaxy collection build --output-path .build/collection
	ansible-builder create -f execution-environment.yml -c .build/ee
	grep -q 'ansible-galaxy collection install /tmp/hotport/hotport-docker-' .build/ee/*file
	ls .build/ee/_build/hotport/hotport-docker-*.tar.gz

# Fastest and most telling first, so that a fault surfaces within minutes; each stage timed (scripts/stage.sh).
STAGE := scripts/stage.sh
test: engine
	$(STAGE) unit+netns python -m pytest -q tests/unit tests/netns
	$(STAGE) ansible-lint ansible-lint
	$(STAGE) sanity tests/ansible-test/run.sh all sanity
	$(STAGE) units tests/ansible-test/run.sh all units
	$(STAGE) galaxy tests/galaxy/run.sh
	$(STAGE) docs tests/docs/run.sh
	$(STAGE) integration $(MAKE) --no-print-directory integration
	$(STAGE) ee $(MAKE) --no-print-directory ee
	$(STAGE) e2e sh -c 'images/dind/build.sh sid-29 && python -m pytest -q tests/e2e'
	$(STAGE) molecule $(MAKE) --no-print-directory molecule-all
	$(STAGE) compat $(MAKE) --no-print-directory compat
	$(STAGE) fresh $(MAKE) --no-print-directory fresh

# The declared floors (Python 3.7 on hosts, ansible-core 2.17) checked for real (issue 13).
compat: engine
	tests/compat/run.sh

# `make demo` from a fresh clone on a bare Debian minbase (python3 and make only) (issue 17).
fresh: engine
	tests/fresh/run.sh

# Benchmarks (issue 5): results and plots in docs/bench/, read in docs/docsite/rst/guide_benchmarks.rst.
bench-setup: engine
	pip install -q -r bench/requirements.txt
	images/bench/build.sh hotport/bench

bench: bench-setup
	python bench/control_plane.py
	python bench/data_path.py
	python bench/plot.py

# The module through ansible-playbook on Docker-in-Docker hosts, minus a ping task (issue 14).
bench-ansible: bench-setup
	images/dind/build.sh sid-29
	python bench/through_ansible.py
	python bench/plot.py

# The data path on Docker 29.7.2 per firewall backend, nftables and iptables, in DinD hosts (issue 12).
bench-dind: bench-setup
	images/dind/build.sh sid-29
	python bench/data_path_dind.py

clean:
	scripts/dockerd.sh stop
	rm -rf .build

# Real engines in Docker-in-Docker (issue 3): SUITE=bullseye (20.10.5, Debian 11) | bookworm (20.10) | trixie (26.1) | sid (28.5) | sid-29 (29.7.2)
SUITE ?= bookworm
molecule: engine
	images/dind/build.sh $(SUITE)
	HOTPORT_SUITE=$(SUITE) molecule test -s engine

# ... and Docker 29.7.2's nftables backend (the nftables publisher, and the sidecar without the
# accept mark), rootless Docker (the sidecar as an ordinary user), the fleet (rollout.yml on four
# hosts) and restart (reconciler, firewalld) scenarios.
molecule-all: engine
	for suite in bullseye bookworm trixie sid sid-29; do images/dind/build.sh $$suite || exit 1; done
	for suite in bullseye bookworm trixie sid sid-29; do HOTPORT_SUITE=$$suite molecule test -s engine || exit 1; done
	molecule test -s nftables
	molecule test -s rootless
	molecule test -s fleet
	molecule test -s restart
