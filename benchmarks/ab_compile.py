"""A/B in one process: eager vs torch.compile of the blocks and self-view DPT. Usage: python benchmarks/ab_compile.py fp32|bf16 N_FRAMES"""
import torch, time, sys, numpy as np
torch.set_num_threads(1)
from ttt3r.bench import build_formula_model, model_config, synthetic_frames
import ttt3r
dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[sys.argv[1]]
nf = int(sys.argv[2])
cfg, salt = model_config("cut3r_512_dpt_4_64")
m = build_formula_model(cfg, dt)
mods = [*m.enc_blocks, *m.dec_blocks, *m.dec_blocks_state, m.downstream_head.dpt_self]
comp = [torch.compile(x.forward, dynamic=False) for x in mods]
def set_mode(c):
    for x, f in zip(mods, comp):
        if c: x.forward = f
        elif "forward" in x.__dict__: del x.forward
frames = list(synthetic_frames(nf + 2))
set_mode(True); s = ttt3r.Session(m); t=time.perf_counter(); s.step(frames[0]); s.step(frames[1]); print("compile warm-up", time.perf_counter()-t, flush=True)
res = {"eager": [], "compiled": []}
for rep in range(2):
    for name in res:
        set_mode(name == "compiled")
        s = ttt3r.Session(m); s.step(frames[0]); s.step(frames[1])
        for f in frames[2:]:
            t = time.perf_counter(); s.step(f); res[name].append(time.perf_counter() - t)
        print(name, ["%.2f" % x for x in res[name]], flush=True)
for k, v in res.items(): print(f"{sys.argv[1]} {k}: median {np.median(v):.3f} s/frame, min {min(v):.3f}")
