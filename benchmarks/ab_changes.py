"""A/B in one process: RoPE and DPT before/after the speed changes (monkeypatched). Usage: python benchmarks/ab_changes.py fp32|bf16 N_FRAMES"""
import torch, time, sys, numpy as np
torch.set_num_threads(1)
from ttt3r.bench import build_formula_model, model_config, synthetic_frames
from ttt3r.model.layers import RoPE2D
from ttt3r.model import heads as H
import ttt3r
dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[sys.argv[1]]
nf = int(sys.argv[2])
cfg, salt = model_config("cut3r_512_dpt_4_64")
m = build_formula_model(cfg, dt)
new_rope, new_dpt = RoPE2D.__call__, H.DPT.forward
def old_rope(self, t, pos): return self._rotate_halves(t, pos)
def old_dpt(self, tokens, hw):
    gh, gw = hw[0] // self.patch_size, hw[1] // self.patch_size
    s = self.scratch; feats = []
    for t, post, rn in zip(tokens, self.act_postprocess, s.layer_rn):
        x = t.transpose(1, 2).reshape(t.shape[0], t.shape[2], gh, gw)
        feats.append(rn(post(x)))
    p4 = s.refinenet4(feats[3])[:, :, : feats[2].shape[2], : feats[2].shape[3]]
    p3 = s.refinenet3(p4, feats[2]); p2 = s.refinenet2(p3, feats[1]); p1 = s.refinenet1(p2, feats[0])
    return self.head(p1)
variants = {"before": (old_rope, old_dpt), "rope_cache": (new_rope, old_dpt), "rope_cache+channels_last": (new_rope, new_dpt)}
frames = list(synthetic_frames(nf + 1))
res = {k: [] for k in variants}
for rep in range(2):
    for name, (r, d) in variants.items():
        RoPE2D.__call__, H.DPT.forward = r, d
        s = ttt3r.Session(m)
        s.step(frames[0])
        for f in frames[1:]:
            t = time.perf_counter(); s.step(f); res[name].append(time.perf_counter() - t)
        print(name, ["%.2f" % x for x in res[name]], flush=True)
for k, v in res.items(): print(f"{sys.argv[1]} {k}: median {np.median(v):.3f} s/frame, min {min(v):.3f}")
