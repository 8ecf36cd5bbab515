# -*- coding: utf-8 -*-
# Copyright: hotport contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files that root reads and writes on behalf of the firewall (the state file, the saved boot
ruleset): trusted only when nobody else can change them, written atomically, one writer at a time.

Whoever can write the state file, or a folder on its way, chooses the rules root writes; so such
a file is refused, with its owner and mode, before it is read or written. The checks and the I/O
go through one walk from ``/`` with ``O_NOFOLLOW`` file descriptors (trusted_folder): a folder
swapped for a symlink after it was checked is refused, never followed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pwd
import stat

FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
FILE_FLAGS = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class UnsafeFileError(RuntimeError):
    """A file, or a folder on its way, that someone but root (or this user) could change."""


def _owner(uid):
    try:
        return "%s (uid %d)" % (pwd.getpwuid(uid).pw_name, uid)
    except KeyError:
        return "uid %d" % uid


def check_owner_and_mode(info, where, what, candidate, sticky_ok):
    """Refuse ``info`` (an lstat result of ``candidate``) when anyone but root or this user owns it,
    or group or others may write it. ``sticky_ok``: a root-owned sticky folder (/tmp) is accepted
    above the file's own folder: others cannot replace what is not theirs there."""
    uid = os.geteuid()
    if info.st_uid not in (0, uid):
        raise UnsafeFileError(
            "the %s %s is owned by %s, not by root%s: whoever owns it can choose the rules hotport "
            "writes. Nothing was changed. Give it to root (chown root %s), or choose a %s in a folder "
            "only root can write." % (what, where, _owner(info.st_uid), "" if uid == 0 else " or you",
                                      candidate, what))
    shared = info.st_mode & 0o022 and not stat.S_ISLNK(info.st_mode)
    sticky = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX and info.st_uid == 0
    if shared and not (sticky and sticky_ok):
        raise UnsafeFileError(
            "the %s %s is writable by group or others (mode %04o): anyone who can write it can %s. "
            "Nothing was changed. Fix it with chmod go-w %s%s."
            % (what, where, stat.S_IMODE(info.st_mode),
               "create names in it that hotport then opens" if sticky else "choose the rules hotport writes",
               candidate, ", or choose a folder of its own" if sticky else ""))


def _where(path, candidate, info):
    kind = "folder" if stat.S_ISDIR(info.st_mode) else "symlink" if stat.S_ISLNK(info.st_mode) else "file"
    if candidate == os.path.abspath(path):
        return path if kind == "file" else "%s (a %s)" % (path, kind)
    return "%s (the %s %s on its way)" % (path, kind, candidate)


def _check_symlinks_on_the_way(path, what):
    """The symlinks of ``path``'s own spelling (/var/run -> /run): each must be root's or this
    user's, since whoever owns one chooses where the path leads."""
    current = os.path.abspath(path)
    while True:
        try:
            info = os.lstat(current)
        except OSError:
            info = None
        if info is not None and stat.S_ISLNK(info.st_mode):
            check_owner_and_mode(info, _where(path, current, info), what, current, True)
        parent = os.path.dirname(current)
        if parent == current:
            return
        current = parent


@contextlib.contextmanager
def trusted_folder(path, what, create=False, resolve=True):
    """-> (descriptor of the folder that holds ``path``, the file's name there), or (None, name)
    when that folder does not exist and ``create`` is off. The folder is reached from ``/`` one
    component at a time without following a symlink, each checked (check_owner_and_mode; the
    file's own folder may not be a shared sticky one). Symlinks in ``path`` itself are resolved
    once, after their owners are checked; with ``resolve`` off, any symlink on the way is refused."""
    if resolve:
        _check_symlinks_on_the_way(path, what)
    real = os.path.realpath(path) if resolve else os.path.abspath(path)
    folder, name = os.path.split(real)
    components = [part for part in folder.split("/") if part]
    descriptor = os.open("/", FOLDER_FLAGS)
    try:
        walked = "/"
        for index, part in enumerate(components + [None]):
            info = os.fstat(descriptor)
            check_owner_and_mode(info, _where(path, walked, info), what, walked, part is not None)
            if part is None:
                break
            walked = os.path.join(walked, part)
            try:
                child = os.open(part, FOLDER_FLAGS, dir_fd=descriptor)
            except FileNotFoundError:
                if not create:
                    os.close(descriptor)
                    descriptor = None
                    yield None, name
                    return
                os.mkdir(part, 0o755, dir_fd=descriptor)
                child = os.open(part, FOLDER_FLAGS, dir_fd=descriptor)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafeFileError(
                        "the %s %s: %s on its way is a symlink or not a folder (%s). Nothing was changed."
                        % (what, path, walked, "hotport follows no symlink there" if not resolve else
                           "it became one while hotport checked it"))
                raise
            os.close(descriptor)
            descriptor = child
        yield descriptor, name
    finally:
        if descriptor is not None:
            os.close(descriptor)


