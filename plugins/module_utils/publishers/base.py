# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every publisher shares: the errors a refused or failed publication raises.

A publisher makes the host forward a host port to a container: the iptables publisher with rules
in Docker's own iptables chains (iptables.py), the nftables publisher with hotport's own nft
tables for Docker's nftables backend (nftables.py), the sidecar publisher with a proxy container
that Docker itself publishes (sidecar.py). Every error is raised with nothing changed, and
its message names the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ansible_collections.hotport.docker.plugins.module_utils.host import allow_loopback_routing


class PublisherError(RuntimeError):
    """The mapping could not be published; nothing was changed."""


class LayoutError(PublisherError):
    """The engine's firewall set-up is one this publisher cannot (or must not) write to."""


class NetfilterError(PublisherError):
    """The ruleset could not be read or written; the message says what to check."""


@dataclass
class Plan:
    """What one run changes in one address family: rules (or sidecars) to delete, then to add."""

    delete: list = field(default_factory=list)
    add: list = field(default_factory=list)

    def __bool__(self):
        return bool(self.delete or self.add)


@dataclass(frozen=True)
class Claim:
    """A host port range that the live state publishes: Docker's (``owner_tag`` None) or one
    of hotport's mappings (claimed once, however many rules it has)."""

    rule: object  # the publisher's rule that says so (its text() goes into messages)
    family: int
    protocol: str
    host_ip: str  # '' for every address
    first: int
    last: int
    owner_tag: str = None
    container_ip: str = ""
    container_port: int = None  # of the first host port


class Snapshot:
    """One publisher's live state, read once per attempt (Publisher.read), answering what the
    planner and the inventory ask of it. Its rules (or sidecars) have ``family``, ``owner_tag``
    (None when not hotport's), ``same_as`` (identity for diffing) and ``text()`` (what diff mode
    shows)."""

    def families(self):
        """Address families this engine can publish (4, and 6 where it has IPv6 rules)."""
        raise NotImplementedError

    def claims(self, family):
        """Every published host port range of ``family``: [Claim]."""
        raise NotImplementedError

    def owned(self, family):
        """hotport's rules of ``family``, in ruleset order."""
        raise NotImplementedError

    def present(self, family):
        """Identities (``same_as``) of every rule of ``family``."""
        raise NotImplementedError

    def copies(self, family, rule):
        """Live copies of the desired ``rule`` -> list (they carry what deleting them needs)."""
        raise NotImplementedError

    def misplaced(self, family, rule):
        """Whether a live copy of ``rule`` stands where it never matches (it is written anew)."""
        raise NotImplementedError

    def mappings_of(self, rules):
        """hotport's ``rules`` (any family; live, or rendered for this engine) -> {(family, owner tag):
        PortMapping}, its options read back as this engine's rules give them."""
        raise NotImplementedError

    def serves(self, protocol, port):
        """Whether the publishing machinery itself listens on this host port (a host socket there is
        then no clash)."""
        return False


class KernelSnapshot(Snapshot):
    """A kernel publisher's live state: per family its owned rules and its claims ({family: list}),
    worked out once when read, and the ``layout`` that renders its rules and reads them back."""

    def __init__(self, layout, owned, claims):
        self.layout = layout
        self._owned, self._claims = owned, claims

    def families(self):
        return set(self._owned)

    def claims(self, family):
        return self._claims[family]

    def owned(self, family):
        return self._owned[family]

    def mappings_of(self, rules):
        return self.layout.mappings(rules)


class Publisher:
    """One way to publish a host port (iptables.py, nftables.py, sidecar.py; registry.py chooses):
    what acts. What is live is its Snapshot's to say."""

    name = ""
    # What the run should be told about this publisher's reach (the reconcile outcome's warnings).
    warnings = ()
    # Writes the host's kernel rules: needs root and the host lock, and checks the host's own
    # sockets and addresses (Docker's allocator does that for a publisher that goes through it).
    kernel = True

    def read(self, mappings=None, short_id=None):
        """The live state -> Snapshot, as much of it as planning ``mappings`` of container
        ``short_id`` needs (everything when None)."""
        raise NotImplementedError

    def ipv6_refusal(self, specs):
        """Why IPv6 ``specs`` cannot be published on this engine, and the fix."""
        raise NotImplementedError

    def render(self, snapshot, mapping, endpoint):
        """The rules that publish ``mapping`` to ``endpoint``, tagged as hotport's."""
        raise NotImplementedError

    def translated(self, added):
        """(family, protocol, host port) of every mapping whose address translation ``added``
        writes: its existing conntrack flows must be forgotten."""
        return set()

    def prepare(self, snapshot, endpoint, added):
        """Host settings the ``added`` rules need, set before they are applied."""

    def apply(self, snapshot, plans):
        """Apply {family: Plan} as one transaction: all of it, or nothing (rolled back)."""
        raise NotImplementedError

    def facts(self, snapshot):
        """What the modules report about this publisher and the engine's layout."""
        raise NotImplementedError


class KernelPublisher(Publisher):
    """A publisher that writes firewall rules, through a runner (where the engine's bridges and rules
    are), for one engine. Its snapshot's ``layout`` renders (and reads back) the rules of this
    engine's set-up. ``lock_path``: where its runs serialise, when not the host's lock."""

    lock_path = None

    def __init__(self, runner, engine):
        self.runner = runner
        self.engine = engine

    def render(self, snapshot, mapping, endpoint):
        return snapshot.layout.render(mapping, endpoint)

    def route_loopback(self, bridge):
        """route_localnet on ``bridge``, which a loopback DNAT to a container needs (it is never
        turned off again: Docker's own hairpin mode leaves it on, and other mappings may rely on it)."""
        error = allow_loopback_routing(self.runner, bridge)
        if error:
            raise NetfilterError(error + "; loopback access needs it. Nothing was changed.")
