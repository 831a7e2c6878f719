//! Parsing what models and tools write as patches, into per-file hunks.
//!
//! Accepted: git diffs (`diff --git`, extended headers, quoted paths, renames),
//! plain unified diffs (`---`/`+++`, with or without `a/` `b/`, timestamps,
//! `/dev/null`), mail from `git format-patch`, text around the diff (prose,
//! markdown fences), and Codex's envelope (`*** Begin Patch` … `*** End Patch`).
//!
//! A hunk header's counts are hints: the body is read for what it is and the
//! counts recounted from it, so a miscounted header still parses (and the
//! result says it was recounted). Line numbers are hints too; a header without
//! them (`@@`, `@@ def name():`) is placed by its content (see `place`).

/// One line of a hunk body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HunkLine {
    pub kind: LineKind,
    /// The line's text, without its line ending.
    pub text: String,
    /// The patch wrote this line with `\r\n`.
    pub crlf: bool,
    /// Followed by `\ No newline at end of file`.
    pub no_newline: bool,
    /// An empty line in the patch, read as blank context.
    pub bare_blank: bool,
}

impl HunkLine {
    /// A body line as written (`line` without its ending, `raw` with it);
    /// an empty line is blank context.
    fn read(kind: LineKind, line: &str, raw: &str) -> Self {
        Self {
            kind,
            text: line.get(1..).unwrap_or_default().to_owned(),
            crlf: raw.ends_with("\r\n"),
            no_newline: false,
            bare_blank: line.is_empty(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Context,
    Delete,
    Insert,
}

/// One hunk, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    /// The header line as written (`@@ -3,7 +3,8 @@ fn main()`, `@@`, or
    /// `(first chunk)` for a Codex chunk without one).
    pub header: String,
    /// Line the old side starts at (1-based; 0 means before the first line),
    /// when the header gives one.
    pub old_start: Option<usize>,
    /// The header's counts, when it gives them: (old, new).
    pub counts: Option<(usize, usize)>,
    /// Lines to find before placing the hunk (`@@ def name():`), in order.
    pub anchors: Vec<String>,
    pub lines: Vec<HunkLine>,
    /// Codex's `*** End of File`: the hunk ends at the end of the file.
    pub at_eof: bool,
}

impl Hunk {
    /// (old lines, new lines) counted from the body.
    pub fn body_counts(&self) -> (usize, usize) {
        let old = self.lines.iter().filter(|l| l.kind != LineKind::Insert).count();
        let new = self.lines.iter().filter(|l| l.kind != LineKind::Delete).count();
        (old, new)
    }

    /// Whether the header's counts disagree with the body.
    pub fn recounted(&self) -> bool {
        self.counts.is_some_and(|c| c != self.body_counts())
    }

    pub fn changes(&self) -> (usize, usize) {
        let adds = self.lines.iter().filter(|l| l.kind == LineKind::Insert).count();
        let dels = self.lines.iter().filter(|l| l.kind == LineKind::Delete).count();
        (adds, dels)
    }
}

/// What a patch says about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePatch {
    /// Path before (`None`: the file is created).
    pub old: Option<String>,
    /// Path after (`None`: the file is deleted).
    pub new: Option<String>,
    pub hunks: Vec<Hunk>,
    /// Codex `*** Delete File`: delete whatever the file holds.
    pub delete_any: bool,
    /// Codex `*** Add File`: the content, whole.
    pub added: Option<String>,
    /// A plain `---`/`+++` pair (no git header): two different names mean
    /// one file (`diff -u f.orig f`), never a rename.
    pub plain: bool,
}

/// A patch that cannot be read, with where and what to do.
pub type ParseError = String;

const WANTED: &str = "give a unified diff (`--- a/file`, `+++ b/file`, then `@@ -l,n +l,n @@` hunks whose lines start with ' ', '-' or '+'), or Codex's envelope (`*** Begin Patch`, `*** Update File: path`, `@@`, … `*** End Patch`)";

/// Reads every file patch out of `text`.
pub fn parse(text: &str) -> Result<Vec<FilePatch>, ParseError> {
    if text.trim().is_empty() {
        return Err(format!("patch is empty; {WANTED}"));
    }
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut p = Parser { lines: &lines, i: 0 };
    let files = p.all()?;
    if files.is_empty() {
        return Err(format!("the text holds no patch; {WANTED}"));
    }
    Ok(files)
}

struct Parser<'a> {
    lines: &'a [&'a str],
    i: usize,
}

