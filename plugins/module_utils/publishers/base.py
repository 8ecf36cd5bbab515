# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every publisher shares: the errors a refused or failed publication raises.

A publisher makes the host forward a host port to a container: the iptables publisher with rules
in Docker's own iptables chains (iptables.py). Every error is raised with nothing changed, and
its message names the fix.
"""

from __future__ import annotations


class PublisherError(RuntimeError):
    """The mapping could not be published; nothing was changed."""


class LayoutError(PublisherError):
    """The engine's firewall set-up is one this publisher cannot (or must not) write to."""


class NetfilterError(PublisherError):
    """The ruleset could not be read or written; the message says what to check."""
