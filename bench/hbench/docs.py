"""Puts the latest full run's summary into docs/benchmarks.md, between two markers; the rest of
that page (how to run, what each scenario means) is written by hand."""

from __future__ import annotations

import os
from pathlib import Path

BEGIN = "<!-- bench:latest:begin (written by bench/run; edit outside these markers) -->"
END = "<!-- bench:latest:end -->"


def latest_section(summary_md: str, results_dir: Path, docs_dir: Path) -> str:
    rel = Path(os.path.relpath(results_dir, docs_dir))
    lines = summary_md.splitlines()
    out = [BEGIN, ""]
    for line in lines:
        if line.startswith("# "):
            line = "### Latest run: " + line[2:]
        elif line.startswith("## "):
            line = "#### " + line[3:]
        line = line.replace("](plots/", f"]({rel.as_posix()}/plots/")
        line = line.replace("`raw/`", f"`{rel.as_posix()}/raw/`").replace(
            "`results.json`", f"`{rel.as_posix()}/results.json`").replace(
            "`bench.log`", f"`{rel.as_posix()}/bench.log`")
        out.append(line)
    out += ["", END]
    return "\n".join(out)


def update_docs(doc: Path, summary_md: str, results_dir: Path) -> None:
    section = latest_section(summary_md, results_dir, doc.parent)
    text = doc.read_text() if doc.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + section + tail
    else:
        text = text.rstrip() + "\n\n## Latest figures\n\n" + section + "\n"
    doc.write_text(text)
