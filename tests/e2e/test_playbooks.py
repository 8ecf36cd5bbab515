"""The playbooks, the role's reconciler and the info module on this host's engine."""
import json
import os
import subprocess
import sys
import time

import pytest

from .conftest import (ANSIBLE_ENV, PAYLOAD, RECONCILER, RECONCILER_LIB, ROOT, address, docker, fetch, module, ruleset,
                       sh)

THIEF = ("/bin/busybox", "sh", "-c", "busybox mkdir /t; echo thief > /t/index.html; exec busybox httpd -f -p 80 -h /t")


@pytest.fixture
def state_file(tmp_path):
    return str(tmp_path / "mappings.json")


def playbook(name, state_file, *extra, environment=None):
    """Run playbooks/NAME against localhost -> CompletedProcess. Packages are this machine's
    (scripts/setup.sh); the state file and the reconciler's code go to test places. ``environment``:
    variables added to the controller's, which the local connection's modules inherit."""
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            os.path.join(ROOT, "playbooks", name),
            "-e", "ansible_python_interpreter=" + sys.executable, "-e", "port_map_install_packages=false",
            "-e", "port_map_state_file=" + state_file, "-e", "port_map_lib_dir=" + RECONCILER_LIB]
    for item in extra:
        argv += ["-e", item]
    return subprocess.run(argv, capture_output=True, text=True, env=dict(ANSIBLE_ENV, **(environment or {})),
                          check=False)


def recap_changed(result):
    assert result.returncode == 0, result.stdout[-3000:]
    return int(result.stdout.rpartition("changed=")[2].split()[0])


def recorded(state_file):
    with open(state_file) as handle:
        return json.load(handle)["mappings"]


def test_add_then_remove_mapping(containers, state_file):
    web = containers()
    assert recap_changed(playbook("add_mapping.yml", state_file, "container=" + web,
                                  "ports=18180:80,18153:53/udp")) > 0
    assert fetch(18180) == PAYLOAD
    assert recorded(state_file) == [{"container": web, "network": None, "ports": ["18180:80/tcp", "18153:53/udp"]}]
    assert recap_changed(playbook("add_mapping.yml", state_file, "container=" + web,
                                  "ports=18180:80,18153:53/udp")) == 0
    assert recap_changed(playbook("remove_mapping.yml", state_file, "container=" + web, "ports=18153:53/udp")) > 0
    assert recorded(state_file)[0]["ports"] == ["18180:80/tcp"]
    assert recap_changed(playbook("remove_mapping.yml", state_file, "container=" + web)) > 0
    assert fetch(18180) is None and recorded(state_file) == []


def test_role_takes_every_module_option_and_skips_installed_packages(containers, state_file):
    """port_map_defaults reaches the module (local_access, allowed_sources, timeout), and with every
    package already installed the package manager is not touched."""
    web = containers()
    defaults = json.dumps({"port_map_defaults": {"local_access": True, "allowed_sources": ["198.18.0.0/30"],
                                                 "timeout": 30}})
    result = playbook("add_mapping.yml", state_file, "container=" + web, "ports=18191:80",
                      "port_map_install_packages=true", defaults)
    assert recap_changed(result) > 0
    install = result.stdout[result.stdout.index("TASK [hotport.docker.port_map : Install the packages that are missing]"):]
    assert install.split("\n")[1].startswith("skipping: [localhost]"), install[:400]
    assert fetch(18191) == PAYLOAD
    assert sh("curl", "-sS", "-m", "3", "http://127.0.0.1:18191/").stdout.strip() == PAYLOAD
    [entry] = recorded(state_file)
    assert entry["ports"] == [{"host_port": 18191, "container_port": 80, "protocol": "tcp", "local_access": True,
                               "allowed_sources": ["198.18.0.0/30"]}]


