# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sidecar publisher (``method: sidecar``): a proxy container per mapping that Docker itself
publishes, for hosts where kernel rules cannot do it (rootless Docker, the nftables backend
without bridge-accept-fwmark, a Docker reached only through its API).

Each sidecar runs ``socat`` from ``sidecar_image`` (entrypoint and command set here), sits on the
target's network, forwards to the target by name on a user-defined network (Docker's DNS follows
the container across restarts) or by address on the default bridge (a re-run or the reconciler
re-creates it when the address changes), and is published with Docker's own port publishing
(``HOST_IP:HOST_PORT:PORT/PROTO``), so Docker's allocator knows the port. Restart policy
``unless-stopped``: it survives dockerd restarts and reboots on its own. It runs as nobody with
every capability dropped, a read-only root filesystem, no-new-privileges and pids and memory
limits. Its labels say what it serves, but only a container hotport provably made is ever
touched (from_labels). Nothing here needs root or the host's firewall: only the Docker API.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

from ansible_collections.hotport.docker.plugins.module_utils import docker_api
from ansible_collections.hotport.docker.plugins.module_utils.ownership import owner_tag
from ansible_collections.hotport.docker.plugins.module_utils.ports import ANY_ADDRESS, PortMapping, address_family
from ansible_collections.hotport.docker.plugins.module_utils.inventory import listing_item
from ansible_collections.hotport.docker.plugins.module_utils.publishers.base import Claim, Publisher, PublisherError, Snapshot

# The tag says what it is; the digest is what runs (a tag can be moved to other content).
DEFAULT_IMAGE = "alpine/socat:1.8.0.1@sha256:e899028c84c1a1e65bb14821b0802a683a2cffbff96c9ac02ff1d9cbb03f64e6"
LABEL = "io.hotport.sidecar"  # its value: the owner tag of the mapping
PREFIX = "io.hotport."
# Bumped when what a sidecar runs with changes, so that older sidecars are re-created: 2 runs it
# as nobody with no capability, a read-only root filesystem and limits.
PROFILE = 2
# socat forks a process per connection (and per UDP peer): the limits bound a runaway, not the load.
PIDS_LIMIT = 1024
MEMORY_LIMIT = 256 * 1024 * 1024
NOBODY = "65534:65534"


class SidecarError(PublisherError):
    """A sidecar could not be created or removed; the message says what was undone."""


@dataclass(frozen=True)
class Sidecar:
    """One proxy container: what it publishes and where it forwards."""

    family: int
    protocol: str
    host_ip: str  # '' for every address of the family
    host_port: int
    container_port: int
    target_id: str
    target_name: str
    network: str
    forward_to: str  # the target's name (user-defined network) or address (default bridge)
    image: str
    name: str = field(default="", compare=False)
    container_id: str = field(default="", compare=False)
    running: bool = field(default=True, compare=False)

    @property
    def owner_tag(self):
        return owner_tag(self.target_id, self.protocol, self.host_port)

    @property
    def digest(self):
        fields = (self.family, self.protocol, self.host_ip, self.host_port, self.container_port,
                  self.target_id, self.network, self.forward_to, self.image, PROFILE)
        return hashlib.sha1(repr(fields).encode()).hexdigest()[:12]

    @property
    def same_as(self):
        return (self.family, self.owner_tag, self.host_ip, self.digest)

    def container_name(self):
        """hotport-<target>-<proto>-<host port>[-<host ip>][-v6]: one per mapping."""
        parts = ["hotport", self.target_name or self.target_id[:12], self.protocol, str(self.host_port)]
        if self.host_ip:
            parts.append(self.host_ip.replace(":", "_").replace(".", "_"))
        if self.family == 6:
            parts.append("v6")
        return "-".join(parts)

    def publish(self):
        """As docker run -p says it: [HOST_IP:]HOST_PORT:PORT/PROTO."""
        host_ip = ("[%s]:" if self.family == 6 else "%s:") % self.host_ip if self.host_ip else ""
        return "%s%d:%d/%s" % (host_ip, self.host_port, self.container_port, self.protocol)

    def command(self):
        """socat's arguments: listen on the container port, forward to the target."""
        six = "6" if self.family == 6 else ""
        target = "[%s]" % self.forward_to if self.family == 6 and ":" in self.forward_to else self.forward_to
        if self.protocol == "udp":
            return ["UDP%s-RECVFROM:%d,fork,reuseaddr" % (six, self.container_port),
                    "UDP%s-SENDTO:%s:%d" % (six, target, self.container_port)]
        return ["TCP%s-LISTEN:%d,fork,reuseaddr" % (six, self.container_port),
                "TCP%s-CONNECT:%s:%d" % (six, target, self.container_port)]

    def labels(self):
        return {LABEL: self.owner_tag, PREFIX + "digest": self.digest, PREFIX + "family": str(self.family),
                PREFIX + "protocol": self.protocol, PREFIX + "host_ip": self.host_ip,
                PREFIX + "host_port": str(self.host_port), PREFIX + "container_port": str(self.container_port),
                PREFIX + "target.id": self.target_id, PREFIX + "target.name": self.target_name,
                PREFIX + "network": self.network, PREFIX + "forward_to": self.forward_to}

    def text(self):
        """What diff mode and the rules lists show."""
        return "sidecar %s: %s publishes %s on network %s, socat %s" % (
            self.name or self.container_name(), self.image, self.publish(), self.network, " ".join(self.command()))


