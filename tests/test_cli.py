"""The command line: dispatcher, help, lazy imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ttt3r.cli import COMMANDS, main


def test_help_lists_commands_and_does_not_import_torch():
    # the top-level help and every command's --help (argparse exits after printing it)
    code = ("import sys, ttt3r.cli\n"
            "ttt3r.cli.main(['--help'])\n"
            "for name in ttt3r.cli.COMMANDS:\n"
            "    try:\n"
            "        ttt3r.cli.main([name, '--help'])\n"
            "    except SystemExit as e:\n"
            "        assert e.code == 0, name\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("NO-TORCH")
    for name in COMMANDS:
        assert name in out
        assert f"usage: ttt3r {name}" in out, name  # its own help ran, in the same process


def test_every_command_has_help(capsys):
    for name in COMMANDS:
        try:
            rc = main([name, "--help"])
        except SystemExit as e:  # argparse's own exit
            rc = e.code
        assert rc == 0, name
        assert "usage: ttt3r" in capsys.readouterr().out, name


def test_unknown_command(capsys):
    assert main(["nope"]) == 2
    assert "unknown command 'nope'" in capsys.readouterr().err


def test_closed_output_pipe_ends_quietly():
    # a command that writes far more than a pipe buffer, read by a consumer that stops after one line
    code = ("import sys, types, ttt3r.cli as c\n"
            "m = types.ModuleType('ttt3r.cli.chatty')\n"
            "def run(argv):\n"
            "    for i in range(200000):\n"
            "        print('line', i)\n"
            "m.main = run\n"
            "sys.modules['ttt3r.cli.chatty'] = m\n"
            "c.COMMANDS['chatty'] = ('chatty', 'test')\n"
            "sys.exit(c.main(['chatty']))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"line 0\n"
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert err == "", err


def test_reconstruct_help_lists_rules_and_exports_without_torch():
    code = ("import sys, ttt3r.cli\n"
            "try:\n    ttt3r.cli.main(['reconstruct', '--help'])\nexcept SystemExit:\n    pass\n"
            "print([m for m in ('torch', 'numpy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("[]")  # instant: the registries are read without torch or numpy
    assert "--update {cut3r,ttt3r}" in out
    for name in ("demo", "trajectory", "ply", "colmap", "glb", "preview"):
        assert f"\n  {name} " in out, name


def test_reconstruct_update_choices_come_from_the_rule_registry(monkeypatch, capsys):
    from ttt3r import update
    from ttt3r.cli.reconstruct import build_parser

    monkeypatch.setattr(update, "_RULES", dict(update._RULES))

    @update.register_rule("halfway")
    def halfway(old, new, ctx):
        return new if ctx.first else 0.5 * (old + new)

    assert build_parser().parse_args(["in", "--out", "o", "--update", "halfway"]).update == "halfway"
    assert build_parser().parse_args(["in", "--out", "o"]).update == "ttt3r"
    assert "--update {cut3r,halfway,ttt3r}" in build_parser().format_help()
    with pytest.raises(SystemExit) as ei:
        main(["reconstruct", "in", "--out", "o", "--update", "nope"])
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err and "'halfway'" in err
