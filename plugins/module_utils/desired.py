# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired mappings: a request (the module's options, or one entry of the state file) -> applied.

The module and the reconciler service (hotport-reconcile) both call apply_request, so a
mapping restored at boot is computed exactly as the playbook computed it. The state file
(state_file.py) holds the requests that must keep holding on this host.
"""

from __future__ import annotations

from ansible_collections.hotport.docker.plugins.module_utils import docker_api
from ansible_collections.hotport.docker.plugins.module_utils.apply import reconcile
from ansible_collections.hotport.docker.plugins.module_utils.planner import ConflictError, MappingRequest
from ansible_collections.hotport.docker.plugins.module_utils.ports import PortSpecError, parse_ports
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import PublisherError
from ansible_collections.hotport.docker.plugins.module_utils.publishers.registry import publisher_for
from ansible_collections.hotport.docker.plugins.module_utils.runners import LockError

# What apply_request raises with nothing changed, each with a message naming the fix.
REQUEST_FAILURES = (PortSpecError, docker_api.ResolveError, ConflictError, PublisherError, LockError)


def apply_request(runner, client, engine, request, check_mode=False):
    """Resolve the container of ``request`` and reconcile its rules -> (Endpoint, Outcome).

    ``request`` has the module's keys: container, ports, network, state, exclusive,
    allowed_sources, local_access, method, sidecar_image; and ``restoring`` for the reconciler's
    recorded requests.
    """
    state = request.get("state") or "present"
    mappings = request_mappings(request)
    publisher = publisher_for(runner, engine, client, request.get("method") or "kernel", request.get("sidecar_image"),
                              client.connection.is_local())
    if state == "present":
        if not mappings:
            raise PortSpecError("ports is empty; give at least one mapping such as '8080:80'.")
        endpoint = docker_api.resolve_endpoint(client, request["container"], request.get("network"))
        docker_api.require_addresses(endpoint, mappings)
    else:
        endpoint = docker_api.endpoint_for_removal(client, request["container"])
    wanted = MappingRequest(endpoint, tuple(mappings), state, bool(request.get("exclusive")),
                            lambda container_id: docker_api.container_exists(client, container_id),
                            bool(request.get("restoring")))
    return endpoint, reconcile(runner, engine, publisher, wanted, check_mode)


def request_mappings(request):
    """The request's ports, with its allowed_sources and local_access applied to each."""
    return parse_ports(request.get("ports"), request.get("allowed_sources"), request.get("local_access"))
