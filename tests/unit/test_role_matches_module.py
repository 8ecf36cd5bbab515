"""The role cannot drift from the module again: every option of container_port_map reaches the
module through the role's task, is declared per mapping in meta/argument_specs.yml with the
module's type and default, and (but for container and ports) can be set in port_map_defaults."""
import os

import yaml

from ansible_collections.hotport.docker.plugins.modules.container_port_map import argument_spec

ROLE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "roles", "port_map")
# Set from port_map_state_file and the role's connection variables (port_map_docker_host, port_map_tls, ...).
ROLE_MANAGED = {"state_file", "docker_host", "tls", "validate_certs", "ca_path", "client_cert", "client_key",
                "tls_hostname", "use_ssh_client", "api_version", "debug"}
PER_MAPPING_ONLY = {"container", "ports"}


def load(*path):
    with open(os.path.join(ROLE, *path)) as handle:
        return yaml.safe_load(handle)


def test_the_task_passes_every_module_option():
    [task] = [task for task in load("tasks", "main.yml") if task.get("name") == "Apply the mappings"]
    assert set(task["hotport.docker.container_port_map"]) == set(argument_spec())


def test_argument_specs_declare_every_module_option_alike():
    options = load("meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    per_mapping = options["port_map_mappings"]["options"]
    module = argument_spec()
    assert set(per_mapping) == set(module) - ROLE_MANAGED
    for name, spec in per_mapping.items():
        assert spec["type"] == module[name]["type"], name
        assert spec.get("default") == module[name].get("default"), name
        assert spec.get("elements") == module[name].get("elements"), name
    defaults = options["port_map_defaults"]["options"]
    assert set(defaults) == set(module) - ROLE_MANAGED - PER_MAPPING_ONLY
    for name, spec in defaults.items():
        assert spec["type"] == module[name]["type"], name
