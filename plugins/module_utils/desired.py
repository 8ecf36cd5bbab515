# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired mappings: a request (the module's options, or one entry of the state file) -> applied.

The module and the reconciler service (hotport-reconcile) both call apply_request, so a
mapping restored at boot is computed exactly as the playbook computed it. The state file
holds the requests that must keep holding on this host; the module records into it.
"""

from __future__ import annotations

import json
import os
import tempfile

from ansible_collections.hotport.docker.plugins.module_utils import docker_api
from ansible_collections.hotport.docker.plugins.module_utils.apply import publisher_for, reconcile
from ansible_collections.hotport.docker.plugins.module_utils.planner import ConflictError
from ansible_collections.hotport.docker.plugins.module_utils.ports import PortSpecError, parse_ports
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import PublisherError

STATE_FILE = "/etc/hotport/mappings.json"
STATE_VERSION = 1


class StateFileError(RuntimeError):
    """The state file cannot be read or written; the message names the file and the fix."""


# What apply_request raises with nothing changed, each with a message naming the fix.
REQUEST_FAILURES = (PortSpecError, docker_api.ResolveError, ConflictError, PublisherError)


def apply_request(runner, client, engine, request, check_mode=False):
    """Resolve the container of ``request`` and reconcile its rules -> (Endpoint, Outcome).

    ``request`` has the module's keys: container, ports, network, state, exclusive,
    allowed_sources, local_access, method, sidecar_image.
    """
    state = request.get("state") or "present"
    mappings = request_mappings(request)
    if state == "present":
        if not mappings:
            raise PortSpecError("ports is empty; give at least one mapping such as '8080:80'.")
        endpoint = docker_api.resolve_endpoint(client, request["container"], request.get("network"))
        docker_api.require_addresses(endpoint, mappings)
    else:
        endpoint = docker_api.endpoint_for_removal(client, request["container"])
    publisher = publisher_for(runner, engine, client, request.get("method") or "kernel", request.get("sidecar_image"))
    outcome = reconcile(
        runner, endpoint, engine, mappings, state=state, exclusive=bool(request.get("exclusive")),
        check_mode=check_mode, publisher=publisher,
        container_exists=lambda container_id: docker_api.container_exists(client, container_id))
    return endpoint, outcome


def request_mappings(request):
    """The request's ports, with its allowed_sources and local_access applied to each."""
    return parse_ports(request.get("ports"), request.get("allowed_sources"), request.get("local_access"))


def load_state(path=STATE_FILE):
    """The recorded requests -> list of dicts (container, network, ports); [] without a file."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise StateFileError("cannot read the hotport state file %s: %s. Fix or remove it; "
                             "hotport writes it anew on the next mapping." % (path, exc))
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION \
            or not isinstance(data.get("mappings"), list):
        raise StateFileError("%s is not a hotport state file of version %d." % (path, STATE_VERSION))
    return data["mappings"]


def entry_matches(entry, endpoint, container, method="kernel"):
    """Whether a recorded entry names the container of this request (by name or ID), published
    with the same method."""
    names = set([container, endpoint.name, endpoint.container_id, endpoint.container_id[:12]])
    return entry.get("container") in names and (entry.get("method") or "kernel") == method


def record_request(entries, request, endpoint, mappings):
    """The entries after applying ``request`` -> new list (the old one is left as it was).

    present: this container's entry gains these ports (a host port given again is replaced;
    with exclusive, the entry holds exactly these). absent: these host ports leave the entry,
    or the whole entry goes when no ports are given.
    """
    container = request["container"]
    method = request.get("method") or "kernel"
    kept, old = [], None
    for entry in entries:
        if old is None and entry_matches(entry, endpoint, container, method):
            old = entry
        else:
            kept.append(entry)
    ports = {}
    if old is not None and not (request.get("state") == "present" and request.get("exclusive")):
        ports = dict((mapping.key, mapping) for mapping in parse_ports(old.get("ports")))
    if request.get("state", "present") == "present":
        ports.update((mapping.key, mapping) for mapping in mappings)
        network = request.get("network") or (old or {}).get("network")
    else:
        closed = set(mapping.key for mapping in mappings)
        ports = dict((key, mapping) for key, mapping in ports.items() if closed and key not in closed)
        network = (old or {}).get("network")
    if ports:
        entry = {"container": (old or {}).get("container") or endpoint.name or container,
                 "network": network,
                 "ports": [ports[key].as_request() for key in sorted(ports)]}
        if method != "kernel":
            entry.update(method=method, sidecar_image=request.get("sidecar_image") or (old or {}).get("sidecar_image"))
        kept.append(entry)
    return sorted(kept, key=lambda entry: entry["container"])


def save_state(entries, path=STATE_FILE):
    """Write the entries atomically (a reader sees the old file or the new one); -> changed."""
    if entries == load_state(path):
        return False
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".mappings-")
        with os.fdopen(handle, "w") as out:
            json.dump({"version": STATE_VERSION, "mappings": entries}, out, indent=2, sort_keys=True)
            out.write("\n")
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as exc:
        raise StateFileError("cannot write the hotport state file %s: %s." % (path, exc))
    return True