def from_labels(summary, image_labels):
    """A live sidecar (container summary of the Docker API, and the labels of its image) -> Sidecar,
    or None when it is not hotport's.

    Labels alone prove nothing: anyone may set them, and a container inherits its image's. A
    container is hotport's sidecar only when its image carries none of hotport's labels (so the
    container's own are set on it), its labels are ones hotport writes, and it is named and runs
    the command hotport gives such a sidecar."""
    labels = summary.get("Labels") or {}
    if any(key.startswith(PREFIX) for key in image_labels or {}):
        return None
    try:
        sidecar = Sidecar(
            int(labels[PREFIX + "family"]), labels[PREFIX + "protocol"], labels[PREFIX + "host_ip"],
            int(labels[PREFIX + "host_port"]), int(labels[PREFIX + "container_port"]), labels[PREFIX + "target.id"],
            labels[PREFIX + "target.name"], labels[PREFIX + "network"], labels[PREFIX + "forward_to"],
            summary.get("Image", ""), docker_api.summary_name(summary), summary["Id"],
            summary.get("State") == "running")
    except (KeyError, ValueError, TypeError):
        return None
    if labels.get(LABEL) != sidecar.owner_tag or sidecar.name != sidecar.container_name() \
            or summary.get("Command") != " ".join(["socat"] + sidecar.command()):
        return None
    if labels.get(PREFIX + "digest") != sidecar.digest:
        # Its image is recorded by Docker as it was asked for; anything else changed by hand, or
        # it was made by an older hotport (PROFILE): it is written anew.
        return replace(sidecar, forward_to="(changed)")
    return sidecar


class SidecarSnapshot(Snapshot):
    """What one read found: hotport's sidecars, every published port, every container name."""

    def __init__(self, sidecars, published, names, kernel_claims=()):
        self.sidecars = sidecars
        self.published = published  # [(owner tag or None, family, protocol, host ip, host port, ip, port, name)]
        self.names = names
        self.kernel_claims = kernel_claims  # hotport's kernel mappings, where they can be read

    def families(self):
        return {4, 6}

    def claims(self, family):
        claims, seen = [], set()
        for tag, of_family, protocol, host_ip, port, ip, private, name in self.published:
            key = (tag, protocol, host_ip, port)
            if of_family != family or (tag and key in seen):
                continue
            seen.add(key)
            claims.append(Claim(PublishedBy(name, host_ip, port, private, protocol), family, protocol, host_ip,
                                port, port, tag, ip, private))
        return claims

    def owned(self, family):
        return [sidecar for sidecar in self.sidecars if sidecar.family == family]

    def present(self, family):
        return set(sidecar.same_as for sidecar in self.owned(family))

    def copies(self, family, rule):
        return [sidecar for sidecar in self.owned(family) if sidecar.same_as == rule.same_as]

    def misplaced(self, family, rule):
        return not all(sidecar.running for sidecar in self.copies(family, rule))

    def mappings_of(self, rules):
        return dict(((sidecar.family, sidecar.owner_tag),
                     PortMapping(sidecar.protocol, sidecar.host_port, sidecar.container_port,
                                 sidecar.host_ip or ("::" if sidecar.family == 6 else "")))
                    for sidecar in rules)

    def items(self, containers):
        """hotport's sidecars as items of the inventory (inventory.listing_item), with the name of each's
        ``sidecar``: stale when the target is gone or stopped, when a sidecar forwarding by address no
        longer finds the target there, or when the sidecar itself is not running."""
        items = []
        for sidecar in self.sidecars:
            facts = next((facts for facts in containers if facts.container_id == sidecar.target_id), None)
            endpoint = next((endpoint for endpoint in (facts.endpoints if facts else ())
                             if endpoint.network == sidecar.network), None)
            if facts is None:
                reason = "container removed"
            elif not facts.running:
                reason = "container stopped"
            elif not sidecar.running:
                reason = "sidecar %s not running" % sidecar.name
            elif endpoint is None or sidecar.forward_to not in (sidecar.target_name, endpoint.address(sidecar.family)):
                reason = "address changed (sidecar forwards to %s)" % sidecar.forward_to
            else:
                reason = ""
            items.append(listing_item(method="sidecar", protocol=sidecar.protocol,
                                      host_ip=sidecar.host_ip or ANY_ADDRESS[sidecar.family], host_port=sidecar.host_port,
                                      container_ip=endpoint.address(sidecar.family) if endpoint else "",
                                      container_port=sidecar.container_port, tag=sidecar.owner_tag,
                                      stale=bool(reason), stale_reason=reason, complete=sidecar.running,
                                      container={"id": sidecar.target_id, "name": sidecar.target_name,
                                                 "running": bool(facts and facts.running), "network": sidecar.network},
                                      sidecar=sidecar.name, local_access=True))
        return items


