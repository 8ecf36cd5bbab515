# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker API side: container -> Endpoint (id, name, address, network, bridge); engine facts.

Talks to the engine through docker_client.py (the standard library, no Docker SDK). Reads
per-network addresses only: the top-level NetworkSettings.IPAddress is gone from API 1.52 (Docker 29).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from ansible_collections.hotport.docker.plugins.module_utils import engine_answers
from ansible_collections.hotport.docker.plugins.module_utils.docker_client import DockerClient, DockerError, NotFound
from ansible_collections.hotport.docker.plugins.module_utils.docker_connection import (
    DEFAULT_DOCKER_HOST, DEFAULT_TIMEOUT, Connection, DockerHostError, check, from_params)

BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"


class ResolveError(RuntimeError):
    """The container or engine cannot be mapped; the message names the fix."""


@dataclass(frozen=True)
class Endpoint:
    """Where a mapping points: one container on one bridge network (IPv4 ``ip``, and ``ip6``
    when the network has IPv6)."""

    container_id: str
    name: str
    ip: str
    network: str
    bridge: str
    ip6: str = ""

    def address(self, family):
        """The container's address of family 4 or 6 ('' when it has none)."""
        return self.ip6 if family == 6 else self.ip

    def as_dict(self):
        result = asdict(self)
        result["id"] = result.pop("container_id")
        return result


@dataclass(frozen=True)
class EngineInfo:
    version: str
    api_version: str
    firewall_backend: str
    rootless: bool = False
    firewalld_reloaded_at: str = ""  # see reloaded_at()


def connect(docker_host=None, timeout=DEFAULT_TIMEOUT, **options):
    """A Docker API client from loose options (nothing asked yet: engine_info() is the first call).
    ``options``: the other fields of a docker_connection.Connection (tls, validate_certs, ...)."""
    connection = Connection(docker_host or DEFAULT_DOCKER_HOST, timeout, **options)
    try:
        check(connection)
    except DockerHostError as exc:
        raise ResolveError("%s Nothing was changed." % exc)
    return client_for(connection)


def client_for(connection):
    """A Docker API client for a checked Connection (docker_connection.from_params checks it)."""
    try:
        return DockerClient(connection)
    except DockerError as exc:
        raise ResolveError("%s Nothing was changed." % exc)


def connect_module(module):
    """The client for a module's connection options (docker_connection.py), after warning about a
    plaintext API on another machine."""
    try:
        connection = from_params(module.params)
    except DockerHostError as exc:
        raise ResolveError("%s Nothing was changed." % exc)
    for warning in connection.warnings():
        module.warn(warning)
    return client_for(connection)


def debug_fields(client):
    """With the debug option: the Docker API calls made, for the module's result (also on failure)."""
    if client is None or client.calls is None:
        return {}
    return dict(api_calls=client.calls)


def engine_info(client):
    """The engine's version and firewall facts; a clear error when the daemon does not answer."""
    try:
        version = client.version()
    except DockerError as exc:
        if exc.status:
            raise
        raise ResolveError("cannot reach the Docker daemon at %s: %s. Is dockerd running, and is docker_host "
                           "right?" % (client.base_url, exc))
    info = client.info()
    # FirewallBackend appears with API 1.49 (Docker 28.1); older engines are iptables only.
    backend = (info.get("FirewallBackend") or {}).get("Driver") or "iptables"
    rootless = "name=rootless" in (info.get("SecurityOptions") or [])
    return EngineInfo(version.get("Version", "unknown"), version.get("ApiVersion", "unknown"), backend, rootless,
                      reloaded_at(info))


def firewalld_reloaded_at(client):
    """Docker's ReloadedAt as the engine reports it now (see reloaded_at)."""
    return reloaded_at(client.info())


