"""Draw docs/bench/*.json as PNG plots beside them (matplotlib, no screen needed)."""
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs", "bench")
LABELS = {"hotport": "hotport (one transaction)", "floor": "floor: one iptables-restore + iptables-save",
          "recipe": "hand-written recipe (iptables -C || -A)", "builtin": "ansible.builtin.iptables loop"}


def control_plane():
    data = json.load(open(os.path.join(DOCS, "control_plane.json")))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for axis, key, title in ((axes[0], "apply_s", "first apply"), (axes[1], "rerun_s", "idempotent re-run")):
        for method in ("hotport", "floor", "recipe", "builtin"):
            rows = [row for row in data["results"] if row["method"] == method]
            axis.plot([row["mappings"] for row in rows], [row[key] for row in rows], marker="o", label=LABELS[method])
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("mappings (3 rules each)")
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("seconds (log)")
    axes[1].legend(fontsize=8)
    figure.suptitle("Control plane: N mappings on one host (iptables-nft, throwaway namespace)")
    figure.tight_layout()
    figure.savefig(os.path.join(DOCS, "control_plane.png"), dpi=110)


if __name__ == "__main__":
    control_plane()
