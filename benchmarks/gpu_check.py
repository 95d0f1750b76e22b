"""The GPU check in one command: parity on CUDA, precision, speed, flat memory.

On a machine with CUDA, torch and the common scientific packages, and no network::

    python benchmarks/gpu_check.py --out DIR            # at most ~8 minutes
    python benchmarks/gpu_check.py --cpu-quick --out DIR  # every code path on CPU, tiny network

ttt3r is taken from this working tree (its ``src`` goes first on the path, here and
in every child process); nothing is installed, except local wheels named with ``--wheels``
(``pip install --no-index`` into a temporary folder). Writes ``DIR/gpu_check.json``
(rewritten after every part, so a killed run keeps what it finished) and
``DIR/gpu_check.log``. The parts share the time budget (``--budget-s``, 470 s by
default), each with its share plus what the parts before it left; what a share does
not allow is recorded as skipped with the reason:

a. ``parity``: ``pytest tests/model/test_parity.py tests/model/test_devices.py
   tests/model/test_step_graph.py --device cuda --runslow`` (fp32, TF32 off: the
   original's fixtures tiny224 and tiny512, CUDA against CPU, CUDA graph against eager).
b. ``precision``: bf16 and fp16 against fp32 on the full-size formula network
   (``cut3r_512_dpt_4_64``, 512x288): median relative depth difference, camera
   translation and rotation (degrees) differences.
c. ``speed``: ``ttt3r bench`` worker runs (one fresh process each) for fp32 and bf16,
   each eager, with a torch.compile'd step and with a CUDA-graph step
   (``Session(step_graph=...)``): frames/s from CUDA events after warm-up, peak GPU
   memory (``torch.cuda.max_memory_allocated``).
d. ``flat_memory``: 1,000 frames with the bundled small network; GPU memory
   (allocated, and the peak so far) and host RSS at frame 100 against frame 1,000.

Goals (reported in ``goals``): bf16 >= 100 frames/s at 512x288 and <= 3 GB of GPU
memory; the fp32 parity tests pass on CUDA.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
GB = 1e9
PART_NAMES = ("parity", "precision", "speed", "flat_memory")
# each part's share of the total budget (seconds of the default total, on CUDA and in
# --cpu-quick mode); precision's share includes building the formula weights once
SHARES = {"cuda": {"parity": 120, "precision": 90, "speed": 210, "flat_memory": 50},
          "cpu": {"parity": 80, "precision": 50, "speed": 40, "flat_memory": 30}}
# the settings of each mode: network, frames, warm-up, flat-memory checkpoints
SETTINGS = {
    "cuda": dict(network="cut3r_512_dpt_4_64", hw=(288, 512), precision_frames=5, speed_frames=50, warmup=5,
                 flat_frames=(100, 1000), parity_args=["--runslow", "--deselect",
                 "tests/model/test_step_graph.py::test_compiled_step_matches_eager"],
                 parity_tests=["tests/model/test_parity.py", "tests/model/test_devices.py",
                               "tests/model/test_step_graph.py"]),
    "cpu": dict(network="tiny224", hw=(128, 224), precision_frames=2, speed_frames=1, warmup=2,
                flat_frames=(10, 30), parity_args=[],
                parity_tests=["tests/model/test_parity.py::test_parity[cut3r-tiny224]"]),
}
# what each part imports (module -> why); ttt3r's own needs are checked by importing it
NEEDS = {"parity": {"pytest": "runs the tests"}, "precision": {}, "speed": {}, "flat_memory": {}}
# modules without which one test file is left out of the parity part (module -> (file, why))
TEST_NEEDS = {"omegaconf": ("tests/model/test_parity.py", "tests/conftest.py writes released-layout checkpoints "
                            "with it; carry its wheel and pass --wheels DIR")}
CORE = ("torch", "numpy", "PIL", "safetensors", "scipy")
KNOWN_FIXTURES = ("known_tiny224/known_tiny512 (ray-map input) are not run: they are not in tests/data/parity "
                  "(12 MB, over the 2 MB allowance) and test_parity.py has no known-camera cases")


class Log:
    """Lines to stdout and to ``path`` (appended and flushed line by line)."""

    def __init__(self, path: Path):
        self.f = open(path, "a", encoding="utf-8")

    def __call__(self, *parts: Any) -> None:
        line = " ".join(str(p) for p in parts)
        print(line, flush=True)
        self.f.write(line + "\n")
        self.f.flush()


class Budget:
    """The total deadline, split into the parts' shares in their order: part k must end by
    ``t0 + total * (share_1 + ... + share_k) / sum(shares)``, so what a part leaves unused
    goes to the parts after it."""

    def __init__(self, total_s: float, shares: dict[str, float]):
        self.t0 = time.monotonic()
        self.end = self.t0 + total_s
        done, whole = 0.0, sum(shares.values()) or 1.0
        self.deadlines: dict[str, float] = {}
        for name, share in shares.items():
            done += share
            self.deadlines[name] = self.t0 + total_s * done / whole

    def left(self) -> float:
        return self.end - time.monotonic()


# --------------------------------------------------------------------------------------
# environment


def use_working_tree(wheels: Path | None, log: Log) -> dict[str, Any]:
    """Make ttt3r (this tree's ``src``) and any local wheels importable, here and in children."""
    info: dict[str, Any] = {}
    paths = []
    if wheels is not None:
        target = Path(tempfile.mkdtemp(prefix="gpu_check_site_"))
        files = sorted(str(p) for p in wheels.glob("*.whl"))
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
               "--target", str(target), *files]
        p = subprocess.run(cmd, capture_output=True, text=True)
        info["wheels"] = {"files": [Path(f).name for f in files], "returncode": p.returncode, "target": str(target)}
        if p.returncode:
            log("wheels: pip failed:", (p.stderr.strip().splitlines() or ["?"])[-1])
        paths.append(str(target))
    paths += [str(ROOT / "src"), str(ROOT)]  # this tree's ttt3r first; tests/ for the tests
    for p in reversed(paths):
        sys.path.insert(0, p)
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [os.environ.get("PYTHONPATH")])])
    return info