def reloaded_at(info):
    """When dockerd last finished re-creating its rules after a firewalld reload or restart, from
    ``docker info`` (``FirewallBackend.Info`` ``ReloadedAt``, Docker 28.1+; '' before the first reload)."""
    pairs = ((info.get("FirewallBackend") or {}).get("Info")) or []
    return dict(pair for pair in pairs if len(pair) == 2).get("ReloadedAt", "")


def container_exists(client, container_id):
    try:
        client.inspect_container(container_id)
    except NotFound:
        return False
    return True


def container_summaries(client):
    """`docker ps -a` of the API, each summary checked to be one (a dict with a container ID):
    a malformed list is refused whole, never read as fewer containers."""
    summaries = client.containers()
    try:
        if not isinstance(summaries, list) or not all(isinstance(summary, dict) for summary in summaries):
            raise engine_answers.EngineAnswerError("the engine answered a container list that is not a list of "
                                                   "objects; nothing was changed. Check which engine docker_host "
                                                   "reaches.")
        for summary in summaries:
            engine_answers.container_id(summary.get("Id"))
    except engine_answers.EngineAnswerError as exc:
        raise ResolveError(str(exc))
    return summaries


def container_ids(client):
    """Full IDs of every container, running or not."""
    return [summary["Id"] for summary in container_summaries(client)]


def inspect_container(client, container):
    try:
        return client.inspect_container(container)
    except NotFound:
        raise ResolveError(
            "container %r not found; give the name or ID of a container that `docker ps` "
            "lists on this host." % container)


def bridge_name(network):
    """Linux bridge of a Docker bridge network, as Docker names it."""
    options = network.get("Options") or {}
    if options.get(BRIDGE_NAME_OPTION):
        return options[BRIDGE_NAME_OPTION]
    if network.get("Name") == "bridge":
        return "docker0"
    return "br-" + network["Id"][:12]


def resolve_endpoint(client, container, network=None):
    """Inspect ``container`` and choose its bridge network -> Endpoint, or ResolveError. Every value
    of the engine's answers that the Endpoint carries is checked (engine_answers.py): a malformed
    or hostile answer is refused, never written into a rule."""
    try:
        return _resolve_endpoint(client, container, network)
    except engine_answers.EngineAnswerError as exc:
        raise ResolveError(str(exc))
    except (AttributeError, TypeError, KeyError, IndexError) as exc:
        raise ResolveError("the engine's answer about container %r is malformed (%s: %s). Nothing was "
                           "changed; check which engine docker_host reaches." % (container, type(exc).__name__, exc))


def _resolve_endpoint(client, container, network):
    attrs = inspect_container(client, container)
    name = engine_answers.docker_name(attrs.get("Name", ""), "container")
    state = attrs.get("State") or {}
    if not state.get("Running"):
        raise ResolveError(
            "container %r is not running (status %s): a stopped container has no address to "
            "forward to. Start it, then map its ports." % (name, state.get("Status", "unknown")))
    mode = (attrs.get("HostConfig") or {}).get("NetworkMode") or ""
    if mode in ("host", "none") or mode.startswith("container:"):
        raise ResolveError(
            "container %r uses network mode %r, which has no bridge NAT path to map a port to%s."
            % (name, mode, "; its ports are already the host's" if mode == "host" else ""))
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    if not networks:
        raise ResolveError("container %r is attached to no network." % name)
    if network is None:
        if len(networks) > 1:
            raise ResolveError(
                "container %r is on %d networks (%s); set network to the one the mapping "
                "should forward to." % (name, len(networks), ", ".join(sorted(networks))))
        network = next(iter(networks))
    elif network not in networks:
        raise ResolveError(
            "container %r is not on network %r; it is on: %s."
            % (name, network, ", ".join(sorted(networks))))
    settings = networks[network]
    net = client.inspect_network(settings.get("NetworkID") or network)
    if net.get("Driver") != "bridge":
        raise ResolveError(
            "network %r uses driver %r; hotport maps ports on bridge networks only (Docker "
            "itself publishes no ports there either)." % (network, net.get("Driver")))
    if net.get("Internal"):
        raise ResolveError(
            "network %r is internal (no route to or from the host); choose another network of "
            "the container." % network)
    if not (settings.get("IPAddress") or settings.get("GlobalIPv6Address")):
        raise ResolveError("container %r has no address on network %r." % (name, network))
    network = engine_answers.docker_name(network, "network")
    return Endpoint(engine_answers.container_id(attrs.get("Id")), name,
                    engine_answers.container_address(settings.get("IPAddress"), 4, net, network, name), network,
                    engine_answers.bridge_name(bridge_name(net), network),
                    engine_answers.container_address(settings.get("GlobalIPv6Address"), 6, net, network, name))


