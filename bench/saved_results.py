"""Results files in docs/bench/ that a run of some of a benchmark's parts updates in place."""
import json
import os


def merged(path, results, key, chosen):
    """``results`` of this run, then the file's results whose ``key`` names a part not ``chosen``
    for it (a run of some methods or backends keeps the figures of the others)."""
    if not os.path.exists(path):
        return results
    with open(path) as previous:
        return results + [result for result in json.load(previous)["results"] if result[key] not in chosen]
