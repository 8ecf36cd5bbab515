"""Render -> apply -> read back, for every mapping shape (tests/mapping_shapes.py) on every engine
layout and backend, in throwaway namespaces: what hotport reads back is exactly what it was asked to
publish, rule for rule as it rendered them, a re-run changes nothing and absent leaves nothing."""
import dataclasses

import pytest

from ansible_collections.hotport.docker.plugins.module_utils.publishers.registry import kernel_publisher

from ..mapping_shapes import SHAPES, endpoint, mappings
from .conftest import ENGINE, Host, NftHost, reconcile_on
from .test_nftables_netns import ENGINE as NFT_ENGINE

HOSTS = {"iptables-classic": (lambda: Host("nft", "classic"), ENGINE),
         "iptables-docker28": (lambda: Host("nft", "docker28"), ENGINE),
         "iptables-docker28-noproxy": (lambda: Host("legacy", "docker28-noproxy"), ENGINE),
         "nftables": (NftHost, NFT_ENGINE)}


@pytest.fixture(params=sorted(HOSTS))
def backend(request):
    make, engine = HOSTS[request.param]
    host = make()
    yield host, engine
    host.close()


def read_back(host, engine):
    """(publisher, snapshot, hotport's live rules of both families) as a fresh run reads them."""
    publisher = kernel_publisher(host.runner, engine)
    snapshot = publisher.read()
    return publisher, snapshot, [rule for family in sorted(snapshot.families()) for rule in snapshot.owned(family)]


@pytest.mark.parametrize("shape", SHAPES, ids=[shape.name for shape in SHAPES])
def test_a_mapping_reads_back_as_it_was_asked_for(backend, shape, tmp_path):
    host, engine = backend
    lock = str(tmp_path / "lock")
    asked = mappings(shape)
    assert reconcile_on(host.runner, engine, endpoint(shape), asked, lock).changed
    publisher, snapshot, live = read_back(host, engine)
    assert in_order(snapshot.mappings_of(live).values()) == in_order(read_as(asked, snapshot))
    rendered = dict((rule.same_as, rule) for mapping in asked
                    for rule in publisher.render(snapshot, mapping, endpoint(shape)))
    assert sorted(rule.text() for rule in live) == sorted(rendered[rule.same_as].text() for rule in live)
    # Each rendered rule is live: hotport's among its owned rules, the table's structure in the ruleset.
    owned, present = set(rule.same_as for rule in live), _present(snapshot)
    assert all(identity in (owned if rule.owner_tag else present) for identity, rule in rendered.items())
    assert not reconcile_on(host.runner, engine, endpoint(shape), asked, lock).changed
    reconcile_on(host.runner, engine, endpoint(shape), asked, lock, state="absent")
    assert read_back(host, engine)[2] == []


def in_order(found):
    return sorted((mapping.as_dict() for mapping in found), key=lambda mapping: sorted(mapping.items()))


def read_as(asked, snapshot):
    """What ``asked`` reads back as on this engine: without the userland proxy Docker's NAT gives
    every mapping local access (iptables_render.Layout.mappings)."""
    if getattr(snapshot.layout, "userland_proxy", True):
        return asked
    return [dataclasses.replace(mapping, local_access=True) for mapping in asked]


def _present(snapshot):
    return set(identity for family in snapshot.families() for identity in snapshot.present(family))
