"""Make the repository importable as ansible_collections.hotport.docker (the Makefile builds
the same symlink for ansible-playbook)."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, ".build")
LINK = os.path.join(BUILD, "ansible_collections", "hotport", "docker")
if not os.path.islink(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink(ROOT, LINK)
if BUILD not in sys.path:
    sys.path.insert(0, BUILD)
