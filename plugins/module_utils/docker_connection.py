# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How hotport reaches a Docker engine: the connection options every module takes (community.docker's
names, aliases, environment variables and defaults, declared once here and in
doc_fragments/docker.py), resolved into one Connection.

Transports: ``unix://`` (the local socket), ``tcp://`` (plain HTTP, or TLS when ``tls`` or
``validate_certs`` is on), ``https://`` (TLS), and ``ssh://[user@]host[:port]`` (the system's ssh
client runs ``docker system dial-stdio`` on the remote host, as the Docker CLI does, so the user's
ssh config, keys and known_hosts apply).
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
DEFAULT_TIMEOUT = 60
# The oldest API of the oldest engine hotport supports (Docker 20.10): what it parses must be in the answers.
OLDEST_API_VERSION = (1, 41)
TRUE_WORDS = ("1", "true", "yes", "on", "y", "t")


class DockerHostError(ValueError):
    """The connection options do not describe a way to reach an engine; the message names the fix."""


@dataclass(frozen=True)
class Connection:
    """Where the engine is and how to reach it."""

    docker_host: str
    timeout: int = DEFAULT_TIMEOUT
    tls: bool = False
    validate_certs: bool = False
    ca_path: str = ""
    client_cert: str = ""
    client_key: str = ""
    tls_hostname: str = ""
    api_version: str = "auto"
    debug: bool = False

    @property
    def scheme(self):
        return urlsplit(self.docker_host).scheme

    @property
    def uses_tls(self):
        return self.scheme == "https" or (self.scheme in ("tcp", "http") and (self.tls or self.validate_certs))

    def is_local(self):
        """Whether the engine is this machine's: its unix socket, or TCP to a loopback address."""
        if self.scheme == "unix":
            return True
        if self.scheme in ("tcp", "http", "https"):
            host = urlsplit(self.docker_host).hostname or ""
            if host == "localhost":
                return True
            try:
                return ipaddress.ip_address(host).is_loopback
            except ValueError:
                return False
        return False

    def warnings(self):
        """What to say about a connection whose peer is not proven to be the engine: plain HTTP (on
        loopback too: any local user can bind a loopback port while dockerd is down), TLS without a
        certificate check."""
        said = []
        if self.scheme in ("tcp", "http") and not self.uses_tls:
            said.append("docker_host %s is plain HTTP: the Docker API there is unencrypted and unauthenticated; "
                        "%s. Use TLS with validate_certs (ca_path, client_cert and client_key), ssh://, or the "
                        "engine's unix socket." % (self.docker_host, "any local user can listen on a loopback port "
                                                   "while dockerd is down and answer as the engine"
                                                   if self.is_local() else "whoever can reach or sit on that path "
                                                   "is root on its host"))
        elif self.uses_tls and not self.validate_certs:
            said.append("docker_host %s uses TLS without checking the engine's certificate%s: whoever sits on the "
                        "path can answer as the engine. Turn validate_certs on (DOCKER_TLS_VERIFY=1) with the "
                        "engine's CA as ca_path." % (self.docker_host, " (ca_path %s is used only with validate_certs)"
                                                     % self.ca_path if self.ca_path else ""))
        return said


def argument_spec():
    """The connection options (documented in doc_fragments/docker.py), as community.docker declares
    them: Ansible fills what the task leaves out from the environment, then the defaults."""
    # Imported here: the reconciler service uses this file on hosts without Ansible.
    from ansible.module_utils.basic import env_fallback

    return dict(
        docker_host=dict(type="str", default=DEFAULT_DOCKER_HOST, fallback=(env_fallback, ["DOCKER_HOST"]),
                         aliases=["docker_url"]),
        tls_hostname=dict(type="str", fallback=(env_fallback, ["DOCKER_TLS_HOSTNAME"])),
        timeout=dict(type="int", default=DEFAULT_TIMEOUT, fallback=(env_fallback, ["DOCKER_TIMEOUT"])),
        ca_path=dict(type="path", aliases=["ca_cert", "tls_ca_cert", "cacert_path"]),
        client_cert=dict(type="path", aliases=["tls_client_cert", "cert_path"]),
        client_key=dict(type="path", aliases=["tls_client_key", "key_path"]),
        tls=dict(type="bool", default=False, fallback=(env_fallback, ["DOCKER_TLS"])),
        validate_certs=dict(type="bool", default=False, fallback=(env_fallback, ["DOCKER_TLS_VERIFY"]),
                            aliases=["tls_verify"]),
        use_ssh_client=dict(type="bool", default=False),
        api_version=dict(type="str", default="auto", fallback=(env_fallback, ["DOCKER_API_VERSION"]),
                         aliases=["docker_api_version"]),
        debug=dict(type="bool", default=False),
    )


def _flag(value):
    return value.strip().lower() in TRUE_WORDS


