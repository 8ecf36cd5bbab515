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
      - URL of the Docker daemon API, for example V(unix:///var/run/docker.sock) or V(tcp://127.0.0.1:2375).
      - Plain HTTP only (no TLS, no V(ssh://)), which is all a daemon on the same host needs.
      - The rules are always written on the host the module runs on, so the daemon must be that host's.
      - If not set, the value of the E(DOCKER_HOST) environment variable is used, and else the local socket.
    type: str
    default: unix:///var/run/docker.sock
  timeout:
    description:
      - Seconds to wait for an answer from the Docker API.
    type: int
    default: 60
requirements:
  - Python 3.7 or newer on the managed host; hotport talks to the Docker API with the standard library, no Docker SDK needed
"""
