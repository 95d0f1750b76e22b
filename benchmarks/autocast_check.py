"""bf16 autocast on the fp32 network: speed, peak RSS, difference to a kept fp32 run. Usage: python benchmarks/autocast_check.py REF_FP32_OUTPUTS.npz"""
import torch, time, resource, numpy as np
torch.set_num_threads(1)
from ttt3r.bench import build_formula_model, model_config, synthetic_frames
import ttt3r
cfg, salt = model_config("cut3r_512_dpt_4_64")
m = build_formula_model(cfg, torch.float32)
s = ttt3r.Session(m)
ts = []
with torch.autocast("cpu", dtype=torch.bfloat16):
    for f in synthetic_frames(4):
        t = time.perf_counter(); s.step(f); ts.append(time.perf_counter() - t)
print("autocast bf16 (fp32 weights), 1 thread:", ["%.2f" % x for x in ts], "peak RSS GiB",
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
import sys
from ttt3r.bench import compare_outputs
s = ttt3r.Session(m); ds, ps = [], []
with torch.autocast("cpu", dtype=torch.bfloat16):
    for f in synthetic_frames(3):
        r = s.step(f); ds.append(r.depth.astype(np.float32)); ps.append(r.pose)
np.savez("/tmp/bx/autocast.npz", depth=np.stack(ds), pose=np.stack(ps))
print(compare_outputs(sys.argv[1], "/tmp/bx/autocast.npz"))
