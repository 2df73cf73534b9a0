"""docs/config.md, the configuration reference, generated from mmtrain/conf/ so it cannot drift: every
primary config (one per command) and every option of every config group, each key with its default
and the YAML's own comment. tests/test_docs.py fails when the file is stale. Usage:
    python scripts/gen_config_reference.py            # writes docs/config.md
    python scripts/gen_config_reference.py --check    # exit 1 if docs/config.md is stale
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONF, OUT = ROOT / "mmtrain" / "conf", ROOT / "docs" / "config.md"
LINE = re.compile(r"^(?P<indent> *)(?P<key>[^#:\s][^:]*?):(?P<value>[^#]*?)\s*(?:#\s?(?P<comment>.*))?$")


def entries(text: str) -> tuple[str, list[tuple[str, str, str]]]:
    """A YAML file of this project's style -> (its leading comment, [(dotted key, value, comment)]).
    Keys of a nested block are dotted (data.source.path); a comment on the lines right above a key,
    or continuing it below, joins its own. Lists of a defaults block are left out."""
    header, rows, stack, pending, in_defaults = [], [], [], [], False
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not rows and not stack and stripped.startswith("#") and not line.startswith(" "):
            if "@package" not in stripped:
                header.append(stripped.lstrip("# "))
            continue
        if stripped.startswith("#"):
            comment = stripped.lstrip("# ")
            above = lines[i - 1] if i else ""
            if (
                rows
                and not pending
                and LINE.match(above)
                and "#" in above
                and line.index("#") == above.index("#")
            ):
                key, value, before = rows[-1]  # a key's comment that goes on, aligned, on the next line
                rows[-1] = (key, value, f"{before} {comment}".strip())
            else:
                pending.append(comment)
            continue
        match = LINE.match(line)
        if not match or stripped.startswith("- "):
            if stripped.startswith("- ") and in_defaults:
                continue
            pending = []
            continue
        depth = len(match["indent"]) // 2
        stack = stack[:depth] + [match["key"].strip()]
        in_defaults = stack[0] in ("defaults", "hydra")
        if in_defaults:
            pending = []
            continue
        value = match["value"].strip()
        comment = " ".join(pending + ([match["comment"].strip()] if match["comment"] else []))
        pending = []
        rows.append((".".join(stack), value, comment))
    return " ".join(header), rows


def table(rows: list[tuple[str, str, str]], prefix: str = "") -> list[str]:
    if not rows:
        return []
    out = ["| key | default | what |", "|---|---|---|"]
    for key, value, comment in rows:
        shown = value.replace("|", "\\|") if value else "(a group of keys)"
        out.append(
            f"| `{prefix}{key}` | `{shown}` | {comment.replace('|', '/')} |"
            if value
            else f"| `{prefix}{key}` | | {comment.replace('|', '/')} |"
        )
    return out + [""]


def package_of(text: str, group: str) -> str:
    """Where a group option's keys land: `@package _global_` at the top, else under the group's path."""
    return "" if "@package _global_" in text.split("\n", 1)[0] else group.replace("/", ".") + "."


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from `mmtrain/conf/` by `scripts/gen_config_reference.py` "
        "(tests/test_docs.py checks it is current): "
        "every primary config (one per command) and every option of every config group, each key with its "
        "default and what the YAML says about it. Pick an option with `group=option`, set a key with "
        "`key=value`; `mmtrain --cfg job` prints the composed config.",
        "",
    ]
    for primary in sorted(CONF.glob("*.yaml")):
        header, rows = entries(primary.read_text())
        command = "mmtrain" if primary.stem == "train" else f"mmtrain-{primary.stem}"
        lines += [f"## `{command}` (mmtrain/conf/{primary.name})", "", header, ""] + table(rows)
    lines += ["## Config groups", ""]
    groups = sorted({p.parent.relative_to(CONF) for p in CONF.rglob("*.yaml") if p.parent != CONF})
    for group in groups:
        options = sorted((CONF / group).glob("*.yaml"))
        lines += [f"### `{group}/`: {', '.join(o.stem for o in options)}", ""]
        for option in options:
            text = option.read_text()
            header, rows = entries(text)
            lines += [f"#### `{group}={option.stem}`", ""]
            if header:
                lines += [header, ""]
            lines += table(rows, package_of(text, str(group)))
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/config.md is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python scripts/gen_config_reference.py", file=sys.stderr)
            sys.exit(1)
        return
    OUT.write_text(text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
