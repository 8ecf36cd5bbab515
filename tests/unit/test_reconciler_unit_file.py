"""The role's systemd unit and the command it runs (issue 34): every ExecStart argument arrives as
the one word it was, whatever it holds; the unit bounds what root's service may do; neither the
working directory nor PYTHONPATH reaches the code."""
import json
import os
import re
import shlex
import shutil
import subprocess

import jinja2

from ansible_collections.hotport.docker.plugins.module_utils import reconciler

UNIT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    "roles", "port_map", "templates", "hotport-reconcile.service.j2")


def rendered(**variables):
    environment = jinja2.Environment()
    environment.filters["quote"] = shlex.quote
    environment.filters["to_json"] = json.dumps  # Ansible's to_json: json.dumps, ASCII only
    variables.setdefault("port_map_engine_environment", {})
    with open(UNIT) as handle:
        return environment.from_string(handle.read()).render(ansible_managed="managed", **variables)


def test_execstart_arguments_stay_single_words_and_percent_signs_stay_literal():
    text = rendered(port_map_state_file="/etc/hot port/m.json", port_map_reconcile_interval=60,
                    port_map_connection_flags=["--docker-host", "unix:///run/docker.sock", "--tls-hostname", "a b;%n$(id)"])
    [line] = [line for line in text.splitlines() if line.startswith("ExecStart=")]
    words = [word.replace("%%", "%") for word in shlex.split(line[len("ExecStart="):])]
    assert words == ["/usr/local/sbin/hotport-reconcile", "watch", "--state-file", "/etc/hot port/m.json",
                     "--interval", "60", "--docker-host", "unix:///run/docker.sock", "--tls-hostname", "a b;%n$(id)"]
    assert not re.search(r"(?<!%)%[A-Za-z]", line.replace("%%", "")), "a systemd specifier would be expanded"


def test_the_engine_variables_of_the_modules_environment_reach_the_service_as_one_word_each():
    """Issue 37: DOCKER_HOST and its kin where the module runs reach the reconciler too. Each is one
    double-quoted Environment= word (systemd reads JSON's escapes as C escapes); nothing in a value
    starts another line."""
    hostile = {"DOCKER_HOST": "unix:///run/a b/docker.sock", "DOCKER_CERT_PATH": "/etc/d\"o%ck\\er\nExecStartPre=/bin/id"}
    text = rendered(port_map_state_file="/etc/hotport/m.json", port_map_reconcile_interval=60,
                    port_map_connection_flags=[], port_map_engine_environment=hostile)
    lines = [line for line in text.splitlines() if line.startswith("Environment=")]
    assert [json.loads(line[len("Environment="):].replace("%%", "%")) for line in lines] == [
        "DOCKER_CERT_PATH=" + hostile["DOCKER_CERT_PATH"], "DOCKER_HOST=" + hostile["DOCKER_HOST"]]
    assert not [line for line in text.splitlines() if line.startswith("ExecStartPre")]


def test_the_service_is_hardened():
    text = rendered(port_map_state_file="/etc/hotport/mappings.json", port_map_reconcile_interval=60,
                    port_map_connection_flags=[])
    settings = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    assert settings["NoNewPrivileges"] == "yes" and settings["ProtectSystem"] == "strict"
    assert settings["CapabilityBoundingSet"].split() == ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE",
                                                         "CAP_SYS_PTRACE"]
    assert "PartOf" not in settings, "the service must outlive a dockerd restart, holding the mapped ports"


def test_the_working_directory_does_not_reach_the_code_root_runs(tmp_path):
    """`python3 -c` puts the working directory first on sys.path: an argparse.py there ran as root."""
    files = os.path.join(os.path.dirname(os.path.dirname(UNIT)), "files")
    installed = tmp_path / "lib"
    installed.mkdir()
    shutil.copy(os.path.join(files, "hotport-reconcile"), str(installed / "hotport-reconcile"))
    # Where this run imports the collection from: .../ansible_collections/hotport/docker/plugins/module_utils.
    collections = reconciler.__file__
    for dummy in range(5):
        collections = os.path.dirname(collections)
    (installed / "ansible_collections").symlink_to(collections)
    hostile = tmp_path / "cwd"
    hostile.mkdir()
    marker = tmp_path / "ran"
    (hostile / "argparse.py").write_text("open(%r, 'w').close()\nraise SystemExit(9)\n" % str(marker))
    done = subprocess.run([str(installed / "hotport-reconcile"), "--help"], cwd=str(hostile), capture_output=True,
                          text=True, check=False, env=dict(os.environ, PYTHONPATH=str(hostile)))
    assert not marker.exists(), "code from the working directory ran"
    assert done.returncode == 0 and "hotport-reconcile" in done.stdout, done.stderr
