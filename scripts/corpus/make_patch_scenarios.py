"""Builds tests/fixtures/patch/agent_* from real files (see common.py)."""
import sys

from common import *

TW = excerpt(f"{PY}/textwrap.py", 1, 260)
CP = excerpt(f"{PY}/configparser.py", 169, 340)
SH = excerpt(f"{PY}/shlex.py", 1, 120)
CH = excerpt(f"{REG}anyhow-1.0.105/src/chain.rs")
EXT = excerpt(f"{REG}clap_lex-1.1.2/src/ext.rs")
NUM = excerpt(f"{REG}serde_json-1.0.154/src/number.rs", 1, 220)
EH = excerpt("/usr/include/err.h")
AR = excerpt("/usr/include/ar.h")
RM = excerpt(f"{REG}regex-1.13.2/README.md", 1, 120)

ONLY = sys.argv[1:]


def ok(name, before, after, damage=lambda d: d, diff_args=(), **kw):
    """A scenario that must apply: expected/ is `git apply` of the exact diff."""
    if ONLY and name not in ONLY:
        return
    exact = git_diff(before, after, *diff_args)
    got = git_apply(before, exact, *(["--unidiff-zero"] if "-U0" in diff_args else []))
    want = {k: (v.encode() if isinstance(v, str) else v) for k, v in after.items()}
    assert got == want, f"{name}: git apply of the exact diff differs from the intended result"
    write_scenario(name, before, damage(exact), expected=after, **kw)
    return exact


def bad(name, before, patch, error, **kw):
    if ONLY and name not in ONLY:
        return
    write_scenario(name, before, patch, error=error, **kw)


def tw_edits(t):
    t = rep(t, "        if self.expand_tabs:\n            text = text.expandtabs(self.tabsize)\n",
            "        if self.expand_tabs:\n            # Tabs first, so that the translation below sees spaces.\n"
            "            text = text.expandtabs(self.tabsize)\n")
    t = rep(t, "        chunks = [c for c in chunks if c]\n", "        chunks = [c for c in chunks if c != '']\n")
    t = rep(t, "        if width < 1:\n            space_left = 1\n",
            "        if width < 1:\n            # Always make progress, even with a huge indent.\n            space_left = 1\n")
    return t


# 1. Exact git diff, three hunks.
ok("agent_exact_git_diff_python", {"textwrap.py": TW}, {"textwrap.py": tw_edits(TW)},
   summary=[{"path": "textwrap.py", "action": "modify", "additions": 3, "deletions": 1,
             "hunks": [{"hunk": 1, "line": 148, "hinted_line": 148, "offset": 0, "matched": "exact", "recounted": False},
                       {"hunk": 2, "line": 173, "hinted_line": 173, "offset": 0, "matched": "exact", "recounted": False},
                       {"hunk": 3, "line": 205, "hinted_line": 205, "offset": 0, "matched": "exact", "recounted": False}]}],
   answer=["modify textwrap.py (+3 -1)", "hunk 1 at line 148 (where the header said)",
           "hunk 3 at line 205 (where the header said)"])

# 2. Start lines shifted differently per hunk (models count lines badly).
ok("agent_shifted_start_lines_python", {"textwrap.py": TW}, {"textwrap.py": tw_edits(TW)},
   damage=lambda d: shift(d, [+9, -14, +33]),
   summary=[{"path": "textwrap.py", "additions": 3, "deletions": 1,
             "hunks": [{"line": 148}, {"line": 173}, {"line": 205}]}],
   answer=["hunk 1 at line 148", "hunk 2 at line 173", "hunk 3 at line 205"])

# 3. Counts off by one or more in several hunks.
ok("agent_miscounted_hunks_python", {"textwrap.py": TW}, {"textwrap.py": tw_edits(TW)},
   damage=lambda d: miscount(d, [(+1, +1), (-1, 0), (+2, -1)]),
   summary=[{"path": "textwrap.py", "additions": 3, "deletions": 1,
             "hunks": [{"line": 148, "recounted": True}, {"line": 173, "recounted": True},
                       {"line": 205, "recounted": True}]}],
   answer=["header counts recounted"])

# 4. Shifted and miscounted at once, GNU diff -u style with timestamps, C header.
eh2 = rep(EH, "extern void warnx (const char *__format, ...)\n     __attribute__ ((__format__ (__printf__, 1, 2)));\n",
          "extern void warnx (const char *__format, ...)\n     __attribute__ ((__format__ (__printf__, 1, 2)))\n     __attribute__ ((__cold__));\n")
