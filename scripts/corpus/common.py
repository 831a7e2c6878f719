"""Helpers for building the agent-style golden scenarios from real files.

Excerpts come from files written by others (Python stdlib, crates in the
cargo registry, glibc headers). Exact diffs are made by `git diff` in a
scratch repository and expected results by `git apply`; the damage models do
to diffs is then applied by hand-written text edits.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile

PY = "/root/.pyenv/versions/3.11.7/lib/python3.11"
REG = glob.glob(os.path.expanduser("~/.cargo/registry/src/*/"))[0]
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))


def excerpt(path, a=1, b=None):
    with open(path, encoding="utf-8", newline="") as f:
        lines = f.read().splitlines(keepends=True)
    return "".join(lines[a - 1 : b])


def rep(text, old, new, count=1):
    n = text.count(old)
    assert n == count, f"{old!r} occurs {n} times, wanted {count}"
    return text.replace(old, new)


def crlf(text):
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def _git(cwd, *args, stdin=None):
    r = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(f"git {args}: {r.stderr.decode()}")
    return r.stdout


def _write_tree(root, files):
    for rel, text in files.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)


def _read_tree(root):
    out = {}
    for d, _, names in os.walk(root):
        if ".git" in d.split(os.sep):
            continue
        for n in names:
            p = os.path.join(d, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = f.read()
    return out


def git_diff(before, after, *extra):
    """The exact `git diff` from one tree to the other."""
    tmp = tempfile.mkdtemp()
    try:
        _git(tmp, "init", "-q")
        _git(tmp, "config", "core.autocrlf", "false")
        _write_tree(tmp, before)
        _git(tmp, "add", "-A")
        _git(tmp, "-c", "user.name=c", "-c", "user.email=c@c", "commit", "-qm", "before")
        for rel in before:
            os.remove(os.path.join(tmp, rel))
        _write_tree(tmp, after)
        _git(tmp, "add", "-A")
        return _git(tmp, "diff", "--cached", "-M", *extra).decode()
    finally:
        shutil.rmtree(tmp)


def git_apply(before, diff, *extra):
    """The tree after `git apply` of `diff` on `before` (the expected result)."""
    tmp = tempfile.mkdtemp()
    try:
        _git(tmp, "init", "-q")
        _write_tree(tmp, before)
        _git(tmp, "apply", "--whitespace=nowarn", *extra, "-", stdin=diff.encode())
        return _read_tree(tmp)
    finally:
        shutil.rmtree(tmp)


HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")


def map_headers(diff, fn):
    """Rewrites each hunk header: fn(index, old_start, old_count, new_start, new_count, tail) -> header."""
    out, i = [], 0
    for line in diff.split("\n"):
        m = HUNK.match(line)
        if m:
            os_, oc, ns, nc, tail = m.groups()
            line = fn(i, int(os_), int(oc or 1), int(ns), int(nc or 1), tail)
            i += 1
        out.append(line)
    return "\n".join(out)


def shift(diff, deltas):
    return map_headers(
        diff,
        lambda i, a, b, c, d, t: f"@@ -{a + deltas[i]},{b} +{c + deltas[i]},{d} @@{t}",
    )


def miscount(diff, deltas):
    return map_headers(
        diff,
        lambda i, a, b, c, d, t: f"@@ -{a},{b + deltas[i][0]} +{c},{d + deltas[i][1]} @@{t}",
    )


def bare(diff, texts=None):
    """Headers without numbers: `@@` or `@@ text` per hunk."""
    return map_headers(
        diff,
        lambda i, a, b, c, d, t: "@@" if not texts or not texts[i] else f"@@ {texts[i]}",
    )


def plain(diff):
    """Drops `diff --git` and `index` lines (keeps ---/+++)."""
    return "\n".join(
        l for l in diff.split("\n") if not l.startswith("diff --git ") and not l.startswith("index ")
    )


def no_prefix(diff):
    diff = plain(diff)
    return re.sub(r"^(---|\+\+\+) [ab]/", r"\1 ", diff, flags=re.M)


def hunks_of(diff):
    """(file header text, [hunk texts]) for a one-file diff."""
    parts = re.split(r"(?m)^(?=@@ )", diff)
    return parts[0], parts[1:]


def write_scenario(name, before, diff_text=None, expected=None, error=None, args=None,
                   summary=None, answer=None, bug=None, root="patch", extra_files=None):
    d = os.path.join(REPO, "tests/fixtures", root, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    inp = os.path.join(d, "input")
    os.makedirs(inp)
    if before:
        _write_tree(inp, before)
    else:
        open(os.path.join(inp, ".keep"), "w").close()
    exp = os.path.join(d, "expected")
    os.makedirs(exp)
    result = before if error is not None or expected is None else expected
    if result:
        _write_tree(exp, result)
    else:
        open(os.path.join(exp, ".keep"), "w").close()
    if diff_text is not None:
        with open(os.path.join(d, "patch.diff"), "wb") as f:
            f.write(diff_text.encode())
    if error is not None:
        with open(os.path.join(d, "error.txt"), "w") as f:
            f.write("\n".join(error) + "\n")
    if args is not None:
        with open(os.path.join(d, "args.json"), "w") as f:
            json.dump(args, f, indent=2, ensure_ascii=False)
            f.write("\n")
    if summary is not None:
        with open(os.path.join(d, "expected_summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
    if answer is not None:
        with open(os.path.join(d, "answer.txt"), "w") as f:
            f.write("\n".join(answer) + "\n")
    if bug is not None:
        with open(os.path.join(d, "BUG.md"), "w") as f:
            f.write(bug.strip() + "\n")
    for rel, text in (extra_files or {}).items():
        with open(os.path.join(d, rel), "w") as f:
            f.write(text)
