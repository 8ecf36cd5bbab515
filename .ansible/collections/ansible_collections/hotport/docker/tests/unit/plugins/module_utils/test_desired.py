"""The state file: how a request changes the recorded entries, and atomic writes."""
import json

import pytest

from ansible_collections.hotport.docker.plugins.module_utils.desired import (
    StateFileError, load_state, record_request, save_state)
from ansible_collections.hotport.docker.plugins.module_utils.docker_api import Endpoint
from ansible_collections.hotport.docker.plugins.module_utils.ports import parse_ports

WEB = Endpoint("a" * 64, "web", "172.17.0.2", "bridge", "docker0")
DB = {"container": "db", "network": "backend", "ports": ["15432:5432/tcp"]}


def record(entries, state="present", ports=None, container="web", exclusive=False, network=None, endpoint=WEB):
    request = {"container": container, "ports": ports, "state": state, "exclusive": exclusive, "network": network}
    return record_request(entries, request, endpoint, parse_ports(ports))


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
    assert save_state([DB], path) is True
    assert save_state([DB], path) is False
    assert json.load(open(path)) == {"version": 1, "mappings": [DB]}
    assert [p.name for p in (tmp_path / "etc").iterdir()] == ["mappings.json"]


@pytest.mark.parametrize("content", ["{not json", '{"version": 9, "mappings": []}', "[]"])
def test_an_unreadable_state_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "mappings.json"
    path.write_text(content)
    with pytest.raises(StateFileError, match="mappings.json"):
        load_state(str(path))
