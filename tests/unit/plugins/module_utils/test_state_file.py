"""The state file: how a request changes the recorded entries, atomic writes, one writer at a
time, and a file nobody else may change."""
import json
import multiprocessing
import os
import stat
import tempfile
from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.hotport.docker.plugins.module_utils.state_file import (
    StateFileError, due, load_state, record_request, update_state, without)
from ansible_collections.hotport.docker.plugins.module_utils.docker_api import Endpoint
from ansible_collections.hotport.docker.plugins.module_utils.ports import parse_ports

WEB = Endpoint("a" * 64, "web", "172.17.0.2", "bridge", "docker0")
DB = {"container": "db", "network": "backend", "ports": ["15432:5432/tcp"]}


NOON = datetime(2026, 12, 7, 12, 0, 0, tzinfo=timezone.utc)


def record(entries, state="present", ports=None, container="web", exclusive=False, network=None, endpoint=WEB,
           expires=None, now=NOON):
    request = {"container": container, "ports": ports, "state": state, "exclusive": exclusive, "network": network,
               "expires": expires}
    return record_request(entries, request, endpoint, parse_ports(ports), now)


def test_present_adds_an_entry_named_after_the_container_and_keeps_others():
    after = record([DB], ports=["8080:80"], container="a" * 12)
    assert after == [DB, {"container": "web", "network": None, "ports": ["8080:80/tcp"]}]


def test_present_merges_ports_and_replaces_a_host_port_given_again():
    first = record([], ports=["8080:80", "5353:53/udp"])
    after = record(first, ports=["8080:8000", "9090:90"])
    assert after == [{"container": "web", "network": None,
                      "ports": ["8080:8000/tcp", "9090:90/tcp", "5353:53/udp"]}]


def test_exclusive_keeps_exactly_the_given_ports():
    first = record([], ports=["8080:80", "9090:90"])
    assert record(first, ports=["7070:70"], exclusive=True)[0]["ports"] == ["7070:70/tcp"]


def test_absent_removes_ports_then_the_entry():
    first = record([DB], ports=["8080:80", "9090:90"], network="bridge")
    fewer = record(first, state="absent", ports=["9090:90"])
    assert fewer == [DB, {"container": "web", "network": "bridge", "ports": ["8080:80/tcp"]}]
    assert record(fewer, state="absent", ports=["8080:80"]) == [DB]
    assert record(first, state="absent") == [DB]


def test_absent_of_an_unknown_container_changes_nothing():
    assert record([DB], state="absent", container="b" * 12,
                  endpoint=Endpoint("b" * 12, "", "", "", "")) == [DB]


def test_save_is_atomic_and_reports_change(tmp_path):
    path = str(tmp_path / "etc" / "mappings.json")
    assert load_state(path) == []
    assert update_state(path, lambda entries: [DB]) is True
    assert update_state(path, lambda entries: [DB]) is False
    assert json.load(open(path)) == {"version": 1, "mappings": [DB]}
    assert sorted(p.name for p in (tmp_path / "etc").iterdir()) == [".mappings.json.lock", "mappings.json"]


@pytest.mark.parametrize("content", ["{not json", '{"version": 9, "mappings": []}', "[]"])
def test_an_unreadable_state_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "mappings.json"
    path.write_text(content)
    with pytest.raises(StateFileError, match="mappings.json"):
        load_state(str(path))


def entry(number):
    return {"container": "c%02d" % number, "network": None, "ports": ["%d:80/tcp" % (20000 + number)]}


def add_entry(path, number):
    update_state(path, lambda entries: sorted(entries + [entry(number)], key=lambda item: item["container"]))


def test_twenty_writers_at_once_leave_twenty_entries(tmp_path):
    """What four forks of the module did: each read, then wrote its own view; half were lost."""
    path = str(tmp_path / "mappings.json")
    with multiprocessing.get_context("fork").Pool(20) as pool:
        pool.starmap(add_entry, [(path, number) for number in range(20)])
    assert load_state(path) == [entry(number) for number in range(20)]


def test_written_with_its_final_mode_and_through_a_symlink(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o755)
    link = tmp_path / "mappings.json"
    link.symlink_to(real / "mappings.json")
    update_state(str(link), lambda entries: [DB])
    assert link.is_symlink() and load_state(str(real / "mappings.json")) == [DB]
    assert stat.S_IMODE(os.stat(str(real / "mappings.json")).st_mode) == 0o644


