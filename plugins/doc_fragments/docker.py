# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Options for reaching the Docker daemon, shared by every hotport module."""

    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - URL of the Docker daemon API. V(unix:///var/run/docker.sock) (this host's socket),
        V(tcp://HOST:2376) with O(validate_certs) or O(tls) (TLS), V(https://HOST:2376) (TLS),
        V(tcp://HOST:2375) (plain HTTP, unencrypted and unauthenticated, so anyone who can reach the
        port is root on that host; a warning says so, on loopback too, where any local user can listen while dockerd is down), or
        V(ssh://USER@HOST[:PORT]) (the system's C(ssh) client runs C(docker system dial-stdio) on that
        host, as the Docker CLI does, so your ssh config, keys and known_hosts apply; the remote user
        must reach its engine's socket).
      - The kernel method writes the firewall of the machine the module runs on, so it needs this
        machine's engine (its socket, or TCP to loopback); for an engine elsewhere use O(hotport.docker.container_port_map#module:method=sidecar).
      - If not set, the value of the E(DOCKER_HOST) environment variable is used, and else the default.
    type: str
    default: unix:///var/run/docker.sock
    aliases:
      - docker_url
  tls_hostname:
    description:
      - The name the daemon's certificate must hold, when it differs from the host in O(docker_host).
      - If not set, the value of E(DOCKER_TLS_HOSTNAME) is used, and else the host of O(docker_host).
    type: str
  timeout:
    description:
      - Seconds to wait for an answer from the Docker API.
      - If not set, the value of E(DOCKER_TIMEOUT) is used, and else the default.
    type: int
    default: 60
  ca_path:
    description:
      - The CA certificate that signed the daemon's certificate, for O(validate_certs).
      - If not set and E(DOCKER_CERT_PATH) is, the file C(ca.pem) there; else the system's CAs.
    type: path
    aliases:
      - ca_cert
      - tls_ca_cert
      - cacert_path
  client_cert:
    description:
      - The client certificate to present to the daemon (with O(client_key)).
      - If not set and E(DOCKER_CERT_PATH) is, the file C(cert.pem) there.
    type: path
    aliases:
      - tls_client_cert
      - cert_path
  client_key:
    description:
      - The key of O(client_cert).
      - If not set and E(DOCKER_CERT_PATH) is, the file C(key.pem) there.
    type: path
    aliases:
      - tls_client_key
      - key_path
  tls:
    description:
      - TLS to the daemon without verifying its certificate (encrypted, but anyone on the path can pose
        as the daemon; a warning says so). O(validate_certs) takes precedence.
      - If not set, the value of E(DOCKER_TLS) is used, and else the default.
    type: bool
    default: false
  validate_certs:
    description:
      - TLS to the daemon, verifying its certificate (against O(ca_path)) and its name (O(tls_hostname), else
        the host of O(docker_host)). A wrong CA, a name the certificate does not hold, an expired certificate,
        a plaintext port or a missing key file is refused with the fix, before anything changes.
      - If not set, the value of E(DOCKER_TLS_VERIFY) is used, and else the default.
    type: bool
    default: false
    aliases:
      - tls_verify
  use_ssh_client:
    description:
      - Accepted for compatibility with community.docker; V(ssh://) always uses the system's C(ssh) client
        (there is no paramiko transport).
    type: bool
    default: false
  api_version:
    description:
      - The Docker API version to speak, V(auto) (the engine's own, newest) or a version such as V(1.44). A
        version the engine does not speak (its range is in C(docker version)) or older than V(1.41) (Docker 20.10)
        is refused with the range, before anything changes.
      - The engine's facts (C(/version), C(/info)) are always read in the engine's own version, which is the
        only one that reports Docker's firewall backend on every engine.
      - If not set, the value of E(DOCKER_API_VERSION) is used, and else the default.
    type: str
    default: auto
    aliases:
      - docker_api_version
  debug:
    description:
      - Return every Docker API call made (method, path, status, milliseconds) as RV(api_calls), on failure too.
    type: bool
    default: false
notes:
  - The options and environment variables are community.docker's, so a task, an inventory or a shell set up for
    community.docker (E(DOCKER_HOST), E(DOCKER_TLS_VERIFY), E(DOCKER_CERT_PATH), ...) reaches the same engine.
requirements:
  - Python 3.7 or newer on the managed host; hotport talks to the Docker API with the standard library, no Docker SDK needed
  - For V(ssh://), the C(ssh) client (openssh-client) where the module runs
"""

    # The action group of both modules (meta/runtime.yml): module_defaults for group/hotport.docker.docker.
    ACTIONGROUP_DOCKER = r"""
attributes:
  action_group:
    description: Use C(group/hotport.docker.docker) in C(module_defaults) to set the connection options once for
      every hotport module (as C(group/community.docker.docker) does for community.docker's).
    support: full
    membership:
      - hotport.docker.docker
"""
