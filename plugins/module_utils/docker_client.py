# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The few Docker Engine API calls hotport makes, over the Python standard library.

Why not the Docker SDK for Python: importing it (requests, urllib3) costs 0.10-0.15 s on every
module run, more than everything else the module does at N = 1 (issue 14), and it is one more
package to install on every host. hotport needs a dozen plain JSON calls over the engine's unix
socket, tcp:// (plain or TLS) or ssh:// (docker_connection.py). With api_version auto, paths carry no
API version: the engine then answers in its own current version, which is what the SDK's
version="auto" settled on too. A pinned api_version prefixes every call but the engine's facts
(/version, /info: the firewall backend is reported only from API 1.49 on).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import stat
import ssl
import subprocess
import time
from urllib.parse import quote, urlencode, urlsplit

from ansible_collections.hotport.docker.plugins.module_utils.docker_connection import api_version_numbers
from ansible_collections.hotport.docker.plugins.module_utils.safe_files import UnsafeFileError, trusted_folder


# The largest answer read: `docker ps -a` of thousands of containers is a few MiB.
ANSWER_LIMIT = 64 * 1024 * 1024
# The most of an error answer (or of ssh's complaint) read, and shown.
ERROR_LIMIT = 64 * 1024
ERROR_SHOWN = 500


class DockerError(Exception):
    """The engine refused a call (HTTP status and its message), or did not answer (status 0), or
    answered 200 with an error in its progress stream (a pull)."""

    def __init__(self, status, message):
        super().__init__("%s (HTTP %d)" % (message, status) if status >= 300 else message)
        self.status = status


class NotFound(DockerError):
    """HTTP 404: no such container, network or image."""


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


class EngineSocketConnection(UnixHTTPConnection):
    """The engine's unix socket, checked before each connection (check_engine_socket)."""

    def connect(self):
        check_engine_socket(self.socket_path)
        super().connect()


def check_engine_socket(path):
    """Refuse (DockerError) an engine socket that someone but root or this user could have put there:
    the socket must be theirs, and each folder on its way root's or this user's and written by nobody
    else; whoever else could would choose every answer, and so the rules root writes. A missing socket
    passes: connecting then fails and says so."""
    try:
        with trusted_folder(path, "Docker engine socket") as (folder, name):
            if folder is None:
                return
            try:
                info = os.stat(name, dir_fd=folder, follow_symlinks=False)
            except FileNotFoundError:
                return
    except UnsafeFileError as exc:
        raise DockerError(0, str(exc).replace("choose the rules hotport writes", "answer as the engine"))
    if not stat.S_ISSOCK(info.st_mode) or info.st_uid not in (0, os.geteuid()):
        raise DockerError(0, "the Docker engine socket %s is %s, not root's%s: whoever owns it answers as the "
                             "engine and so chooses the rules hotport writes. Nothing was changed. Point "
                             "docker_host at the engine's own socket." % (
                                 path, "not a socket" if not stat.S_ISSOCK(info.st_mode) else "uid %d's" % info.st_uid,
                                 "" if os.geteuid() == 0 else " or yours"))


class TLSConnection(http.client.HTTPSConnection):
    """HTTPS whose certificate is checked against ``server_name`` (tls_hostname), which may differ
    from the address connected to."""

    def __init__(self, host, port, timeout, context, server_name):
        super().__init__(host, port, timeout=timeout, context=context)
        self.tls_context = context
        self.server_name = server_name

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self.tls_context.wrap_socket(self.sock, server_hostname=self.server_name)


class SSHConnection(http.client.HTTPConnection):
    """HTTP over the system's ssh client running ``docker system dial-stdio`` on the remote host, as
    the Docker CLI does: one end of a socket pair is ssh's stdin and stdout, the other is ours."""

    def __init__(self, argv, timeout):
        super().__init__("localhost", timeout=timeout)
        self.argv = argv
        self.process = None

    def connect(self):
        ours, theirs = socket.socketpair()
        try:
            # ssh stays running as the connection's socket, as the Docker CLI runs it; run_command only
            # runs a command to its end.
            self.process = subprocess.Popen(self.argv, stdin=theirs, stdout=theirs, stderr=subprocess.PIPE)  # pylint: disable=ansible-bad-function
        except OSError as exc:
            ours.close()
            raise OSError("cannot run %s: %s (install openssh-client)" % (self.argv[0], exc))
        finally:
            theirs.close()
        ours.settimeout(self.timeout)
        self.sock = ours

    def close(self):
        super().close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait()

    def failure(self):
        """What ssh said when it ended ('' while it runs)."""
        if self.process is None:
            return ""
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return ""
        return self.process.stderr.read(ERROR_LIMIT).decode("utf-8", "replace").strip()[-ERROR_SHOWN:]


def tls_context(connection):
    """The TLS settings of a Connection: the engine's certificate and name verified with
    validate_certs (against ca_path, else the system's CAs); encryption alone with tls; the client
    certificate when given."""
    if connection.validate_certs:
        context = ssl.create_default_context(cafile=connection.ca_path or None)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if connection.client_cert:
        context.load_cert_chain(connection.client_cert, connection.client_key)
    return context