eh2 = rep(eh2, "extern void verrx (int __status, const char *, __gnuc_va_list)\n", "extern void verrx (int __status, const char *__format, __gnuc_va_list)\n")
def gnu(d):
    d = plain(d)
    d = d.replace("--- a/include/err.h", "--- include/err.h\t2024-03-02 10:11:12.000000000 +0100")
    d = d.replace("+++ b/include/err.h", "+++ include/err.h\t2024-03-02 10:19:40.123456789 +0100")
    return miscount(shift(d, [-6, +21]), [(0, +2), (+1, 0)])
ok("agent_c_header_shifted_miscounted_gnu_diff", {"include/err.h": EH}, {"include/err.h": eh2}, damage=gnu,
   summary=[{"path": "include/err.h", "action": "modify", "additions": 3, "deletions": 2,
             "hunks": [{"line": 38, "recounted": True}, {"line": 49, "recounted": True}]}])

# 4b. `diff -u err.h.orig err.h`: the old name is a backup that does not exist; GNU patch patches err.h.
def orig(d):
    d = plain(d)
    d = d.replace("--- a/include/err.h", "--- include/err.h.orig\t2024-03-02 10:11:12.000000000 +0100")
    return d.replace("+++ b/include/err.h", "+++ include/err.h\t2024-03-02 10:19:40.123456789 +0100")
ok("agent_gnu_diff_orig_backup_name", {"include/err.h": EH}, {"include/err.h": eh2}, damage=orig,
   summary=[{"path": "include/err.h", "action": "modify", "additions": 3, "deletions": 2}],
   bug="`diff -u include/err.h.orig include/err.h` (how people and models diff against a backup) is read as a rename "
       "from include/err.h.orig, which does not exist, so it is refused. GNU patch picks the name that exists "
       "(include/err.h). Suggested: when the old side of a plain ---/+++ pair does not exist and the new side does, "
       "modify the new side.")

# 5. Bare `@@` headers on unique content.
ok("agent_bare_headers_python", {"textwrap.py": TW}, {"textwrap.py": tw_edits(TW)}, damage=bare,
   summary=[{"path": "textwrap.py", "additions": 3, "deletions": 1,
             "hunks": [{"line": 148, "header": "@@"}, {"line": 173}, {"line": 205}]}],
   answer=["placed by its lines (no line number)"])

# 6. `@@ def name():` anchor headers, as models write them.
ok("agent_anchor_def_headers_python", {"textwrap.py": TW}, {"textwrap.py": tw_edits(TW)},
   damage=lambda d: bare(d, ["def _munge_whitespace(self, text):", "def _split(self, text):",
                             "def _handle_long_word(self, reversed_chunks, cur_line, cur_len, width):"]),
   summary=[{"path": "textwrap.py", "hunks": [{"line": 148}, {"line": 173}, {"line": 205}]}])

# 7. An anchor picks between two identical blocks (Rust `@@ fn name(` header).
ch2 = CH.replace("                while let Some(cause) = next {\n                    next = cause.source();\n                    len += 1;\n",
                 "                while let Some(cause) = next {\n                    next = cause.source();\n                    // Counted once per source.\n                    len += 1;\n")
def anchor_rust(d):
    head, hunks = hunks_of(plain(d))
    body = hunks[0].split("\n", 1)[1]
    # Keep only the two lines shared with next_back() as context.
    lines = [l for l in body.split("\n") if l]
    keep = [l for l in lines if "while let" in l or "cause.source" in l or l.startswith("+")]
    return head + "@@ fn len(&self) -> usize {\n" + "\n".join(keep) + "\n"
ok("agent_anchor_fn_header_picks_block_rust", {"src/chain.rs": CH}, {"src/chain.rs": ch2}, damage=anchor_rust,
   summary=[{"path": "src/chain.rs", "additions": 1, "deletions": 0, "hunks": [{"line": 81}]}])

# 8. The same two-line context with no anchor and no line number: refused, naming both places.
def ambiguous(d):
    return anchor_rust(d).replace("@@ fn len(&self) -> usize {\n", "@@\n")
bad("agent_ambiguous_bare_hunk_refused_rust", {"src/chain.rs": CH}, ambiguous(git_diff({"src/chain.rs": CH}, {"src/chain.rs": ch2})),
    ["src/chain.rs", "hunk 1 of 1", "2 places (lines 62, 81)", "no file was changed"])

