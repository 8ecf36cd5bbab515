"""Every path of this repository that README, CONTRIBUTING and the guides name in a code span exists."""
import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = ["README.md", "CONTRIBUTING.md"] + sorted(
    os.path.relpath(path, ROOT) for path in glob.glob(os.path.join(ROOT, "docs", "docsite", "rst", "*.rst")))
TOP = ("plugins", "roles", "tests", "scripts", "bench", "docs", "molecule", "playbooks", "images", "changelogs", "meta")
# A code span (Markdown `x` or reStructuredText ``x``) holding a path below one of the folders above.
# A path with a placeholder in it (golden/BACKEND.*, <name>) stands for several.
PLACEHOLDER = re.compile(r"[A-Z]{3,}|<")
PATH = re.compile(r"`{1,2}((?:%s)/[\w./*<>-]*)`{1,2}" % "|".join(TOP))


def named_paths(doc):
    with open(os.path.join(ROOT, doc)) as handle:
        return set(match.rstrip(".") for match in PATH.findall(handle.read()))


def test_the_docs_name_paths_this_test_recognises():
    assert sum(len(named_paths(doc)) for doc in DOCS) > 20, "the pattern no longer matches how the docs name paths"


@pytest.mark.parametrize("doc", DOCS)
def test_each_path_a_doc_names_exists(doc):
    missing = sorted(path for path in named_paths(doc)
                     if not PLACEHOLDER.search(path) and not glob.glob(os.path.join(ROOT, path)))
    assert not missing, "%s names paths that do not exist: %s" % (doc, ", ".join(missing))
