"""Parse Terraform files with python-hcl2 and print them as one JSON object.

Runs in .venv-deploy with python-hcl2 on PYTHONPATH (it lives in its own --target folder,
apart from checkov's fork of the same module): ``python hcl_to_json.py ROOT``. Output:
``{"<path relative to ROOT>": <hcl2.load result>}`` for every ``*.tf`` and ``*.tfvars`` file; a
file that does not parse exits 2 naming it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import hcl2
from hcl2.utils import SerializationOptions

# Plain values: no comment or block markers, strings without their quotes, heredocs as text.
OPTIONS = SerializationOptions(
    with_comments=False,
    explicit_blocks=False,
    preserve_heredocs=False,
    strip_string_quotes=True,
)


def main(root: str) -> int:
    """Entry point; returns the exit code."""
    base = Path(root)
    parsed: dict[str, Any] = {}
    for path in sorted([*base.rglob("*.tf"), *base.rglob("*.tfvars")]):
        if ".terraform" in path.parts:
            continue
        try:
            with path.open(encoding="utf-8") as handle:
                parsed[str(path.relative_to(base))] = hcl2.load(
                    handle, serialization_options=OPTIONS
                )
        except Exception as error:  # lark's parse errors carry the position
            print(f"{path}: {error}", file=sys.stderr)
            return 2
    json.dump(parsed, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