# 9. Line numbers pick the nearer of two identical blocks.
def hinted(d):
    head, hunks = hunks_of(plain(d))
    body = anchor_rust(d).split("@@ fn len(&self) -> usize {\n")[1]
    return head + "@@ -84,2 +84,3 @@\n" + body
ok("agent_repeated_block_nearest_hint_rust", {"src/chain.rs": CH}, {"src/chain.rs": ch2}, damage=hinted,
   summary=[{"path": "src/chain.rs", "hunks": [{"line": 81}]}])

# 10. Codex envelope: nested `@@ class` then `@@ def` anchors pick one of two identical blocks.
cp2 = CP.replace(
    "            message.append(\": option \")\n",
    "            message.append(\": option \")\n            message.append(\"(duplicate) \")\n")
codex10 = """*** Begin Patch
*** Update File: configparser.py
@@ class DuplicateOptionError(Error):
@@     def __init__(self, section, option, source=None, lineno=None):
             if lineno is not None:
                 message.append(" [line {0:2d}]".format(lineno))
             message.append(": option ")
+            message.append("(duplicate) ")
             message.extend(msg)
             msg = message
*** End Patch
"""
if not ONLY or "agent_codex_nested_anchors_python" in ONLY:
    write_scenario("agent_codex_nested_anchors_python", {"configparser.py": CP}, codex10,
                   expected=git_apply({"configparser.py": CP}, git_diff({"configparser.py": CP}, {"configparser.py": cp2})),
                   summary=[{"path": "configparser.py", "action": "modify", "additions": 1, "deletions": 0,
                             "hunks": [{"line": 61}]}])

# 11. Codex: the same chunk without anchors is ambiguous (two classes share it): refused.
codex11 = """*** Begin Patch
*** Update File: configparser.py
@@
             if lineno is not None:
                 message.append(" [line {0:2d}]".format(lineno))
+                message.append(" (duplicate)")
*** End Patch
"""
bad("agent_codex_ambiguous_chunk_refused", {"configparser.py": CP}, codex11,
    ["configparser.py: hunk 1 of 1", "2 places (lines 35, 61)"])

# 12. Codex: add, delete, update with move, all in one envelope.
eh_moved = rep(EH, "#ifndef\t_ERR_H\n#define\t_ERR_H\t1\n", "#ifndef\t_BSD_ERR_H\n#define\t_BSD_ERR_H\t1\n")
codex12 = """Here is the patch:

*** Begin Patch
*** Add File: include/README
+BSD-style headers kept for the port.
+
+err.h moved to include/bsd/err.h.
*** Delete File: include/ar.h
*** Update File: include/err.h
*** Move to: include/bsd/err.h
@@
 License along with the GNU C Library; if not, see
 <https://www.gnu.org/licenses/>.  */
 
-#ifndef	_ERR_H
-#define	_ERR_H	1
+#ifndef	_BSD_ERR_H
+#define	_BSD_ERR_H	1
 
 #include <features.h>
 
*** End Patch
"""
if not ONLY or "agent_codex_add_delete_move" in ONLY:
    write_scenario("agent_codex_add_delete_move", {"include/err.h": EH, "include/ar.h": AR}, codex12,
                   expected={"include/bsd/err.h": eh_moved,
                             "include/README": "BSD-style headers kept for the port.\n\nerr.h moved to include/bsd/err.h.\n"},
                   summary=[{"path": "include/README", "action": "create", "additions": 3, "deletions": 0},
                            {"path": "include/ar.h", "action": "delete", "additions": 0, "deletions": 47},
                            {"path": "include/bsd/err.h", "action": "rename", "old_path": "include/err.h",
                             "additions": 2, "deletions": 2}])

# 13. Codex: `*** End of File` appends after the last lines.
eh13 = EH + "\n/* Local variables: */\n"
codex13 = """*** Begin Patch
*** Update File: include/err.h
@@
 __END_DECLS
 
 #endif	/* err.h */
+
+/* Local variables: */
*** End of File
*** End Patch
"""
if not ONLY or "agent_codex_end_of_file" in ONLY:
    write_scenario("agent_codex_end_of_file", {"include/err.h": EH}, codex13, expected={"include/err.h": eh13},
                   summary=[{"path": "include/err.h", "additions": 2, "deletions": 0, "hunks": [{"line": 60}]}])

