"""The training loop: seeded initialisation, AdamW + warmup/cosine, atomic checkpoints, logs.

Run folder (``out``)::

    out/config.json        the full TrainConfig of the run
    out/checkpoint.pt      last checkpoint (model, optimiser, step, RNG), replaced atomically
    out/model/             the last checkpoint's weights in ttt3r's format
                           (model.safetensors + config.json; ``ttt3r.load_model(out/model)``)
    out/log.csv            one row every ``log.every`` steps: step, lr, the losses averaged over
                           those steps, it/s, elapsed s
    out/loss.png           loss curves, rewritten every ``log.plot_every`` steps

Determinism: batch ``k`` is a pure function of ``(seed, k)`` and the checkpoint
holds the optimiser and RNG states, so a resumed run reproduces the losses of
an uninterrupted one (same device and thread count).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from ..device import resolve_device
from ..errors import TTT3RError
from ..io.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from .config import TrainConfig
from .data import Batch, ClipSampler
from .losses import ClipPrediction, cut3r_loss, raw_quat_norm

CSV_FIELDS = ["step", "lr", "total", "conf_self", "conf_world", "pose", "rgb", "reg_self", "reg_world",
              "quat_norm", "it_s", "elapsed_s"]


def init_weights(model: nn.Module) -> None:
    """CroCo-style initialisation: xavier-uniform linear layers, zero biases, unit norms,
    N(0, 0.02) learned tokens and pose memory. Uses the global torch RNG."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            if m.weight is not None:
                nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d) and m.kernel_size == (m.stride if isinstance(m.stride, tuple) else (m.stride,) * 2):
            w = m.weight.data  # patch embedding: xavier on the flattened kernel
            nn.init.xavier_uniform_(w.view(w.shape[0], -1))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    for name, p in model.named_parameters():
        if name in ("pose_token", "masked_img_token", "masked_ray_map_token") or name.endswith(
                ("pose_retriever.mem", "pose_retriever.masked_token")):
            nn.init.normal_(p, std=0.02)


def build_training_model(cfg: TrainConfig, device: torch.device) -> nn.Module:
    """A freshly initialised CUT3R network for ``cfg`` (seeded by ``cfg.seed``)."""
    from ..model.cut3r import CUT3R

    torch.manual_seed(cfg.seed)
    model = CUT3R(cfg.model_config())
    init_weights(model)
    return model.to(device)


def forward_clip(model: nn.Module, img: Tensor, rule: str = "cut3r", want_rgb: bool = True) -> ClipPrediction:
    """Stream a clip through the network. img (B, L, 3, H, W) in [-1, 1] -> stacked float32 outputs."""
    want = {"world", "rgb"} if want_rgb else {"world"}
    state = model.init_state(img.shape[0])
    outs = []
    for t in range(img.shape[1]):
        out, state = model.step(img[:, t], state, rule=rule, want=want)
        outs.append(out)

    def stack(name: str) -> Tensor | None:
        vals = [getattr(o, name) for o in outs]
        return None if vals[0] is None else torch.stack(vals, dim=1).float()  # float32 under autocast too

    return ClipPrediction(stack("pts3d_self"), stack("conf_self"), stack("pts3d_world"), stack("conf_world"),
                          stack("pose"), stack("rgb"), stack("pose_raw"))