def ssh_argv(parts, timeout):
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=%d" % max(1, int(timeout))]
    if parts.port:
        argv += ["-p", str(parts.port)]
    if parts.username:
        argv += ["-l", parts.username]
    return argv + ["--", parts.hostname, "docker", "system", "dial-stdio"]


def check_api_version(pinned, version):
    """Refuse (DockerError, as the engine would) a pinned api_version the engine does not speak
    (``version``: its /version answer), before any other call."""
    wanted = api_version_numbers(pinned)
    if wanted is None:
        return

    def numbers(key):
        match = re.match(r"\A([0-9]+)\.([0-9]+)\Z", str(version.get(key, "")))
        return (int(match.group(1)), int(match.group(2))) if match else None

    newest, oldest = numbers("ApiVersion"), numbers("MinAPIVersion")
    if (newest and wanted > newest) or (oldest and wanted < oldest):
        raise DockerError(400, "api_version %s is not one this engine speaks (Docker %s: API %s to %s). Give auto, "
                               "or a version in that range; nothing was changed" % (
                                   pinned, version.get("Version", "unknown"), version.get("MinAPIVersion", "unknown"),
                                   version.get("ApiVersion", "unknown")))


class DockerClient:
    """One Docker engine, reached as a docker_connection.Connection says (unix, tcp, TLS, ssh)."""

    def __init__(self, connection):
        self.connection = connection
        self.base_url = connection.docker_host
        self.prefix = "" if connection.api_version == "auto" else "/v" + connection.api_version
        # debug: every call as "METHOD PATH -> STATUS (MS ms)", for the modules' api_calls.
        self.calls = [] if connection.debug else None
        timeout = connection.timeout
        parts = urlsplit(connection.docker_host)
        if parts.scheme == "unix":
            self.new_connection = lambda: EngineSocketConnection(parts.path, timeout)
        elif parts.scheme == "ssh":
            argv = ssh_argv(parts, timeout)
            self.new_connection = lambda: SSHConnection(argv, timeout)
        elif connection.uses_tls:
            try:
                context = tls_context(connection)
            except (ssl.SSLError, OSError) as exc:
                raise DockerError(0, "cannot use the TLS files (ca_path %s, client_cert %s, client_key %s): %s"
                                  % (connection.ca_path or "-", connection.client_cert or "-",
                                     connection.client_key or "-", exc))
            server_name = connection.tls_hostname or parts.hostname
            self.new_connection = lambda: TLSConnection(parts.hostname, parts.port or 2376, timeout, context,
                                                        server_name)
        else:
            self.new_connection = lambda: http.client.HTTPConnection(parts.hostname, parts.port or 2375, timeout=timeout)

    def _no_answer(self, connection, exc):
        """The DockerError for a request that got no HTTP answer, saying why and what to do."""
        said = connection.failure() if isinstance(connection, SSHConnection) else ""
        if said:
            return DockerError(0, "ssh to %s failed: %s. Check that the host is reachable, that your key is "
                                  "accepted (ssh %s docker version must work), and that docker there reaches its "
                                  "engine" % (self.base_url, said, self.base_url))
        if isinstance(exc, ssl.SSLCertVerificationError):
            return DockerError(0, "the Docker daemon at %s presented a certificate that was not accepted (%s). "
                                  "Give the CA that signed it as ca_path, a name its certificate holds as "
                                  "tls_hostname, or renew an expired certificate" % (self.base_url, exc.verify_message))
        if isinstance(exc, ssl.SSLError):
            return DockerError(0, "the TLS handshake with %s failed (%s): does that port speak TLS? For a "
                                  "plaintext API leave tls and validate_certs off; if the engine asks for a "
                                  "client certificate, give client_cert and client_key" % (self.base_url, exc))
        return DockerError(0, "no answer from the Docker daemon at %s: %s" % (self.base_url, exc))

    def _response(self, method, path, query=None, body=None, versioned=True):
        """Send one request -> (connection, response) for a 2xx answer; DockerError otherwise."""
        path = (self.prefix if versioned else "") + path
        if query:
            path += "?" + urlencode(query)
        connection = self.new_connection()
        started = time.monotonic()
        try:
            connection.request(method, path, body=None if body is None else json.dumps(body),
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            self._log(method, path, response.status, started)
            if response.status < 300:
                return connection, response
            text = response.read(ERROR_LIMIT).decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as exc:
            self._log(method, path, "no answer", started)
            error = self._no_answer(connection, exc)
            connection.close()
            raise error
        connection.close()
        raise self._refusal(response, text)

    def _log(self, method, path, status, started):
        if self.calls is not None:
            self.calls.append("%s %s -> %s (%d ms)" % (method, path, status, (time.monotonic() - started) * 1000))

    def _refusal(self, response, text):
        """The DockerError for a non-2xx answer: the engine's JSON message, or, for an answer that is
        not Docker's, what answered instead (a web server's 404 page is no missing container)."""
        try:
            message = json.loads(text).get("message")
        except (ValueError, AttributeError, RecursionError):
            message = None
        https_hint = (" (docker_host %s speaks TLS: turn validate_certs on, with ca_path, client_cert and "
                      "client_key, or DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH)" % self.base_url)
        if response.status == 400 and "HTTPS server" in text:  # Go's answer to HTTP on a TLS port
            return DockerError(400, text.strip()[:ERROR_SHOWN] + https_hint)
        if not isinstance(message, str) and text.strip():
            kind = (response.getheader("Content-Type") or "no content type").split(";")[0][:100]
            title = re.search(r"<title>([^<]{0,200})", text, re.IGNORECASE)
            said = " ".join((title.group(1) if title else "" if "html" in kind else text).split())[:200]
            return DockerError(response.status, "%s answered with %s%s, not with the Docker API's JSON error: is "
                                                "docker_host a Docker engine (its socket, unix:///var/run/docker.sock, "
                                                "or its API port, tcp://HOST:2376 with TLS)? Nothing was changed"
                               % (self.base_url, kind, " %r" % said if said else ""))
        message = (message or "no message")[:ERROR_SHOWN] + (" [...]" if len(message or "") > ERROR_SHOWN else "")
        return (NotFound if response.status == 404 else DockerError)(response.status, message)

    def _call(self, method, path, query=None, body=None, versioned=True):
        connection, response = self._response(method, path, query, body, versioned)
        try:
            data = response.read(ANSWER_LIMIT + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise DockerError(0, "the Docker daemon at %s broke off its answer: %s" % (self.base_url, exc))
        finally:
            connection.close()
        if len(data) > ANSWER_LIMIT:
            raise DockerError(0, "the Docker daemon at %s answered %s %s with more than %d bytes; refused"
                              % (self.base_url, method, path, ANSWER_LIMIT))
        return self._json(data, method, path) if data.strip() else None

    def _json(self, data, method, path):
        """The answer's JSON; a DockerError for anything else (deep nesting included)."""
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise DockerError(0, "the Docker daemon at %s answered %s %s with something that is not JSON "
                              "(%s); refused" % (self.base_url, method, path, str(exc)[:200]))

    def _stream(self, method, path, query=None):
        """The answer's JSON lines, one object each, as they come (events, pull progress)."""
        connection, response = self._response(method, path, query)
        try:
            for line in iter(lambda: response.readline(ANSWER_LIMIT + 1), b""):
                if len(line) > ANSWER_LIMIT:
                    raise DockerError(0, "the Docker daemon at %s sent a line of more than %d bytes in its "
                                      "answer to %s %s; refused" % (self.base_url, ANSWER_LIMIT, method, path))
                if line.strip():
                    yield self._json(line, method, path)
        except (OSError, http.client.HTTPException) as exc:
            raise DockerError(0, "the Docker daemon at %s broke off its answer: %s" % (self.base_url, exc))
        finally:
            connection.close()

    def version(self):
        """The engine's /version; checks a pinned api_version against its range."""
        answer = self._call("GET", "/version", versioned=False)
        check_api_version(self.connection.api_version, answer or {})
        return answer

    def info(self):
        return self._call("GET", "/info", versioned=False)

    def containers(self):
        """Every container, running or not (docker ps -a)."""
        return self._call("GET", "/containers/json", {"all": 1})

    def inspect_container(self, container):
        return self._call("GET", "/containers/%s/json" % quote(container, safe=""))

    def networks(self):
        return self._call("GET", "/networks")

    def inspect_network(self, network):
        return self._call("GET", "/networks/%s" % quote(network, safe=""))

    def inspect_image(self, image):
        return self._call("GET", "/images/%s/json" % quote(image, safe="/:@"))

    def pull(self, image):
        """Pull ``image`` (anonymously; DockerError with the registry's message on failure)."""
        query = {"fromImage": image}
        if "@" not in image and ":" not in image.rsplit("/", 1)[-1]:
            query["tag"] = "latest"  # without a tag the API pulls every tag of the repository
        for progress in self._stream("POST", "/images/create", query):
            if progress.get("error"):
                raise DockerError(200, progress["error"])  # the answer was 200: the registry's error came after

    def create_container(self, name, config):
        """``config``: the API's container config (Image, Cmd, HostConfig, ...) -> its Id."""
        return self._call("POST", "/containers/create", {"name": name}, config)["Id"]

    def start(self, container):
        self._call("POST", "/containers/%s/start" % quote(container, safe=""))

    def remove_container(self, container):
        """Remove it, running or not (docker rm -f)."""
        self._call("DELETE", "/containers/%s" % quote(container, safe=""), {"force": 1})

    def events(self, since, until, filters):
        """Engine events between two Unix times, as they happen; the stream ends at ``until``."""
        return self._stream("GET", "/events", {"since": since, "until": until, "filters": json.dumps(filters)})