# 14. Codex: blank separator lines after `*** Add File` content are not content.
codex14 = """*** Begin Patch
*** Add File: notes/TODO.md
+# TODO
+
+- port err.h

*** Update File: include/err.h
@@
-/* Likewise, and then exit with STATUS.  */
+/* Likewise, and then exit with STATUS (never returns).  */
*** End Patch
"""
if not ONLY or "agent_codex_add_file_blank_separator" in ONLY:
    write_scenario("agent_codex_add_file_blank_separator", {"include/err.h": EH}, codex14,
                   expected={"include/err.h": rep(EH, "/* Likewise, and then exit with STATUS.  */\n", "/* Likewise, and then exit with STATUS (never returns).  */\n"),
                             "notes/TODO.md": "# TODO\n\n- port err.h\n"},
                   bug="A blank line between the last `+` line of `*** Add File` and the next `*** Update File` is a separator "
                       "(Codex's own parser ends Add File content at the first line without `+`), but the engine adds it to the "
                       "new file as an extra empty last line.")

# 15. Fenced diff with prose around it.
def fenced(d):
    return ("I fixed the empty-chunk filter in `_split`; here is the patch:\n\n```diff\n" + d +
            "```\n\nThis keeps `''` out of the chunk list.\n- It does not change wrapping otherwise.\n")
ok("agent_fenced_diff_with_prose", {"textwrap.py": TW}, {"textwrap.py": tw_edits(TW)}, damage=fenced,
   summary=[{"path": "textwrap.py", "additions": 3, "deletions": 1}])

# 16. Unfenced diff followed by a blank line and a markdown list.
def unfenced_bullets(d):
    return d + "\nChanges:\n- a comment in `_munge_whitespace`\n- a stricter filter in `_split`\n"
ok("agent_unfenced_diff_then_prose", {"textwrap.py": TW}, {"textwrap.py": tw_edits(TW)}, damage=unfenced_bullets,
   summary=[{"path": "textwrap.py", "additions": 3, "deletions": 1}])

def bullets_right_after(d):
    return d + "\n- a comment in `_munge_whitespace`\n- a stricter filter in `_split`\n"
ok("agent_unfenced_diff_then_bullets", {"textwrap.py": TW}, {"textwrap.py": tw_edits(TW)}, damage=bullets_right_after,
   summary=[{"path": "textwrap.py", "additions": 3, "deletions": 1}],
   bug="A correctly counted hunk followed by a blank line and a markdown list (`- item`) reads the list items as "
       "'-' lines of the last hunk (the header's counts are ignored once reached), so the hunk no longer matches. "
       "git apply and GNU patch stop at the header's counts. Suggested: once the counts are reached, a blank line "
       "ends the hunk unless the lines after it still match the body (or: stop at a blank line followed by a line "
       "that would need the counts to be wrong).")

# 17. Missing a/ b/ prefixes, no diff --git line.
ok("agent_missing_prefixes_rust", {"src/chain.rs": CH}, {"src/chain.rs": ch2}, damage=no_prefix,
   summary=[{"path": "src/chain.rs", "additions": 1, "deletions": 0}])

# 18. Blank context lines without their leading space (editors strip trailing whitespace).
ok("agent_blank_context_without_space_python", {"textwrap.py": TW}, {"textwrap.py": tw_edits(TW)},
   damage=lambda d: "\n".join("" if l == " " else l for l in d.split("\n")),
   summary=[{"path": "textwrap.py", "additions": 3, "deletions": 1}])

# 19. LF patch on a CRLF file: inserted lines take CRLF.
CPW = crlf(CP)
ok("agent_lf_patch_on_crlf_file", {"configparser.py": CPW}, {"configparser.py": crlf(cp2).replace(
    "    __str__ = __repr__\r\n", "    __str__ = __repr__\r\n    __hash__ = None\r\n")},
   damage=lambda d: d.replace("\r\n", "\n"),
   summary=[{"path": "configparser.py", "additions": 2, "deletions": 0}])

# 20. Codex envelope (LF) on a CRLF file.
if not ONLY or "agent_codex_on_crlf_file" in ONLY:
    write_scenario("agent_codex_on_crlf_file", {"configparser.py": CPW}, codex10, expected={"configparser.py": crlf(cp2)})

# 21. Trailing whitespace added to context lines by the model.
def trailing(d):
    out = []
    for l in d.split("\n"):
        out.append(l + "  " if l.startswith(" ") and l.strip() else l)
    return "\n".join(out)
ok("agent_trailing_whitespace_in_context", {"textwrap.py": TW}, {"textwrap.py": tw_edits(TW)}, damage=trailing,
   summary=[{"path": "textwrap.py", "hunks": [{"line": 148, "matched": "trailing_whitespace"}, {"line": 173},
                                              {"line": 205}]}],
   answer=["trailing whitespace differed"])

