"""``ttt3r convert IN.pth OUT_DIR``: a released checkpoint to safetensors + config.json."""

from __future__ import annotations

from pathlib import Path

from ..errors import TTT3RError


def main(argv: list[str]) -> int:
    from .parser import ArgumentParser

    ap = ArgumentParser(prog="ttt3r convert", description=__doc__)
    ap.add_argument("src", help="released .pth checkpoint (or a converted folder)")
    ap.add_argument("out_dir", help="folder to write model.safetensors and config.json into")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing converted checkpoint")
    args = ap.parse_args(argv)
    from ..weights import CONFIG_NAME, SAFETENSORS_NAME, convert_checkpoint

    out = Path(args.out_dir)
    if not args.overwrite and any((out / n).exists() for n in (SAFETENSORS_NAME, CONFIG_NAME)):
        raise TTT3RError(f"{out}: a converted checkpoint already exists there (use --overwrite)")
    convert_checkpoint(args.src, out)
    print(f"wrote {out / SAFETENSORS_NAME} and {out / CONFIG_NAME}")
    return 0