def check_deps() -> dict[str, Any]:
    """Versions of the modules the check uses (None: missing) and whether ttt3r imports."""
    found: dict[str, str | None] = {}
    for name in (*CORE, *{m for need in NEEDS.values() for m in need}, *TEST_NEEDS):
        try:
            mod = importlib.import_module(name)
            found[name] = str(getattr(mod, "__version__", "?"))
        except Exception:  # noqa: BLE001 - any import failure means missing here
            found[name] = None
    out: dict[str, Any] = {"modules": found, "missing": sorted(k for k, v in found.items() if v is None)}
    try:
        importlib.import_module("ttt3r.session")
        import ttt3r

        out["ttt3r"] = {"version": ttt3r.__version__, "path": str(Path(ttt3r.__file__).parent)}
    except Exception as e:  # noqa: BLE001
        out["ttt3r_error"] = f"{type(e).__name__}: {e}"
    return out


def missing_for(part: str, deps: dict[str, Any]) -> str | None:
    """Why ``part`` cannot run with these modules, or None."""
    if "ttt3r_error" in deps:
        return f"ttt3r does not import: {deps['ttt3r_error']}"
    gone = [m for m in CORE if m in deps["missing"]]
    gone += [f"{m} ({why})" for m, why in NEEDS[part].items() if m in deps["missing"]]
    if not gone:
        return None
    return "missing modules: " + ", ".join(gone) + "; carry them as wheels and pass --wheels DIR"


# --------------------------------------------------------------------------------------
# parts


