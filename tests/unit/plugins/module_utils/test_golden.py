"""What each engine layout and backend renders for every mapping shape (tests/mapping_shapes.py),
against its golden ruleset in golden/: a change of a rendering shows as a diff to review."""
import difflib

import pytest

from ....mapping_shapes import BACKENDS, golden_path, golden_text


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_layout_renders_its_golden_ruleset(backend):
    with open(golden_path(backend)) as golden:
        expected = golden.read()
    actual = golden_text(backend)
    diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                        "golden/" + golden_path(backend).rsplit("/", 1)[1], "rendered now"))
    assert actual == expected, "the rendering changed; if on purpose, run `make golden` and review:\n" + diff