# 22. Hunks out of order (the model added the earlier fix last).
def swap(d):
    head, hunks = hunks_of(d)
    return head + hunks[2] + hunks[0] + hunks[1]
ok("agent_hunks_out_of_order", {"textwrap.py": TW}, {"textwrap.py": tw_edits(TW)}, damage=swap,
   summary=[{"path": "textwrap.py", "additions": 3, "deletions": 1}],
   bug="Hunks given out of file order with correct line numbers (git apply accepts them) are refused: each hunk is "
       "searched only after the previous one, and the refusal says the lines 'are not in the file' while showing them "
       "all alike at their true place. Either place them (sort by hinted line / search the whole file when the hunks "
       "do not overlap) or refuse saying the hunks are out of order.")

# 23. Absent context: the model patched a line that is not in the file (hallucinated a version).
tw_bad = fenced(git_diff({"textwrap.py": TW}, {"textwrap.py": tw_edits(TW)}).replace(
    "-        chunks = [c for c in chunks if c]", "-        chunks = list(filter(None, chunks))"))
bad("agent_absent_context_refused", {"textwrap.py": TW}, tw_bad,
    ["textwrap.py: hunk 2 of 3 (`@@ -173,7 +174,7 @@", "does not apply", "-| ", "chunks = list(filter(None, chunks))",
     "   176 !|         chunks = [c for c in chunks if c]", "no file was changed"])

# 24. Two files fail in one multi-file patch: both reported, nothing changed.
multi = git_diff({"textwrap.py": TW, "src/chain.rs": CH, "include/err.h": EH},
                 {"textwrap.py": tw_edits(TW), "src/chain.rs": ch2, "include/err.h": eh2})
multi_bad = multi.replace("                    next = cause.source();\n+", "                    next = cause.sources();\n+") \
                 .replace(" extern void errx (int __status, const char *__format, ...)", " extern void errx (int __status, const char *__fmt, ...)")
bad("agent_multi_file_two_files_fail", {"textwrap.py": TW, "src/chain.rs": CH, "include/err.h": EH}, multi_bad,
    ["src/chain.rs: hunk 1 of 1", "include/err.h: hunk 2 of 2", "no file was changed"])

# 25. One file's hunk fails and another file of the patch does not exist: both named.
miss = git_diff({"textwrap.py": TW, "src/chain.rs": CH}, {"textwrap.py": tw_edits(TW), "src/chain.rs": ch2})
miss = miss.replace("src/chain.rs", "src/chains.rs")
miss = miss.replace("-        chunks = [c for c in chunks if c]", "-        chunks = [c for c in chunks if c is not None]")
bad("agent_multi_file_failure_and_missing_file", {"textwrap.py": TW, "src/chain.rs": CH}, miss,
    ["textwrap.py: hunk 2 of 3", "src/chains.rs does not exist"],
    bug="When one file of a patch does not exist (or cannot be read), the refusal names only that file: failures "
        "already found in earlier files are dropped (`?`/`return Err` in patch::plan instead of pushing to "
        "`failures`). The agent fixes the path, retries, and only then learns of the failing hunk.")

# 26. A patch that changes nothing (removes and adds back the same lines): refused.
same = "--- a/textwrap.py\n+++ b/textwrap.py\n@@ -150,4 +150,4 @@\n         if self.expand_tabs:\n-            text = text.expandtabs(self.tabsize)\n+            text = text.expandtabs(self.tabsize)\n         if self.replace_whitespace:\n             text = text.translate(self.unicode_whitespace_trans)\n"
bad("agent_patch_changes_nothing_refused", {"textwrap.py": TW}, same, ["textwrap.py", "nothing to apply"])

# 27. A hunk with only context lines (the model forgot the marks): refused.
ctx_only = "```diff\n--- a/src/chain.rs\n+++ b/src/chain.rs\n@@ -26,4 +26,5 @@\n impl<'a> Chain<'a> {\n     #[cold]\n     #[inline(never)]\n     pub fn new(head: &'a (dyn StdError + 'static)) -> Self {\n```\n"
bad("agent_context_only_hunk_refused", {"src/chain.rs": CH}, ctx_only,
    ["src/chain.rs: hunk 1 of 1", "changes nothing"])

# 28. Only added lines, no context, no line number: refused.
add_only = "*** Begin Patch\n*** Update File: src/chain.rs\n@@\n+#[cfg(test)]\n+mod tests;\n*** End Patch\n"
bad("agent_add_only_hunk_no_anchor_refused", {"src/chain.rs": CH}, add_only,
    ["src/chain.rs: hunk 1 of 1", "only adds lines"])

