"""Root's files (the state file, the saved boot ruleset) against a hostile local user: folders
others can create names in, a symlink planted between the check and the write, modes that let
others write (issue 34)."""
import os

import pytest

from ansible_collections.hotport.docker.plugins.module_utils import safe_files
from ansible_collections.hotport.docker.plugins.module_utils.safe_files import (
    UnsafeFileError, check_trusted, write_atomically)
from ansible_collections.hotport.docker.plugins.module_utils.state_file import StateFileError, load_state, update_state

NOBODY = 65534


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "etc"
    path.mkdir(mode=0o755)
    return path


def test_a_file_in_a_sticky_shared_folder_is_refused(tmp_path):
    """In /tmp anyone can create the lock or the file's own name first."""
    sticky = tmp_path / "shared"
    sticky.mkdir()
    os.chmod(str(sticky), 0o1777)
    with pytest.raises(StateFileError, match="create names in it"):
        update_state(str(sticky / "mappings.json"), lambda entries: [{"container": "web"}])
    assert list(sticky.iterdir()) == []


def test_a_sticky_folder_further_up_is_accepted(tmp_path):
    sticky = tmp_path / "shared"
    sticky.mkdir()
    os.chmod(str(sticky), 0o1777)
    (sticky / "own").mkdir(mode=0o755)
    assert update_state(str(sticky / "own" / "mappings.json"), lambda entries: [{"container": "web"}]) is True


def test_a_symlink_planted_after_the_check_is_not_followed(folder, tmp_path, monkeypatch):
    """The folder is swapped for a symlink to another folder between resolving and writing."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "rules.v4").write_text("root's own file\n")
    real_realpath = os.path.realpath

    def swap_then_resolve(path):
        resolved = real_realpath(path)
        if path.endswith("rules.v4") and not os.path.islink(str(folder)):
            os.rename(str(folder), str(tmp_path / "moved"))
            os.symlink(str(victim), str(folder))
        return resolved

    monkeypatch.setattr(safe_files.os.path, "realpath", swap_then_resolve)
    with pytest.raises(UnsafeFileError, match="became one while hotport checked it"):
        write_atomically(str(folder / "rules.v4"), "*filter\nCOMMIT\n", 0o600)
    assert (victim / "rules.v4").read_text() == "root's own file\n"
    assert sorted(path.name for path in victim.iterdir()) == ["rules.v4"]


def test_a_boot_ruleset_in_a_folder_anyone_writes_is_refused(tmp_path):
    open_folder = tmp_path / "iptables"
    open_folder.mkdir()
    os.chmod(str(open_folder), 0o777)
    with pytest.raises(UnsafeFileError, match="writable by group or others"):
        write_atomically(str(open_folder / "rules.v4"), "*filter\nCOMMIT\n", 0o600)
    assert list(open_folder.iterdir()) == []


def test_a_mode_others_can_write_is_refused(folder):
    with pytest.raises(UnsafeFileError, match="0666"):
        write_atomically(str(folder / "rules.v4"), "*filter\nCOMMIT\n", 0o666)
    assert list(folder.iterdir()) == []


def test_a_file_of_another_user_is_refused_before_it_is_read(folder):
    path = folder / "mappings.json"
    path.write_text('{"version": 1, "mappings": []}')
    os.chown(str(path), NOBODY, NOBODY)
    with pytest.raises(StateFileError, match="owned by"):
        load_state(str(path))


def test_a_symlink_of_another_user_on_the_way_is_refused(folder, tmp_path):
    (folder / "mappings.json").write_text("{}")
    link = tmp_path / "link"
    link.symlink_to(folder)
    os.lchown(str(link), NOBODY, NOBODY)
    with pytest.raises(UnsafeFileError, match="symlink"):
        check_trusted(str(link / "mappings.json"), "hotport state file")
