"""Ray is optional: without it, ``--ray`` says in one line how to install it."""
from __future__ import annotations


def test_ray_option_without_ray_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    import sys

    from core.cli import main
    from core.cluster import INSTALL_HINT

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails as if it were not installed
    rc = main(["index", "build", "--corpus", str(tmp_path / "c.jsonl"), "--tokenizer", "gpt2", "--ray", "local",
               "--out", str(tmp_path / "ix")])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and INSTALL_HINT in err and len(err.splitlines()) == 1
