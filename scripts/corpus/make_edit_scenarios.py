"""Builds tests/fixtures/edit/* (edit_file scenarios) from real files (see common.py).

Expected results are made here with Python's str.replace, never by execlayer.
"""
import sys

from common import *

TW = excerpt(f"{PY}/textwrap.py", 1, 260)
CP = excerpt(f"{PY}/configparser.py", 169, 340)
CH = excerpt(f"{REG}anyhow-1.0.105/src/chain.rs")
EXT = excerpt(f"{REG}clap_lex-1.1.2/src/ext.rs", 1, 120)
EH = excerpt("/usr/include/err.h")
AR = excerpt("/usr/include/ar.h")
RM = excerpt(f"{REG}regex-1.13.2/README.md", 1, 120)
ONLY = sys.argv[1:]


def numstat(before, after):
    out = {}
    for line in git_diff(before, after, "--numstat").splitlines():
        a, d, path = line.split("\t")
        out[path] = (int(a), int(d))
    return out


def ok(name, before, after, args, replacements, answer=None, bug=None, dry_run=False):
    if ONLY and name not in ONLY:
        return
    stats = numstat(before, after)
    summary = [{"path": p, "replacements": n, "additions": stats[p][0], "deletions": stats[p][1]}
               for p, n in replacements]
    write_scenario(name, before, expected=before if dry_run else after, args=args, summary=summary,
                   answer=answer, bug=bug, root="edit")


def bad(name, before, args, error, bug=None):
    if ONLY and name not in ONLY:
        return
    write_scenario(name, before, args=args, error=error, bug=bug, root="edit")


def r(text, old, new, count=1):
    return rep(text, old, new, count)


# Single exact edit.
old = "        chunks = [c for c in chunks if c]\n"
new = "        chunks = [c for c in chunks if c != '']\n"
ok("edit_single_exact_python", {"textwrap.py": TW}, {"textwrap.py": r(TW, old, new)},
   {"path": "textwrap.py", "old_string": old, "new_string": new}, [("textwrap.py", 1)],
   answer=["changed textwrap.py: 1 replacement (+1 -1)", "-        chunks = [c for c in chunks if c]",
           "+        chunks = [c for c in chunks if c != '']", "@@ -173,7 +173,7 @@"])

# replace_all across a Rust file.
cfg = '#[cfg(any(feature = "std", not(anyhow_no_core_error)))]'
n = CH.count(cfg)
ok("edit_replace_all_rust", {"src/chain.rs": CH}, {"src/chain.rs": CH.replace(cfg, '#[cfg(feature = "std")]')},
   {"path": "src/chain.rs", "old_string": cfg, "new_string": '#[cfg(feature = "std")]', "replace_all": True},
   [("src/chain.rs", n)], answer=[f"changed src/chain.rs: {n} replacements"])

# Edits in order: the second matches only the result of the first.
e1 = ("    def _split(self, text):\n", "    def _split_chunks(self, text):\n")
e2 = ('    def _split_chunks(self, text):\n        """_split(text : string) -> [string]\n',
      '    def _split_chunks(self, text):\n        """_split_chunks(text : string) -> [string]\n')
t = r(r(TW, *e1), *e2)
ok("edit_list_in_order_later_sees_earlier", {"textwrap.py": TW}, {"textwrap.py": t},
   {"path": "textwrap.py", "edits": [{"old_string": e1[0], "new_string": e1[1]}, {"old_string": e2[0], "new_string": e2[1]}]},
   [("textwrap.py", 2)])

# Several files, each edit naming its own path.
eh = r(EH, "#ifndef\t_ERR_H\n", "#ifndef\t_ERR_H /* guard */\n")
ar = r(AR, "#define ARMAG\t\"!<arch>\\n\"", "#define ARMAG\t\"!<arch>\\n\"\t/* global header */")
ok("edit_multi_file_per_edit_path", {"include/err.h": EH, "include/ar.h": AR}, {"include/err.h": eh, "include/ar.h": ar},
   {"edits": [{"path": "include/err.h", "old_string": "#ifndef\t_ERR_H\n", "new_string": "#ifndef\t_ERR_H /* guard */\n"},
              {"path": "include/ar.h", "old_string": "#define ARMAG\t\"!<arch>\\n\"",
               "new_string": "#define ARMAG\t\"!<arch>\\n\"\t/* global header */"}]},
   [("include/err.h", 1), ("include/ar.h", 1)],
   answer=["changed include/err.h: 1 replacement", "changed include/ar.h: 1 replacement"])