/// A line without its ending.
fn body(line: &str) -> &str {
    line.strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(line)
}

impl<'a> Parser<'a> {
    fn peek(&self, k: usize) -> Option<&'a str> {
        self.lines.get(self.i + k).map(|l| body(l))
    }

    fn all(&mut self) -> Result<Vec<FilePatch>, ParseError> {
        let mut files: Vec<FilePatch> = Vec::new();
        let mut current: Option<FilePatch> = None;
        // Just after a hunk (only blank lines since): marked lines here are suspect.
        let mut after_hunk = false;
        while let Some(line) = self.peek(0) {
            let line_no = self.i + 1;
            if line.starts_with("*** Begin Patch") {
                files.extend(current.take());
                self.i += 1;
                files.extend(self.codex()?);
            } else if let Some(rest) = line.strip_prefix("diff --git ") {
                files.extend(current.take());
                self.i += 1;
                current = Some(self.git_file(rest, line_no)?);
            } else if line.starts_with("--- ") && self.peek(1).is_some_and(|l| l.starts_with("+++ ")) {
                let old_raw = &line[4..];
                let new_raw = &self.peek(1).unwrap_or_default()[4..];
                self.i += 2;
                // A git file header already named the paths; `---`/`+++` confirm them.
                let continues = current
                    .as_ref()
                    .is_some_and(|c| c.hunks.is_empty() && c.added.is_none());
                match current.take() {
                    Some(mut c) if continues => {
                        c.old = header_path(old_raw, true)?;
                        c.new = header_path(new_raw, true)?;
                        current = Some(c);
                    }
                    previous => {
                        files.extend(previous);
                        current = Some(plain_file(old_raw, new_raw, line_no)?);
                    }
                }
            } else if line.starts_with("@@") {
                let Some(file) = current.as_mut() else {
                    return Err(format!(
                        "line {line_no}: hunk `{}` comes before any file header; put `--- a/PATH` and `+++ b/PATH` (or `*** Update File: PATH` inside `*** Begin Patch`) before it",
                        shorten(line)
                    ));
                };
                self.i += 1;
                let name = file.new.clone().or(file.old.clone()).unwrap_or_default();
                let hunk = self.hunk(line, line_no).map_err(|e| format!("{name}: {e}"))?;
                file.hunks.push(hunk);
                after_hunk = true;
                continue;
            } else if after_hunk && (line.starts_with(' ') || line.starts_with('+')) {
                return Err(format!(
                    "line {line_no}: `{}` looks like a hunk line but comes after the hunk ended (at a blank line, past the lines its header counts); fix the hunk header's counts, or mark blank context lines with a single space",
                    shorten(line)
                ));
            } else {
                // Prose, fences, mail headers, `index` lines: not part of the patch.
                self.i += 1;
            }
            if !line.trim().is_empty() {
                after_hunk = false;
            }
        }
        files.extend(current);
        Ok(files)
    }

    /// A `diff --git` file: extended headers, then `---`/`+++` if any.
    fn git_file(&mut self, rest: &str, line_no: usize) -> Result<FilePatch, ParseError> {
        let (mut old, mut new) = match git_header_paths(rest) {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        let mut created = false;
        let mut deleted = false;
        while let Some(line) = self.peek(0) {
            if let Some(p) = line.strip_prefix("rename from ") {
                old = Some(unquote(p)?);
            } else if let Some(p) = line.strip_prefix("rename to ") {
                new = Some(unquote(p)?);
            } else if line.starts_with("copy from ") || line.starts_with("copy to ") {
                return Err(format!(
                    "line {}: copy patches are not supported; create the new file instead",
                    self.i + 1
                ));
            } else if line.starts_with("new file mode") {
                created = true;
            } else if line.starts_with("deleted file mode") {
                deleted = true;
            } else if line.starts_with("GIT binary patch")
                || (line.starts_with("Binary files ") && line.ends_with(" differ"))
            {
                let name = new.clone().or(old.clone()).unwrap_or_default();
                return Err(format!(
                    "{name} has a binary patch; apply_patch changes text files only"
                ));
            } else if !(line.starts_with("index ")
                || line.starts_with("old mode ")
                || line.starts_with("new mode ")
                || line.starts_with("similarity index ")
                || line.starts_with("dissimilarity index "))
            {
                break;
            }
            self.i += 1;
        }
        if old.is_none() && new.is_none() {
            return Err(format!(
                "line {line_no}: cannot read the paths of `diff --git {}`; add `--- a/PATH` and `+++ b/PATH` lines",
                shorten(rest)
            ));
        }
        Ok(FilePatch {
            old: if created { None } else { old.clone().or(new.clone()) },
            new: if deleted { None } else { new.or(old) },
            hunks: Vec::new(),
            delete_any: false,
            added: None,
            plain: false,
        })
    }

    /// One hunk; the cursor is on the first body line.
    fn hunk(&mut self, header: &str, line_no: usize) -> Result<Hunk, ParseError> {
        let (old_start, counts, anchors) = parse_header(header, line_no)?;
        let mut hunk = Hunk {
            header: header.trim_end().to_owned(),
            old_start,
            counts,
            anchors,
            lines: Vec::new(),
            at_eof: false,
        };
        while let Some(raw) = self.lines.get(self.i) {
            let line = body(raw);
            let (old_n, new_n) = hunk.body_counts();
            let counted_out = counts.is_some_and(|(o, n)| old_n >= o && new_n >= n);
            let within_counts = counts.is_some_and(|(o, n)| old_n < o || new_n < n);
            if line.starts_with('\\') {
                // `\ No newline at end of file` (in any language).
                if let Some(last) = hunk.lines.last_mut() {
                    last.no_newline = true;
                    // The line's `\n` is the diff's, not the file's: a `\r`
                    // before it is the line's last character (a file ending in
                    // a bare CR), unless the patch was converted to CRLF as a
                    // whole (then this marker line ends in CRLF too).
                    if last.crlf && !raw.ends_with("\r\n") {
                        last.text.push('\r');
                        last.crlf = false;
                    }
                }
                self.i += 1;
                continue;
            }
            if line.starts_with("@@") || line.starts_with("diff --git ") || line.starts_with("*** ") {
                break;
            }
            let next = self.peek(1);
            // A `---`/`+++` pair before an `@@` is the next file, whatever the counts say.
            let file_header = line.starts_with("--- ") && next.is_some_and(|l| l.starts_with("+++ "));
            if file_header && (!within_counts || self.peek(2).is_some_and(|l| l.starts_with("@@"))) {
                break;
            }
            let kind = match line.as_bytes().first() {
                Some(b' ') => LineKind::Context,
                Some(b'-') => LineKind::Delete,
                Some(b'+') => LineKind::Insert,
                None => LineKind::Context,
                Some(_) if within_counts && self.marked_lines_follow() => {
                    return Err(format!(
                        "line {}: `{}` is inside hunk `{}` (its header counts {} old and {} new lines; {old_n} and {new_n} read so far) but has no ' ', '-' or '+' mark; start unchanged lines with a space, removed lines with '-', added lines with '+'",
                        self.i + 1,
                        shorten(line),
                        shorten(header.trim_end()),
                        counts.map_or(0, |c| c.0),
                        counts.map_or(0, |c| c.1),
                    ));
                }
                Some(_) => break,
            };
            if counted_out && line.is_empty() {
                // Past the header's counts, a blank line ends the hunk (text may follow).
                break;
            }
            if !within_counts {
                // `git format-patch` mail ends with `-- ` and the git version.
                let signature = matches!(line, "-- " | "--")
                    && counted_out
                    && next.is_none_or(|l| l.is_empty() || l.chars().all(|c| c.is_ascii_digit() || c == '.'));
                if signature || line.starts_with("*** ") {
                    break;
                }
            }
            hunk.lines.push(HunkLine::read(kind, line, raw));
            self.i += 1;
        }
        // Empty lines after the last real line are spacing, not context.
        while hunk.lines.last().is_some_and(|l| l.bare_blank) {
            hunk.lines.pop();
        }
        Ok(hunk)
    }

    /// Whether hunk lines (' ', '-', '+') come after the current line, before
    /// the next hunk, file or the end: then an unmarked line inside a hunk is
    /// a broken line, not the end of the patch.
    fn marked_lines_follow(&self) -> bool {
        self.lines[self.i + 1..]
            .iter()
            .map(|l| body(l))
            .take_while(|l| !l.starts_with("@@") && !l.starts_with("diff --git ") && !l.starts_with("*** "))
            .any(|l| l.starts_with([' ', '-', '+']) && !l.starts_with("--- ") && !l.starts_with("+++ "))
    }

    /// Codex's envelope; the cursor is after `*** Begin Patch`.
    fn codex(&mut self) -> Result<Vec<FilePatch>, ParseError> {
        let mut files = Vec::new();
        loop {
            let Some(line) = self.peek(0) else {
                return Err(
                    "the patch has `*** Begin Patch` but no `*** End Patch`; end it with `*** End Patch`".into(),
                );
            };
            let line_no = self.i + 1;
            let line = line.trim_end();
            self.i += 1;
            if line == "*** End Patch" {
                return Ok(files);
            } else if let Some(path) = line.strip_prefix("*** Add File: ") {
                let mut content = String::new();
                // Every line of the new file starts with '+'; anything else ends it.
                while let Some(text) = self.peek(0).and_then(|l| l.strip_prefix('+')) {
                    content.push_str(text);
                    content.push('\n');
                    self.i += 1;
                }
                files.push(FilePatch {
                    old: None,
                    new: Some(path.trim().to_owned()),
                    hunks: Vec::new(),
                    delete_any: false,
                    added: Some(content),
                    plain: false,
                });
            } else if let Some(path) = line.strip_prefix("*** Delete File: ") {
                files.push(FilePatch {
                    old: Some(path.trim().to_owned()),
                    new: None,
                    hunks: Vec::new(),
                    delete_any: true,
                    added: None,
                    plain: false,
                });
            } else if let Some(path) = line.strip_prefix("*** Update File: ") {
                let path = path.trim().to_owned();
                let mut new = path.clone();
                if let Some(to) = self.peek(0).and_then(|l| l.strip_prefix("*** Move to: ")) {
                    new = to.trim().to_owned();
                    self.i += 1;
                }
                let hunks = self.codex_chunks(&path)?;
                files.push(FilePatch {
                    old: Some(path),
                    new: Some(new),
                    hunks,
                    delete_any: false,
                    added: None,
                    plain: false,
                });
            } else if line.is_empty() {
                continue;
            } else {
                return Err(format!(
                    "line {line_no}: `{}` is not a Codex patch line; inside `*** Begin Patch` each file starts with `*** Add File: PATH`, `*** Delete File: PATH` or `*** Update File: PATH`",
                    shorten(line)
                ));
            }
        }
    }

    /// The chunks of a Codex `*** Update File`.
    fn codex_chunks(&mut self, path: &str) -> Result<Vec<Hunk>, ParseError> {
        let mut hunks: Vec<Hunk> = Vec::new();
        let new_hunk = |header: String, anchors: Vec<String>| Hunk {
            header,
            old_start: None,
            counts: None,
            anchors,
            lines: Vec::new(),
            at_eof: false,
        };
        while let Some(line) = self.peek(0) {
            if line.trim_end() == "*** End of File" {
                if let Some(h) = hunks.last_mut() {
                    h.at_eof = true;
                }
                self.i += 1;
                continue;
            }
            if line.starts_with("*** ") {
                break;
            }
            if let Some(anchor) = line.strip_prefix("@@") {
                let anchor = anchor.trim();
                let anchor = anchor.strip_suffix("@@").map(str::trim).unwrap_or(anchor);
                // Consecutive `@@` lines narrow down (class, then method).
                match hunks.last_mut() {
                    Some(h) if h.lines.is_empty() => {
                        if !anchor.is_empty() {
                            h.anchors.push(anchor.to_owned());
                        }
                        h.header.push_str(&format!(" / {}", line.trim_end()));
                    }
                    _ => hunks.push(new_hunk(
                        line.trim_end().to_owned(),
                        if anchor.is_empty() {
                            vec![]
                        } else {
                            vec![anchor.to_owned()]
                        },
                    )),
                }
                self.i += 1;
                continue;
            }
            let raw = self.lines[self.i];
            let kind = match line.as_bytes().first() {
                Some(b' ') | None => LineKind::Context,
                Some(b'-') => LineKind::Delete,
                Some(b'+') => LineKind::Insert,
                Some(_) => {
                    return Err(format!(
                        "line {}: `{}` in the update of {path} does not start with ' ', '-', '+' or `@@`; every line of a chunk needs one of those marks",
                        self.i + 1,
                        shorten(line)
                    ));
                }
            };
            if hunks.is_empty() {
                hunks.push(new_hunk("(first chunk, no @@)".into(), vec![]));
            }
            if let Some(h) = hunks.last_mut() {
                h.lines.push(HunkLine::read(kind, line, raw));
            }
            self.i += 1;
        }
        for h in &mut hunks {
            while h.lines.last().is_some_and(|l| l.bare_blank) {
                h.lines.pop();
            }
        }
        Ok(hunks)
    }
}

