# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which publisher serves a run: chosen here from the method asked for and the engine's facts, and
nowhere else (a new backend is a new publisher module and one line here)."""

from __future__ import annotations

import os

from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import LayoutError
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables import IptablesPublisher
from ansible_collections.hotport.docker.plugins.module_utils.publishers.nftables import NftablesPublisher
from ansible_collections.hotport.docker.plugins.module_utils.publishers.rootless import RootlessPublisher
from ansible_collections.hotport.docker.plugins.module_utils.publishers.rootlesskit import RootlessKit, state_dir_of
from ansible_collections.hotport.docker.plugins.module_utils.publishers.sidecar import SidecarPublisher

# Docker's firewall backend (docker info: FirewallBackend.Driver, "+firewalld" where firewalld runs)
# -> the kernel publisher that writes beside it. Engines before 28 report none: iptables.
KERNEL_PUBLISHERS = {"iptables": IptablesPublisher, "nftables": NftablesPublisher}


def publisher_for(runner, engine, client=None, method="kernel", sidecar_image=None, local=True):
    """The publisher of ``method`` (LayoutError, naming the fix, where it cannot publish here): a sidecar
    when asked for; otherwise kernel rules, of the engine's firewall backend. ``local``: the engine is
    this machine's, whose kernel mappings a sidecar must not collide with and whose kernel rules
    this run can write."""
    if method == "sidecar":
        kernel = None  # no kernel mappings can exist (another machine's engine) or be read (no root)
        skipped = ""
        if local:
            try:
                kernel = kernel_publisher(runner, engine, client)
            except ForeignEngineError as exc:
                skipped = "hotport's kernel mappings were not read, so a clash with one is not seen: %s" % exc
            except LayoutError:
                pass
        publisher = SidecarPublisher(client, sidecar_image, kernel)
        publisher.warnings = [skipped] if skipped else []
        return publisher
    if not local:
        raise LayoutError(
            "method: kernel writes the firewall of the machine this runs on, and docker_host %s is another "
            "machine's engine: rules here cannot reach its containers. Run the task on the engine's host "
            "(its inventory entry, or delegate_to), or use method: sidecar, which publishes through the "
            "engine itself. Nothing was changed." % client.base_url)
    return kernel_publisher(runner, engine, client)


class ForeignEngineError(LayoutError):
    """The engine's kernel rules live where an ordinary user rules (a rootless engine), and this run is root."""


def kernel_publisher(runner, engine, client=None):
    """The publisher of Docker's firewall backend (LayoutError where kernel rules cannot publish): on a
    rootless engine inside its namespace, as its user; otherwise the host's rules, as root."""
    backend = (engine.firewall_backend or "iptables").lower().partition("+")[0]
    kind = KERNEL_PUBLISHERS.get(backend, IptablesPublisher)
    if engine.rootless:
        if os.geteuid() == 0:
            raise ForeignEngineError(
                "this Docker engine runs rootless, as an ordinary user, and this run is root: root does not "
                "enter that user's namespaces nor trust its files, which that user controls. Run the task as "
                "the engine's user (become_user, with docker_host its socket), or use method: sidecar. "
                "Nothing was changed.")
        return RootlessPublisher(runner, engine, RootlessKit(state_dir_of(client and client.base_url)), kind)
    if os.geteuid() != 0:
        raise LayoutError(
            "method: kernel writes the host's firewall rules and needs root on the Docker host; this "
            "run is not root. Run it with become: true, or use method: sidecar, which needs only the "
            "Docker API. Nothing was changed.")
    return kind(runner, engine)


def sidecar_snapshot(client):
    """hotport's sidecars on the engine ``client`` reaches, and every port it publishes (a Snapshot)."""
    return SidecarPublisher(client).read()
