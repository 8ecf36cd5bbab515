# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The few Docker Engine API calls hotport makes, over the Python standard library.

Why not the Docker SDK for Python: importing it (requests, urllib3) costs 0.10-0.15 s on every
module run, more than everything else the module does at N = 1 (issue 14), and it is one more
package to install on every host. hotport needs a dozen plain JSON calls over the engine's unix
socket (or tcp://, unencrypted, as docker_host documents). Paths carry no API version: the engine
then answers in its own current version, which is what the SDK's version="auto" settled on too.
"""

from __future__ import annotations

import http.client
import json
import socket
from urllib.parse import quote, urlencode, urlsplit


# The largest answer read: `docker ps -a` of thousands of containers is a few MiB.
ANSWER_LIMIT = 64 * 1024 * 1024


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


class DockerClient:
    """One Docker engine: ``unix:///path``, or ``tcp://host:port`` (plain HTTP)."""

    def __init__(self, base_url, timeout=60):
        self.base_url = base_url
        parts = urlsplit(base_url)
        if parts.scheme == "unix" and parts.path:
            self.new_connection = lambda: UnixHTTPConnection(parts.path, timeout)
        elif parts.scheme in ("tcp", "http") and parts.hostname:
            self.new_connection = lambda: http.client.HTTPConnection(parts.hostname, parts.port or 2375, timeout=timeout)
        else:
            raise ValueError("docker_host %r is not a unix:///path/to/docker.sock or tcp://HOST:PORT URL"
                             % base_url)

    def _response(self, method, path, query=None, body=None):
        """Send one request -> (connection, response) for a 2xx answer; DockerError otherwise."""
        if query:
            path += "?" + urlencode(query)
        connection = self.new_connection()
        try:
            connection.request(method, path, body=None if body is None else json.dumps(body),
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            if response.status < 300:
                return connection, response
            text = response.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise DockerError(0, "no answer from the Docker daemon at %s: %s" % (self.base_url, exc))
        connection.close()
        try:
            message = json.loads(text).get("message") or text
        except (ValueError, AttributeError):
            message = text.strip()
        raise (NotFound if response.status == 404 else DockerError)(response.status, message)

    def _call(self, method, path, query=None, body=None):
        connection, response = self._response(method, path, query, body)
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
        return self._call("GET", "/version")

    def info(self):
        return self._call("GET", "/info")

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
