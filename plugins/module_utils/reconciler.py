# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reconciler service (``hotport-reconcile``): keeps the state file's mappings true.

dockerd flushes its chains at every start and a restarted container may get a new address;
this service re-applies each recorded request with desired.apply_request, the module's own
code path. ``watch`` applies everything whenever it (re)connects to dockerd, follows Docker's
events (a mapped container starts: apply; it dies: remove its rules, as Docker does for -p),
re-applies everything right after dockerd has re-created its own rules following a firewalld
reload or restart (firewalld < 2.0 flushes iptables then), and every ``interval`` seconds as a
safety net. Each full pass first removes the rules of containers that no longer exist, and the
ports of temporary mappings whose end has come (also at the end of each window, which ends no
later than the next end; ``apply`` at boot removes them before anything is applied).
``save-rules`` writes the ruleset a boot restores (persistence.py), for the role.
Runs on Docker hosts without Ansible: only the Python standard library (docker_client.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone

from ansible_collections.hotport.docker.plugins.module_utils import docker_api
from ansible_collections.hotport.docker.plugins.module_utils.apply import remove_orphans
from ansible_collections.hotport.docker.plugins.module_utils.desired import REQUEST_FAILURES, apply_request
from ansible_collections.hotport.docker.plugins.module_utils.docker_connection import DockerHostError, from_params
from ansible_collections.hotport.docker.plugins.module_utils.persistence import persist
from ansible_collections.hotport.docker.plugins.module_utils.port_holder import PortHolder, held_ports
from ansible_collections.hotport.docker.plugins.module_utils.ports import parse_ports
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import LayoutError, PublisherError
from ansible_collections.hotport.docker.plugins.module_utils.runners import LockError, ProcessRunner
from ansible_collections.hotport.docker.plugins.module_utils.safe_files import UnsafeFileError
from ansible_collections.hotport.docker.plugins.module_utils.expiry import seconds_left
from ansible_collections.hotport.docker.plugins.module_utils.state_file import (
    STATE_FILE, StateFileError, due, lasting, load_state, update_state, without)

CONTAINER_ACTIONS = ("start", "die")
NETWORK_ACTIONS = ("connect", "disconnect")
# How often, on a firewalld host, Docker's record of its last firewalld reload is read.
FIREWALLD_POLL_SECONDS = 2


def log(message):
    """One line to stdout, at once: systemd's journal (or the supervisor's log) keeps it."""
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def _describe(entry):
    """'web 8080:80/tcp,{...}' for the log, whatever the entry holds (never raises)."""
    if not isinstance(entry, dict):
        return repr(entry)
    ports = entry.get("ports") if isinstance(entry.get("ports"), list) else [entry.get("ports")]
    return "%s %s" % (entry.get("container"), ",".join(
        item if isinstance(item, str) else json.dumps(item, sort_keys=True) for item in ports))


class EngineSession:
    """One connection to the engine and what is applied through it: ``runner`` for the host's
    commands, ``client`` and ``engine`` (docker_api), the ``state_file`` of recorded requests."""

    def __init__(self, runner, client, engine, state_file, holder=None):
        self.runner, self.client, self.engine, self.state_file = runner, client, engine, state_file
        # Holds the recorded kernel mappings' host ports while watching (port_holder.py).
        self.holder = holder

    def hold_ports(self):
        """Hold the host port of every recorded kernel mapping, and only those: of this host's own
        engine (another machine's containers are published there), a rootful one (on a rootless
        engine RootlessKit listens on each mapped port itself, and a held port would keep it out)."""
        if self.holder is None or self.client.connection.scheme != "unix" or self.engine.rootless:
            return
        for message in self.holder.keep(held_ports(load_state(self.state_file), parse_ports)):
            log("warning: " + message)

    def apply_entry(self, entry, state="present", container=None):
        """One recorded request -> True when it holds (or is waiting for its container to start).

        Never raises for a bad entry: an entry the module could not have written, or any failure
        while applying it, is logged with its reason, and the other entries go on.
        """
        try:
            return self._apply_entry(entry, state, container)
        except (docker_api.DockerError, OSError):
            raise  # dockerd went away: watch() reconnects and applies everything anew
        except Exception as exc:  # pylint: disable=broad-exception-caught
            log("FAILED %s: unexpected %s: %s" % (_describe(entry), type(exc).__name__, exc))
            return False

    def _apply_entry(self, entry, state, container):
        if not isinstance(entry, dict) or not isinstance(entry.get("container"), str):
            log("FAILED %s: not a recorded request (a dict with a container name); fix or remove it in "
                "the state file" % _describe(entry))
            return False
        request = dict(entry, state=state, container=container or entry["container"], restoring=True)
        try:
            outcome = apply_request(self.runner, self.client, self.engine, request)[1]
        except docker_api.ResolveError as exc:
            if state == "present" and self._is_waiting(request["container"]):
                log("waiting for %s: %s" % (_describe(entry), exc))
                return True
            log("FAILED %s: %s" % (_describe(entry), exc))
            return False
        except REQUEST_FAILURES as exc:
            log("FAILED %s: %s" % (_describe(entry), exc))
            return False
        for line in ["- " + rule for rule in outcome.removed] + ["+ " + rule for rule in outcome.added]:
            log("%s %s" % (entry["container"], line))
        for warning in outcome.warnings:
            log("warning: %s" % warning)
        return True

    def _is_waiting(self, container):
        """A container that exists but is not running yet: its start event will apply it."""
        try:
            attrs = docker_api.inspect_container(self.client, container)
        except docker_api.ResolveError:
            return False
        return not (attrs.get("State") or {}).get("Running")

    def remove_orphaned_rules(self):
        """Delete hotport's rules of containers that no longer exist -> 1 when that failed, else 0.
        Where no kernel rules can be read (no root, no accept mark) there are none. Only this host's
        own engine, over its unix socket, says which containers exist here: another machine's (or
        whatever answers on a TCP port) does not list this host's containers."""
        if self.client.connection.scheme != "unix":
            return 0
        try:
            removed = remove_orphans(self.runner, self.engine, docker_api.container_ids(self.client), self.client)
        except LayoutError:
            return 0
        except (PublisherError, LockError) as exc:
            log("FAILED removing the rules of removed containers: %s" % exc)
            return 1
        for rule in removed:
            log("removed container's rule - %s" % rule)
        return 0

    def expire_due(self):
        """Remove the recorded ports whose end has come: their rules, then their record (so that a
        failure is tried again) -> number of failures. A container that is gone has no rules left to
        remove (remove_orphaned_rules sweeps them)."""
        now = datetime.now(timezone.utc)
        failures = removed = 0
        for entry in load_state(self.state_file):
            items = due(entry, now)
            if not items:
                continue
            ended = dict(entry, ports=items)
            log("expired %s: removing it" % _describe(ended))
            if not self.apply_entry(ended, "absent") and self._exists(entry["container"]):
                failures += 1
                continue
            update_state(self.state_file, lambda entries, read=entry: without(entries, read, now))
            removed += 1
        if removed:
            self.hold_ports()  # and let the ended ones go
        return failures

    def next_end(self):
        """Seconds until the next recorded end; None without temporary mappings."""
        now = datetime.now(timezone.utc)
        ends = [entry["expires_at"] for entry in load_state(self.state_file)
                if isinstance(entry, dict) and isinstance(entry.get("expires_at"), dict)]
        left = [seconds_left(end, now) for per_port in ends for end in per_port.values()]
        left = [seconds for seconds in left if seconds is not None]
        return min(left) if left else None

    def _exists(self, container):
        try:
            docker_api.inspect_container(self.client, container)
        except docker_api.ResolveError:
            return False
        return True

    def apply_all(self):
        """The rules of removed containers and the ports whose end has come, then every recorded
        request -> number of failures."""
        failures = self.remove_orphaned_rules() + self.expire_due()
        now = datetime.now(timezone.utc)
        for entry in filter(None, (lasting(entry, now) for entry in load_state(self.state_file))):
            failures += not self.apply_entry(entry)
        self.hold_ports()
        return failures

    def handle_event(self, event):
        """Apply what one Docker event changes -> number of failures."""
        kind, action = event.get("Type"), event.get("Action") or event.get("status")
        actor = event.get("Actor") or {}
        if kind == "network" and action in NETWORK_ACTIONS:
            return self.apply_all()
        if kind != "container" or action not in CONTAINER_ACTIONS:
            return 0
        container_id = actor.get("ID") or event.get("id") or ""
        names = (container_id, container_id[:12], (actor.get("Attributes") or {}).get("name"))
        failures = self.expire_due() if action == "start" else 0
        for entry in load_state(self.state_file):
            if not isinstance(entry, dict) or entry.get("container") not in names:
                continue
            log("container %s: %s" % (entry["container"], action))
            if action == "start":
                entry = lasting(entry, datetime.now(timezone.utc))
                failures += entry is not None and not self.apply_entry(entry)
            else:
                # Its address is released now; a rule left behind would forward to whoever gets it next.
                failures += not self.apply_entry(entry, "absent", container_id)
        return failures


def watch(runner, connect, state_file, interval):
    """Reconnect, apply all, follow events in short windows; forever.

    Every ``interval`` seconds everything is applied again. On a firewalld host the windows are
    FIREWALLD_POLL_SECONDS long, and after each one Docker's ``ReloadedAt`` is compared: it
    changes once dockerd has re-created its own chains after a firewalld reload, which is the
    first moment hotport's rules (jumps into those chains, ahead of Docker's DROP) can be
    written back. firewalld's D-Bus signal would come before that, and race Docker.
    """
    delay = 1
    # Kept across reconnects: while dockerd restarts (and flushes its chains) the ports stay held.
    holder = PortHolder()
    while True:
        try:
            client = connect()
            engine = docker_api.engine_info(client)
            follow_firewalld = "firewalld" in engine.firewall_backend
            window = min(interval, FIREWALLD_POLL_SECONDS) if follow_firewalld else interval
            reloaded_at = engine.firewalld_reloaded_at
            since = int(time.time())
            log("connected to Docker %s (firewall: %s%s); applying %s" % (
                engine.version, engine.firewall_backend,
                ", following firewalld reloads" if follow_firewalld else "", state_file))
            connected = EngineSession(runner, client, engine, state_file, holder)
            connected.apply_all()
            next_full_pass = since + interval
            delay = 1
            while True:
                next_end = connected.next_end()
                until = since + (window if next_end is None else max(1, min(window, next_end)))
                # The stream ends at `until`; windows follow each other, so no event falls between.
                for event in client.events(since, until, {"type": ["container", "network"]}):
                    connected.handle_event(event)
                since = until
                if next_end is not None:
                    connected.expire_due()
                latest = docker_api.firewalld_reloaded_at(client) if follow_firewalld else reloaded_at
                if latest != reloaded_at:
                    reloaded_at = latest
                    log("firewalld reloaded (Docker re-created its rules at %s); applying %s"
                        % (reloaded_at, state_file))
                elif since < next_full_pass:
                    continue
                connected.apply_all()
                next_full_pass = since + interval
        except (docker_api.DockerError, docker_api.ResolveError, OSError) as exc:
            # dockerd stopped or restarted (connect() reports that as ResolveError): it flushes
            # its chains, so everything is applied anew once it answers again.
            log("Docker not reachable (%s); retrying in %d s" % (exc, delay))
            time.sleep(delay)
            delay = min(delay * 2, 10)
        except StateFileError as exc:
            log("%s; retrying in %d s" % (exc, interval))
            time.sleep(interval)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # Only a signal ends the service: under Restart=always a crash would loop anyway,
            # and a loop that starts over keeps the other mappings true.
            log("unexpected %s: %s; starting over in %d s" % (type(exc).__name__, exc, delay))
            time.sleep(delay)
            delay = min(delay * 2, 10)


def save_rules(runner, targets, mode):
    """Write the boot-time rule files; print {"changed": {path: bool}} as JSON -> exit status."""
    try:
        changed = persist(runner, dict((family, path) for family, path in targets.items() if path), mode)
    except (PublisherError, UnsafeFileError, OSError) as exc:
        log("FAILED: %s" % exc)
        return 1
    log(json.dumps({"changed": changed}, sort_keys=True))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="hotport-reconcile",
        description="Re-apply the hotport mappings recorded in the state file.")
    parser.add_argument("command", choices=["apply", "watch", "save-rules"],
                        help="apply: once, exit 1 if a mapping failed; watch: keep them applied; "
                             "save-rules: write the ruleset a boot restores (--rules-v4, --rules-v6)")
    parser.add_argument("--state-file", default=STATE_FILE)
    # The connection options of the modules (docker_connection.py), with the same environment fallbacks.
    parser.add_argument("--docker-host", help="default: DOCKER_HOST, else unix:///var/run/docker.sock")
    parser.add_argument("--tls", action="store_true", default=None, help="TLS without verifying the engine")
    parser.add_argument("--tls-verify", dest="validate_certs", action="store_true", default=None,
                        help="TLS, verifying the engine's certificate and name (default: DOCKER_TLS_VERIFY)")
    parser.add_argument("--ca-path", help="default: DOCKER_CERT_PATH/ca.pem")
    parser.add_argument("--client-cert", help="default: DOCKER_CERT_PATH/cert.pem")
    parser.add_argument("--client-key", help="default: DOCKER_CERT_PATH/key.pem")
    parser.add_argument("--tls-hostname", help="the name the engine's certificate must hold")
    parser.add_argument("--api-version", help="default: DOCKER_API_VERSION, else auto (the engine's own)")
    parser.add_argument("--interval", type=int, default=60,
                        help="seconds between full re-applies while watching (default 60)")
    parser.add_argument("--rules-v4", help="save-rules: the IPv4 file (Debian: /etc/iptables/rules.v4)")
    parser.add_argument("--rules-v6", help="save-rules: the IPv6 file (Debian: /etc/iptables/rules.v6)")
    parser.add_argument("--mode", default="0600", type=lambda text: int(text, 8),
                        help="save-rules: the files' mode, octal (default 0600; Debian's own: 0640)")
    args = parser.parse_args(argv)
    runner = ProcessRunner()
    if args.command == "save-rules":
        return save_rules(runner, {4: args.rules_v4, 6: args.rules_v6}, args.mode)

    try:
        # Reads may wait for a whole event window.
        connection = from_params(dict(vars(args), timeout=args.interval + 30))
    except DockerHostError as exc:
        log("FAILED: %s" % exc)
        return 1
    for warning in connection.warnings():
        log("warning: " + warning)

    def connect():
        return docker_api.client_for(connection)

    if args.command == "watch":
        watch(runner, connect, args.state_file, args.interval)
        return 0
    try:
        client = connect()
        failures = EngineSession(runner, client, docker_api.engine_info(client), args.state_file).apply_all()
    except (docker_api.DockerError, docker_api.ResolveError, StateFileError) as exc:
        log("FAILED: %s" % exc)
        return 1
    return 1 if failures else 0