def part_parity(ctx: dict[str, Any], deadline: float) -> dict[str, Any]:
    """pytest on the parity, device and step-graph tests on ``ctx['device']``; a summary."""
    s = ctx["settings"]
    junit = ctx["tmp"] / "parity.xml"
    not_run = {file: f"{mod} missing: {why}" for mod, (file, why) in TEST_NEEDS.items()
               if mod in ctx["deps"]["missing"]}
    tests = [t for t in s["parity_tests"] if t.split("::")[0] not in not_run]
    cmd = [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-rfEs", "--device", ctx["device"],
           f"--junitxml={junit}", *s["parity_args"], *tests]
    for file, why in not_run.items():
        ctx["log"](f"  not run: {file}: {why}")
    ctx["log"]("$", " ".join(cmd))
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired as e:
        text = e.stdout or b""
        text = text.decode(errors="replace") if isinstance(text, bytes) else text
        ctx["log"](text)
        return {"status": "skipped", "reason": "time budget ran out while the tests ran (results so far kept)",
                "command": cmd[1:], "not_run": not_run, **verbose_summary(text)}
    ctx["log"](p.stdout + p.stderr)
    rec: dict[str, Any] = {"command": cmd[1:], "returncode": p.returncode, "known_fixtures": KNOWN_FIXTURES,
                           "not_run": not_run, **junit_summary(junit)}
    passed = p.returncode == 0 and rec.get("passed", 0) > 0
    rec["status"] = "failed" if not passed else "partial" if not_run else "ok"
    return rec


def verbose_summary(text: str) -> dict[str, Any]:
    """Counts and the failed/skipped ids from ``pytest -v`` lines (a run stopped before its report)."""
    out: dict[str, Any] = {"passed": 0, "failed": [], "skipped": []}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and "::" in parts[0]:
            if parts[1] == "PASSED":
                out["passed"] += 1
            elif parts[1] in ("FAILED", "ERROR"):
                out["failed"].append({"test": parts[0], "message": []})
            elif parts[1] == "SKIPPED":
                out["skipped"].append({"test": parts[0], "reason": ""})
    return out


def junit_summary(path: Path) -> dict[str, Any]:
    """Counts and the failed/skipped test ids (with their first message line) of a JUnit XML."""
    if not path.is_file():
        return {"junit": "missing"}
    out: dict[str, Any] = {"passed": 0, "failed": [], "skipped": []}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        skip = case.find("skipped")
        if bad is not None:
            out["failed"].append({"test": name, "message": (bad.get("message") or "").splitlines()[:1]})
        elif skip is not None:
            out["skipped"].append({"test": name, "reason": skip.get("message", "")})
        else:
            out["passed"] += 1
    return out


def build_weights(ctx: dict[str, Any]) -> dict[str, Any]:
    """The formula network of the mode's shape, saved once as a converted folder (fp32;
    ~15 s and 3.2 GB for the full-size network), which each worker then loads."""
    from ttt3r import bench
    from ttt3r.weights import save_converted

    import torch

    t = time.perf_counter()
    cfg, salt = bench.model_config(ctx["settings"]["network"])
    model = bench.build_formula_model(cfg, torch.float32, "cpu", salt)
    folder = save_converted(model, cfg, ctx["tmp"] / "weights")
    del model
    ctx["weights"] = str(folder)
    return {"status": "ok", "network": ctx["settings"]["network"], "seconds": time.perf_counter() - t}


def worker_runner(ctx: dict[str, Any]) -> Callable[[dict[str, Any], float], dict[str, Any]]:
    """How one bench configuration runs: a fresh ``ttt3r bench`` worker process on CUDA
    (so peaks do not mix), in this process in --cpu-quick mode (seconds, not minutes)."""
    from ttt3r import bench

    def run(spec: dict[str, Any], deadline: float) -> dict[str, Any]:
        left = deadline - time.monotonic()
        if left < 5:
            return {**spec, "status": "skipped", "reason": f"time budget ran out ({left:.0f} s left)"}
        if ctx["quick"]:
            try:
                rec = bench.run_config(spec)
            except Exception as e:  # noqa: BLE001 - recorded, the check goes on
                rec = {**spec, "error": f"{type(e).__name__}: {e}"}
        else:
            rec = bench.run_subprocess(spec, timeout=left)
        rec["status"] = "failed" if "error" in rec else "ok"
        if str(rec.get("error", "")).startswith("timed out"):
            rec.update(status="skipped", reason=f"time budget ran out while it ran ({left:.0f} s)")
        for k in ("rss_trace_gb", "peak_rss_trace_gb", "frame_cpu_s"):
            rec.pop(k, None)
        ctx["log"](summary_line(rec))
        return rec

    return run