def test_docker_host_of_the_environment_reaches_the_role_unless_the_role_names_one(containers, state_file):
    """Issue 37: the role always passed docker_host, so DOCKER_HOST never reached it."""
    web = containers()
    before = ruleset()
    elsewhere = {"DOCKER_HOST": "unix:///run/hp-e2e-no-engine.sock"}
    missed = playbook("add_mapping.yml", state_file, "container=" + web, "ports=18192:80", environment=elsewhere)
    assert missed.returncode != 0 and "/run/hp-e2e-no-engine.sock" in missed.stdout, missed.stdout[-2000:]
    assert ruleset() == before and fetch(18192) is None
    named = playbook("add_mapping.yml", state_file, "container=" + web, "ports=18192:80",
                     "port_map_docker_host=unix:///var/run/docker.sock", environment=elsewhere)
    assert recap_changed(named) > 0 and fetch(18192) == PAYLOAD


@pytest.mark.parametrize("extra, message", [
    (["container=web"], "give the container and its ports"),
    (["ports=18181:80"], "give the container and its ports"),
    (["container=hp-e2e-no-such-container", "ports=18181:80"], "not found"),
    (["container=web", "ports=18181:80/icmp"], "protocol"),
])
def test_bad_extra_vars_are_a_clear_error_with_nothing_changed(state_file, extra, message):
    before = ruleset()
    result = playbook("add_mapping.yml", state_file, *extra)
    assert result.returncode != 0 and message in result.stdout
    assert ruleset() == before and not os.path.exists(state_file)


def move(web):
    """Stop web, let another container take its address, start web again -> the thief."""
    old_ip = address(web)
    docker("stop", "-t", "1", web)
    thief = docker("run", "-d", "hotport/target", *THIEF)
    docker("start", web)
    assert address(thief) == old_ip != address(web)
    return thief


def test_reconciler_apply_follows_a_moved_container(containers, state_file):
    web = containers("--restart", "unless-stopped")
    playbook("add_mapping.yml", state_file, "container=" + web, "ports=18182:80")
    thief = move(web)
    try:
        assert fetch(18182) == "thief"  # the trap: a stale rule forwards to whoever has the address
        stale = module(module_name="hotport.docker.container_port_map_info", container=web)["mappings"]
        assert [(item["host_port"], item["stale"]) for item in stale] == [(18182, True)]
        assert stale[0]["stale_reason"].startswith("address changed")
        assert subprocess.run([RECONCILER, "apply", "--state-file", state_file], check=False).returncode == 0
        assert fetch(18182) == PAYLOAD
        current = module(module_name="hotport.docker.container_port_map_info", container=web)["mappings"]
        assert [(item["stale"], item["complete"]) for item in current] == [(False, True)]
    finally:
        docker("rm", "-f", thief)