def from_params(params, environ=None):
    """Options (a module's, or the reconciler's with None for what was not given), then the
    environment (DOCKER_HOST, DOCKER_TLS, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, DOCKER_TLS_HOSTNAME,
    DOCKER_TIMEOUT, DOCKER_API_VERSION), then the defaults -> Connection."""
    environ = os.environ if environ is None else environ

    def given(name, variable, default, convert=str):
        if params.get(name) is not None:
            return params[name]
        if environ.get(variable):
            return convert(environ[variable])
        return default

    cert_dir = environ.get("DOCKER_CERT_PATH") or ""

    def in_cert_dir(name, file_name):
        if params.get(name):
            return params[name]
        return os.path.join(cert_dir, file_name) if cert_dir else ""

    try:
        timeout = int(given("timeout", "DOCKER_TIMEOUT", DEFAULT_TIMEOUT, int))
    except ValueError:
        raise DockerHostError("DOCKER_TIMEOUT %r is not a number of seconds." % environ.get("DOCKER_TIMEOUT"))
    connection = Connection(
        docker_host=given("docker_host", "DOCKER_HOST", DEFAULT_DOCKER_HOST),
        timeout=timeout,
        tls=bool(given("tls", "DOCKER_TLS", False, _flag)),
        # DOCKER_TLS_VERIFY as the Docker CLI reads it: any non-empty value turns verification on.
        validate_certs=bool(given("validate_certs", "DOCKER_TLS_VERIFY", False, bool)),
        ca_path=in_cert_dir("ca_path", "ca.pem"),
        client_cert=in_cert_dir("client_cert", "cert.pem"),
        client_key=in_cert_dir("client_key", "key.pem"),
        tls_hostname=given("tls_hostname", "DOCKER_TLS_HOSTNAME", ""),
        api_version=given("api_version", "DOCKER_API_VERSION", "auto"),
        debug=bool(params.get("debug")))
    check(connection)
    return connection


def _redacted(url):
    """``url`` with any password in it replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(":%s@" % parts.password, ":***@", 1)


def api_version_numbers(text):
    """'1.44' -> (1, 44); None for 'auto'; DockerHostError for anything else."""
    if text == "auto":
        return None
    match = re.match(r"\A1\.([0-9]{1,3})\Z", text)
    if not match:
        raise DockerHostError("api_version %r is not auto or a Docker API version such as 1.44." % text[:100])
    numbers = (1, int(match.group(1)))
    if numbers < OLDEST_API_VERSION:
        raise DockerHostError("api_version %s is older than the API of any engine hotport supports (1.41, "
                              "Docker 20.10): give auto, or 1.41 or newer." % text)
    return numbers


def check(connection):
    """Refuse what cannot work, before anything is asked (DockerHostError)."""
    api_version_numbers(connection.api_version)
    parts = urlsplit(connection.docker_host)
    if parts.password is not None:
        raise DockerHostError("docker_host %r holds a password, which hotport never sends (and would show in "
                              "errors): give ssh://USER@HOST with the user's key, or TLS client certificates."
                              % _redacted(connection.docker_host))
    try:
        port = parts.port
    except ValueError:
        raise DockerHostError("docker_host %r has a port that is not a number from 1 to 65535."
                              % connection.docker_host)
    if parts.scheme == "unix":
        if not parts.path or parts.netloc:
            raise DockerHostError("docker_host %r names no socket by its absolute path (unix://PATH takes three "
                                  "slashes: unix:///var/run/docker.sock)." % _redacted(connection.docker_host))
    elif parts.scheme in ("tcp", "http", "https"):
        if not parts.hostname or port == 0:
            raise DockerHostError("docker_host %r names no host; give tcp://HOST:2376 (TLS) or tcp://HOST:2375."
                                  % connection.docker_host)
    elif parts.scheme == "ssh":
        if not parts.hostname or port == 0 or parts.hostname.startswith("-") or (parts.username or "").startswith("-"):
            raise DockerHostError("docker_host %r is not ssh://USER@HOST[:PORT] with a port from 1 to 65535."
                                  % connection.docker_host)
    else:
        raise DockerHostError(
            "docker_host %r is not a URL hotport can reach an engine by; give unix:///var/run/docker.sock, "
            "tcp://HOST:PORT (with tls or validate_certs for TLS), https://HOST:PORT or ssh://USER@HOST."
            % _redacted(connection.docker_host))
    if connection.uses_tls:
        pairs = [("client_cert", connection.client_cert), ("client_key", connection.client_key)]
        if bool(connection.client_cert) != bool(connection.client_key):
            raise DockerHostError("client_cert and client_key go together; give both or neither.")
        if connection.validate_certs and connection.ca_path:
            pairs.append(("ca_path", connection.ca_path))
        for name, path in pairs:
            if path and not os.path.isfile(path):
                raise DockerHostError("%s %s does not exist (or is not a file); give the path of the PEM file%s."
                                      % (name, path, " or set DOCKER_CERT_PATH" if name != "ca_path" else ""))