# 29. Zero-context diff (git diff -U0): placed by line numbers alone.
ok("agent_zero_context_diff_rust", {"src/chain.rs": CH}, {"src/chain.rs": rep(ch2, "    #[cold]\n", "    #[cold]\n    #[must_use]\n")},
   diff_args=("-U0",), summary=[{"path": "src/chain.rs", "additions": 2, "deletions": 0}])

# 30. Markdown doc: a hunk that removes a lone `-` line (written `--`) as its last line, bare header, fenced.
rm2 = rep(RM, "(?P<year>\\d{4})  # the year\n-\n(?P<month>\\d{2}) # the month\n-\n(?P<day>\\d{2})   # the day\n",
          "(?P<year>\\d{4})  # the year, four digits\n-\n(?P<month>\\d{2}) # the month\n(?P<day>\\d{2})   # the day\n")
rm2 = rep(rm2, "Here's a simple example that matches a date in YYYY-MM-DD format and prints the\n",
          "Here's a simple example that matches a date in YYYYMM-DD format and prints the\n")
def md_dash(d):
    # Two hunks; the second ends with the removal of the lone `-` line and no context after it.
    head, hunks = hunks_of(plain(d))
    h1 = bare(hunks[0])
    body2 = hunks[1].split("\n", 1)[1].split("\n")
    cut = [l for l in body2][: [i for i, l in enumerate(body2) if l == "--"][0] + 1]
    return "```diff\n" + head + h1 + "@@\n" + "\n".join(cut) + "\n```\n"
ok("agent_markdown_hunk_ends_with_dash_line", {"README.md": RM}, {"README.md": rm2}, damage=md_dash,
   summary=[{"path": "README.md", "additions": 2, "deletions": 3}],
   bug="A bare-`@@` hunk whose last line removes a line holding just `-` (written `--`) and is followed by the closing "
       "fence is cut short: `--` followed by a non-diff line is taken for a mail signature, so that removal is "
       "silently dropped and the rest applied — a wrong result reported as success.")

# 31. Plain ---/+++ two-file patch whose first file's last hunk over-counts.
two = plain(git_diff({"textwrap.py": TW, "src/chain.rs": CH}, {"textwrap.py": tw_edits(TW), "src/chain.rs": ch2}))
ok("agent_overcounted_hunk_before_next_file", {"textwrap.py": TW, "src/chain.rs": CH},
   {"textwrap.py": tw_edits(TW), "src/chain.rs": ch2},
   damage=lambda d: miscount(plain(d), [(+2, +2), (0, 0), (0, 0), (0, 0)]),
   summary=[{"path": "src/chain.rs", "additions": 1, "deletions": 0}, {"path": "textwrap.py", "additions": 3, "deletions": 1}],
   bug="In a plain `---`/`+++` patch (no `diff --git`), a hunk whose header over-counts swallows the next file's "
       "`--- a/…`/`+++ b/…` lines as body lines, and the next file's hunks are then applied to the first file "
       "(refused there with a confusing message). A `---`/`+++` pair followed by `@@` should end the hunk even "
       "inside the counts.")

# 32. Dry run of a shifted patch: nothing changes, the answer says where each hunk would land.
if not ONLY or "agent_dry_run_shifted" in ONLY:
    d = shift(git_diff({"src/ext.rs": EXT}, {"src/ext.rs": rep(EXT, "    fn try_str(&self) -> Result<&str, std::str::Utf8Error>;\n",
                                                                "    #[must_use]\n    fn try_str(&self) -> Result<&str, std::str::Utf8Error>;\n")}), [+12])
    write_scenario("agent_dry_run_shifted", {"src/ext.rs": EXT}, d, expected={"src/ext.rs": EXT}, args={"dry_run": True},
                   summary=[{"path": "src/ext.rs", "additions": 1, "deletions": 0,
                             "hunks": [{"line": 6, "hinted_line": 18, "offset": -12}]}],
                   answer=["hunk 1 at line 6 (-12 lines from the header's 18)", "nothing was changed"])