class SidecarPublisher(Publisher):
    """Publishes through Docker itself, with one socat container per mapping."""

    name = "sidecar"
    kernel = False

    def __init__(self, client, image=DEFAULT_IMAGE, kernel_publisher=None):
        self.client = client
        self.image = image or DEFAULT_IMAGE
        # The engine's kernel publisher, to see hotport's kernel mappings (``kernel``, the class's
        # flag, stays False: a sidecar run takes no host lock and checks no host socket).
        self.kernel_publisher = kernel_publisher

    def _kernel_claims(self):
        """hotport's kernel mappings, which Docker's allocator does not know: read when this run can
        (root on the host, an engine whose rules the host holds); otherwise there are none to see."""
        if self.kernel_publisher is None:
            return []
        try:
            snapshot = self.kernel_publisher.read()
        except PublisherError:
            return []
        return [claim for family in snapshot.families() for claim in snapshot.claims(family) if claim.owner_tag]

    def read(self, mappings=None, short_id=None):
        sidecars, published, names, image_labels = [], [], set(), {}
        for summary in docker_api.container_summaries(self.client):
            name = docker_api.summary_name(summary)
            names.add(name)
            tag = None
            if (summary.get("Labels") or {}).get(LABEL):
                sidecar = from_labels(summary, self._image_labels(summary.get("ImageID") or "", image_labels))
                if sidecar:
                    sidecars.append(sidecar)
                    tag = sidecar.owner_tag
            if summary.get("State") != "running":
                continue
            networks = (summary.get("NetworkSettings") or {}).get("Networks") or {}
            ip = next((settings.get("IPAddress") for settings in networks.values() if settings.get("IPAddress")), "")
            for port in summary.get("Ports") or []:
                if not port.get("PublicPort"):
                    continue
                host_ip = port.get("IP") or ANY_ADDRESS[4]
                family = address_family(host_ip)
                published.append((tag, family, port.get("Type", "tcp"), "" if host_ip == ANY_ADDRESS[family] else host_ip,
                                  port["PublicPort"], ip, port.get("PrivatePort"), name))
        return SidecarSnapshot(sidecars, published, names, self._kernel_claims())

    def _image_labels(self, image_id, known):
        """The labels of an image (asked once per image a run meets)."""
        if image_id not in known:
            try:
                known[image_id] = ((self.client.inspect_image(image_id) or {}).get("Config") or {}).get("Labels") or {}
            except docker_api.DockerError:
                known[image_id] = {PREFIX: "unknown"}  # not inspectable: not provably ours
        return known[image_id]

    def ipv6_refusal(self, specs):
        return "IPv6 mapping(s) %s cannot be published here." % ", ".join(specs)

    def render(self, snapshot, mapping, endpoint):
        if mapping.allowed_sources:
            raise PublisherError(
                "allowed_sources cannot be enforced with method: sidecar: behind Docker's userland proxy "
                "the sidecar sees the proxy's address, not the client's. Leave allowed_sources out, or use "
                "method: kernel (root on the Docker host). Nothing was changed.")
        for claim in snapshot.kernel_claims:
            if (claim.family, claim.protocol) == (mapping.family, mapping.protocol) \
                    and claim.first <= mapping.host_port <= claim.last \
                    and (not claim.host_ip or not mapping.listen_ip or claim.host_ip == mapping.listen_ip):
                raise PublisherError(
                    "%s: host port %d/%s is mapped by hotport's kernel rules (%s); remove that mapping "
                    "first (state: absent, method: kernel). Nothing was changed."
                    % (mapping.spec(), mapping.host_port, mapping.protocol, claim.owner_tag))
        # On a user-defined network Docker's DNS finds the target wherever it restarts; the
        # default bridge has no DNS, so there it is its address.
        by_name = endpoint.network != "bridge" and endpoint.name
        return [Sidecar(mapping.family, mapping.protocol, mapping.listen_ip, mapping.host_port, mapping.container_port,
                        endpoint.container_id, endpoint.name, endpoint.network,
                        endpoint.name if by_name else endpoint.address(mapping.family), self.image)]

    def prepare(self, snapshot, endpoint, added):
        """Refuse, before any change, a sidecar name another container holds, and a missing image."""
        ours = set(sidecar.name for sidecar in snapshot.sidecars)
        for sidecar in added:
            name = sidecar.container_name()
            if name in snapshot.names and name not in ours:
                raise SidecarError(
                    "a container named %r exists and is not one of hotport's sidecars (it has no %s "
                    "label); remove or rename it, or map another host port. Nothing was changed." % (name, LABEL))
        if added:
            self._require_image()

    def _require_image(self):
        try:
            self.client.inspect_image(self.image)
            return
        except docker_api.NotFound:
            pass
        try:
            self.client.pull(self.image)
            self.client.inspect_image(self.image)
        except docker_api.DockerError as exc:
            raise SidecarError(
                "sidecar_image %r is not on this engine and could not be pulled (%s). Load it "
                "(docker load) or pull it, or set sidecar_image to an image with socat on its PATH. "
                "Nothing was changed." % (self.image, exc))

    def apply(self, snapshot, plans):
        """Remove what goes, then create what comes; a failure undoes both."""
        removed, created = [], []
        try:
            for plan in plans.values():
                for sidecar in plan.delete:
                    self._remove(sidecar)
                    removed.append(sidecar)
            for plan in plans.values():
                for sidecar in plan.add:
                    created.append(self._create(sidecar))
        except docker_api.DockerError as exc:
            undone = self._undo(created, removed)
            raise SidecarError("creating or removing a sidecar failed: %s. %s" % (_explain(exc, self.image), undone))

    def _create(self, sidecar):
        name = sidecar.container_name()
        port = "%d/%s" % (sidecar.container_port, sidecar.protocol)
        binding = {"HostIp": sidecar.host_ip or ANY_ADDRESS[sidecar.family], "HostPort": str(sidecar.host_port)}
        container_id = self.client.create_container(name, {
            "Image": sidecar.image, "Entrypoint": ["socat"], "Cmd": sidecar.command(), "Labels": sidecar.labels(),
            "ExposedPorts": {port: {}}, "User": NOBODY,
            "HostConfig": {"PortBindings": {port: [binding]},
                           "RestartPolicy": {"Name": "unless-stopped"}, "NetworkMode": sidecar.network,
                           # Forwarding needs no privilege: nobody may bind any port in its own
                           # network namespace, and nothing else is granted.
                           "Sysctls": {"net.ipv4.ip_unprivileged_port_start": "0"},
                           "CapDrop": ["ALL"], "ReadonlyRootfs": True, "SecurityOpt": ["no-new-privileges:true"],
                           "PidsLimit": PIDS_LIMIT, "Memory": MEMORY_LIMIT},
            "NetworkingConfig": {"EndpointsConfig": {sidecar.network: {}}}})
        try:
            self.client.start(container_id)
        except docker_api.DockerError:
            self.client.remove_container(container_id)  # created, never started: not kept
            raise
        return container_id

    def _remove(self, sidecar):
        self.client.remove_container(sidecar.container_id or sidecar.name)

    def _undo(self, created, removed):
        problems = []
        for container_id in created:
            try:
                self.client.remove_container(container_id)
            except docker_api.DockerError as exc:
                problems.append("could not remove new sidecar %s: %s" % (container_id[:12], exc))
        for sidecar in removed:
            try:
                self._create(sidecar)
            except docker_api.DockerError as exc:
                problems.append("could not re-create sidecar %s: %s" % (sidecar.name, exc))
        if problems:
            return "UNDO INCOMPLETE: " + "; ".join(problems)
        return "Everything was undone; nothing was changed."

    def facts(self, snapshot):
        return dict(publisher=self.name, sidecar_image=self.image)


@dataclass(frozen=True)
class PublishedBy:
    """Where a claim comes from, for messages: a container publishing a port through Docker."""

    container: str
    host_ip: str
    host_port: int
    container_port: int
    protocol: str

    def text(self):
        return "container %s publishes %s:%d->%s/%s" % (
            self.container, self.host_ip or "*", self.host_port, self.container_port, self.protocol)


def _explain(exc, image):
    text = str(exc)
    if "executable file not found" in text or "no such file or directory" in text.lower():
        return "%s (sidecar_image %r has no socat on its PATH; give an image that has)" % (text, image)
    return text
