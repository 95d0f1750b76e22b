"""Speed and memory benchmark (``ttt3r bench`` / ``python -m ttt3r.bench``).

Everything runs on networks filled with deterministic formula weights
(:mod:`ttt3r.formula`), so no download is needed. Each configuration runs in a
fresh subprocess (``--worker``) so that peak memory figures do not mix; the
parent collects one JSON record per run.

Suites (``--suite``):

* ``speed``: the full-size 512 network on a synthetic 512x288 sequence, for each
  ``--dtype`` and ``--update``: frames/s, s/frame (median and best of the timed
  frames, after ``--warmup`` frames), peak host memory, CUDA peak memory on GPU.
  The depth maps and poses of the first frames are kept so that bf16 can be
  compared with fp32 (median relative depth difference, pose difference).
* ``sweep``: memory and time against sequence length (``--lengths``, e.g.
  10/100/1000 frames) with a small network (default ``tiny224`` shapes at
  512x288), and a plot of both against frames.
* ``startup``: a full-size checkpoint is written in the released ``.pth`` layout
  (omegaconf ``args``), then loaded through :func:`ttt3r.weights.load_weights_file`
  in each dtype: time to the loaded network, time to the first frame, peak RSS.
* ``all``: the three of them.

Peak host memory is the kernel's high-water mark of the resident set
(``VmHWM`` in ``/proc/self/status``), reset with ``/proc/self/clear_refs`` when
the kernel allows it so that streaming peaks can be told from build peaks; the
whole-process peak (``ru_maxrss``) is reported as well. On CUDA, times come from
CUDA events after warm-up and memory from ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

GB = 1024**3
FULL = "cut3r_512_dpt_4_64"
DEFAULT_OUT = Path("benchmarks") / "results"

# --------------------------------------------------------------------------------------
# memory probes


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_bytes() -> int:
    """Current resident set size (bytes)."""
    kb = _status_kb("VmRSS")
    if kb is not None:
        return kb * 1024
    return peak_rss_bytes()  # pragma: no cover - non-Linux fallback


def peak_rss_bytes() -> int:
    """High-water mark of the resident set since start (or the last :func:`reset_peak_rss`)."""
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb * 1024
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # pragma: no cover
    return r if sys.platform == "darwin" else r * 1024  # pragma: no cover


def process_peak_rss_bytes() -> int:
    """Whole-process peak RSS (``ru_maxrss``; never reset)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------
# networks and inputs


#: the networks ``--network`` may name: constructor string and formula salt of each (package
#: data, so that an installed ttt3r benchmarks from any folder)
NETWORKS_FILE = Path(__file__).parent / "assets" / "bench" / "networks.json"


def model_config(name: str):
    """``cut3r_512_dpt_4_64`` / ``cut3r_224_linear_4`` (full size) or a parity preset
    (``tiny512``, ``tiny224``) -> (ModelConfig, salt), from :data:`NETWORKS_FILE`."""
    from .config import ModelConfig

    networks = json.loads(NETWORKS_FILE.read_text())
    if name not in networks:
        raise SystemExit(f"unknown network {name!r}; use one of {', '.join(networks)}")
    return ModelConfig.from_constructor(networks[name]["model"]), networks[name].get("salt", "")


def build_formula_model(cfg, dtype, device="cpu", salt: str = ""):
    """A formula-weight network built tensor by tensor in ``dtype`` (no full fp32 copy)."""
    import torch

    from .formula import _alias_source, formula_values
    from .weights import build_model

    model = build_model(cfg, "meta")
    sd: dict[str, torch.Tensor] = {}
    for key, t in model.state_dict().items():
        canon = _alias_source(key)
        if canon is not None and canon in sd:
            sd[key] = sd[canon]
            continue
        v = torch.from_numpy(formula_values(key, tuple(t.shape), salt))
        sd[key] = v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype)
        del v
    model.load_state_dict(sd, strict=True, assign=True)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def synthetic_frames(n: int, hw: tuple[int, int] = (288, 512), kind: str = "smooth", seed: int = 0):
    """``n`` deterministic HxWx3 uint8 frames: ``random`` noise or a ``smooth`` moving pattern."""
    h, w = hw
    rng = np.random.default_rng(seed)
    if kind == "random":
        for _ in range(n):
            yield rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        return
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    freq = rng.uniform(0.005, 0.04, (6, 2)).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, (6, 3)).astype(np.float32)
    for i in range(n):
        shift = 3.0 * i
        img = np.zeros((h, w, 3), np.float32)
        for k in range(6):
            arg = freq[k, 0] * (xx + shift) + freq[k, 1] * yy
            for c in range(3):
                img[..., c] += np.sin(arg + phase[k, c])
        yield np.clip(127.5 + 20.0 * img, 0, 255).astype(np.uint8)


