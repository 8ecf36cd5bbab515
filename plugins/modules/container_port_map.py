#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: container_port_map
short_description: Publish ports of a running Docker container, exactly as C(docker run -p) would
version_added: 1.0.0
description:
  - Maps host ports to ports of an B(already running) container without restarting it. With Docker's
    iptables firewall backend (the default; Docker 20.10 to 29) it writes the same iptables rules
    Docker itself writes for C(-p) on the detected engine generation. With Docker 29's nftables
    backend it writes hotport's own nft tables (C(ip hotport), C(ip6 hotport)) with the DNATs, and sets the
    mark of Docker's C(bridge-accept-fwmark) option on exactly those flows, so that Docker accepts them.
  - Resolves the container with the Docker API (per-network address, bridge name), detects the engine
    layout from the live ruleset (iptables-nft or iptables-legacy, userland proxy, Docker 28 DROP
    rules), diffs the rules it wants against the rules it tagged earlier, and applies every change in
    one transaction (C(iptables-restore --noflush) per family, rolled back together; one C(nft -f) batch).
    A failure leaves the ruleset as it was.
  - Every rule it writes carries the comment C(hotport:<container short ID>:<protocol>/<host port>).
    Rules without that comment are never modified; chains are never flushed.
  - Re-running after the container restarted with a new address moves the mapping; re-running after
    dockerd restarted (which flushes Docker's chains) writes it again.
  - Must run on the Docker host itself, as root (on a rootless engine, as the engine's own user).
author:
  - hotport developers (@hotport)
extends_documentation_fragment:
  - hotport.docker.docker
  - hotport.docker.docker.actiongroup_docker
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Shows the affected rules before and after, in iptables-save syntax (nft syntax with the nftables backend).
  platform:
    platforms: posix
options:
  container:
    description:
      - Name or ID of the container.
      - With O(state=absent), the ID (at least its first 12 characters) of a container that no longer
        exists removes that container's leftover mappings.
    type: str
    required: true
  ports:
    description:
      - Ports to map. Each item is either Docker's C(-p) syntax
        C([HOST_IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/tcp|udp|sctp]) or a dict with the keys
        C(host_ip), C(host_port), C(container_port), C(protocol) (default C(tcp)), and optionally
        C(allowed_sources) and C(local_access), which override the options of the same name for that item.
      - Ranges map port by port and must have equal lengths; the host port is always explicit.
      - A host IP limits the mapping to that address of the host; without one, every IPv4 address.
      - An IPv6 host IP (C([::]:8080:80) for every IPv6 address, or C([2001:db8::1]:8080:80)) maps the
        container's IPv6 address with ip6tables rules, as Docker does on an engine with C(ip6tables) on;
        the container needs an IPv6 address on O(network). To serve both families, give both items
        (C(8080:80) and C([::]:8080:80)). C(::1) cannot be mapped (Linux never routes it off the host).
      - Required with O(state=present). With O(state=absent) and no ports, every mapping of the container
        is removed.
    type: list
    elements: raw
  allowed_sources:
    description:
      - IPv4 and IPv6 addresses or networks (CIDR) that may reach these mappings; packets from any other
        source are dropped on the host before the container. Docker has no such option.
      - Each mapping takes the networks of its own family; a mapping whose family has none is refused.
        Link-local IPv6 sources (C(fe80::/10)) are refused, as Docker never forwards them.
      - Empty (the default) lets every source through, as C(docker run -p) does.
    type: list
    elements: str
    default: []
  local_access:
    description:
      - Also serve the mappings to the host itself on C(127.0.0.1:HOST_PORT) and to containers on
        this host reaching C(HOST_IP:HOST_PORT) (hairpin), with kernel rules only, as Docker does
        with C(userland-proxy=false) (C(route_localnet) on the bridge, OUTPUT DNAT, MASQUERADE of
        local sources).
      - With the userland proxy off, Docker's own rules already do this and nothing is added.
      - A mapping on a loopback host IP (C(127.0.0.1:8080:80)) always gets loopback access.
      - For IPv6 mappings it adds the hairpin only; the host reaches them on its own IPv6 addresses
        through Docker's rules.
    type: bool
    default: false
  network:
    description:
      - The container network to forward to. Required only when the container is on more than one
        network; the error lists them.
    type: str
  state:
    description:
      - V(present) maps the ports; V(absent) removes the mappings of these host ports (of all host ports
        when O(ports) is empty).
    type: str
    choices: [present, absent]
    default: present
  exclusive:
    description:
      - When V(true), mappings of this container that are not in O(ports) are removed.
    type: bool
    default: false
  method:
    description:
      - V(kernel) publishes with the host's kernel rules (iptables in Docker's chains, or hotport's nft
        tables with Docker's nftables backend); it needs root on the Docker host. On a rootless engine it
        needs no root (run it as the engine's user with O(docker_host) its unix socket); the rules go into the
        engine's network namespace and one RootlessKit port per mapping brings the host port there, as
        Docker's own C(-p) does (IPv4 only; O(allowed_sources) is refused, RootlessKit's port drivers
        do not keep the client's address).
      - V(sidecar) publishes through Docker itself, with one proxy container per mapping (C(socat) from
        O(sidecar_image)) on the target's network, published as C(HOST_IP:HOST_PORT:PORT/PROTO), restart
        policy C(unless-stopped), labelled C(io.hotport.sidecar). It needs only the Docker API, so it works
        with Docker's nftables backend without C(bridge-accept-fwmark), and a remote
        O(docker_host). On a user-defined network it forwards to the container's name (Docker's DNS
        follows it across restarts); on the default bridge to its address (a re-run or the reconciler
        re-creates the sidecar when that changes). The container sees connections from the sidecar's
        address, not the client's. O(allowed_sources) is refused with this method (the sidecar cannot
        see the client's address behind Docker's userland proxy); loopback and other containers are
        served as Docker serves any C(-p) port, whatever O(local_access) says.
    type: str
    choices: [kernel, sidecar]
    default: kernel
  sidecar_image:
    description:
      - With O(method=sidecar), the image of the proxy containers. Any image with C(socat) on its PATH
        works; the module sets the entrypoint and command, and runs it as nobody (uid 65534) with every
        capability dropped, a read-only root filesystem, C(no-new-privileges) and pids and memory limits.
        Pulled when missing.
      - The default is C(alpine/socat:1.8.0.1) pinned by its digest, so that what runs cannot change
        under the tag.
    type: str
    default: alpine/socat:1.8.0.1@sha256:e899028c84c1a1e65bb14821b0802a683a2cffbff96c9ac02ff1d9cbb03f64e6
  state_file:
    description:
      - Record the request in this JSON file, the list of mappings the reconciler service
        C(hotport-reconcile) restores after dockerd or the container restarts (role
        P(hotport.docker.port_map#role)). The role uses C(/etc/hotport/mappings.json).
      - V(present) adds these ports to the container's entry (replacing a host port given again;
        with O(exclusive), the entry holds exactly these); V(absent) takes them out (all of them
        without O(ports)).
      - The file is written atomically and only after the rules were applied. Without this
        option no file is touched.
    type: path
  expires:
    description:
      - Make the mapping of these O(ports) temporary, for a duration (V(30m), V(2h), V(1d12h), or seconds) or
        until a time (ISO 8601 with its zone, V(2026-12-24T18:00:00Z)). The reconciler service removes it at
        that moment (within a second), and a boot or restart after it does not bring it back.
      - Needs O(state_file), where the end is recorded per port. A duration given again keeps the recorded end
        (a re-run is V(changed=false)); give a time to move the end, or leave this option out to make the
        ports last.
      - P(hotport.docker.container_port_map_info#module) shows the end and the seconds left.
    type: str
    version_added: 1.1.0
requirements:
  - iptables (C(iptables-nft) or C(iptables-legacy), whichever holds Docker's chains), or with Docker's nftables
    backend nft (the nftables package) and dockerd's C(bridge-accept-fwmark) option
  - conntrack, to clear stale UDP flows when a UDP port is mapped (optional)
  - on a rootless engine, nsenter (util-linux) and RootlessKit's API socket (RootlessKit 1.1 or newer)
notes:
  - Docker's port allocator does not know these mappings. A host port mapped here can later be given
    by Docker to a new C(-p) container; hotport refuses to map a port Docker already publishes or
    a socket on the host listens on, and a host IP that is not on the host.
    P(hotport.docker.container_port_map_info#module) reports clashes that arise later.
  - Docker's nftables firewall backend (Docker 29, opt-in) needs C(bridge-accept-fwmark) in dockerd's configuration
    (for example the key C(bridge-accept-fwmark) with value C(0x4000000/0x4000000) in C(daemon.json), then a dockerd
    restart); without it the run is refused with that advice.
  - On a rootless engine RootlessKit's ports live in its memory and a restarted engine has a new network
    namespace; the reconciler, run as the engine's user with the mappings' O(state_file), writes both again.
  - With the userland proxy on (Docker's default), C(127.0.0.1:HOST_PORT) on the host itself and other
    containers reaching C(HOST_IP:HOST_PORT) are served only with O(local_access).
  - IPv6 mappings need an engine that writes ip6tables rules (C(ip6tables) set to true in C(daemon.json), the
    default from Docker 27; Docker 20.10 to 26 also need C(experimental) set to true); otherwise they are
    refused with that advice. On Docker 28 and later the IPv6 DNAT also excludes link-local sources (C(fe80::/10)), as Docker writes.
seealso:
  - name: Docker port publishing
    description: How Docker publishes ports, engine by engine.
    link: https://docs.docker.com/engine/network/port-publishing/
"""

EXAMPLES = r"""
- name: Publish port 80 of the running container web on host port 8080
  hotport.docker.container_port_map:
    container: web
    ports:
      - "8080:80"

- name: Several ports, one address, a range and UDP, on a chosen network
  hotport.docker.container_port_map:
    container: db
    network: backend
    ports:
      - "127.0.0.1:15432:5432"
      - "9000-9002:9000-9002"
      - host_port: 5353
        container_port: 53
        protocol: udp

- name: Port 8443 on every IPv4 and every IPv6 address (the container's network has IPv6)
  hotport.docker.container_port_map:
    container: web
    ports: ["8443:443", "[::]:8443:443"]

- name: Only the office network may reach the database; the host itself too, on 127.0.0.1
  hotport.docker.container_port_map:
    container: db
    ports: ["5432:5432"]
    allowed_sources: [10.20.0.0/16, 192.0.2.7]
    local_access: true

- name: Open the database for an hour; the role's reconciler removes the mapping then
  hotport.docker.container_port_map:
    container: db
    ports: ["15432:5432"]
    allowed_sources: [10.20.0.7]
    expires: 1h
    state_file: /etc/hotport/mappings.json

- name: Keep exactly these mappings for web, removing any other
  hotport.docker.container_port_map:
    container: web
    ports: ["8080:80"]
    exclusive: true

- name: Close one mapping
  hotport.docker.container_port_map:
    container: web
    ports: ["8080:80"]
    state: absent

- name: Remove every mapping of a container that was removed (by its ID)
  hotport.docker.container_port_map:
    container: 3f2a9c1b7e4d
    state: absent
"""

RETURN = r"""
container:
  description: The container the mapping points to.
  returned: success
  type: dict
  contains:
    id:
      description: Full container ID.
      type: str
      sample: 3f2a9c1b7e4d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8
    name:
      description: Container name.
      type: str
      sample: web
    ip:
      description: The container's IPv4 address on O(network); empty for removals.
      type: str
      sample: 172.17.0.2
    ip6:
      description: The container's IPv6 address on O(network); empty without IPv6 and for removals.
      type: str
      sample: fd00:dead::2
    network:
      description: Docker network forwarded to; empty for removals.
      type: str
      sample: bridge
    bridge:
      description: Linux bridge of that network; empty for removals.
      type: str
      sample: docker0
engine:
  description: What was detected about the Docker engine.
  returned: success
  type: dict
  contains:
    version:
      description: Docker engine version.
      type: str
      sample: 20.10.24+dfsg1
    api_version:
      description: Docker API version of the engine.
      type: str
      sample: "1.41"
    firewall_backend:
      description: Docker's firewall backend (C(iptables) on engines that do not report one).
      type: str
      sample: iptables
    publisher:
      description: How the mapping is published, V(iptables) (Docker's chains) or V(nftables) (hotport's own tables).
      type: str
      sample: iptables
    iptables:
      description: The iptables variant that holds Docker's chains (iptables publisher).
      type: str
      sample: iptables-nft
    table:
      description: hotport's IPv4 table (nftables publisher; the IPv6 one is C(ip6 hotport)).
      type: str
      sample: ip hotport
    accept_mark:
      description: The mark and mask of Docker's C(bridge-accept-fwmark) that hotport sets (nftables publisher).
      type: str
      sample: 0x4000000/0x4000000
    ipv6:
      description: Whether Docker writes ip6tables rules on this engine, so that IPv6 mappings are possible.
      type: bool
      sample: false
    layout:
      description: V(classic) (Docker 20.10 to 27), V(docker28) (Docker 28 and later, iptables backend) or
        V(nftables) (Docker's nftables backend).
      type: str
      sample: classic
    userland_proxy:
      description: Whether Docker's userland proxy is on (iptables publisher).
      type: bool
      sample: true
rules:
  description: Rules written and deleted by this run (or that would be, in check mode), in iptables-save
    syntax (ip6tables rules start with C(-6)), or as C(nft add rule) commands with the nftables backend.
  returned: success
  type: dict
  contains:
    added:
      description: Rules added.
      type: list
      elements: str
      sample:
        - "-t nat -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -m comment --comment hotport:3f2a9c1b7e4d:tcp/8080
          -j DNAT --to-destination 172.17.0.2:80"
    removed:
      description: Rules deleted.
      type: list
      elements: str
      sample: []
state_file_changed:
  description: Whether O(state_file) was (or, in check mode, would be) rewritten.
  returned: success
  type: bool
  sample: false
expires_at:
  description: The recorded end of each temporary port of the request (UTC), by its C(-p) form; empty when they last.
  returned: success
  type: dict
  sample: {"5432:5432/tcp": "2026-12-07T13:00:00Z"}
  version_added: 1.1.0
mappings:
  description: Every hotport mapping of this container after the run.
  returned: success
  type: list
  elements: dict
  sample: [{"host_ip": "0.0.0.0", "host_port": 8080, "container_port": 80, "protocol": "tcp",
            "allowed_sources": [], "local_access": false}]
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
from ansible_collections.hotport.docker.plugins.module_utils.desired import REQUEST_FAILURES, apply_request, request_mappings
from ansible_collections.hotport.docker.plugins.module_utils.expiry import ExpiryError, parse_expires
from ansible_collections.hotport.docker.plugins.module_utils.publishers.sidecar import DEFAULT_IMAGE as DEFAULT_SIDECAR_IMAGE
from ansible_collections.hotport.docker.plugins.module_utils.runners import ModuleRunner
from ansible_collections.hotport.docker.plugins.module_utils.state_file import (
    StateFileError, entry_matches, load_state, record_request, update_state)


def argument_spec():
    spec = dict(
        container=dict(type="str", required=True),
        ports=dict(type="list", elements="raw"),
        network=dict(type="str"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        exclusive=dict(type="bool", default=False),
        allowed_sources=dict(type="list", elements="str", default=[]),
        local_access=dict(type="bool", default=False),
        method=dict(type="str", default="kernel", choices=["kernel", "sidecar"]),
        sidecar_image=dict(type="str", default=DEFAULT_SIDECAR_IMAGE),
        state_file=dict(type="path"),
        expires=dict(type="str"),
    )
    spec.update(docker_connection.argument_spec())
    return spec


def record(params, endpoint, check_mode):
    """Keep the request in the state file the reconciler service re-applies -> (changed, the
    recorded ends of its ports). The file is read anew under its lock: other runs may have recorded
    theirs since this one started."""
    mappings = request_mappings(params)
    written = []

    def change(entries):
        written[:] = record_request(entries, params, endpoint, mappings)
        return written

    changed = update_state(params["state_file"], change, check_mode)
    asked = set(mapping.spec() for mapping in mappings)
    ends = {}
    for entry in written:
        if entry_matches(entry, endpoint, params["container"], params["method"]):
            ends = dict((spec, end) for spec, end in (entry.get("expires_at") or {}).items() if spec in asked)
    return changed, ends


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=[("state", "present", ("ports",))],
        required_by={"expires": "state_file"},
        supports_check_mode=True,
    )
    params = module.params
    recorded, ends = False, {}
    client = None
    try:
        if params["expires"]:
            if params["state"] != "present":
                raise ExpiryError("expires goes with state=present (a removal has no end); leave it out.")
            parse_expires(params["expires"], datetime.now(timezone.utc))  # a bad one stops us before any change
        if params["state_file"]:
            load_state(params["state_file"])  # an unreadable or unsafe file stops us before any change
        client = docker_api.connect_module(module)
        engine = docker_api.engine_info(client)
        endpoint, outcome = apply_request(ModuleRunner(module), client, engine, params, module.check_mode)
        if params["state_file"]:
            recorded, ends = record(params, endpoint, module.check_mode)
    except REQUEST_FAILURES + (StateFileError, ExpiryError) as exc:
        module.fail_json(msg=str(exc), **docker_api.debug_fields(client))
    except docker_api.DockerError as exc:
        module.fail_json(msg="Docker API error: %s" % exc, **docker_api.debug_fields(client))

    for warning in outcome.warnings:
        module.warn(warning)
    result = dict(
        changed=outcome.changed or recorded,
        container=endpoint.as_dict(),
        engine=outcome.engine,
        rules=dict(added=outcome.added, removed=outcome.removed),
        mappings=outcome.mappings,
        state_file_changed=recorded,
        expires_at=ends,
        **docker_api.debug_fields(client)
    )
    if module._diff:
        result["diff"] = dict(
            before="".join(rule.text() + "\n" for rule in outcome.before),
            after="".join(rule.text() + "\n" for rule in outcome.after),
            before_header="hotport rules of %s" % (endpoint.name or endpoint.container_id[:12]),
            after_header="hotport rules of %s" % (endpoint.name or endpoint.container_id[:12]),
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
