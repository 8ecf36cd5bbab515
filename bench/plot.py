"""Draw docs/bench/*.json as PNG plots beside them (matplotlib, no screen needed)."""
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs", "bench")
LABELS = {"hotport": "hotport (one transaction)", "floor": "floor: one iptables-restore + iptables-save",
          "recipe": "hand-written recipe (iptables -C || -A)", "builtin": "ansible.builtin.iptables loop",
          "nftables": "hotport, nftables publisher (one nft -f)", "nft-floor": "floor: one nft -f + nft list ruleset"}


def log_log(axis, xlabel, title):
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel(xlabel)
    axis.set_title(title)
    axis.grid(True, which="both", alpha=0.3)


def control_plane():
    data = json.load(open(os.path.join(DOCS, "control_plane.json")))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for axis, key, title in ((axes[0], "apply_s", "first apply"), (axes[1], "rerun_s", "idempotent re-run")):
        for method in ("hotport", "floor", "nftables", "nft-floor", "recipe", "builtin"):
            rows = [row for row in data["results"] if row["method"] == method]
            axis.plot([row["mappings"] for row in rows], [row[key] for row in rows], marker="o", label=LABELS[method])
        log_log(axis, "mappings (3 rules each)", title)
    axes[0].set_ylabel("seconds (log)")
    axes[1].legend(fontsize=8)
    figure.suptitle("Control plane: N mappings on one host (iptables-nft or nft, throwaway namespace)")
    figure.tight_layout()
    figure.savefig(os.path.join(DOCS, "control_plane.png"), dpi=110)


PATH_LABELS = {"direct": "direct container IP", "hotport": "hotport DNAT", "socat": "hand-started socat",
               "sidecar": "hotport method: sidecar",
               "docker-proxy": "docker-proxy (loopback)"}


def data_path():
    data = json.load(open(os.path.join(DOCS, "data_path.json")))
    paths = data["paths"]
    labels = [PATH_LABELS[row["path"]] for row in paths]
    positions = range(len(paths))
    figure, axes = plt.subplots(1, 3, figsize=(14, 4.5))
    width = 0.4
    axes[0].bar([x - width / 2 for x in positions], [row["gbps_1"] for row in paths], width, label="1 stream")
    axes[0].bar([x + width / 2 for x in positions], [row["gbps_8"] for row in paths], width, label="8 streams")
    axes[0].set_ylabel("Gbit/s (iperf3)")
    axes[0].set_title("bulk throughput")
    axes[0].legend(fontsize=8)
    axes[1].bar(positions, [row["rate"] for row in paths], color="tab:green")
    axes[1].set_ylabel("connections / s (sequential client)")
    axes[1].set_title("short connections")
    axes[2].bar([x - width / 2 for x in positions], [row["p50_ms"] for row in paths], width, label="p50")
    axes[2].bar([x + width / 2 for x in positions], [row["p99_ms"] for row in paths], width, label="p99")
    axes[2].set_ylabel("ms per connection")
    axes[2].set_title("connection latency")
    axes[2].legend(fontsize=8)
    for axis in axes:
        axis.set_xticks(list(positions))
        axis.set_xticklabels(labels, rotation=20, fontsize=8)
        axis.grid(True, axis="y", alpha=0.3)
    figure.suptitle("Data path through one mapping (engine %s, %d CPUs)" % (data["engine"], data["cpus"]))
    figure.tight_layout()
    figure.savefig(os.path.join(DOCS, "data_path.png"), dpi=110)

    scale = data["scale"]
    counts = [row["mappings"] for row in scale]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    axes[0].plot(counts, [row["gbps_1"] for row in scale], marker="o")
    axes[0].set_ylabel("Gbit/s, 1 stream")
    axes[0].set_ylim(bottom=0)
    axes[0].set_title("bulk throughput")
    axes[1].plot(counts, [row["rate"] for row in scale], marker="o", label="connections / s")
    axes[1].set_ylabel("connections / s")
    axes[1].set_ylim(bottom=0)
    axes[1].set_title("short connections")
    latency = axes[1].twinx()
    latency.plot(counts, [row["p99_ms"] for row in scale], marker="s", color="tab:red", label="p99 ms")
    latency.set_ylabel("p99 ms", color="tab:red")
    latency.set_ylim(bottom=0)
    for axis in axes:
        axis.set_xscale("log")
        axis.set_xlabel("hotport mappings installed (measured one last in every chain)")
        axis.grid(True, which="both", alpha=0.3)
    figure.suptitle("Scale: one mapping measured with N mappings installed")
    figure.tight_layout()
    figure.savefig(os.path.join(DOCS, "data_path_scale.png"), dpi=110)


def through_ansible():
    path = os.path.join(DOCS, "through_ansible.json")
    if not os.path.exists(path):
        return  # written by bench/through_ansible.py (make bench-ansible), not by make bench
    data = json.load(open(path))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    colours = {"iptables": "tab:blue", "nftables": "tab:orange", "sidecar": "tab:green"}
    for axis, step, title in ((axes[0], "apply", "first apply"), (axes[1], "rerun", "idempotent re-run")):
        for publisher, colour in colours.items():
            rows = [row for row in data["results"] if row["publisher"] == publisher]
            counts = [row["n"] for row in rows]
            axis.plot(counts, [max(row[step], 1e-3) for row in rows], marker="o", color=colour,
                      label="%s: through ansible-playbook, minus ping" % publisher)
            axis.plot(counts, [row["in_process"][step + "_total"] for row in rows], marker=".", linestyle="--",
                      color=colour, label="%s: in one process on the host" % publisher)
            if all("floor" in row for row in rows):
                axis.plot(counts, [row["floor"][step] for row in rows], linestyle=":", color=colour,
                          label="%s: floor (apply: one write + one read; re-run: the read)" % publisher)
        log_log(axis, "mappings", title)
    axes[0].set_ylabel("seconds (log)")
    axes[1].legend(fontsize=7)
    figure.suptitle("container_port_map as users pay it (Docker %s in DinD, %d CPUs)"
                    % (data["results"][0]["engine"], data["cpus"]))
    figure.tight_layout()
    figure.savefig(os.path.join(DOCS, "through_ansible.png"), dpi=110)


if __name__ == "__main__":
    control_plane()
    data_path()
    through_ansible()
