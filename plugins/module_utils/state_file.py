# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The state file: the requests that must keep holding on this host, which the module records and
the reconciler re-applies (``{"version": 1, "mappings": [entry, ...]}``).

It decides which rules root writes, so it is read only when nobody but root (or the user running
hotport) can change it or a folder on its way (safe_files.py), and only up to a size and nesting
hotport never writes. Writers take its lock around their read-modify-write, so that runs at once
(forks, the reconciler) each keep their entry; readers see the old file or the new one.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from ansible_collections.hotport.docker.plugins.module_utils.expiry import parse_expires, read_recorded, recorded
from ansible_collections.hotport.docker.plugins.module_utils.ports import PortSpecError, parse_ports
from ansible_collections.hotport.docker.plugins.module_utils.safe_files import (
    UnsafeFileError, check_trusted, one_writer, read_trusted, write_atomically)

STATE_FILE = "/etc/hotport/mappings.json"
STATE_VERSION = 1
# Thousands of entries fit in 1 MiB; the limit keeps a hostile file from exhausting memory.
SIZE_LIMIT = 16 * 1024 * 1024
STATE_MODE = 0o644
WHAT = "hotport state file"


class StateFileError(RuntimeError):
    """The state file cannot be read or written; the message names the file and the fix."""


def load_state(path=STATE_FILE):
    """The recorded requests -> list of dicts (container, network, ports); [] without a file."""
    try:
        text = read_trusted(path, WHAT, SIZE_LIMIT)
    except UnsafeFileError as exc:
        raise StateFileError(str(exc))
    except (OSError, UnicodeDecodeError) as exc:
        raise StateFileError("cannot read the hotport state file %s: %s. Fix or remove it; "
                             "hotport writes it anew on the next mapping." % (path, exc))
    if text is None:
        return []
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise StateFileError("cannot read the hotport state file %s: %s. Fix or remove it; "
                             "hotport writes it anew on the next mapping." % (
                                 path, exc if isinstance(exc, ValueError) else "nested too deep"))
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION \
            or not isinstance(data.get("mappings"), list):
        raise StateFileError("%s is not a hotport state file of version %d." % (path, STATE_VERSION))
    return data["mappings"]


def entry_matches(entry, endpoint, container, method="kernel"):
    """Whether a recorded entry names the container of this request (by name or ID), published
    with the same method."""
    names = set([container, endpoint.name, endpoint.container_id, endpoint.container_id[:12]])
    return entry.get("container") in names and (entry.get("method") or "kernel") == method


def record_request(entries, request, endpoint, mappings, now=None):
    """The entries after applying ``request`` -> new list (the old one is left as it was).

    present: this container's entry gains these ports (a host port given again is replaced;
    with exclusive, the entry holds exactly these). absent: these host ports leave the entry,
    or the whole entry goes when no ports are given. ``request["expires"]`` (expiry.py) ends the
    ports it names at a moment, recorded per port in the entry's ``expires_at`` ({spec: UTC time}).
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
        ends = expiries(old, ports, mappings if request.get("state", "present") == "present" else (),
                        request.get("expires"), now or datetime.now(timezone.utc))
        if ends:
            entry["expires_at"] = ends
        kept.append(entry)
    return sorted(kept, key=lambda entry: entry["container"])


def expiries(old, ports, requested, expires, now):
    """The ``expires_at`` of an entry holding ``ports`` ({key: PortMapping}) after a request for
    ``requested`` with ``expires``: requested ports end as it says (none: they last), but a duration
    given again keeps the end recorded for the same mapping while it lies ahead, so that a re-run
    changes nothing; the other ports keep theirs."""
    recorded_ends = (old or {}).get("expires_at")
    recorded_ends = recorded_ends if isinstance(recorded_ends, dict) else {}
    old_ports = dict((mapping.key, mapping) for mapping in parse_ports((old or {}).get("ports")))
    asked = dict((mapping.key, mapping) for mapping in requested)
    end, is_duration = parse_expires(expires, now) if expires else (None, False)
    ends = {}
    for key, mapping in ports.items():
        spec = mapping.spec()
        before = recorded_ends.get(spec) if old_ports.get(key) == mapping else None
        if key not in asked:
            if before:
                ends[spec] = before
        elif end is not None:
            still_ahead = before and (read_recorded(before) or now) > now
            ends[spec] = before if is_duration and still_ahead else recorded(end)
    return ends


def due(entry, now):
    """The port items of a recorded entry whose end has come -> list (as recorded)."""
    ends = entry.get("expires_at") if isinstance(entry, dict) else None
    if not isinstance(ends, dict) or not isinstance(entry.get("ports"), list):
        return []
    past = set(spec for spec, end in ends.items() if (read_recorded(end) or now) <= now)
    return [item for item in entry["ports"] if _spec(item) in past]


def lasting(entry, now):
    """A recorded entry without its ports whose end has come (the entry itself when none has); None
    when nothing is left: what a pass applies while a removal at expiry waits to be retried."""
    ended = due(entry, now)
    if not ended:
        return entry
    ports = [item for item in entry["ports"] if item not in ended]
    return dict(entry, ports=ports) if ports else None


def without(entries, ended, now):
    """``entries`` without the ports of ``ended`` (an entry as it was read) whose end has come, and
    the entry itself once nothing is left of it -> new list."""
    ended_items = due(ended, now)
    updated = []
    for entry in entries:
        if entry == ended:
            ports = [item for item in entry["ports"] if item not in ended_items]
            if not ports:
                continue
            ends = dict((spec, end) for spec, end in entry["expires_at"].items()
                        if spec in set(_spec(item) for item in ports))
            entry = dict(entry, ports=ports)
            entry.pop("expires_at")
            if ends:
                entry["expires_at"] = ends
        updated.append(entry)
    return updated


def _spec(item):
    try:
        return parse_ports([item])[0].spec()
    except (PortSpecError, IndexError):
        return None


def update_state(path, change, check_mode=False):
    """Apply ``change`` (entries -> new entries) to the state file under its lock, read anew there
    -> whether the file changed (or, in check mode, would)."""
    if check_mode:
        entries = load_state(path)
        return change(entries) != entries
    try:
        check_trusted(path, WHAT)
        with one_writer(path, WHAT):
            entries = load_state(path)
            updated = change(entries)
            if updated == entries:
                return False
            text = json.dumps({"version": STATE_VERSION, "mappings": updated}, indent=2, sort_keys=True) + "\n"
            return write_atomically(path, text, STATE_MODE, WHAT)
    except UnsafeFileError as exc:
        raise StateFileError(str(exc))
    except OSError as exc:
        raise StateFileError("cannot write the hotport state file %s: %s." % (path, exc))
