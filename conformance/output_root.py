"""The command line every make_*_fixtures.py script shares.

    conformance/.venv/bin/python conformance/make_<kind>_fixtures.py [OUTPUT_ROOT]

OUTPUT_ROOT stands for the repository's root: a script that writes
packages/models/fixtures/ writes OUTPUT_ROOT/packages/models/fixtures/. It
defaults to the repository itself, which refreshes the committed fixtures;
run.sh gives conformance/out/fixtures and compares the two trees
(compare_fixtures.py). Inputs (base checkpoints, data) are always read from
the repository, so each script can run alone.
"""
import argparse
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def output_root(description):
    """Parses the command line and returns the output root, absolute.

    NOTE: PEFT writes target_modules from a set, whose order depends on the
    string hash seed: the script restarts itself with PYTHONHASHSEED=0 so
    that adapter_config.json comes out the same on every run."""
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", type=pathlib.Path, default=ROOT,
                        help="where the repository's fixture folders are written (default: the repository)")
    return parser.parse_args().root.resolve()
