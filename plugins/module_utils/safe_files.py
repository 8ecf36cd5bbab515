# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files that root reads and writes on behalf of the firewall (the state file, the saved boot
ruleset): trusted only when nobody else can change them, written atomically, one writer at a time.

Whoever can write the state file, or a folder on its way, chooses the rules root writes; so such
a file is refused, with its owner and mode, before it is read or written.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import stat
import tempfile


class UnsafeFileError(RuntimeError):
    """A file, or a folder on its way, that someone but root (or this user) could change."""


def _owner(uid):
    try:
        return "%s (uid %d)" % (pwd.getpwuid(uid).pw_name, uid)
    except KeyError:
        return "uid %d" % uid


def _on_the_way(path):
    """The path, every folder above it, and the same for where its symlinks lead."""
    seen = []
    for start in (os.path.abspath(path), os.path.realpath(path)):
        current = start
        while True:
            if current not in seen:
                seen.append(current)
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
    return seen


def check_trusted(path, what):
    """Refuse ``path`` (``what`` names it in the error) when it, a folder above it or a symlink on its
    way is owned by anyone but root or this user, or writable by group or others (a root-owned folder
    with the sticky bit, such as /tmp, excepted: others cannot replace what is not theirs there)."""
    uid = os.geteuid()
    for candidate in _on_the_way(path):
        try:
            info = os.lstat(candidate)
        except FileNotFoundError:
            continue
        kind = "folder" if stat.S_ISDIR(info.st_mode) else "symlink" if stat.S_ISLNK(info.st_mode) else "file"
        if candidate == os.path.abspath(path):
            where = path if kind == "file" else "%s (a %s)" % (path, kind)
        else:
            where = "%s (the %s %s on its way)" % (path, kind, candidate)
        if info.st_uid not in (0, uid):
            raise UnsafeFileError(
                "the %s %s is owned by %s, not by root%s: whoever owns it can choose the rules hotport "
                "writes. Nothing was changed. Give it to root (chown root %s), or choose a %s in a folder "
                "only root can write." % (what, where, _owner(info.st_uid), "" if uid == 0 else " or you",
                                          candidate, what))
        shared = info.st_mode & 0o022 and not stat.S_ISLNK(info.st_mode)
        if shared and not (kind == "folder" and info.st_mode & stat.S_ISVTX and info.st_uid == 0):
            raise UnsafeFileError(
                "the %s %s is writable by group or others (mode %04o): anyone who can write it can choose "
                "the rules hotport writes. Nothing was changed. Fix it with chmod go-w %s."
                % (what, where, stat.S_IMODE(info.st_mode), candidate))


def read_limited(path, limit):
    """The file's text, or None when it does not exist; UnsafeFileError when it is larger than
    ``limit`` bytes."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        return None
    if len(data) > limit:
        raise UnsafeFileError("%s is larger than %d bytes, more than hotport ever writes there" % (path, limit))
    return data.decode("utf-8")


@contextlib.contextmanager
def one_writer(path):
    """Hold the lock of ``path`` (``.NAME.lock`` beside it): every writer of the file, in any process,
    takes it around its read-modify-write."""
    directory, name = os.path.split(os.path.realpath(path))
    os.makedirs(directory, mode=0o755, exist_ok=True)
    handle = os.open(os.path.join(directory, "." + name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def write_atomically(path, text, mode):
    """Write ``text`` to ``path`` so that a reader (or a crash) sees the old file or the new one,
    never a part: a temporary file beside it with its final mode from the start, synced, renamed
    over it, the folder synced -> whether the content changed. A symlinked path is written
    through (its target is replaced), never replaced by a regular file."""
    path = os.path.realpath(path)
    try:
        with open(path) as current:
            if current.read() == text:
                return False
    except FileNotFoundError:
        pass
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + "-")
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    folder = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return True