# 33. Every hunk shifted by the same amount: each hunk's answer names its own header's line.
ok("agent_shift_reported_against_each_header", {"textwrap.py": TW}, {"textwrap.py": tw_edits(TW)},
   damage=lambda d: shift(d, [+7, +7, +7]),
   summary=[{"path": "textwrap.py",
             "hunks": [{"line": 148, "hinted_line": 155, "offset": -7}, {"line": 173, "hinted_line": 180, "offset": -7},
                       {"line": 205, "hinted_line": 212, "offset": -7}]}],
   answer=["hunk 2 at line 173 (-7 lines from the header's 180)"],
   bug="After the first hunk, `hinted_line`/`offset` are reported against the header's line moved by the previous "
       "hunk's offset, not against the header: with every header 7 lines off, hunks 2 and 3 say 'where the header "
       "said' (offset 0) though their headers say 180 and 212. The agent checking its own work is "
       "told its line numbers were right. Report the header's own line (the internal adjusted hint is fine for placing).")

# 34. A path that is not in the workspace: refused naming it.
bad("agent_wrong_path_refused", {"textwrap.py": TW},
    git_diff({"textwrap.py": TW}, {"textwrap.py": tw_edits(TW)}).replace("textwrap.py", "Lib/textwrap.py"),
    ["Lib/textwrap.py does not exist"])

# 35. Typographic quotes in the model's context lines (shlex.py docstring/comment lines).
sh2 = rep(SH, "        self.wordchars = ('abcdfeghijklmnopqrstuvwxyz'\n",
          "        # Letters, digits and '_' make up words.\n        self.wordchars = ('abcdfeghijklmnopqrstuvwxyz'\n")
def curly(d):
    return d.replace("         self.commenters = '#'", "         self.commenters = \u2018#\u2019")
ok("agent_typographic_quotes_in_context", {"shlex.py": SH}, {"shlex.py": sh2}, damage=curly,
   summary=[{"path": "shlex.py", "additions": 1, "deletions": 0, "hunks": [{"matched": "whitespace"}]}],
   answer=["indentation or punctuation differed"])



# 36. The model's hunk lost one indentation level everywhere (copied from a dedented view).
def dedent4(d):
    out = []
    for l in d.split("\n"):
        if l[:1] in " +-" and l[1:5] == "    " and not l.startswith(("---", "+++")):
            l = l[0] + l[5:]
        out.append(l)
    return "\n".join(out)
tw36 = rep(TW, "        if width < 1:\n            space_left = 1\n",
           "        if width < 1:\n            # Always make progress, even with a huge indent.\n            space_left = 1\n")
ok("agent_dedented_hunk_python", {"textwrap.py": TW}, {"textwrap.py": tw36}, damage=dedent4,
   summary=[{"path": "textwrap.py", "additions": 1, "deletions": 0, "hunks": [{"line": 205, "matched": "whitespace"}]}],
   bug="A hunk whose every line lost 4 spaces of indentation matches with `matched: whitespace`, and its added line "
       "is inserted with the hunk's (wrong) indentation: the comment lands at 8 spaces inside a 12-space block. For "
       "Python that is a wrong result reported as success. Re-indent added lines by the indentation difference the "
       "context lines matched with (or refuse when it differs).")

# 37. A pure insertion whose line number is past the end of the file: refused, not appended.
bad("agent_add_only_past_end_refused", {"include/err.h": EH},
    "--- a/include/err.h\n+++ b/include/err.h\n@@ -120,0 +121,2 @@\n+/* Deprecated names.  */\n+#define warnc warn\n",
    ["include/err.h", "hunk 1 of 1", "120"],
    bug="A hunk that only adds lines, with no context, at line 120 of a 62-line file is appended at the end of the "
        "file (the hint is clamped to the file's length) and reported as success. git apply refuses it. Without "
        "context lines the line number is all there is; when it is past the end the file is not the one the model "
        "thinks, so refuse, saying the file has 62 lines.")

# 38. A column-0 context line written without its leading space, inside the counts, with changes after it.
eh38 = rep(EH, "#ifndef\t_ERR_H\n#define\t_ERR_H\t1\n", "#ifndef\t_ERR_H\n#define\t_ERR_H\t2\n")
eh38 = rep(eh38, "#define\t__need___va_list\n", "#define\t__need___va_list 1\n")
p38 = git_diff({"include/err.h": EH}, {"include/err.h": eh38}).replace("\n #include <features.h>\n", "\n#include <features.h>\n")
bad("agent_unmarked_context_line_refused", {"include/err.h": EH}, p38,
    ["include/err.h", "#include <features.h>"],
    bug="A context line written without its leading space (`#include <features.h>`, column 0) in the middle of a "
        "counted hunk ends the hunk there; the hunk's remaining lines (`-#define\\t__need___va_list` / `+…`) are then "
        "skipped as prose, and the first half is applied and reported as success: half a hunk applied, the rest "
        "silently dropped. git apply says 'corrupt patch'. Within the header's counts, refuse naming the line (or read "
        "it as context, as blank lines are), never drop the rest.")

