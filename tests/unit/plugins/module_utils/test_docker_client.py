"""docker_client's HTTP over a unix socket, against a stand-in engine (a stdlib HTTP server on a
socket of the test's own): paths, query strings, bodies, error mapping, streamed answers. The real
engines are the e2e and Molecule suites; this covers what they never provoke."""
import json
import os
import resource
import socketserver
import threading
from http.server import BaseHTTPRequestHandler

import pytest

from ansible_collections.hotport.docker.plugins.module_utils.docker_client import DockerClient, DockerError, NotFound
from ansible_collections.hotport.docker.plugins.module_utils.docker_connection import (
    Connection, DockerHostError, check, from_params)


MEGABYTE = b"x" * (1024 * 1024)
HUGE = 256 * len(MEGABYTE)


class Engine(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen = []

    def address_string(self):
        return "stand-in"

    def log_message(self, *args):
        pass

    def answer(self, status, body, chunks=None):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if chunks is None:
            data = json.dumps(body).encode()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in chunks:
            data = (json.dumps(chunk) + "\n").encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")

    def handle_one(self):
        length = int(self.headers.get("Content-Length") or 0)
        Engine.seen.append((self.command, self.path, json.loads(self.rfile.read(length)) if length else None))
        if self.path == "/version":
            self.answer(200, {"Version": "29.7.2", "ApiVersion": "1.52"})
        elif self.path.startswith("/containers/nope"):
            self.answer(404, {"message": "No such container: nope"})
        elif self.path.startswith("/containers/create"):
            self.answer(201, {"Id": "c0ffee", "Warnings": []})
        elif self.path.startswith("/images/create"):
            self.answer(200, None, [{"status": "Pulling"}, {"error": "pull access denied for nope"}]
                        if "nope" in self.path else [{"status": "Pulling"}, {"status": "Done"}])
        elif self.path.startswith("/events"):
            self.answer(200, None, [{"Type": "container", "Action": "start"}, {"Type": "network", "Action": "connect"}])
        elif self.path.startswith("/containers/huge"):
            self.send_response(500)
            self.send_header("Content-Length", str(HUGE))
            self.end_headers()
            try:
                for dummy in range(HUGE // len(MEGABYTE)):
                    self.wfile.write(MEGABYTE)
            except OSError:
                pass  # the client stopped reading, as it should
        elif self.path.startswith("/containers/page"):
            page = b"<!DOCTYPE html><html><head><title>Not Found here</title></head><body><h1>404</h1></body></html>"
            self.send_response(404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
        elif self.path.startswith("/containers/broken"):
            self.send_response(500)
            self.send_header("Content-Length", "12")
            self.end_headers()
            self.wfile.write(b"not json at ")
        else:
            self.send_response(204)
            self.end_headers()

    do_GET = do_POST = do_DELETE = handle_one


@pytest.fixture
def engine(tmp_path):
    path = str(tmp_path / "docker.sock")
    server = socketserver.ThreadingUnixStreamServer(path, Engine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Engine.seen = []
    yield DockerClient(Connection("unix://" + path, 5))
    server.shutdown()
    server.server_close()


def test_json_answers_and_calls_without_a_body(engine):
    assert engine.version()["ApiVersion"] == "1.52"
    engine.start("web")
    engine.remove_container("web")
    assert Engine.seen[1:] == [("POST", "/containers/web/start", None), ("DELETE", "/containers/web?force=1", None)]


def test_create_sends_the_config_and_returns_the_id(engine):
    assert engine.create_container("hotport-web-tcp-8080", {"Image": "socat"}) == "c0ffee"
    assert Engine.seen == [("POST", "/containers/create?name=hotport-web-tcp-8080", {"Image": "socat"})]


def test_a_404_is_not_found_with_the_engines_message(engine):
    with pytest.raises(NotFound, match=r"^No such container: nope \(HTTP 404\)$"):
        engine.inspect_container("nope")


def test_an_error_answer_that_is_not_json_keeps_its_text(engine):
    with pytest.raises(DockerError, match=r"answered with no content type 'not json at', not with the Docker API's "
                                          r"JSON error.* \(HTTP 500\)$") as raised:
        engine.inspect_container("broken")
    assert not isinstance(raised.value, NotFound)


def test_a_web_servers_404_page_is_not_a_missing_container(engine):
    """Issue 37: an endpoint that is not Docker answered 'Docker API error: <raw HTML> (HTTP 404)'."""
    with pytest.raises(DockerError, match=r"answered with text/html 'Not Found here', not with the Docker API's JSON "
                                          r"error: is docker_host a Docker engine") as raised:
        engine.inspect_container("page")
    assert not isinstance(raised.value, NotFound) and "<" not in str(raised.value)


def test_pull_reads_the_progress_to_its_end_and_raises_its_error(engine):
    engine.pull("alpine/socat")
    engine.pull("registry:5000/socat:1.8")
    assert [path for method, path, body in Engine.seen] == [
        "/images/create?fromImage=alpine%2Fsocat&tag=latest", "/images/create?fromImage=registry%3A5000%2Fsocat%3A1.8"]
    with pytest.raises(DockerError, match="^pull access denied for nope$"):  # no HTTP error status: it was 200
        engine.pull("nope")


def test_events_stream_one_object_a_line(engine):
    events = list(engine.events(10, 12, {"type": ["container"]}))
    assert [event["Action"] for event in events] == ["start", "connect"]
    assert Engine.seen[0][1] == "/events?since=10&until=12&filters=%7B%22type%22%3A+%5B%22container%22%5D%7D"


def test_no_daemon_is_status_0_naming_the_url(tmp_path):
    url = "unix://%s/none.sock" % tmp_path
    with pytest.raises(DockerError, match="no answer from the Docker daemon at " + url) as raised:
        DockerClient(Connection(url, 5)).info()
    assert raised.value.status == 0


@pytest.mark.parametrize("url", ["ftp://host", "unix://", "/var/run/docker.sock", "tcp://", "ssh://"])
def test_urls_it_cannot_speak_are_refused(url):
    with pytest.raises(DockerHostError, match="docker_host"):
        check(Connection(url))


ENVIRONMENT = {"DOCKER_HOST": "tcp://192.0.2.10:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/certs",
               "DOCKER_TLS_HOSTNAME": "engine.example", "DOCKER_TIMEOUT": "7"}


def test_the_environment_fills_what_the_task_leaves_out_as_the_docker_cli_reads_it(monkeypatch):
    monkeypatch.setattr("os.path.isfile", lambda path: True)
    connection = from_params({}, ENVIRONMENT)
    assert connection == Connection("tcp://192.0.2.10:2376", 7, False, True, "/certs/ca.pem", "/certs/cert.pem",
                                    "/certs/key.pem", "engine.example")
    assert connection.uses_tls and not connection.is_local() and connection.warnings() == []
    given = from_params({"docker_host": "unix:///run/docker.sock", "validate_certs": False, "timeout": 3}, ENVIRONMENT)
    assert (given.docker_host, given.validate_certs, given.timeout, given.uses_tls) == (
        "unix:///run/docker.sock", False, 3, False)
    assert from_params({}, {}) == Connection("unix:///var/run/docker.sock")


def test_plain_http_is_warned_about_on_loopback_too():
    assert "unencrypted and unauthenticated" in from_params({"docker_host": "tcp://192.0.2.10:2375"}, {}).warnings()[0]
    assert "any local user can listen on a loopback port" in \
        from_params({"docker_host": "tcp://127.0.0.1:2375"}, {}).warnings()[0]
    assert from_params({"docker_host": "ssh://root@192.0.2.10"}, {}).warnings() == []
    assert from_params({"docker_host": "unix:///var/run/docker.sock"}, {}).warnings() == []


@pytest.mark.parametrize("params, environ", [
    ({"docker_host": "https://engine.example:2376"}, {}),
    ({"docker_host": "tcp://engine.example:2376", "tls": True}, {}),
    ({"docker_host": "tcp://engine.example:2376"}, {"DOCKER_TLS": "1"}),
])
def test_tls_without_a_certificate_check_is_warned_about(params, environ):
    assert "without checking the engine's certificate" in from_params(params, environ).warnings()[0]


def test_a_ca_path_without_validate_certs_is_said_to_be_unused(monkeypatch):
    monkeypatch.setattr("os.path.isfile", lambda path: True)
    warning = from_params({"docker_host": "tcp://engine.example:2376", "tls": True, "ca_path": "/certs/ca.pem"}, {})
    assert "ca_path /certs/ca.pem is used only with validate_certs" in warning.warnings()[0]


@pytest.mark.parametrize("value", ["1", "true", "yes", "0", "anything"])
def test_docker_tls_verify_is_on_for_any_value_as_the_docker_cli_reads_it(monkeypatch, value):
    monkeypatch.setattr("os.path.isfile", lambda path: True)
    connection = from_params({"docker_host": "tcp://engine.example:2376"}, {"DOCKER_TLS_VERIFY": value})
    assert connection.validate_certs and connection.uses_tls and connection.warnings() == []
    assert not from_params({"docker_host": "tcp://engine.example:2376"}, {"DOCKER_TLS_VERIFY": ""}).validate_certs


@pytest.mark.parametrize("url, message", [
    ("ssh://host:abc", "port that is not a number"),
    ("tcp://host:99999", "port that is not a number"),
    ("ssh://-oProxyCommand=x", "is not ssh://USER@HOST"),
    ("unix://run/docker.sock", "absolute path"),
])
def test_malformed_urls_are_clear_errors(url, message):
    with pytest.raises(DockerHostError, match=message):
        from_params({"docker_host": url}, {})


def test_a_password_in_the_url_is_refused_and_never_shown():
    with pytest.raises(DockerHostError) as refused:
        from_params({"docker_host": "ssh://admin:s3cret@engine.example"}, {})
    assert "s3cret" not in str(refused.value) and "***" in str(refused.value)


@pytest.mark.parametrize("params, message", [
    ({"client_cert": "/nope/cert.pem", "client_key": "/nope/key.pem", "tls": True}, "client_cert /nope/cert.pem does not exist"),
    ({"client_cert": __file__, "tls": True}, "client_cert and client_key go together"),
    ({"ca_path": "/nope/ca.pem", "validate_certs": True}, "ca_path /nope/ca.pem does not exist"),
])
def test_missing_tls_files_are_refused_by_name(params, message):
    with pytest.raises(DockerHostError, match=message):
        from_params(dict(params, docker_host="tcp://192.0.2.10:2376"), {})


def test_an_error_answer_is_read_only_up_to_a_limit(engine):
    """A hostile engine's 256 MiB error: read no further than 64 KiB, shown no longer than 200 characters."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DockerError) as raised:
        engine.inspect_container("huge")
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert len(str(raised.value)) < 600 and str(raised.value).endswith("(HTTP 500)")
    assert "x" * 200 in str(raised.value) and "x" * 201 not in str(raised.value)
    assert grown_kib < 64 * 1024, "the error answer was read whole (%d KiB more memory)" % grown_kib


@pytest.mark.parametrize("stranger", ["socket", "folder"])
def test_an_engine_socket_another_user_could_have_put_there_is_refused(engine, tmp_path, stranger):
    """Whoever owns the socket, or a folder on its way, answers as the engine."""
    os.chown(str(tmp_path / "docker.sock") if stranger == "socket" else str(tmp_path), 65534, 65534)
    with pytest.raises(DockerError, match="uid 65534|nobody"):
        engine.version()
    assert Engine.seen == []