def summary_line(r: dict[str, Any]) -> str:
    name = f"  {r.get('dtype')} step_graph={r.get('step_graph', 'none')}:"
    if "error" in r or r.get("status") == "skipped":
        return f"{name} {r.get('error') or r.get('reason')}"
    peak = f", GPU peak {r['cuda_peak_gb']:.2f} GiB" if "cuda_peak_gb" in r else ""
    return f"{name} {r.get('fps_median', float('nan')):.1f} frames/s (best {r.get('fps_best', float('nan')):.1f}){peak}"


def _spec(ctx: dict[str, Any], **kw) -> dict[str, Any]:
    s = ctx["settings"]
    return dict(suite="gpu_check", checkpoint=ctx["weights"], device=ctx["device"], update="ttt3r", heads="self",
                hw=list(s["hw"]), images="smooth", **kw)


def part_precision(ctx: dict[str, Any], deadline: float) -> dict[str, Any]:
    from ttt3r import bench

    n = ctx["settings"]["precision_frames"]
    run = worker_runner(ctx)
    runs = {}
    for dtype in ("fp32", "bf16", "fp16"):
        runs[dtype] = run(_spec(ctx, dtype=dtype, frames=n, warmup=0, keep_outputs=n,
                                outputs_path=str(ctx["tmp"] / f"out_{dtype}.npz")), deadline)
    comparisons: dict[str, Any] = {}
    for dtype in ("bf16", "fp16"):
        if runs["fp32"]["status"] == "ok" and runs[dtype]["status"] == "ok":
            comparisons[dtype] = bench.compare_outputs(runs["fp32"]["outputs_path"], runs[dtype]["outputs_path"])
            c = comparisons[dtype]
            ctx["log"](f"  {dtype} vs fp32: median rel depth diff {c['depth_rel_diff_median']:.2e}, translation "
                       f"{c['pose_trans_diff_max']:.2e}, rotation {c['pose_rot_diff_deg_max']:.3f} deg")
    for r in runs.values():
        r.pop("outputs_path", None)
    return {"status": overall(runs.values()), "network": ctx["settings"]["network"], "frames": n,
            "comparisons": comparisons, "runs": list(runs.values())}


def overall(runs) -> str:
    """``failed`` if any run failed, ``partial`` if any was skipped (budget), else ``ok``
    (``n/a``: a run that does not apply here, e.g. CUDA graphs on CPU)."""
    states = {r["status"] for r in runs}
    return "failed" if "failed" in states else "partial" if "skipped" in states else "ok"


def part_speed(ctx: dict[str, Any], deadline: float) -> dict[str, Any]:
    s = ctx["settings"]
    run = worker_runner(ctx)
    order = [("bf16", "none"), ("bf16", "cudagraph"), ("fp32", "none"), ("fp32", "cudagraph"),
             ("bf16", "compile"), ("fp32", "compile")]
    runs = []
    for dtype, mode in order:
        spec = _spec(ctx, dtype=dtype, step_graph=mode, frames=s["speed_frames"], warmup=s["warmup"])
        if mode == "cudagraph" and ctx["device"] != "cuda":
            rec = {**spec, "status": "n/a", "reason": "CUDA graphs need CUDA"}
        elif mode == "compile" and ctx["quick"]:
            rec = {**spec, "status": "n/a", "reason": "--cpu-quick: torch.compile takes minutes on CPU "
                   "(tests/model/test_step_graph.py::test_compiled_step_matches_eager --runslow covers it)"}
        else:
            rec = run(spec, deadline)
        runs.append(rec)
    return {"status": overall(runs), "network": s["network"], "frames": s["speed_frames"],
            "warmup": s["warmup"], "runs": runs}