def test_reconciler_watch_removes_on_stop_and_restores_on_start(containers, state_file):
    web = containers()
    playbook("add_mapping.yml", state_file, "container=" + web, "ports=18183:80")
    watcher = subprocess.Popen([RECONCILER, "watch", "--state-file", state_file, "--interval", "600"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    thief = None
    try:
        time.sleep(1)
        thief = move(web)
        deadline = time.time() + 20
        while fetch(18183) != PAYLOAD and time.time() < deadline:
            time.sleep(0.5)
        assert fetch(18183) == PAYLOAD
        tag = "hotport:" + docker("inspect", "-f", "{{.Id}}", web)[:12]
        docker("stop", "-t", "1", web)
        deadline = time.time() + 20
        while tag in ruleset() and time.time() < deadline:
            time.sleep(0.5)
        assert tag not in ruleset() and fetch(18183) is None
    finally:
        watcher.terminate()
        log = watcher.communicate(timeout=10)[0]
        if thief:
            docker("rm", "-f", thief)
    assert "container %s: start" % web in log and "container %s: die" % web in log


def test_reconciler_applies_every_item_form_and_survives_bad_entries(containers, state_file):
    """Bad entries first: each is logged with its reason, and the good one after them is applied
    (a dict item of a stopped container once crashed the whole run)."""
    web, stopped = containers(), containers()
    docker("stop", "-t", "1", stopped)
    playbook("add_mapping.yml", state_file, "container=" + web, "ports=18185:80")  # installs the reconciler
    module(container=web, state="absent")
    items = ["18185:80/tcp", {"host_port": 18186, "container_port": 80, "protocol": "tcp",
                              "allowed_sources": ["198.18.0.0/30"], "local_access": False},
             {"host_port": 18187, "container_port": 80, "protocol": "tcp", "local_access": True,
              "allowed_sources": []}, "127.0.0.1:18188:80/tcp"]
    entries = ["not a request", {"ports": ["18189:80"]}, {"container": web, "ports": ["18190:80/icmp"]},
               {"container": stopped, "network": None, "ports": items[1:]},
               {"container": web + "-gone", "network": None, "ports": items[1:]},
               {"container": web, "network": None, "ports": items}]
    with open(state_file, "w") as handle:
        json.dump({"version": 1, "mappings": entries}, handle)
    result = subprocess.run([RECONCILER, "apply", "--state-file", state_file], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 1, result.stdout
    log = result.stdout
    assert "FAILED 'not a request': not a recorded request" in log
    assert "FAILED None 18189:80: not a recorded request" in log
    assert "FAILED %s 18190:80/icmp: " % web in log and "protocol" in log
    assert "waiting for %s " % stopped in log and '"host_port": 18186' in log
    assert "FAILED %s-gone " % web in log and "not found" in log
    assert fetch(18185) == fetch(18186) == PAYLOAD
    assert sh("curl", "-sS", "-m", "3", "http://127.0.0.1:18187/").stdout.strip() == PAYLOAD
    assert sh("curl", "-sS", "-m", "3", "http://127.0.0.1:18188/").stdout.strip() == PAYLOAD


def test_reconciler_keeps_a_corrupt_state_file_and_says_so(reconciler, state_file):
    with open(state_file, "w") as handle:
        handle.write('{"version": 1, "mappings": [{"container": "web", "po')
    result = subprocess.run([reconciler, "apply", "--state-file", state_file], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 1 and "cannot read the hotport state file %s" % state_file in result.stdout
    assert open(state_file).read() == '{"version": 1, "mappings": [{"container": "web", "po'


def test_reconciler_refuses_a_state_file_another_user_could_write(reconciler, containers, state_file):
    """What uid 1000 appends to a file it owns must not become root's rules."""
    web = containers()
    with open(state_file, "w") as handle:
        json.dump({"version": 1, "mappings": [{"container": web, "ports": ["18186:80"]}]}, handle)
    os.chown(state_file, 1000, 1000)
    before = ruleset()
    result = subprocess.run([reconciler, "apply", "--state-file", state_file], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 1 and "is owned by" in result.stdout and "chown root" in result.stdout
    assert ruleset() == before and fetch(18186) is None
    os.chown(state_file, 0, 0)
    os.chmod(os.path.dirname(state_file), 0o777)
    result = subprocess.run([reconciler, "apply", "--state-file", state_file], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 1 and "writable by group or others" in result.stdout and ruleset() == before
    os.chmod(os.path.dirname(state_file), 0o700)
    with open(state_file, "w") as handle:
        handle.write("[" * 200000 + "]" * 200000)
    result = subprocess.run([reconciler, "apply", "--state-file", state_file], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 1 and "nested too deep" in result.stdout and "Traceback" not in result.stderr


def test_info_lists_dockers_own_published_ports(containers):
    published = containers("-p", "18184:80")
    [item] = module(module_name="hotport.docker.container_port_map_info", container=published)["mappings"]
    assert (item["owner"], item["host_port"], item["container_ip"], item["tag"]) == (
        "docker", 18184, address(published), "")


def test_twenty_module_runs_at_once_each_keep_their_entry(containers, state_file, tmp_path):
    """Twenty inventory hosts on this one machine, forks=20, each mapping its own container into one
    state file: every run reads the file anew under its lock, so none loses another's entry."""
    names = [containers() for number in range(20)]
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("".join("%s port=%d\n" % (name, 18300 + number) for number, name in enumerate(names)))
    result = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible"), "all", "-i", str(inventory), "-f", "20",
         "-c", "local", "-e", "ansible_python_interpreter=" + sys.executable,
         "-m", "hotport.docker.container_port_map",
         "-a", "container={{ inventory_hostname }} ports={{ port }}:80 state_file=" + state_file],
        capture_output=True, text=True, env=ANSIBLE_ENV, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert result.stdout.count('"state_file_changed": true') == 20
    assert sorted(entry["container"] for entry in recorded(state_file)) == sorted(names)
    assert fetch(18300) == PAYLOAD and fetch(18319) == PAYLOAD


def test_a_temporary_mapping_ends_on_time_and_a_restart_after_it_does_not_revive_it(reconciler, containers, state_file):
    """Issue 37: expires on the module; the info module shows the time left; the reconciler removes
    the mapping at its end; `apply` (as at boot) after an end that passed while nothing ran removes
    it instead of applying it; a lasting port of the same container stays."""
    web = containers()
    before = ruleset()
    for bad, message in (("1h30", "neither a duration"), ("2020-01-01T00:00:00Z", "is past"),
                         ("2026-12-24T18:00:00", "has no time zone")):
        refused = module(container=web, ports=["18186:80"], expires=bad, state_file=state_file)
        assert refused["failed"] and message in refused["msg"], refused
    unrecorded = module(container=web, ports=["18186:80"], expires="1h")
    assert unrecorded["failed"] and "state_file" in unrecorded["msg"]
    unreconciled = playbook("add_mapping.yml", state_file, "container=" + web, "ports=18186:80", "expires=1h",
                            "port_map_reconciler=false")
    assert unreconciled.returncode != 0 and "expires needs port_map_reconciler" in unreconciled.stdout
    assert ruleset() == before and not os.path.exists(state_file)

    lasting = module(container=web, ports=["18185:80"], state_file=state_file)
    opened = module(container=web, ports=["18186:80"], expires="6s", state_file=state_file)
    assert lasting.get("expires_at") == {} and list(opened["expires_at"]) == ["18186:80/tcp"], (lasting, opened)
    again = module(container=web, ports=["18186:80"], expires="6s", state_file=state_file)
    assert again["changed"] is False and again["expires_at"] == opened["expires_at"]
    listed = module(module_name="hotport.docker.container_port_map_info", container=web, state_file=state_file)
    ends = dict((item["host_port"], (item["expires_at"], item["expires_in"])) for item in listed["mappings"])
    assert ends[18185] == (None, None) and ends[18186][0] == opened["expires_at"]["18186:80/tcp"]
    assert 0 < ends[18186][1] <= 6
    assert fetch(18186) == PAYLOAD
    report, inventory = state_file + ".report.md", state_file + ".hosts.ini"
    with open(inventory, "w") as handle:
        handle.write("localhost ansible_connection=local\n")
    reported = playbook("report.yml", state_file, "target=all", "report_file=" + report, "report_owner=hotport",
                        environment={"ANSIBLE_INVENTORY": inventory})
    assert reported.returncode == 0, reported.stdout[-3000:]
    with open(report) as handle:
        rows = handle.read().splitlines()
    assert "| localhost | kernel | 0.0.0.0:18186/tcp | %s:80 | hotport | %s | ok |" % (
        web, opened["expires_at"]["18186:80/tcp"]) in rows, rows
    assert "| localhost | kernel | 0.0.0.0:18185/tcp | %s:80 | hotport | - | ok |" % web in rows, rows
    watcher = subprocess.Popen([RECONCILER, "watch", "--state-file", state_file, "--interval", "600"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 15
        while fetch(18186) is not None and time.time() < deadline:
            time.sleep(0.5)
        assert fetch(18186) is None, "the mapping outlived its end"
        assert recorded(state_file) == [{"container": web, "network": None, "ports": ["18185:80/tcp"]}]
        assert fetch(18185) == PAYLOAD
    finally:
        watcher.terminate()
        log = watcher.communicate(timeout=10)[0]
    assert "expired %s 18186:80/tcp: removing it" % web in log, log[-2000:]

    module(container=web, ports=["18186:80"], expires="2s", state_file=state_file)
    time.sleep(3)  # the end passes with no reconciler running, as across a reboot
    assert subprocess.run([RECONCILER, "apply", "--state-file", state_file], check=False).returncode == 0
    assert fetch(18186) is None and fetch(18185) == PAYLOAD
    assert recorded(state_file) == [{"container": web, "network": None, "ports": ["18185:80/tcp"]}]