@torch.no_grad()
def rescale_pose_quaternion(model: nn.Module, img: Tensor) -> float:
    """Divide the quaternion rows of the pose MLP's last layer by the mean raw quaternion
    norm over the clips ``img`` (B, L, 3, H, W), so that norm becomes 1.

    The network's outputs do not change (the quaternion is normalised after the MLP);
    only the gradient scale of the pose loss does (see :mod:`ttt3r.train.losses`).
    Returns the factor divided by.
    """
    was_training = model.training
    model.eval()
    norm = float(raw_quat_norm(forward_clip(model, img, want_rgb=False).pose_raw).mean())
    model.train(was_training)
    last = model.downstream_head.pose_head.mlp.fc2
    last.weight[3:7] /= norm
    last.bias[3:7] /= norm
    return norm


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Learning rate of (0-based) ``step``: linear warmup, then cosine to ``min_lr``."""
    o = cfg.optim
    if step < o.warmup:
        return o.lr * (step + 1) / o.warmup
    t = (step - o.warmup) / max(1, o.steps - o.warmup)
    return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1 + math.cos(math.pi * min(1.0, t)))


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "token" in name or name.endswith("mem") else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.optim.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=(0.9, 0.95))


def train_step(model: nn.Module, opt: torch.optim.Optimizer, batch: Batch, cfg: TrainConfig,
               lr: float, step: int = 0) -> dict[str, float]:
    """One optimisation step on ``batch`` (the ``step``-th); returns the loss parts (before the update).

    With ``precision = "bf16"`` the forward pass runs under bfloat16 autocast and the
    losses, gradients and AdamW update in float32 (bfloat16 has float32's range, so no
    loss scaling is needed).

    With ``loss.mask_ratio > 0`` the network sees the clips with most of every frame
    after the first hidden (:func:`ttt3r.train.masking.mask_later_frames`, masks drawn
    from ``(seed, step)``); the losses compare with the whole frames.
    """
    for g in opt.param_groups:
        g["lr"] = lr
    model.train()
    img = batch.img
    if cfg.loss.mask_ratio > 0:
        from .masking import mask_later_frames

        img = mask_later_frames(img, cfg.loss.mask_ratio, cfg.model.patch_size,
                                seed=cfg.seed * 1_000_003 + step)
    with torch.autocast(img.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
        pred = forward_clip(model, img, cfg.loss.rule, want_rgb=cfg.loss.rgb_weight > 0)
    loss, parts = cut3r_loss(pred, batch, cfg.loss.alpha, cfg.loss.pose_weight, cfg.loss.rgb_weight,
                             quat_norm_weight=cfg.loss.quat_norm_weight)
    if not torch.isfinite(loss):
        raise TTT3RError(f"loss is not finite ({float(loss)}); lower optim.lr or check the data")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.optim.grad_clip > 0:
        parts["grad_norm"] = float(nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip))
    opt.step()
    return parts


class Trainer:
    """Owns the model, optimiser, sampler and run folder of one training run.

    Args:
        cfg: the run's configuration.
        out: run folder (created).
        sampler: clip source; by default the training pool of ``cfg.data``
            (rendered first when missing).
        log: where progress lines go.
    """

    def __init__(self, cfg: TrainConfig, out: str | os.PathLike, sampler: ClipSampler | None = None,
                 log: Callable[[str], None] = print):
        self.cfg, self.out, self.log = cfg, Path(out), log
        torch.set_num_threads(cfg.threads)
        self.device = resolve_device(cfg.device)
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TTT3RError(f"{self.out}: cannot create the run folder ({e.strerror})") from None
        if sampler is None:
            from .data import prepare_pool

            prepare_pool(cfg.data, log=log, workers=cfg.threads)
            sampler = ClipSampler.from_pool(cfg.data, cfg.seed, workers=cfg.threads, log=log)
        self.sampler = sampler
        self.model = build_training_model(cfg, self.device)
        self.opt = make_optimizer(self.model, cfg)
        self.step = 0
        self.rows: list[dict[str, float]] = []
        self.elapsed = 0.0

    @property
    def ckpt_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    # -- checkpoints -------------------------------------------------------------
    def save(self) -> None:
        """Write the checkpoint and the exported weights atomically."""
        from ..weights import save_converted

        state = {
            "step": self.step,
            "elapsed": self.elapsed,
            "model": self.model.state_dict(),
            "optim": self.opt.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "config": self.cfg.to_dict(),
        }
        try:
            with atomic_path(self.ckpt_path) as tmp:
                torch.save(state, tmp)
        except OSError as e:
            raise TTT3RError(f"{self.ckpt_path}: cannot write checkpoint ({e.strerror})") from None
        save_converted(self.model, self.cfg.model_config(), self.out / "model")

    def resume(self) -> bool:
        """Load the last checkpoint if there is one; returns whether it did."""
        if not self.ckpt_path.exists():
            return False
        try:
            state = torch.load(self.ckpt_path, map_location=self.device, weights_only=True)
        except Exception as e:
            raise TTT3RError(f"{self.ckpt_path}: cannot read checkpoint ({type(e).__name__})") from None
        from .config import model_from_settings

        saved = state.get("config", {})
        if model_from_settings(saved.get("model", {}), str(self.ckpt_path)) != self.cfg.model:
            raise TTT3RError(f"{self.ckpt_path}: the checkpoint's model settings differ from the config")
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optim"])
        torch.set_rng_state(state["torch_rng"].cpu())
        self.step = int(state["step"])
        self.elapsed = float(state.get("elapsed", 0.0))
        self.rows = [r for r in read_log(self.out / "log.csv") if r["step"] <= self.step]
        return True

    def init_from(self, weights: str | os.PathLike) -> None:
        """Start from existing weights (a ttt3r model folder or checkpoint) instead of random ones.

        The weights' architecture must match the config's model settings; the
        optimiser starts fresh (step 0). With ``loss.quat_norm_weight > 0`` the
        pose MLP's quaternion rows are rescaled to a raw norm of 1 first
        (:func:`rescale_pose_quaternion`; the outputs stay the same).
        """
        from ..weights import load_weights_file

        src = load_weights_file(weights, device="cpu")
        want, have = self.cfg.model_config().to_dict(), src.cfg.to_dict()
        for d in (want, have):
            d.pop("extra", None)
        if want != have:
            diff = sorted(k for k in want if want.get(k) != have.get(k))
            raise TTT3RError(f"{weights}: architecture differs from the config ({', '.join(diff[:4])})")
        self.model.load_state_dict({k: v.float() for k, v in src.state_dict().items()})
        if self.cfg.loss.quat_norm_weight > 0:  # start the penalised run at norm 1, outputs unchanged
            factor = rescale_pose_quaternion(self.model, self.sampler.batch(0, self.cfg.optim.batch).img.to(self.device))
            self.log(f"pose quaternion rows of the initial weights divided by {factor:.3g} (raw norm -> 1)")

    # -- logs -----------------------------------------------------------------------
    def _write_log(self) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: (f"{r[k]:.6g}" if isinstance(r.get(k), float) else r.get(k, "")) for k in CSV_FIELDS})
        atomic_write_text(self.out / "log.csv", buf.getvalue())

    def plot(self) -> None:
        if self.rows:
            plot_losses(self.rows, self.out / "loss.png")

    # -- main loop ------------------------------------------------------------------
    def run(self, max_seconds: float | None = None, until: int | None = None) -> dict[str, float]:
        """Train until ``optim.steps`` (or ``max_seconds`` of wall time, or step ``until``),
        then checkpoint; returns the last step's loss parts."""
        cfg = self.cfg
        atomic_write_text(self.out / "config.json", json.dumps(cfg.to_dict(), indent=1) + "\n")
        t_start = t_launch = time.perf_counter()
        t_window, n_window = t_start, 0
        parts: dict[str, float] = {}
        sums: dict[str, float] = {}
        try:
            last = cfg.optim.steps if until is None else min(until, cfg.optim.steps)
            while self.step < last:
                batch = self.sampler.batch(self.step, cfg.optim.batch).to(self.device)
                lr = lr_at(cfg, self.step)
                parts = train_step(self.model, self.opt, batch, cfg, lr, self.step)
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + v
                self.step += 1
                n_window += 1
                now = time.perf_counter()
                if self.step % cfg.log.every == 0 or self.step == cfg.optim.steps:
                    its = n_window / max(now - t_window, 1e-9)
                    parts = {k: v / n_window for k, v in sums.items()}  # window means
                    t_window, n_window, sums = now, 0, {}
                    self.rows.append(dict(step=self.step, lr=lr, it_s=its,
                                          elapsed_s=self.elapsed + now - t_start, **parts))
                    eta = (cfg.optim.steps - self.step) / max(its, 1e-9)
                    self.log(f"step {self.step}/{cfg.optim.steps} loss {parts['total']:.4f} "
                             f"(self {parts['conf_self']:.3f} world {parts['conf_world']:.3f} "
                             f"pose {parts['pose']:.3f} rgb {parts.get('rgb', 0.0):.4f}) "
                             f"lr {lr:.2e} {its:.2f} it/s ETA {_hms(eta)}")
                if self.step % cfg.log.plot_every == 0:
                    self._write_log()
                    self.plot()
                if self.step % cfg.log.ckpt_every == 0:
                    self.elapsed += time.perf_counter() - t_start
                    t_start = time.perf_counter()
                    self._write_log()
                    self.save()
                if max_seconds is not None and time.perf_counter() - t_launch >= max_seconds:
                    self.log(f"time limit reached at step {self.step}")
                    break
        except KeyboardInterrupt:
            self.log(f"interrupted at step {self.step}; saving")
            self._finish(t_start)
            raise
        self._finish(t_start)
        return parts

    def _finish(self, t_start: float) -> None:
        self.elapsed += time.perf_counter() - t_start
        self._write_log()
        self.plot()
        self.save()


