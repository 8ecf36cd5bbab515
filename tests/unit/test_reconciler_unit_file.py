"""The role's systemd unit (issue 34): every ExecStart argument arrives as the one word it was,
whatever it holds, and the unit bounds what root's service may do."""
import os
import re
import shlex

import jinja2

UNIT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    "roles", "port_map", "templates", "hotport-reconcile.service.j2")


def rendered(**variables):
    environment = jinja2.Environment()
    environment.filters["quote"] = shlex.quote
    with open(UNIT) as handle:
        return environment.from_string(handle.read()).render(ansible_managed="managed", **variables)


def test_execstart_arguments_stay_single_words_and_percent_signs_stay_literal():
    text = rendered(port_map_state_file="/etc/hot port/m.json", port_map_docker_host="unix:///run/docker.sock",
                    port_map_reconcile_interval=60, port_map_connection_flags=["--tls-hostname", "a b;%n$(id)"])
    [line] = [line for line in text.splitlines() if line.startswith("ExecStart=")]
    words = [word.replace("%%", "%") for word in shlex.split(line[len("ExecStart="):])]
    assert words == ["/usr/local/sbin/hotport-reconcile", "watch", "--state-file", "/etc/hot port/m.json",
                     "--docker-host", "unix:///run/docker.sock", "--interval", "60", "--tls-hostname", "a b;%n$(id)"]
    assert not re.search(r"(?<!%)%[A-Za-z]", line.replace("%%", "")), "a systemd specifier would be expanded"


def test_the_service_is_hardened():
    text = rendered(port_map_state_file="/etc/hotport/mappings.json", port_map_docker_host="unix:///run/docker.sock",
                    port_map_reconcile_interval=60, port_map_connection_flags=[])
    settings = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    assert settings["NoNewPrivileges"] == "yes" and settings["ProtectSystem"] == "strict"
    assert settings["CapabilityBoundingSet"].split() == ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE",
                                                         "CAP_SYS_PTRACE"]
    assert "PartOf" not in settings, "the service must outlive a dockerd restart, holding the mapped ports"