# CRLF file, multi-line old_string written with LF: the file keeps CRLF.
CPW = crlf(CP)
old = "    def __repr__(self):\n        return self.message\n"
new = "    def __repr__(self):\n        return f\"{type(self).__name__}({self.message!r})\"\n"
ok("edit_crlf_file_lf_old_string", {"configparser.py": CPW}, {"configparser.py": r(CPW, crlf(old), crlf(new))},
   {"path": "configparser.py", "old_string": old, "new_string": new}, [("configparser.py", 1)])

# CRLF file, one-line old_string (no newline in it), new_string adds lines with LF.
old = "    __str__ = __repr__"
new = "    __str__ = __repr__\n\n    def __reduce__(self):\n        return (type(self), (self.message,))"
ok("edit_crlf_single_line_old_multiline_new", {"configparser.py": CPW}, {"configparser.py": r(CPW, old, crlf(new))},
   {"path": "configparser.py", "old_string": old, "new_string": new}, [("configparser.py", 1)],
   bug="On a CRLF file, an old_string without a line break is found as is, so the CRLF conversion is skipped and the "
       "LF line breaks of new_string go into the file: the file ends up with mixed line endings (`__repr__\\n\\n    def "
       "__reduce__…\\r\\n`). Convert new_string's LF to CRLF whenever the file is CRLF (and new_string has no CR), "
       "not only when old_string needed converting.")

# CRLF file, old_string copied with CRLF, new_string written with LF.
old = "        self.section = section\r\n        self.args = (section, )\r\n"
new = "        self.section = section\n        self.args = (section,)\n"
ok("edit_crlf_old_with_crlf_new_with_lf", {"configparser.py": CPW}, {"configparser.py": r(CPW, old, crlf(new))},
   {"path": "configparser.py", "old_string": old, "new_string": new}, [("configparser.py", 1)],
   bug="On a CRLF file, an old_string that already has CRLF matches as is, and new_string's LF line breaks are written "
       "as LF: mixed line endings. The file should keep CRLF.")

# replace_all on a CRLF file with a multi-line LF old_string.
old = "        self.source = source\n        self.lineno = lineno\n"
new = "        self.source = source\n        self.lineno = lineno\n        self.filename = source\n"
ok("edit_replace_all_crlf", {"configparser.py": CPW}, {"configparser.py": CPW.replace(crlf(old), crlf(new))},
   {"path": "configparser.py", "old_string": old, "new_string": new, "replace_all": True}, [("configparser.py", 2)])

# Twice without replace_all: refused naming the lines.
twice = "                while let Some(cause) = next {\n                    next = cause.source();\n"
bad("edit_twice_refused_names_lines", {"src/chain.rs": CH},
    {"path": "src/chain.rs", "old_string": twice, "new_string": twice + "                    // one more\n"},
    ["src/chain.rs", "occurs 2 times (at lines 62, 81)", "replace_all"])

# Absent: the closest lines, with numbers and marks.
bad("edit_absent_shows_closest_lines", {"textwrap.py": TW},
    {"path": "textwrap.py",
     "old_string": "        if self.expand_tabs:\n            text = text.expandtabs(self.tab_size)\n        if self.replace_whitespace:\n",
     "new_string": "        if self.expand_tabs:\n            text = text.expandtabs()\n        if self.replace_whitespace:\n"},
    ["textwrap.py", "old_string is not in the file", "closest lines are 150-152 (2 of 3 lines alike",
     "   151 !|             text = text.expandtabs(self.tabsize)", "   150  |         if self.expand_tabs:"])

# Absent because of indentation only: the special hint.
bad("edit_indentation_only_difference_hint", {"textwrap.py": TW},
    {"path": "textwrap.py",
     "old_string": "    if width < 1:\n        space_left = 1\n    else:\n        space_left = width - cur_len\n",
     "new_string": "    space_left = max(1, width - cur_len) if width >= 1 else 1\n"},
    ["textwrap.py", "Lines 207-210 hold the same text with different whitespace or indentation",
     "   207 !|         if width < 1:"])

# A tab written as a space inside a line (C header `#define\tX`): a whitespace-only difference too.
bad("edit_tab_written_as_space_hint", {"include/err.h": EH},
    {"path": "include/err.h", "old_string": "#ifndef _ERR_H\n#define _ERR_H 1\n",
     "new_string": "#ifndef _ERR_H\n#define _ERR_H 2\n"},
    ["include/err.h", "Lines 19-20 hold the same text with different whitespace"],
    bug="old_string `#ifndef _ERR_H\\n#define _ERR_H 1` against the file's `#ifndef\\t_ERR_H` / `#define\\t_ERR_H\\t1` differs "
        "only in whitespace (tabs written as spaces, as models do), but the refusal says '0 of 2 lines alike'-style "
        "closest lines instead of the whitespace hint: the likeness test trims only the ends of lines. Compare with "
        "runs of whitespace collapsed.")

