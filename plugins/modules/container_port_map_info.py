#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: container_port_map_info
short_description: List every published port of a Docker host, hotport's and Docker's own
version_added: 1.0.0
description:
  - Reads the live ruleset (the iptables variant that holds Docker's chains, or with Docker's nftables
    backend Docker's and hotport's nft tables; on a rootless engine its namespace's rules and RootlessKit's
    ports), hotport's sidecars and the Docker API, and lists every host port that is forwarded to a
    container, whether Docker published it with C(-p) or P(hotport.docker.container_port_map#module) mapped it.
  - Flags hotport mappings that no longer hold. V(stale) when the container is gone, stopped, or at
    another address than the one the rule forwards to (it restarted); C(complete=false) when some of
    the rules Docker would write for it are missing. Re-running P(hotport.docker.container_port_map#module)
    or the reconciler service repairs both.
  - Flags clashes, one host port claimed by two owners. Docker's port allocator does not know
    hotport's mappings and can give the same port to a new C(-p) container later.
  - Changes nothing. Must run on the Docker host, as root (on a rootless engine, as the engine's own user).
author:
  - hotport developers (@hotport)
extends_documentation_fragment:
  - hotport.docker.docker
  - hotport.docker.docker.actiongroup_docker
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Changes nothing in any mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  container:
    description:
      - Only the mappings of this container (name or ID, as hotport's tag or Docker's address names it).
    type: str
  owner:
    description:
      - Only mappings of this owner.
    type: str
    choices: [hotport, docker]
  state_file:
    description:
      - The state file the mappings are recorded in (the role's reconciler uses C(/etc/hotport/mappings.json)), read
        for the end of each temporary mapping (RV(mappings[].expires_at)). A missing file means none; one that
        cannot be read is warned about.
    type: path
    default: /etc/hotport/mappings.json
    version_added: 1.1.0
requirements:
  - iptables (C(iptables-nft) or C(iptables-legacy), whichever holds Docker's chains)
seealso:
  - module: hotport.docker.container_port_map
"""

EXAMPLES = r"""
- name: Every published port of this host
  hotport.docker.container_port_map_info:
  register: published

- name: Fail when a hotport mapping no longer holds
  ansible.builtin.assert:
    that: published.mappings | selectattr('owner', 'equalto', 'hotport') | selectattr('stale') | list | length == 0
    fail_msg: "stale mappings: {{ published.mappings | selectattr('stale') | map(attribute='tag') | list }}"

- name: Mappings of one container
  hotport.docker.container_port_map_info:
    container: web
"""

RETURN = r"""
mappings:
  description: One item per published host port, sorted by protocol and port.
  returned: success
  type: list
  elements: dict
  contains:
    owner:
      description: V(hotport) for rules tagged by hotport and its sidecars, V(docker) for Docker's own C(-p) rules.
      type: str
      sample: hotport
    method:
      description: V(kernel) (rules in the host's firewall) or V(sidecar) (a proxy container Docker publishes).
      type: str
      sample: kernel
    sidecar:
      description: The name of the sidecar container (V(sidecar) items only).
      type: str
      returned: for sidecar mappings
      sample: hotport-web-tcp-8080
    protocol:
      description: V(tcp), V(udp) or V(sctp).
      type: str
      sample: tcp
    host_ip:
      description: Host address the port is published on; C(0.0.0.0) for every IPv4 address, C(::) for
        every IPv6 address (the rules of IPv6 mappings are in ip6tables).
      type: str
      sample: 0.0.0.0
    expires_at:
      description: When a temporary mapping ends (UTC; the module's O(hotport.docker.container_port_map#module:expires)),
        as O(state_file) records it; V(null) for a lasting one.
      type: str
      sample: "2026-12-07T13:00:00Z"
      version_added: 1.1.0
    expires_in:
      description: Seconds left until RV(mappings[].expires_at) (V(0) once it has come and the reconciler is removing it);
        V(null) for a lasting mapping.
      type: int
      sample: 3540
      version_added: 1.1.0
    host_port:
      description: Host port.
      type: int
      sample: 8080
    container_ip:
      description: Address the DNAT rule forwards to.
      type: str
      sample: 172.17.0.2
    container_port:
      description: Container port the DNAT rule forwards to.
      type: int
      sample: 80
    container:
      description: The container behind the mapping (hotport's by its tag, Docker's by address); null
        when no container is found.
      type: dict
      sample: {"id": "3f2a9c1b7e4d...", "name": "web", "running": true, "network": "bridge",
               "ip": "172.17.0.2", "ip6": "", "bridge": "docker0"}
    tag:
      description: hotport's rule comment C(hotport:<container short ID>:<protocol>/<host port>); empty
        for Docker's rules.
      type: str
      sample: hotport:3f2a9c1b7e4d:tcp/8080
    stale:
      description: Whether a hotport mapping points at a container that is gone, stopped, or now
        elsewhere.
      type: bool
      sample: false
    stale_reason:
      description:
        - "Why it is stale; empty when it is not: C(container removed), C(container stopped),
          C(address changed (...)), C(sidecar NAME not running); C(orphaned: container removed, N rule(s)
          left without their DNAT) for hotport rules of a removed container that no longer publish anything
          (the reconciler's passes, a run that maps the same host port, and
          O(hotport.docker.container_port_map#module:state=absent) with the container's ID remove them);
          C(incomplete: ...) when only the DNAT of an existing container's mapping is gone."
      type: str
      sample: address changed (container now at 172.17.0.3 on bridge)
    complete:
      description: Whether every rule Docker would write for this mapping is present (always true for
        Docker's own).
      type: bool
      sample: true
    allowed_sources:
      description: The sources a hotport mapping admits (empty for everyone, and for Docker's).
      type: list
      elements: str
      sample: ["10.20.0.0/16"]
    local_access:
      description: Whether a hotport mapping also serves loopback and hairpin traffic with its own rules.
      type: bool
      sample: false
    clashes_with:
      description:
        - Other owners of the same host port (hotport tags, or C(docker:<container>)), and for hotport
          mappings the host sockets listening on it (C(socket:<address>:<port>/<protocol>)), which the
          mapping hides from outside traffic. Docker's port allocator and host programs do not know
          hotport's mappings, so such clashes can arise after the mapping was made.
      type: list
      elements: str
      sample: []
engine:
  description: What was detected about the Docker engine, as P(hotport.docker.container_port_map#module)
    returns it.
  returned: success
  type: dict
  sample: {"version": "28.5.2", "api_version": "1.51", "firewall_backend": "iptables",
           "iptables": "iptables-nft", "ipv6": true, "layout": "docker28", "userland_proxy": true}
api_calls:
  description: The Docker API calls made, as C(METHOD PATH -> STATUS (MS ms)), in order.
  returned: when O(debug) is on, on failure too
  type: list
  elements: str
  sample: ["GET /version -> 200 (2 ms)", "GET /v1.44/containers/web/json -> 200 (3 ms)"]
"""

from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hotport.docker.plugins.module_utils import docker_api, docker_connection
from ansible_collections.hotport.docker.plugins.module_utils.apply import engine_facts
from ansible_collections.hotport.docker.plugins.module_utils.host import listeners
from ansible_collections.hotport.docker.plugins.module_utils.inventory import inventory, listed_once, with_ends
from ansible_collections.hotport.docker.plugins.module_utils.ownership import parse_owner_tag
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import PublisherError
from ansible_collections.hotport.docker.plugins.module_utils.publishers.registry import (
    ForeignEngineError, kernel_publisher, sidecar_snapshot)
from ansible_collections.hotport.docker.plugins.module_utils.runners import ModuleRunner
from ansible_collections.hotport.docker.plugins.module_utils.state_file import STATE_FILE, StateFileError, load_state


def argument_spec():
    spec = dict(
        container=dict(type="str"),
        owner=dict(type="str", choices=["hotport", "docker"]),
        state_file=dict(type="path", default=STATE_FILE),
    )
    spec.update(docker_connection.argument_spec())
    return spec


def wanted(item, container, owner):
    if owner and item["owner"] != owner:
        return False
    if not container:
        return True
    facts = item["container"] or {}
    # A removed container is known only by the short ID in our tag.
    tag = parse_owner_tag(item["tag"])
    ids = [facts.get("id") or "", tag[0] if tag else ""]
    return container == facts.get("name") or (len(container) >= 12 and any(
        known and (known.startswith(container) or container.startswith(known)) for known in ids))


def kernel_inventory(module, runner, client, engine, containers, sidecars):
    """The kernel publisher's items and the engine facts. Where kernel rules cannot be read (no root
    on a rootful engine, a rootless engine's namespace not enterable by this user, the nftables
    backend without its accept mark, an engine on another machine) but sidecars exist, a warning
    says so and the sidecars are listed alone."""
    if not client.connection.is_local():
        module.warn("only hotport's sidecars are listed: the engine is on another machine, whose kernel rules "
                    "(hotport's kernel mappings and Docker's own published ports) a run here cannot read.")
        return [], engine_facts(engine)
    try:
        publisher = kernel_publisher(runner, engine, client)
        snapshot = publisher.read()
        return inventory(publisher, snapshot, containers, listeners(runner)), engine_facts(engine, publisher, snapshot)
    except PublisherError as exc:
        if not sidecars and not isinstance(exc, ForeignEngineError):
            raise
        module.warn("only hotport's sidecars are listed; kernel mappings and Docker's published ports "
                    "cannot be read here: %s" % exc)
        return [], engine_facts(engine)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    client = None
    try:
        client = docker_api.connect_module(module)
        engine = docker_api.engine_info(client)
        containers = docker_api.container_facts(client)
        sidecars = sidecar_snapshot(client).items(containers)
        kernel, facts = kernel_inventory(module, ModuleRunner(module), client, engine, containers, sidecars)
    except (docker_api.ResolveError, PublisherError) as exc:
        module.fail_json(msg=str(exc), **docker_api.debug_fields(client))
    except docker_api.DockerError as exc:
        module.fail_json(msg="Docker API error: %s" % exc, **docker_api.debug_fields(client))
    try:
        entries = load_state(params["state_file"])
    except StateFileError as exc:
        module.warn("the ends of temporary mappings are not shown: %s" % exc)
        entries = []
    items = with_ends(listed_once(kernel, sidecars), entries, datetime.now(timezone.utc))
    module.exit_json(
        changed=False,
        mappings=[item for item in items if wanted(item, params["container"], params["owner"])],
        engine=facts,
        **docker_api.debug_fields(client))


if __name__ == "__main__":
    main()
