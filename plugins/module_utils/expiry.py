# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Temporary mappings: the ``expires`` option (a duration or a timestamp) -> the moment the mapping
ends, as the state file records it (UTC, ISO 8601 to the second), and what is left of it."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

# 2d, 1h30m, 90m, 45s; a bare number is seconds ('1h30' is refused: minutes or seconds?).
DURATION = re.compile(r"\A(?:(?P<d>[0-9]{1,5})d)?(?:(?P<h>[0-9]{1,6})h)?(?:(?P<m>[0-9]{1,8})m)?(?:(?P<s>[0-9]{1,10})s)?\Z")
# A mapping that outlives this is no temporary one (and a bound keeps datetime from overflowing).
LONGEST = timedelta(days=3660)
RECORDED = "%Y-%m-%dT%H:%M:%SZ"


class ExpiryError(ValueError):
    """An ``expires`` that says no moment in the future; the message names the fix."""


def parse_expires(text, now):
    """``expires`` as given ('90m', '1h30m', '2d', '3600', or '2026-12-24T18:00:00+01:00') and
    ``now`` (an aware datetime) -> (the end as an aware UTC datetime, whether it was a duration)."""
    text = str(text).strip()
    match = DURATION.match(text + "s" if text.isdigit() else text)
    if match and any(match.groupdict().values()):
        parts = dict((unit, int(value or 0)) for unit, value in match.groupdict().items())
        length = timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])
        if not length:
            raise ExpiryError("expires %r is no time at all; give how long the mapping holds (30m, 2h, 1d) "
                              "or when it ends (2026-12-24T18:00:00Z), or leave it out for a lasting one." % text)
        return _bounded(now + length, now, text), True
    try:
        end = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise ExpiryError("expires %r is neither a duration (30m, 2h, 1d12h, or seconds) nor a timestamp with "
                          "its time zone (2026-12-24T18:00:00Z, 2026-12-24T19:00:00+01:00)." % text[:100])
    if end.tzinfo is None:
        raise ExpiryError("expires %r has no time zone, so it names no one moment: add Z (UTC) or the offset, "
                          "as in %sZ." % (text, text))
    end = end.astimezone(timezone.utc).replace(microsecond=0)
    if end <= now:
        raise ExpiryError("expires %s is past (it is %s now): give a moment in the future, or a duration."
                          % (text, recorded(now)))
    return _bounded(end, now, text), False


def _bounded(end, now, text):
    if end - now > LONGEST:
        raise ExpiryError("expires %r is more than ten years away; leave it out for a lasting mapping." % text)
    return end.replace(microsecond=0)


def recorded(moment):
    """An aware datetime as the state file records it."""
    return moment.astimezone(timezone.utc).strftime(RECORDED)


def read_recorded(text):
    """A recorded end -> aware UTC datetime; None for anything else (a hand-edited file)."""
    try:
        return datetime.strptime(str(text), RECORDED).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def seconds_left(text, now):
    """Whole seconds until a recorded end (0 once it is past); None when ``text`` is not one."""
    end = read_recorded(text)
    return None if end is None else max(0, int((end - now).total_seconds()))