# 39. Codex chunk with an anchor and only added lines: no context, no line number.
codex39 = """*** Begin Patch
*** Update File: configparser.py
@@ class NoOptionError(Error):
+    # Kept for backwards compatibility.
+    option = None
*** End Patch
"""
bad("agent_codex_add_only_with_anchor_refused", {"configparser.py": CP}, codex39,
    ["configparser.py", "hunk 1 of 1", "only adds lines"],
    bug="A Codex chunk with only `+` lines under an `@@ class NoOptionError(Error):` anchor is inserted right after the "
        "anchor line — between the class line and its docstring, which turns the docstring into a plain expression. "
        "Codex itself puts pure-addition chunks at the end of the file. Neither guess is safe: an anchor is neither "
        "context nor a line number, so refuse as for a bare `@@` (ask for context lines).")

# 40. Tabs inside C lines written as spaces by the model: not tolerated (only outer whitespace is); refused, naming
# the file and the hunk, with the closest lines.
p40 = git_diff({"include/err.h": EH}, {"include/err.h": eh38}).replace("\t", " ")
bad("agent_tabs_written_as_spaces_refused", {"include/err.h": EH}, p40,
    ["include/err.h: hunk 1 of 1", "does not apply", "    19 !| #ifndef\t_ERR_H", "no file was changed"])

# 41. Hunk 1's line number is 20 off, hunk 2's is right; hunk 2's two context lines also occur 19 lines earlier.
ch41 = rep(CH, "    #[cold]\n", "    #[cold]\n    #[must_use]\n")
ch41 = rep(ch41, "                while let Some(cause) = next {\n                    next = cause.source();\n                    len += 1;\n",
           "                while let Some(cause) = next {\n                    // Count every source.\n                    next = cause.source();\n                    len += 1;\n")
ok("agent_offset_of_previous_hunk_does_not_move_a_right_header", {"src/chain.rs": CH}, {"src/chain.rs": ch41},
   diff_args=("-U1",), damage=lambda d: shift(d, [+20, 0]),
   summary=[{"path": "src/chain.rs", "additions": 2, "deletions": 0, "hunks": [{"line": 27}, {"line": 81}]}],
   bug="Hunk 1's header is 20 lines off; hunk 2's header is exactly right, and its context lines match exactly "
       "there (line 81). The engine moves hunk 2's hint by hunk 1's offset (-20, GNU patch style) and places it "
       "at the identical block nearest the moved hint (line 62, in next_back()) — the wrong function, reported as "
       "success. A match exactly at the header's own line should win over the offset-moved hint (or: two "
       "matches, one at the header's line and one nearer the moved hint, is an ambiguity to refuse).")

# 42. Two fenced diffs, one per file, with prose between them (one reply, two code blocks).
def two_fences(d):
    parts = re.split(r"(?m)^(?=diff --git )", d)
    return ("First the header:\n\n```diff\n" + parts[1] + "```\n\nThen the Rust side:\n\n```diff\n" + parts[2] +
            "```\n\nBoth together keep the build green.\n")
ok("agent_two_fenced_diffs_with_prose", {"include/err.h": EH, "src/chain.rs": CH}, {"include/err.h": eh2, "src/chain.rs": ch2},
   damage=two_fences,
   summary=[{"path": "include/err.h", "additions": 3, "deletions": 2}, {"path": "src/chain.rs", "additions": 1, "deletions": 0}])

# 43. Codex anchors that contradict each other: the `def` line given is not in the named class (it is in a later
# class). The chunk must not land in that later class.
codex43 = """*** Begin Patch
*** Update File: configparser.py
@@ class NoSectionError(Error):
@@     def __init__(self, option, section):
         self.section = section
+        self.hint = None
*** End Patch
"""
bad("agent_codex_anchor_outside_its_class_refused", {"configparser.py": CP}, codex43,
    ["configparser.py", "hunk 1 of 1"],
    bug="`@@ class NoSectionError(Error):` then `@@     def __init__(self, option, section):` — that signature is not "
        "in NoSectionError but in NoOptionError, 60 lines later. The anchors are searched one after the other with no "
        "notion of the class ending, so the chunk lands in NoOptionError.__init__ and is reported as applied. The "
        "model named NoSectionError; landing in another class is a wrong result. Refuse when a later anchor is only "
        "found past the block of the earlier one (e.g. past the next line indented as little as the earlier anchor).")
print("done")
