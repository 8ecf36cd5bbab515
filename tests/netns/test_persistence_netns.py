"""Persistence and orphans against real iptables (nft and legacy) and nft in throwaway network
namespaces: the saved boot-time ruleset loads with iptables-restore and a "boot" (an empty
namespace restoring it) gets the admin's rules back and none of hotport's; hotport rules of
removed containers are removed wherever they stand, by the reconciler's sweep, by a run that maps
the same host port, and by state=absent with the container's ID."""
import os

from ansible_collections.hotport.docker.plugins.module_utils.apply import remove_orphans
from ansible_collections.hotport.docker.plugins.module_utils.ports import parse_ports
from ansible_collections.hotport.docker.plugins.module_utils.persistence import persist, persistable
from ansible_collections.hotport.docker.plugins.module_utils.publishers.iptables_rules import strip_save_comments

from .conftest import ENGINE, Namespace, endpoint, reconcile_on
from .test_nftables_netns import ENGINE as NFT_ENGINE, elements

GONE = "beef" * 16
KEPT = "c0ffee0000aa" + "0" * 52
ADMIN = ["-A", "INPUT", "-p", "tcp", "-m", "tcp", "--dport", "22", "-m", "comment", "--comment",
         'admin "ssh" #1', "-j", "ACCEPT"]


def map_everything(host, apply, container_id, port=8080):
    """Mappings whose rules stand in every table and chain hotport writes to, both families."""
    ep = endpoint(ip="172.17.0.5", container_id=container_id, ip6="fd00:aa::5")
    apply(host, ["%d:80" % port, "[::]:%d:80" % port], ep=ep, sources=["198.18.0.0/30", "2001:db8:1::/64"], local=True)
    apply(host, ["%d:3868/sctp" % (port + 1)], ep=ep)


def flush_dockers_dnats(host, variant, chain="DOCKER "):
    """What a dockerd start does to its nat DOCKER chain: hotport's DNATs there are gone (with
    ``chain`` '', every hotport rule of the nat table)."""
    for tool in ("iptables", "ip6tables"):
        saved = host.run("%s-%s-save" % (tool, variant), "-t", "nat").stdout
        for line in saved.splitlines():
            if line.startswith("-A " + chain) and "hotport:" in line:
                host.run("sh", "-c", "%s-%s -t nat %s" % (tool, variant, line.replace("-A ", "-D ", 1)))


def by_table(text):
    """{table: its lines}: iptables-legacy-save lists tables in the order the kernel loaded them."""
    tables = {}
    for block in text.split("COMMIT\n"):
        if block.strip():
            tables[block.split("\n", 1)[0]] = block
    return tables


def test_the_saved_ruleset_loads_and_a_boot_restores_the_admins_rules_only(host, apply, tmp_path):
    map_everything(host, apply, KEPT)
    host.iptables(*ADMIN)
    files = {4: str(tmp_path / "rules.v4"), 6: str(tmp_path / "rules.v6")}
    assert persist(host.runner, files) == {files[4]: True, files[6]: True}
    for family, path in files.items():
        tool = "iptables" if family == 4 else "ip6tables"
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
        with open(path) as saved:
            text = saved.read()
        assert host.run("%s-%s-restore" % (tool, host.variant), "--test", data=text, check=False).returncode == 0
        assert "hotport:" not in text and ":DOCKER - [0:0]" in text
        booted = Namespace(bare=True)
        try:
            booted.run("%s-%s-restore" % (tool, host.variant), data=text)
            after = strip_save_comments(booted.run("%s-%s-save" % (tool, host.variant)).stdout)
        finally:
            booted.close()
        live = host.run("%s-%s-save" % (tool, host.variant)).stdout
        assert by_table(persistable(after, family)) == by_table(persistable(live, family)) == by_table(text)
        assert (family == 4) == ('--comment "admin \\"ssh\\" #1" -j ACCEPT' in after)
    assert persist(host.runner, files) == {files[4]: False, files[6]: False}


def tagged_of(host, short_id):
    return [line for line in host.tagged() if short_id in line]


def test_the_sweep_removes_removed_containers_rules_from_every_table_and_family(host, apply, tmp_path):
    map_everything(host, apply, GONE)
    map_everything(host, apply, KEPT, port=9090)
    kept = tagged_of(host, KEPT[:12])
    flush_dockers_dnats(host, host.variant)
    assert tagged_of(host, GONE[:12]), "nothing left to sweep: the test proves nothing"
    removed = remove_orphans(host.runner, ENGINE, [KEPT], lock_path=str(tmp_path / "lock"))
    assert len(removed) >= 8 and all(GONE[:12] in rule for rule in removed)
    assert tagged_of(host, GONE[:12]) == []
    assert tagged_of(host, KEPT[:12]) == [line for line in kept if "-j DNAT" not in line or "DOCKER" not in line]
    assert remove_orphans(host.runner, ENGINE, [KEPT], lock_path=str(tmp_path / "lock")) == []


def test_a_run_mapping_the_same_port_removes_what_a_removed_container_left(classic_host, apply):
    map_everything(classic_host, apply, GONE)
    flush_dockers_dnats(classic_host, classic_host.variant)
    apply(classic_host, ["8080:80", "[::]:8080:80"], container_exists=lambda container_id: False)
    apply(classic_host, ["8081:3868/sctp"], container_exists=lambda container_id: False)
    assert tagged_of(classic_host, GONE[:12]) == []


def test_absent_with_the_id_removes_leftovers_in_every_table(classic_host, apply):
    map_everything(classic_host, apply, GONE)
    flush_dockers_dnats(classic_host, classic_host.variant, chain="")  # nat holds nothing of it now
    assert [line for line in tagged_of(classic_host, GONE[:12]) if "CHECKSUM" in line]
    apply(classic_host, [], ep=endpoint(container_id=GONE, ip=""), state="absent")
    assert tagged_of(classic_host, GONE[:12]) == []


def test_the_sweep_on_the_nftables_publisher(nft_host, tmp_path):
    def nft_apply(ports, container_id, **options):
        reconcile_on(nft_host.runner, NFT_ENGINE, endpoint(ip="172.17.0.5", container_id=container_id, ip6="fd00:aa::5"),
                     parse_ports(ports, options.get("sources", ()), options.get("local", False)), str(tmp_path / "lock"))

    nft_apply(["8080:80", "[::]:8080:80"], GONE)
    nft_apply(["8081:80"], GONE, sources=["198.18.0.0/30"], local=True)
    nft_apply(["9191:80"], KEPT)

    def kept():
        return dict((name, [row for row in rows if KEPT[:12] in row[2]]) for name, rows in elements(nft_host).items())

    before = kept()
    removed = remove_orphans(nft_host.runner, NFT_ENGINE, [KEPT], lock_path=str(tmp_path / "lock"))
    assert removed and all(GONE[:12] in rule for rule in removed)
    assert [line for line in nft_host.tagged() if GONE[:12] in line] == []
    assert kept() == before and any(before.values())
