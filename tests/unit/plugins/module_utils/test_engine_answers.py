"""What a hostile engine answers, refused before it reaches a rule or a sweep (issue 34)."""
import types

import pytest

from ansible_collections.hotport.docker.plugins.module_utils import docker_api, engine_answers
from ansible_collections.hotport.docker.plugins.module_utils.engine_answers import EngineAnswerError


@pytest.mark.parametrize("check, value", [
    (engine_answers.container_id, "a" * 64 + "\n"),
    (lambda value: engine_answers.docker_name(value, "container"), "web\n"),
    (lambda value: engine_answers.bridge_name(value, "net"), "docker0\n"),
])
def test_a_trailing_newline_is_refused(check, value):
    with pytest.raises(EngineAnswerError):
        check(value)


@pytest.mark.parametrize("summaries", [
    [{"Names": ["/web"]}],
    [{"Id": "a" * 64}, "x"],
    [{"Id": "a" * 63 + "\n"}],
    {"Id": "a" * 64},
])
def test_a_malformed_container_list_is_a_clear_error_never_fewer_containers(summaries):
    client = types.SimpleNamespace(containers=lambda: summaries, networks=lambda: [{"Name": None}, "x"])
    with pytest.raises(docker_api.ResolveError, match="container"):
        docker_api.container_ids(client)
    with pytest.raises(docker_api.ResolveError, match="container"):
        docker_api.container_facts(client)