def read_log(path: Path) -> list[dict[str, float]]:
    """Rows of a run's ``log.csv`` (numbers as floats, ``step`` as int); [] when absent."""
    if not path.exists():
        return []
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            row: dict[str, float] = {}
            for k, v in r.items():
                if v in ("", None):
                    continue
                row[k] = int(float(v)) if k == "step" else float(v)
            rows.append(row)
    return rows


def moving_average(values: list[float], window: int) -> list[float]:
    """Trailing mean over at most ``window`` values (shorter at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_losses(rows: list[dict[str, float]], path: Path, window: int = 10) -> None:
    """Loss curves (total and parts; log scale on the right) against step, written atomically as PNG.

    Each curve is drawn faintly as logged and boldly as a trailing mean over
    ``window`` rows (clip lengths vary per batch, so single rows are noisy).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    panels = [(axes[0], ("total", "conf_self", "conf_world", "pose", "rgb"), False, "losses"),
              (axes[1], ("reg_self", "reg_world", "pose", "quat_norm"), True, "normalised errors, raw |q| (log)")]
    for ax, keys, log, title in panels:
        for i, k in enumerate(keys):
            if not all(k in r for r in rows):
                continue
            vals = [max(r[k], 1e-6) if log else r[k] for r in rows]
            colour = f"C{i}"
            ax.plot(steps, vals, color=colour, lw=0.6, alpha=0.3)
            ax.plot(steps, moving_average(vals, window), color=colour, lw=1.5, label=k)
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("step"), ax.set_title(f"{title}, mean of {window} rows bold"), ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