def part_flat_memory(ctx: dict[str, Any], deadline: float) -> dict[str, Any]:
    """The bundled small network over ``flat_frames[-1]`` frames, memory at each checkpoint."""
    import torch

    import ttt3r
    from ttt3r.bench import rss_bytes, synthetic_frames
    from ttt3r.pipeline import BUNDLED_MODEL

    marks = ctx["settings"]["flat_frames"]
    dev = torch.device(ctx["device"])
    model = ttt3r.load_model(BUNDLED_MODEL, device=dev)
    sess = ttt3r.Session(model, update="ttt3r")
    at: dict[str, Any] = {}
    t = time.perf_counter()
    done = 0
    with torch.inference_mode():
        for i, img in enumerate(synthetic_frames(marks[-1], ctx["settings"]["hw"]), start=1):
            if time.monotonic() > deadline:
                break
            sess.step(img)
            done = i
            if i in marks:
                m = {"rss_gb": rss_bytes() / GB}
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                    m["cuda_allocated_gb"] = torch.cuda.memory_allocated(dev) / GB
                    m["cuda_peak_gb"] = torch.cuda.max_memory_allocated(dev) / GB
                at[str(i)] = m
    rec: dict[str, Any] = {"network": "synth_small (bundled)", "frames_done": done, "at_frame": at,
                           "seconds": time.perf_counter() - t}
    if done < marks[-1]:
        return {**rec, "status": "skipped", "reason": f"time budget ran out after {done} frames"}
    a, b = at[str(marks[0])], at[str(marks[-1])]
    rec["growth"] = {k: b[k] / a[k] - 1.0 for k in a if a[k] > 0}
    key = "cuda_allocated_gb" if dev.type == "cuda" else "rss_gb"
    rec["flat"] = rec["growth"][key] <= (0.01 if dev.type == "cuda" else 0.05)
    rec["status"] = "ok" if rec["flat"] else "failed"
    return rec


PARTS: dict[str, Callable[[dict[str, Any], float], dict[str, Any]]] = {
    "parity": part_parity, "precision": part_precision, "speed": part_speed, "flat_memory": part_flat_memory}