def _check_file(descriptor, name, path, what):
    """Refuse the existing file ``name`` in the folder ``descriptor`` when it is not trusted; False
    when there is none."""
    try:
        info = os.stat(name, dir_fd=descriptor, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeFileError("the %s %s is not a regular file; nothing was changed. Remove it." % (what, path))
    check_owner_and_mode(info, _where(path, os.path.abspath(path), info), what, path, False)
    return True


def check_trusted(path, what):
    """Refuse ``path`` (``what`` names it in the error) when it, a folder above it or a symlink on its
    way is owned by anyone but root or this user, or writable by group or others (a root-owned folder
    with the sticky bit, such as /tmp, excepted above the file's own folder)."""
    with trusted_folder(path, what) as (descriptor, name):
        if descriptor is not None:
            _check_file(descriptor, name, path, what)


def read_trusted(path, what, limit):
    """The text of the trusted file ``path``, or None when it does not exist; UnsafeFileError when
    it is not trusted or larger than ``limit`` bytes."""
    with trusted_folder(path, what) as (descriptor, name):
        if descriptor is None or not _check_file(descriptor, name, path, what):
            return None
        handle = os.open(name, os.O_RDONLY | FILE_FLAGS, dir_fd=descriptor)
        with os.fdopen(handle, "rb") as opened:
            data = opened.read(limit + 1)
    if len(data) > limit:
        raise UnsafeFileError("%s is larger than %d bytes, more than hotport ever writes there" % (path, limit))
    return data.decode("utf-8")


@contextlib.contextmanager
def one_writer(path, what):
    """Hold the lock of ``path`` (``.NAME.lock`` beside it, root's alone): every writer of the
    file, in any process, takes it around its read-modify-write."""
    with trusted_folder(path, what, create=True) as (descriptor, name):
        handle = os.open("." + name + ".lock", os.O_RDWR | os.O_CREAT | FILE_FLAGS, 0o600, dir_fd=descriptor)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def write_atomically(path, text, mode, what="file"):
    """Write ``text`` to ``path`` so that a reader (or a crash) sees the old file or the new one,
    never a part: a temporary file beside it with its final mode from the start, synced, renamed
    over it, the folder synced -> whether the content changed. A symlinked path is written
    through (its target is replaced), never replaced by a regular file. Every folder on the way
    and the file are checked as check_trusted does, and a mode writable by group or others is
    refused."""
    if mode & 0o022:
        raise UnsafeFileError("mode %04o would let group or others write the %s %s; give 0600 or 0640."
                              % (mode, what, path))
    with trusted_folder(path, what, create=True) as (descriptor, name):
        if _check_file(descriptor, name, path, what):
            with os.fdopen(os.open(name, os.O_RDONLY | FILE_FLAGS, dir_fd=descriptor), "rb") as current:
                if current.read() == text.encode("utf-8"):
                    return False
        temporary = ".%s-%s" % (name, os.urandom(6).hex())
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | FILE_FLAGS, mode, dir_fd=descriptor)
        try:
            os.fchmod(handle, mode)
            with os.fdopen(handle, "wb") as out:
                out.write(text.encode("utf-8"))
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, name, src_dir_fd=descriptor, dst_dir_fd=descriptor)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=descriptor)
            raise
        os.fsync(descriptor)
    return True