@pytest.mark.parametrize("where", ["file", "folder"])
def test_a_state_file_others_could_write_is_refused_and_left_alone(tmp_path, where):
    path = tmp_path / "etc" / "mappings.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"version": 1, "mappings": [DB]}))
    (path if where == "file" else path.parent).chmod(0o666 if where == "file" else 0o777)
    with pytest.raises(StateFileError, match="writable by group or others.*chmod go-w"):
        load_state(str(path))
    with pytest.raises(StateFileError, match="writable by group or others"):
        update_state(str(path), lambda entries: [])
    assert json.loads(path.read_text())["mappings"] == [DB]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_a_state_file_another_user_owns_is_refused(tmp_path):
    path = tmp_path / "mappings.json"
    path.write_text(json.dumps({"version": 1, "mappings": [DB]}))
    os.chown(str(path), 1000, 1000)
    with pytest.raises(StateFileError, match=r"owned by .*uid 1000.*chown root"):
        load_state(str(path))
    link = tmp_path / "link.json"
    os.symlink(str(tmp_path / "elsewhere.json"), str(link))
    os.lchown(str(link), 1000, 1000)
    with pytest.raises(StateFileError, match="symlink"):
        update_state(str(link), lambda entries: [DB])
    assert not (tmp_path / "elsewhere.json").exists()


@pytest.mark.parametrize("content, message", [
    ("[" * 200000 + "]" * 200000, "nested too deep"),
    ('{"version": 1, "mappings": ["' + "x" * (17 << 20) + '"]}', "larger than"),
])
def test_a_huge_or_deep_state_file_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "mappings.json"
    path.write_text(content)
    with pytest.raises(StateFileError, match=message):
        load_state(str(path))


def test_the_temporary_file_is_written_beside_the_state_file_not_in_tmpdir(tmp_path, monkeypatch):
    """A host whose /tmp is another file system (a tmpfs) cannot rename a temporary file from there."""
    elsewhere = tmp_path / "tmpfs"
    elsewhere.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(elsewhere))
    renamed = []
    real_replace = os.replace

    def replace(source, target, src_dir_fd=None, dst_dir_fd=None):
        renamed.append(tuple(os.readlink("/proc/self/fd/%d" % folder) for folder in (src_dir_fd, dst_dir_fd)))
        return real_replace(source, target, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)

    monkeypatch.setattr(os, "replace", replace)
    path = tmp_path / "etc" / "mappings.json"
    assert update_state(str(path), lambda entries: [DB]) is True
    assert renamed == [(str(path.parent), str(path.parent))]
    assert list(elsewhere.iterdir()) == []


def test_a_temporary_port_records_its_end_and_a_rerun_keeps_it():
    """Issue 37: a duration given again keeps the recorded end (changed: false), as long as it lies
    ahead; a timestamp sets the end; the same port without expires lasts."""
    first = record([DB], ports=["8080:80", "5432:5432"])
    opened = record(first, ports=["5432:5432"], expires="1h")
    assert opened[1]["expires_at"] == {"5432:5432/tcp": "2026-12-07T13:00:00Z"}
    assert record(opened, ports=["5432:5432"], expires="1h", now=NOON + timedelta(minutes=20)) == opened
    later = record(opened, ports=["5432:5432"], expires="2026-12-07T19:00:00+01:00")
    assert later[1]["expires_at"] == {"5432:5432/tcp": "2026-12-07T18:00:00Z"}
    assert "expires_at" not in record(opened, ports=["5432:5432"])[1]
    assert record(opened, ports=["8080:80"])[1]["expires_at"] == opened[1]["expires_at"], "other ports keep theirs"
    reopened = record(opened, ports=["5432:5432"], expires="1h", now=NOON + timedelta(hours=2))
    assert reopened[1]["expires_at"] == {"5432:5432/tcp": "2026-12-07T15:00:00Z"}, "a past end is no end to keep"
    retargeted = record(opened, ports=["5432:6432"], expires="1h", now=NOON + timedelta(minutes=20))
    assert retargeted[1]["expires_at"] == {"5432:6432/tcp": "2026-12-07T13:20:00Z"}
    assert "expires_at" not in record(opened, state="absent", ports=["5432:5432"])[1]


def test_only_the_ports_whose_end_has_come_are_due_and_leave_the_entry():
    entries = record(record([DB], ports=["8080:80"]), ports=["5432:5432", "6379:6379"], expires="30m")
    [entry] = [entry for entry in entries if entry["container"] == "web"]
    assert due(entry, NOON + timedelta(minutes=29)) == []
    assert due(entry, NOON + timedelta(minutes=30)) == ["5432:5432/tcp", "6379:6379/tcp"]
    left = without(entries, entry, NOON + timedelta(minutes=30))
    assert left == [DB, {"container": "web", "network": None, "ports": ["8080:80/tcp"]}]
    only_temporary = record([], ports=["5432:5432"], expires="30m")
    assert without(only_temporary, only_temporary[0], NOON + timedelta(hours=1)) == []
    assert due({"container": "web", "ports": ["5432:5432"], "expires_at": "soon"}, NOON) == []
    assert due({"container": "web", "ports": ["5432:5432"], "expires_at": {"5432:5432/tcp": "later"}}, NOON) == [
        "5432:5432"], "an end that cannot be read has come: a hand-edited file does not make a mapping last"