def _parse_hw(text: str) -> tuple[int, int]:
    w, h = (int(x) for x in text.lower().split("x"))
    return h, w


# --------------------------------------------------------------------------------------
# worker: one configuration in this process


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_config(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration in this process and return its record (see module doc)."""
    import torch

    from .device import resolve_device, resolve_dtype
    from .session import Session

    t_start = time.perf_counter()
    threads = spec.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    device = resolve_device(spec.get("device", "cpu"))
    dtype = resolve_dtype(spec.get("dtype", "fp32"))
    hw = tuple(spec.get("hw", (288, 512)))
    frames = int(spec.get("frames", 5))
    warmup = int(spec.get("warmup", 1))
    keep = int(spec.get("keep_outputs", 0))
    rec: dict[str, Any] = {k: spec[k] for k in spec if k not in ("outputs_path",)}

    if spec.get("checkpoint"):
        from .weights import load_weights_file

        model = load_weights_file(spec["checkpoint"], device=device, dtype=dtype)
    else:
        cfg, salt = model_config(spec.get("network", FULL))
        model = build_formula_model(cfg, dtype, device, salt)
    _sync(device)
    rec["load_s"] = time.perf_counter() - t_start
    rec["params_m"] = sum(p.numel() for p in model.parameters()) / 1e6
    rec["rss_after_load_gb"] = rss_bytes() / GB
    rec["peak_rss_load_gb"] = peak_rss_bytes() / GB
    if spec.get("channels_last"):
        model = model.to(memory_format=torch.channels_last)
    if spec.get("compile"):
        _compile(model)
    want = {"world", "rgb"} if spec.get("heads", "self") == "all" else set()
    sess = Session(model, update=spec.get("update", "ttt3r"), size=max(hw), want=want,
                   step_graph=spec.get("step_graph", "none"))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rec["peak_reset"] = reset_peak_rss()
    times: list[float] = []
    cpu_times: list[float] = []
    rss_trace: list[float] = []
    hwm_trace: list[float] = []
    depths, poses = [], []
    events = []
    for i, img in enumerate(synthetic_frames(warmup + frames, hw, spec.get("images", "smooth"),
                                             int(spec.get("seed", 0)))):
        timed = i >= warmup
        if device.type == "cuda" and timed:
            ev0, ev1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            ev0.record()
        t0, c0 = time.perf_counter(), time.process_time()
        res = sess.step(img)
        if device.type == "cuda" and timed:
            ev1.record()
            events.append((ev0, ev1))
        _sync(device)
        dt = time.perf_counter() - t0
        ct = time.process_time() - c0
        if i == 0:
            rec["first_frame_s"] = dt
            rec["time_to_first_frame_s"] = time.perf_counter() - t_start
        if timed:
            times.append(dt)
            cpu_times.append(ct)
        if len(depths) < keep:
            depths.append(res.depth.astype(np.float32))
            poses.append(res.pose.astype(np.float64))
        rss_trace.append(rss_bytes() / GB)
        hwm_trace.append(peak_rss_bytes() / GB)
        del res
    if events:
        torch.cuda.synchronize(device)
        times = [a.elapsed_time(b) / 1e3 for a, b in events]
    rec.update(_time_stats(times))
    if cpu_times:
        # CPU seconds of this process per frame (all threads): robust to other processes
        # on the machine, unlike wall time
        rec["cpu_s_per_frame_median"] = float(np.median(cpu_times))
        rec["frame_cpu_s"] = [round(x, 4) for x in cpu_times]
    rec["peak_rss_run_gb"] = peak_rss_bytes() / GB
    rec["peak_rss_process_gb"] = process_peak_rss_bytes() / GB
    rec["rss_trace_gb"] = [round(x, 4) for x in rss_trace]
    rec["peak_rss_trace_gb"] = [round(x, 4) for x in hwm_trace]
    rec["frame_times_s"] = [round(x, 4) for x in times]
    if device.type == "cuda":
        rec["cuda_peak_gb"] = torch.cuda.max_memory_allocated(device) / GB
        rec["cuda_device"] = torch.cuda.get_device_name(device)
    rec["torch_threads"] = torch.get_num_threads()
    rec["wall_s"] = time.perf_counter() - t_start
    if keep and spec.get("outputs_path"):
        np.savez(spec["outputs_path"], depth=np.stack(depths), pose=np.stack(poses))
        rec["outputs_path"] = spec["outputs_path"]
    return rec


def _compile(model) -> None:
    """torch.compile the transformer blocks and the self-view DPT (in place)."""
    mods = [*model.enc_blocks, *model.dec_blocks, *model.dec_blocks_state]
    head = model.downstream_head
    if hasattr(head, "dpt_self"):
        mods.append(head.dpt_self)
    for m in mods:
        m.compile(dynamic=False)


def _time_stats(times: list[float]) -> dict[str, float]:
    if not times:
        return {}
    t = np.asarray(times)
    med = float(np.median(t))
    return {"n_timed": len(t), "s_per_frame_median": med, "s_per_frame_min": float(t.min()),
            "s_per_frame_mean": float(t.mean()), "fps_median": 1.0 / med, "fps_best": 1.0 / float(t.min())}


# --------------------------------------------------------------------------------------
# parent: subprocesses, suites, comparison, plots


def run_subprocess(spec: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """Run :func:`run_config` in a fresh interpreter; return its record (or an error record)."""
    cmd = [sys.executable, "-m", "ttt3r.bench", "--worker", json.dumps(spec)]
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout} s"}
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("BENCH_RESULT "):
            return json.loads(line[len("BENCH_RESULT "):])
    return {**spec, "error": (p.stderr.strip().splitlines() or ["no output"])[-1], "returncode": p.returncode}


def machine_info() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cuda": torch.cuda.is_available()}
    try:
        info["load_avg_start"] = os.getloadavg()
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def compare_outputs(ref_path: str, other_path: str) -> dict[str, float]:
    """bf16-vs-fp32 style differences between two runs' kept outputs."""
    a, b = np.load(ref_path), np.load(other_path)
    n = min(len(a["depth"]), len(b["depth"]))
    da, db = a["depth"][:n].astype(np.float64), b["depth"][:n].astype(np.float64)
    ok = np.isfinite(da) & np.isfinite(db) & (np.abs(da) > 1e-9)
    rel = np.abs(db - da)[ok] / np.abs(da)[ok]
    pa, pb = a["pose"][:n], b["pose"][:n]
    dt = np.linalg.norm(pa[:, :3, 3] - pb[:, :3, 3], axis=-1)
    scale = np.maximum(np.linalg.norm(pa[:, :3, 3], axis=-1), 1e-9)
    # rotation angle from the chord ||Ra - Rb||_F = 2 sqrt(2) sin(angle / 2) (exact near 0)
    chord = np.linalg.norm(pa[:, :3, :3] - pb[:, :3, :3], axis=(1, 2))
    rot = np.degrees(2 * np.arcsin(np.clip(chord / (2 * np.sqrt(2)), 0, 1)))
    return {"frames": int(n), "depth_rel_diff_median": float(np.median(rel)),
            "depth_rel_diff_p90": float(np.quantile(rel, 0.9)), "depth_rel_diff_max": float(rel.max()),
            "pose_trans_diff_max": float(dt.max()), "pose_trans_rel_diff_max": float((dt / scale).max()),
            "pose_rot_diff_deg_max": float(max(rot))}


def suite_speed(args, out_dir: Path) -> dict[str, Any]:
    runs = []
    keep = args.keep_outputs
    tmp = Path(tempfile.mkdtemp(prefix="ttt3r_bench_"))
    for update in args.update:
        for dtype in args.dtype:
            for heads in args.heads:
                spec = dict(suite="speed", network=args.network, dtype=dtype, update=update, heads=heads,
                            frames=args.frames, warmup=args.warmup, hw=list(_parse_hw(args.size)),
                            images=args.images, device=args.device, threads=args.threads,
                            compile=args.compile, step_graph=args.step_graph, keep_outputs=keep,
                            outputs_path=str(tmp / f"{update}_{dtype}_{heads}.npz"))
                rec = run_subprocess(spec)
                _print_run(rec)
                runs.append(rec)
    comparisons = []
    for update in args.update:
        for heads in args.heads:
            ref = next((r for r in runs if r.get("dtype") == "fp32" and r.get("update") == update
                        and r.get("heads") == heads and "outputs_path" in r), None)
            for r in runs:
                if ref is None or r is ref or "outputs_path" not in r or r.get("update") != update \
                        or r.get("heads") != heads:
                    continue
                c = {"update": update, "heads": heads, "reference": "fp32", "dtype": r["dtype"],
                     **compare_outputs(ref["outputs_path"], r["outputs_path"])}
                print(f"  {r['dtype']} vs fp32 ({update}): median rel depth diff "
                      f"{c['depth_rel_diff_median']:.2e}, max pose translation diff {c['pose_trans_diff_max']:.2e}"
                      f" (rel {c['pose_trans_rel_diff_max']:.2e}), max rotation diff {c['pose_rot_diff_deg_max']:.3f} deg")
                comparisons.append(c)
    for r in runs:
        r.pop("outputs_path", None)
    shutil.rmtree(tmp, ignore_errors=True)
    return {"runs": runs, "comparisons": comparisons}


def suite_sweep(args, out_dir: Path) -> dict[str, Any]:
    runs = []
    for dtype in args.dtype:
        for n in args.lengths:
            spec = dict(suite="sweep", network=args.sweep_network, dtype=dtype, update=args.update[0],
                        heads="self", frames=n, warmup=0, hw=list(_parse_hw(args.size)), images=args.images,
                        device=args.device, threads=args.threads)
            rec = run_subprocess(spec)
            _print_run(rec)
            runs.append(rec)
    out = {"runs": runs}
    for dtype in args.dtype:
        rs = sorted((r for r in runs if r.get("dtype") == dtype and "error" not in r), key=lambda r: r["frames"])
        if len(rs) >= 2:
            out.setdefault("flatness", {})[dtype] = {
                "frames": [r["frames"] for r in rs],
                "peak_rss_run_gb": [r["peak_rss_run_gb"] for r in rs],
                "longest_vs_shortest_over_100": _ratio_vs(rs, 100),
            }
    return out


def _ratio_vs(rs: list[dict], base_frames: int) -> float | None:
    base = next((r for r in rs if r["frames"] == base_frames), None)
    if base is None:
        return None
    return rs[-1]["peak_rss_run_gb"] / base["peak_rss_run_gb"]


def suite_startup(args, out_dir: Path) -> dict[str, Any]:
    ckpt = Path(args.checkpoint) if args.checkpoint else None
    made = None
    if ckpt is None:
        made = Path(tempfile.mkdtemp(prefix="ttt3r_ckpt_"))
        ckpt = made / f"{args.network}.pth"
        t = time.perf_counter()
        spec = dict(suite="write_checkpoint", network=args.network, path=str(ckpt))
        rec = run_subprocess(spec)
        if "error" in rec:
            raise SystemExit(f"could not write the checkpoint: {rec['error']}")
        print(f"wrote {ckpt} ({ckpt.stat().st_size / GB:.2f} GiB) in {time.perf_counter() - t:.0f} s")
    runs = []
    try:
        for dtype in args.dtype:
            _drop_page_cache_hint(ckpt)
            spec = dict(suite="startup", checkpoint=str(ckpt), dtype=dtype, update=args.update[0], heads="self",
                        frames=1, warmup=0, hw=list(_parse_hw(args.size)), images=args.images, device=args.device,
                        threads=args.threads)
            rec = run_subprocess(spec)
            rec["checkpoint_gb"] = ckpt.stat().st_size / GB
            _print_run(rec)
            runs.append(rec)
    finally:
        if made is not None and not args.keep_checkpoint:
            ckpt.unlink(missing_ok=True)
            made.rmdir()
    return {"runs": runs}


def _drop_page_cache_hint(path: Path) -> None:
    """Ask the kernel to drop the file's cached pages (cold-ish start); harmless when refused."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass


def write_checkpoint(network: str, path: str) -> dict[str, Any]:
    """Save a formula-weight network in the released ``.pth`` layout (omegaconf args)."""
    import torch
    from omegaconf import OmegaConf

    from .formula import formula_state_dict
    from .weights import build_model

    cfg, salt = model_config(network)
    schema = [(k, tuple(v.shape)) for k, v in build_model(cfg, "meta").state_dict().items()]
    sd = formula_state_dict(schema, salt)
    torch.save({"args": OmegaConf.create({"model": cfg.to_constructor()}), "model": sd, "epoch": 0}, path)
    return {"path": path}


def _print_run(r: dict[str, Any]) -> None:
    name = f"[{r.get('suite')}] {r.get('network', Path(str(r.get('checkpoint', ''))).name)} " \
           f"{r.get('dtype')} {r.get('update')} heads={r.get('heads')} frames={r.get('frames')}"
    if "error" in r:
        print(f"{name}: ERROR {r['error']}")
        return
    parts = [name + ":"]
    if "s_per_frame_median" in r:
        parts.append(f"{r['s_per_frame_median']:.3f} s/frame (best {r['s_per_frame_min']:.3f}), "
                     f"{r['fps_median']:.3f} fps")
    if "cpu_s_per_frame_median" in r:
        parts.append(f"{r['cpu_s_per_frame_median']:.3f} CPU-s/frame")
    parts.append(f"peak RSS run {r['peak_rss_run_gb']:.2f} GiB, process {r['peak_rss_process_gb']:.2f} GiB")
    if "time_to_first_frame_s" in r:
        parts.append(f"load {r['load_s']:.1f} s, first frame at {r['time_to_first_frame_s']:.1f} s")
    if "cuda_peak_gb" in r:
        parts.append(f"CUDA peak {r['cuda_peak_gb']:.2f} GiB")
    print(", ".join(parts), flush=True)


def plot_sweep(result: dict[str, Any], path: Path) -> Path | None:
    """Peak/current host memory and time per frame against frames (longest run per dtype),
    with each run's peak marked at its length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in result.get("runs", []) if "error" not in r and r.get("rss_trace_gb")]
    if not runs:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    colors = {"fp32": "tab:blue", "bf16": "tab:orange", "fp16": "tab:green"}
    for dtype in sorted({r["dtype"] for r in runs}):
        rs = sorted((r for r in runs if r["dtype"] == dtype), key=lambda r: r["frames"])
        c = colors.get(dtype, None)
        longest = rs[-1]
        x = np.arange(1, len(longest["rss_trace_gb"]) + 1)
        ax1.plot(x, np.asarray(longest["rss_trace_gb"]) * 1024, color=c, lw=0.4, alpha=0.5,
                 label=f"{dtype}: RSS after each frame")
        ax1.plot(x, np.asarray(longest["peak_rss_trace_gb"]) * 1024, color=c, lw=1.5,
                 label=f"{dtype}: peak so far")
        ax1.scatter([r["frames"] for r in rs], [r["peak_rss_run_gb"] * 1024 for r in rs], color=c, marker="o",
                    zorder=3, label=f"{dtype}: run peak at its length")
        ft = np.asarray(longest["frame_times_s"]) * 1e3
        k = max(1, len(ft) // 50)
        smooth = np.convolve(ft, np.ones(k) / k, mode="valid") if len(ft) > k else ft
        ax2.plot(np.arange(1, len(ft) + 1), ft, color=c, lw=0.3, alpha=0.4)
        ax2.plot(np.arange(k, k + len(smooth)), smooth, color=c, lw=1.5, label=f"{dtype} (mean of {k})")
    ax1.set_xscale("log")
    ax1.set_ylim(bottom=0)
    ax1.set_xlabel("frames")
    ax1.set_ylabel("host memory (MiB)")
    ax1.set_title("memory against sequence length")
    ax1.legend(fontsize=7, loc="lower right")
    ax2.set_xscale("log")
    ax2.set_ylim(bottom=0)
    ax2.set_xlabel("frame")
    ax2.set_ylabel("time per frame (ms)")
    ax2.set_title("time per frame")
    ax2.legend(fontsize=7, loc="lower right")
    r0 = runs[0]
    fig.suptitle(f"ttt3r bench sweep: {r0.get('network')} network, {r0['hw'][1]}x{r0['hw'][0]}, "
                 f"update {r0.get('update')}, {r0.get('torch_threads')} thread(s)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ttt3r bench", description="Speed and memory benchmark on formula-weight "
                                "networks (no download). Each configuration runs in a fresh subprocess.")
    p.add_argument("--suite", choices=("speed", "sweep", "startup", "all"), default="speed")
    p.add_argument("--network", default=FULL, help=f"network for speed/startup (default {FULL})")
    p.add_argument("--sweep-network", default="tiny224", help="small network for the length sweep (default tiny224)")
    p.add_argument("--dtype", nargs="+", default=["fp32", "bf16"], choices=("fp32", "bf16", "fp16"))
    p.add_argument("--update", nargs="+", default=["ttt3r"], choices=("ttt3r", "cut3r"))
    p.add_argument("--heads", nargs="+", default=["self"], choices=("self", "all"),
                   help="self: depth+pose only (default); all: also the world and RGB DPT heads")
    p.add_argument("--frames", type=int, default=5, help="timed frames per speed run")
    p.add_argument("--warmup", type=int, default=1, help="untimed frames before timing")
    p.add_argument("--lengths", type=int, nargs="+", default=[10, 100, 1000], help="sweep lengths")
    p.add_argument("--size", default="512x288", help="input WxH (default 512x288)")
    p.add_argument("--images", choices=("smooth", "random"), default="smooth")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--compile", action="store_true", help="torch.compile the blocks and DPT (mainly for CUDA)")
    p.add_argument("--step-graph", choices=("none", "compile", "cudagraph"), default="none",
                   help="how frames after the first run: eager (none), torch.compile'd step, CUDA graph (CUDA only)")
    p.add_argument("--keep-outputs", type=int, default=3, help="frames whose outputs are kept for the dtype comparison")
    p.add_argument("--checkpoint", default=None, help="startup: existing checkpoint instead of writing one")
    p.add_argument("--keep-checkpoint", action="store_true", help="startup: keep the written checkpoint")
    p.add_argument("--out", default=None, help="result JSON path (default benchmarks/results/<suite>_<device>.json)")
    p.add_argument("--plot", default=None, help="sweep plot path (default next to the JSON)")
    p.add_argument("--plot-only", default=None, metavar="JSON", help="redraw the plot of a sweep result and exit")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker is not None:
        spec = json.loads(args.worker)
        rec = write_checkpoint(spec["network"], spec["path"]) if spec.get("suite") == "write_checkpoint" \
            else run_config(spec)
        print("BENCH_RESULT " + json.dumps(rec), flush=True)
        return 0
    if args.plot_only:
        src = Path(args.plot_only)
        png = plot_sweep(json.loads(src.read_text()), Path(args.plot) if args.plot else src.with_suffix(".png"))
        print(f"wrote {png}")
        return 0 if png else 1
    suites = ("speed", "sweep", "startup") if args.suite == "all" else (args.suite,)
    status = 0
    for suite in suites:
        out = Path(args.out) if args.out and len(suites) == 1 else DEFAULT_OUT / f"{suite}_{args.device}.json"
        print(f"== {suite} ==", flush=True)
        t = time.perf_counter()
        result = {"suite": suite, "machine": machine_info(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  **{"speed": suite_speed, "sweep": suite_sweep, "startup": suite_startup}[suite](args, out.parent)}
        result["wall_s"] = time.perf_counter() - t
        try:
            result["machine"]["load_avg_end"] = os.getloadavg()
        except OSError:
            pass
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {out}")
        if suite == "sweep":
            png = plot_sweep(result, Path(args.plot) if args.plot else out.with_suffix(".png"))
            if png:
                print(f"wrote {png}")
        if any("error" in r for r in result.get("runs", [])):
            status = 1
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