def require_addresses(endpoint, mappings):
    """Refuse mappings of a family the container has no address of (ResolveError)."""
    v4 = [mapping.spec() for mapping in mappings if mapping.family == 4]
    v6 = [mapping.spec() for mapping in mappings if mapping.family == 6]
    if v6 and not endpoint.ip6:
        raise ResolveError(
            "container %r has no IPv6 address on network %r, so %s cannot be mapped. Attach it to a "
            "network created with --ipv6 (docker network create --ipv6 ...), or map IPv4 only: leave "
            "the host IP out or give an IPv4 one." % (endpoint.name, endpoint.network, ", ".join(v6)))
    if v4 and not endpoint.ip:
        raise ResolveError(
            "container %r has no IPv4 address on network %r, so %s cannot be mapped; map its IPv6 "
            "address instead, e.g. [::]:HOST_PORT:CONTAINER_PORT." % (endpoint.name, endpoint.network, ", ".join(v4)))


def endpoint_for_removal(client, container):
    """Removal needs only the ID: the container may be stopped, or gone if given by ID."""
    try:
        attrs = client.inspect_container(container)
    except NotFound:
        if not re.match(r"^[0-9a-f]{12,64}\Z", container):
            raise ResolveError(
                "container %r not found. To remove the mappings of a container that no longer "
                "exists, give its ID: hotport.docker.container_port_map_info lists every mapping with "
                "its tag, hotport:<first 12 characters of the ID>." % container)
        return Endpoint(container, "", "", "", "")
    try:
        name = engine_answers.docker_name(attrs.get("Name"), "container") if attrs.get("Name") else ""
        return Endpoint(engine_answers.container_id(attrs.get("Id")), name, "", "", "")
    except (engine_answers.EngineAnswerError, AttributeError) as exc:
        raise ResolveError(str(exc))


@dataclass(frozen=True)
class ContainerFacts:
    """What the inventory needs of one container: its state and its bridge endpoints."""

    container_id: str
    name: str
    running: bool
    endpoints: tuple  # Endpoint per bridge network with an address


def summary_name(summary):
    """The name of a container in a `docker ps` summary of the API ('' for none)."""
    return (summary.get("Names") or ["/"])[0].lstrip("/")


def container_facts(client):
    """Every container on the engine, running or not -> list of ContainerFacts (two API calls)."""
    bridges = dict((net["Name"], bridge_name(net)) for net in client.networks() or []
                   if isinstance(net, dict) and isinstance(net.get("Name"), str) and net.get("Driver") == "bridge")
    facts = []
    for summary in container_summaries(client):
        networks = ((summary.get("NetworkSettings") or {}).get("Networks") or {})
        name = summary_name(summary)
        endpoints = tuple(
            Endpoint(summary["Id"], name, settings.get("IPAddress") or "", network, bridges[network],
                     settings.get("GlobalIPv6Address") or "")
            for network, settings in sorted(networks.items())
            if network in bridges and (settings.get("IPAddress") or settings.get("GlobalIPv6Address")))
        facts.append(ContainerFacts(summary["Id"], name, summary.get("State") == "running", endpoints))
    return facts