# Edits that cancel out.
bad("edit_cancel_out_refused", {"src/chain.rs": CH},
    {"path": "src/chain.rs", "edits": [{"old_string": "    #[cold]\n", "new_string": "    #[inline]\n"},
                                        {"old_string": "    #[inline]\n", "new_string": "    #[cold]\n"}]},
    ["src/chain.rs", "leave the file exactly as it was", "no file was changed"])

bad("edit_empty_old_string_refused", {"src/chain.rs": CH},
    {"path": "src/chain.rs", "old_string": "", "new_string": "// header\n"},
    ["src/chain.rs", "old_string is empty"])

bad("edit_same_old_new_refused", {"src/chain.rs": CH},
    {"path": "src/chain.rs", "old_string": "    #[cold]\n", "new_string": "    #[cold]\n"},
    ["src/chain.rs", "the same", "changes nothing"])

# One failing edit among three: nothing changes, the failing one named.
bad("edit_multi_one_failing_nothing_changed", {"textwrap.py": TW},
    {"path": "textwrap.py", "edits": [
        {"old_string": "        chunks = [c for c in chunks if c]\n", "new_string": "        chunks = [c for c in chunks if c != '']\n"},
        {"old_string": "        patsearch = self.sentence_end_re.match\n", "new_string": "        patsearch = self.sentence_end_re.fullmatch\n"},
        {"old_string": "            space_left = 1\n", "new_string": "            space_left = 2\n"}]},
    ["edit 2 (textwrap.py): old_string is not in the file", "the line most like its first line is 189",
     "   189  |         patsearch = self.sentence_end_re.search",
     "1 edit failed; no file was changed"])

# Two files, both failing: both reported.
bad("edit_multi_file_two_failures", {"include/err.h": EH, "include/ar.h": AR},
    {"edits": [{"path": "include/err.h", "old_string": "extern void warn (const char *__fmt, ...)\n", "new_string": "x\n"},
               {"path": "include/ar.h", "old_string": "#define ARFMAG\t\"`\\r\"", "new_string": "y"}]},
    ["edit 1 (include/err.h)", "edit 2 (include/ar.h)", "2 edits failed; no file was changed"])

# A missing file: refused naming it.
bad("edit_missing_file_refused", {"textwrap.py": TW},
    {"path": "Lib/textwrap.py", "old_string": "import re\n", "new_string": "import re as _re\n"},
    ["Lib/textwrap.py does not exist"])

# Dry run: nothing changes, the diff comes back.
old = "    fn try_str(&self) -> Result<&str, std::str::Utf8Error>;\n"
new = "    #[must_use]\n    fn try_str(&self) -> Result<&str, std::str::Utf8Error>;\n"
ok("edit_dry_run_returns_diff", {"src/ext.rs": EXT}, {"src/ext.rs": r(EXT, old, new)},
   {"path": "src/ext.rs", "old_string": old, "new_string": new, "dry_run": True}, [("src/ext.rs", 1)],
   answer=["Dry run", "nothing was changed", "+    #[must_use]", "--- a/src/ext.rs"], dry_run=True)

# A file without a final newline: it stays without one.
EHN = EH.rstrip("\n")
ok("edit_no_final_newline", {"include/err.h": EHN},
   {"include/err.h": r(EHN, "#endif\t/* err.h */", "#endif\t/* _ERR_H */")},
   {"path": "include/err.h", "old_string": "#endif\t/* err.h */", "new_string": "#endif\t/* _ERR_H */"},
   [("include/err.h", 1)], answer=["\\ No newline at end of file"])

# Unicode text (CJK, accents) in a Rust doc comment.
old = '    /// let s = std::ffi::OsStr::new("Löwe 老虎 Léopard Gepardi");\n'
new = '    /// let s = std::ffi::OsStr::new("Löwe 老虎 Léopard Gepardi 猎豹");\n'
ok("edit_unicode_text", {"src/ext.rs": EXT}, {"src/ext.rs": r(EXT, old, new)},
   {"path": "src/ext.rs", "old_string": old, "new_string": new}, [("src/ext.rs", 1)])

