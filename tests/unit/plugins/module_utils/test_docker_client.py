"""docker_client's HTTP over a unix socket, against a stand-in engine (a stdlib HTTP server on a
socket of the test's own): paths, query strings, bodies, error mapping, streamed answers. The real
engines are the e2e and Molecule suites; this covers what they never provoke."""
import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler

import pytest

from ansible_collections.hotport.docker.plugins.module_utils.docker_client import DockerClient, DockerError, NotFound
from ansible_collections.hotport.docker.plugins.module_utils.docker_connection import (
    Connection, DockerHostError, check, from_params)


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
    with pytest.raises(DockerError, match=r"not json at \(HTTP 500\)") as raised:
        engine.inspect_container("broken")
    assert not isinstance(raised.value, NotFound)


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
    assert connection.uses_tls and not connection.is_local() and connection.plaintext_warning() == ""
    given = from_params({"docker_host": "unix:///run/docker.sock", "validate_certs": False, "timeout": 3}, ENVIRONMENT)
    assert (given.docker_host, given.validate_certs, given.timeout, given.uses_tls) == (
        "unix:///run/docker.sock", False, 3, False)
    assert from_params({}, {}) == Connection("unix:///var/run/docker.sock")


def test_plain_http_to_another_machine_is_warned_about():
    assert "unencrypted and unauthenticated" in from_params({"docker_host": "tcp://192.0.2.10:2375"}, {}).plaintext_warning()
    assert from_params({"docker_host": "tcp://127.0.0.1:2375"}, {}).plaintext_warning() == ""
    assert from_params({"docker_host": "ssh://root@192.0.2.10"}, {}).plaintext_warning() == ""


@pytest.mark.parametrize("params, message", [
    ({"client_cert": "/nope/cert.pem", "client_key": "/nope/key.pem", "tls": True}, "client_cert /nope/cert.pem does not exist"),
    ({"client_cert": __file__, "tls": True}, "client_cert and client_key go together"),
    ({"ca_path": "/nope/ca.pem", "validate_certs": True}, "ca_path /nope/ca.pem does not exist"),
])
def test_missing_tls_files_are_refused_by_name(params, message):
    with pytest.raises(DockerHostError, match=message):
        from_params(dict(params, docker_host="tcp://192.0.2.10:2376"), {})