/// `@@ -a,b +c,d @@ text`, `@@ -a +c @@`, `@@`, `@@ anchor`, `@@ anchor @@`.
type Header = (Option<usize>, Option<(usize, usize)>, Vec<String>);

fn parse_header(header: &str, line_no: usize) -> Result<Header, ParseError> {
    let rest = header.trim_end().trim_start_matches('@').trim_start();
    if let Some(ranges) = rest.strip_prefix('-') {
        let end = ranges.find("@@").unwrap_or(ranges.len());
        let mut parts = ranges[..end].split_whitespace();
        let old = parts.next().unwrap_or_default();
        let new = parts.next().and_then(|p| p.strip_prefix('+'));
        let range = |r: &str| -> Option<(usize, Option<usize>)> {
            let mut it = r.splitn(2, ',');
            let start = it.next()?.parse().ok()?;
            let count = match it.next() {
                Some(c) => Some(c.parse().ok()?),
                None => None,
            };
            Some((start, count))
        };
        if let (Some((os, oc)), Some((_, nc))) = (range(old), new.and_then(range)) {
            let counts = (oc.unwrap_or(1), nc.unwrap_or(1));
            return Ok((Some(os), Some(counts), Vec::new()));
        }
        if old.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            return Err(format!(
                "line {line_no}: hunk header `{}` cannot be read; write it as `@@ -START,COUNT +START,COUNT @@`, or as a bare `@@` to have the hunk placed by its lines",
                shorten(header)
            ));
        }
    }
    let anchor = rest.strip_suffix("@@").map(str::trim_end).unwrap_or(rest).trim();
    Ok((
        None,
        None,
        if anchor.is_empty() {
            vec![]
        } else {
            vec![anchor.to_owned()]
        },
    ))
}