# Deleting a block with an empty new_string.
block = ("    # This less funky little regex just split on recognized spaces. E.g.\n"
         "    #   \"Hello there -- you goof-ball, use the -b option!\"\n"
         "    # splits into\n"
         "    #   Hello/ /there/ /--/ /you/ /goof-ball,/ /use/ /the/ /-b/ /option!/\n")
ok("edit_delete_block_empty_new_string", {"textwrap.py": TW}, {"textwrap.py": r(TW, block, "")},
   {"path": "textwrap.py", "old_string": block, "new_string": ""}, [("textwrap.py", 1)])

bad("edit_replace_all_absent_refused", {"src/chain.rs": CH},
    {"path": "src/chain.rs", "old_string": "anyhow_no_std_error", "new_string": "x", "replace_all": True},
    ["src/chain.rs", "old_string is not in the file"])

# Markdown doc with a fenced code block.
old = "To bring this crate into your repository, either add `regex` to your\n`Cargo.toml`, or run `cargo add regex`.\n"
new = "Add it with `cargo add regex`.\n"
ok("edit_markdown_doc", {"README.md": RM}, {"README.md": r(RM, old, new)},
   {"path": "README.md", "old_string": old, "new_string": new}, [("README.md", 1)])

bad("edit_both_forms_refused", {"src/chain.rs": CH},
    {"path": "src/chain.rs", "old_string": "    #[cold]\n", "new_string": "    #[inline]\n",
     "edits": [{"old_string": "    #[cold]\n", "new_string": "    #[inline]\n"}]},
    ["either `old_string` and `new_string`, or `edits`"])

bad("edit_edits_without_path_refused", {"src/chain.rs": CH},
    {"edits": [{"old_string": "    #[cold]\n", "new_string": "    #[inline]\n"}]},
    ["edit 1 has no file"])

# A miss on a CRLF file shows the lines without their CR.
bad("edit_crlf_miss_shows_lines", {"configparser.py": CPW},
    {"path": "configparser.py", "old_string": "class NoSectionError(Error):\n    \"\"\"Raised when no section matches.\"\"\"\n",
     "new_string": "class NoSectionError(KeyError):\n"},
    ["configparser.py", "closest lines are 14-15", "    14  | class NoSectionError(Error):"])



# A Latin-1 file (shlex.py's word characters, saved in ISO-8859-1): refused as not UTF-8, naming the file.
SHL = excerpt(f"{PY}/shlex.py", 19, 45).encode("latin-1")
bad("edit_latin1_file_refused", {"shlex.py": SHL},
    {"path": "shlex.py", "old_string": "        self.whitespace = ' \\t\\r\\n'\n", "new_string": "        self.whitespace = ' \\t\\r\\n\\f'\n"},
    ["shlex.py", "not UTF-8", "edit_file"],
    bug="edit_file on a file that is not UTF-8 answers `shlex.py is not UTF-8 text; apply_patch changes UTF-8 text files "
        "only`: the message names the other tool (Plan::current's wording is shared). Say edit_file (or 'this tool').")

# old_string copied with the line numbers of a numbered read (`cat -n` style): refused, showing the right lines.
numbered = "".join(f"{150 + i:>6}\t{l}\n" for i, l in enumerate(
    ["        if self.expand_tabs:", "            text = text.expandtabs(self.tabsize)"]))
bad("edit_old_string_with_line_number_prefixes", {"textwrap.py": TW},
    {"path": "textwrap.py", "old_string": numbered, "new_string": numbered.replace("self.tabsize", "8")},
    ["textwrap.py", "old_string is not in the file", "   150", "   151", "if self.expand_tabs:"])

# A file without a final newline, old_string ending with one: the refusal must say what differs.
bad("edit_no_final_newline_old_string_ends_with_newline", {"include/err.h": EHN},
    {"path": "include/err.h", "old_string": "__END_DECLS\n\n#endif\t/* err.h */\n", "new_string": "__END_DECLS\n\n#endif /* _ERR_H */\n"},
    ["include/err.h", "newline"],
    bug="The file has no newline at its end and old_string ends with one. The refusal says `Lines 60-62 hold the same "
        "text with different whitespace or indentation; copy them exactly as shown` and shows the three lines, "
        "identical to old_string — the model copies them again and fails again. Say that the file's last line has no "
        "final newline (or match old_string's final newline against the end of the file).")

# A dry run of an edit that cannot apply is an error, not a successful dry run.
bad("edit_dry_run_failing_edit_refused", {"src/chain.rs": CH},
    {"path": "src/chain.rs", "old_string": "    #[inline(never)]\n", "new_string": "    #[inline]\n", "dry_run": True},
    ["src/chain.rs", "old_string is not in the file"])
print("done")