def goals(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, from what ran (None: not measured)."""
    speed = [r for r in result["parts"].get("speed", {}).get("runs", []) if r.get("status") == "ok"]
    bf16 = [r for r in speed if r["dtype"] == "bf16"]
    best = max(bf16, key=lambda r: r.get("fps_median", 0.0), default=None)
    parity = result["parts"].get("parity", {}).get("status")
    out: dict[str, Any] = {"parity_fp32_passes": {"ok": True, "failed": False}.get(parity)}
    if parity not in ("ok", "failed"):
        out["parity"] = f"not (fully) run: {parity or 'not asked for'}"
    if best is not None and "cuda_peak_gb" in best:
        peak_bytes = best["cuda_peak_gb"] * 1024**3
        out.update(bf16_best_fps=best["fps_median"], bf16_best_step_graph=best.get("step_graph", "none"),
                   bf16_fps_ge_100=best["fps_median"] >= 100.0, bf16_cuda_peak_bytes=peak_bytes,
                   bf16_cuda_peak_le_3GB=peak_bytes <= 3e9)
    else:
        out["speed"] = "not measured on CUDA"
    return out


# --------------------------------------------------------------------------------------
# driver


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="GPU check: parity on CUDA, precision, speed, flat memory (see the "
                                "module docstring). Writes gpu_check.json and gpu_check.log into --out.")
    p.add_argument("--out", required=True, help="folder for gpu_check.json and gpu_check.log")
    p.add_argument("--cpu-quick", action="store_true", help="run every part on CPU with the tiny224 network")
    p.add_argument("--budget-s", type=float, default=None,
                   help="total time budget, shared by the parts (default 470 s; --cpu-quick 200 s)")
    p.add_argument("--parts", nargs="+", choices=PART_NAMES, default=list(PART_NAMES))
    p.add_argument("--wheels", default=None, help="folder of local wheels to install first (no index, no network)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    mode = "cpu" if args.cpu_quick else "cuda"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.log").unlink(missing_ok=True)
    log = Log(out / "gpu_check.log")
    shares = {name: SHARES[mode][name] for name in PART_NAMES if name in args.parts}
    budget = Budget(args.budget_s if args.budget_s is not None else sum(shares.values()), shares)
    result: dict[str, Any] = {"mode": "cpu-quick" if args.cpu_quick else "cuda",
                              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "budget_s": budget.end - budget.t0, "parts": {}}
    result["environment"] = use_working_tree(Path(args.wheels) if args.wheels else None, log)
    deps = check_deps()
    result["deps"] = deps
    log("deps:", "all present" if not deps["missing"] else f"missing {', '.join(deps['missing'])}",
        "| ttt3r:", deps.get("ttt3r", deps.get("ttt3r_error")))
    tmp = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    ctx: dict[str, Any] = {"log": log, "tmp": tmp, "quick": args.cpu_quick, "device": mode,
                           "settings": SETTINGS[mode], "deps": deps}
    save = lambda: write_json(out / "gpu_check.json", result)  # noqa: E731
    try:
        if "ttt3r_error" not in deps and "torch" not in deps["missing"]:
            from ttt3r.bench import machine_info

            result["machine"] = machine_info()
            import torch

            if mode == "cuda" and not torch.cuda.is_available():
                result["error"] = "CUDA is not available: run on a GPU machine, or use --cpu-quick"
                log(result["error"])
                return 2
        save()
        for name in args.parts:
            result["parts"][name] = run_part(name, ctx, budget, deps, log)
            save()
        result["goals"] = goals(result)
        log("goals:", json.dumps(result["goals"]))
    finally:
        if "weights_record" in ctx:
            result["weights"] = ctx["weights_record"]
        result["wall_s"] = time.monotonic() - budget.t0
        save()
        shutil.rmtree(tmp, ignore_errors=True)
        if "wheels" in result["environment"]:
            shutil.rmtree(result["environment"]["wheels"]["target"], ignore_errors=True)
        log(f"wrote {out / 'gpu_check.json'} in {result['wall_s']:.0f} s")
        log.f.close()
    bad = [n for n, r in result["parts"].items() if r.get("status") == "failed"]
    return 1 if bad else 0


def run_part(name: str, ctx: dict[str, Any], budget: Budget, deps: dict[str, Any], log: Log) -> dict[str, Any]:
    """One part under its budget; skipped with the reason when it cannot run."""
    deadline = budget.deadlines[name]
    log(f"== {name} ({deadline - time.monotonic():.0f} s for it, {budget.left():.0f} s left in all) ==")
    why = missing_for(name, deps)
    if why is None and deadline - time.monotonic() < 10:
        why = f"time budget ran out ({deadline - time.monotonic():.0f} s of its share left)"
    if why is None and name in ("precision", "speed"):
        why = ctx.get("weights_error")
        if why is None and "weights" not in ctx:
            try:
                ctx["weights_record"] = build_weights(ctx)
                log(f"  weights: {ctx['weights_record']['network']} in {ctx['weights_record']['seconds']:.0f} s")
            except Exception as e:  # noqa: BLE001
                why = ctx["weights_error"] = f"could not build the formula weights: {type(e).__name__}: {e}"
    if why is not None:
        log("  skipped:", why)
        return {"status": "skipped", "reason": why}
    t = time.perf_counter()
    try:
        rec = PARTS[name](ctx, deadline)
    except Exception as e:  # noqa: BLE001 - one part's failure must not lose the others
        import traceback

        log(traceback.format_exc())
        rec = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
    rec["seconds"] = time.perf_counter() - t
    log(f"  {name}: {rec['status']} in {rec['seconds']:.0f} s")
    return rec


def write_json(path: Path, data: dict[str, Any]) -> None:
    try:
        from ttt3r.io.atomic import atomic_write_text
    except ImportError:  # ttt3r itself missing: still leave the record
        path.write_text(json.dumps(data, indent=1, default=str) + "\n")
        return
    atomic_write_text(path, json.dumps(data, indent=1, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main())