/// The two paths of `diff --git a/X b/Y` (prefixes stripped).
fn git_header_paths(rest: &str) -> Option<(String, String)> {
    let rest = rest.trim_end();
    if rest.starts_with('"') {
        let (a, tail) = split_quoted(rest)?;
        let b = unquote(tail.trim_start()).ok()?;
        return Some((strip_one(&a), strip_one(&b)));
    }
    // `a/X b/X`: with spaces in X, the split is where both halves agree.
    let mut candidates = Vec::new();
    for (i, _) in rest.match_indices(' ') {
        let (a, b) = (&rest[..i], &rest[i + 1..]);
        if !b.is_empty() {
            candidates.push((a, b));
        }
    }
    let agree = candidates.iter().find(|(a, b)| strip_one(a) == strip_one(b));
    let (a, b) = agree.or(candidates.first())?;
    let b = if b.starts_with('"') {
        unquote(b).ok()?
    } else {
        (*b).to_owned()
    };
    Some((strip_one(a), strip_one(&b)))
}

fn strip_one(path: &str) -> String {
    path.split_once('/').map(|(_, rest)| rest).unwrap_or(path).to_owned()
}

fn split_quoted(text: &str) -> Option<(String, &str)> {
    let bytes = text.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some((unquote(&text[..=i]).ok()?, &text[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

/// Undoes git's C-style quoting (`"caf\303\251.txt"`).
fn unquote(text: &str) -> Result<String, ParseError> {
    let text = text.trim_end();
    let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
        return Ok(text.to_owned());
    };
    let mut out = Vec::with_capacity(inner.len());
    let bytes = inner.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let Some(&c) = bytes.get(i + 1) else { break };
        i += 2;
        out.push(match c {
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'a' => 7,
            b'b' => 8,
            b'f' => 12,
            b'v' => 11,
            b'0'..=b'7' => {
                // Git writes a byte as exactly three octal digits (`\303`).
                let digits = bytes
                    .get(i - 1..i + 2)
                    .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
                let value = digits
                    .map(|d| d.iter().fold(0u16, |v, b| v * 8 + u16::from(b - b'0')))
                    .and_then(|v| u8::try_from(v).ok())
                    .ok_or_else(|| {
                        format!("bad escape in path {text}: a `\\` and a digit must be three octal digits, e.g. \\303")
                    })?;
                i += 2;
                value
            }
            other => other,
        });
    }
    String::from_utf8(out).map_err(|_| format!("path {text} is not UTF-8"))
}

/// The path of a `---`/`+++` line: `None` for `/dev/null`; timestamps and
/// the `a/`/`b/` prefix (when `strip`) removed.
fn header_path(raw: &str, strip: bool) -> Result<Option<String>, ParseError> {
    let raw = raw.trim_end_matches(['\r', '\n']);
    let path = if raw.starts_with('"') {
        unquote(raw)?
    } else {
        // A tab ends the name (diff's timestamps; git's marker for spaces).
        raw.split('\t').next().unwrap_or(raw).trim_end().to_owned()
    };
    if path == "/dev/null" {
        return Ok(None);
    }
    Ok(Some(if strip { strip_one(&path) } else { path }))
}

/// A plain `---`/`+++` pair: prefixes stripped when both sides carry them.
fn plain_file(old_raw: &str, new_raw: &str, line_no: usize) -> Result<FilePatch, ParseError> {
    let old = header_path(old_raw, false)?;
    let new = header_path(new_raw, false)?;
    let prefixed = match (&old, &new) {
        (Some(o), Some(n)) => o.starts_with("a/") && n.starts_with("b/"),
        (None, Some(n)) => n.starts_with("b/"),
        (Some(o), None) => o.starts_with("a/"),
        (None, None) => {
            return Err(format!(
                "line {line_no}: both `---` and `+++` name /dev/null; one of them must name the file"
            ));
        }
    };
    let fix = |p: Option<String>| if prefixed { p.map(|p| strip_one(&p)) } else { p };
    Ok(FilePatch {
        old: fix(old),
        new: fix(new),
        hunks: Vec::new(),
        delete_any: false,
        added: None,
        plain: true,
    })
}

/// A line shortened for an error message.
pub fn shorten(line: &str) -> String {
    let (cut, truncated) = crate::tools::truncate_str(line, 80);
    if truncated { format!("{cut}…") } else { cut.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn miscounted_header_is_recounted() {
        let files = parse("--- a/x\n+++ b/x\n@@ -1,9 +1,9 @@\n a\n-b\n+c\n d\n").unwrap();
        let h = &files[0].hunks[0];
        assert_eq!(h.body_counts(), (3, 3));
        assert!(h.recounted());
        assert_eq!(h.old_start, Some(1));
    }

    #[test]
    fn bare_and_anchor_headers_have_no_line_numbers() {
        let files = parse("--- a/x.py\n+++ b/x.py\n@@\n a\n-b\n+c\n@@ def f():\n-d\n+e\n").unwrap();
        assert_eq!(files[0].hunks.len(), 2);
        assert_eq!(files[0].hunks[0].old_start, None);
        assert_eq!(files[0].hunks[1].anchors, vec!["def f():".to_owned()]);
    }

    #[test]
    fn codex_envelope_reads_every_operation() {
        let text = "*** Begin Patch\n*** Add File: new.txt\n+hello\n*** Delete File: old.txt\n*** Update File: a.py\n*** Move to: b.py\n@@ class A:\n@@     def f(self):\n-        return 1\n+        return 2\n*** End of File\n*** End Patch\n";
        let files = parse(text).unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(files[0].added.as_deref(), Some("hello\n"));
        assert!(files[1].delete_any);
        assert_eq!(files[2].new.as_deref(), Some("b.py"));
        assert_eq!(files[2].hunks[0].anchors, vec!["class A:", "def f(self):"]);
        assert!(files[2].hunks[0].at_eof);
    }

    #[test]
    fn git_paths_with_spaces_and_quotes() {
        assert_eq!(
            git_header_paths("a/my notes/to do.txt b/my notes/to do.txt"),
            Some(("my notes/to do.txt".into(), "my notes/to do.txt".into()))
        );
        assert_eq!(unquote("\"caf\\303\\251.txt\"").unwrap(), "café.txt");
    }

    #[test]
    fn a_short_or_oversized_octal_escape_is_refused_not_a_panic() {
        // Found by the patch fuzzer: a digit escape followed by a multi-byte character.
        for quoted in ["\"b/donn\\3\u{3da}s.txt\"", "\"x\\7\"", "\"x\\777\"", "\"x\\38a\""] {
            let err = unquote(quoted).unwrap_err();
            assert!(err.contains("three octal digits"), "{quoted}: {err}");
        }
        assert_eq!(unquote("\"\\101\\0120\"").unwrap(), "A\n0");
    }

    #[test]
    fn signature_after_counted_hunk_is_not_a_line() {
        let files = parse("--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n-- \n2.43.0\n").unwrap();
        assert_eq!(files[0].hunks[0].lines.len(), 3);
    }

    #[test]
    fn dashes_inside_counts_are_body() {
        // Removing a SQL comment `-- x` writes `--- x`; within the counts it is a line.
        let files = parse("--- a/q.sql\n+++ b/q.sql\n@@ -1,2 +1,2 @@\n--- x\n+++ y\n select 1;\n").unwrap();
        let h = &files[0].hunks[0];
        assert_eq!(h.lines[0].kind, LineKind::Delete);
        assert_eq!(h.lines[0].text, "-- x");
    }
}
