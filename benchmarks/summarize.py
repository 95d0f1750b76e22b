"""Print the markdown tables of docs/performance.md from benchmarks/results/*.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

R = Path(__file__).parent / "results"
ORIGINAL_S = (5.6, 5.9)  # original CUT3R/TTT3R, fp32, 512x288, 2 threads, this machine (given)
GIB = 1024**3


def load(name):
    p = R / name
    return json.loads(p.read_text()) if p.exists() else None


def speed_rows():
    rows = []
    for name in sorted(R.glob("speed_*.json")):
        d = json.loads(name.read_text())
        for r in d["runs"]:
            if "error" in r:
                continue
            s = r["s_per_frame_median"]
            hd = r["heads"] + (" +compile" if r.get("compile") else "")
            rows.append((name.name, r.get("network"), r["dtype"], r["update"], hd, r["torch_threads"],
                         r["n_timed"], s, r["s_per_frame_min"], r.get("cpu_s_per_frame_median", float("nan")),
                         ORIGINAL_S[0] / s, ORIGINAL_S[1] / s, r["peak_rss_process_gb"], r["peak_rss_run_gb"]))
    return rows


def main() -> int:
    print("| file | dtype | update | heads | threads | timed frames | s/frame (median) | best | CPU-s/frame "
          "| vs original 5.6-5.9 s/frame | peak RSS process (GiB) | peak RSS streaming (GiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (f, net, dt, up, hd, th, n, s, best, cpu, lo, hi, pp, pr) in speed_rows():
        print(f"| {f} | {dt} | {up} | {hd} | {th} | {n} | {s:.2f} | {best:.2f} | {cpu:.2f} | {lo:.2f}x-{hi:.2f}x "
              f"| {pp:.2f} | {pr:.2f} |")
    for f in sorted(R.glob("speed_*.json")):
        for c in json.loads(f.read_text()).get("comparisons", []):
            print(f"\n{f.name}: {c['dtype']} vs fp32 ({c['update']}, {c['frames']} frames): median rel depth diff "
                  f"{c['depth_rel_diff_median']:.2e} (p90 {c['depth_rel_diff_p90']:.2e}), max translation diff "
                  f"{c['pose_trans_diff_max']:.2e} ({100 * c['pose_trans_rel_diff_max']:.1f}% of the translation), "
                  f"max rotation diff {c['pose_rot_diff_deg_max']:.2f} deg")
    sw = load("sweep_cpu.json")
    if sw:
        print("\n| sweep network | dtype | frames | s/frame | peak RSS streaming (MiB) | peak RSS process (MiB) |")
        print("|---|---|---|---|---|---|")
        for r in sw["runs"]:
            print(f"| {r['network']} {r['hw'][1]}x{r['hw'][0]} | {r['dtype']} | {r['frames']} | "
                  f"{r['s_per_frame_median']:.3f} | {r['peak_rss_run_gb'] * 1024:.0f} | {r['peak_rss_process_gb'] * 1024:.0f} |")
        for dt, f in sw.get("flatness", {}).items():
            print(f"\n{dt}: peak at {f['frames'][-1]} frames / peak at 100 frames = {f['longest_vs_shortest_over_100']:.4f}")
    st = load("startup_cpu.json")
    if st:
        print("\n| startup | checkpoint (GiB) | load (s) | first frame (s) | time to first frame (s) | peak RSS (GiB) |")
        print("|---|---|---|---|---|---|")
        for r in st["runs"]:
            print(f"| {r['dtype']} | {r['checkpoint_gb']:.2f} | {r['load_s']:.1f} | {r['first_frame_s']:.1f} | "
                  f"{r['time_to_first_frame_s']:.1f} | {r['peak_rss_process_gb']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
