//! Placing hunks in a file and applying them, or saying exactly why not.
//!
//! A hunk is placed where its context and removed lines (its pre-image) are
//! found. With line numbers, the match nearest the hinted line wins (the hint
//! moves by the offset the previous hunk landed at, as in GNU patch); without
//! them it must match in one place only, after the previous hunk (or after its
//! `@@ anchor` line). Lines are compared exactly first, then ignoring trailing
//! whitespace, then ignoring indentation and typographic punctuation; line
//! endings never matter for matching. Untouched and context lines keep their
//! bytes; inserted lines take the line ending of the lines around them.
//!
//! Everything is linear in the file's size for a hunk of a given length.

use schemars::JsonSchema;
use serde::Serialize;

use super::parse::{Hunk, HunkLine, LineKind, shorten};

/// How a hunk's lines were matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Fuzz {
    Exact,
    /// Trailing whitespace differed.
    TrailingWhitespace,
    /// Indentation or typographic quotes and dashes differed.
    Whitespace,
}

impl Fuzz {
    const ALL: [Fuzz; 3] = [Fuzz::Exact, Fuzz::TrailingWhitespace, Fuzz::Whitespace];

    fn same(self, want: &str, have: &str) -> bool {
        match self {
            Fuzz::Exact => want == have,
            Fuzz::TrailingWhitespace => want.trim_end() == have.trim_end(),
            Fuzz::Whitespace => loose_eq(want, have),
        }
    }
}

/// Equal once outer whitespace is dropped and typographic punctuation is
/// read as ASCII.
fn loose_eq(a: &str, b: &str) -> bool {
    let norm = |c: char| match c {
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' => '\'',
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' => '"',
        '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
        '\u{00A0}' | '\u{2002}'..='\u{200A}' | '\u{202F}' | '\u{3000}' => ' ',
        c => c,
    };
    a.trim().chars().map(norm).eq(b.trim().chars().map(norm))
}

/// Where one hunk landed.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Placement {
    /// Hunk number in its file, from 1.
    pub hunk: usize,
    /// The hunk's header as written.
    pub header: String,
    /// Line of the original file where the hunk starts (from 1).
    pub line: usize,
    /// The line the header named, when it named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hinted_line: Option<usize>,
    /// `line - hinted_line`: how far the hunk moved from its header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<isize>,
    /// How its lines were matched.
    pub matched: Fuzz,
    /// The header's line counts disagreed with the body and were recounted.
    pub recounted: bool,
    /// Other lines where the hunk's lines also match (at most 8), when it
    /// was placed away from its header's line: the nearest match was taken.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also_matches_at: Vec<usize>,
}

impl Placement {
    /// `hunk 2 at line 41 (2 lines below the header's line 39; header counts recounted)`.
    pub fn describe(&self) -> String {
        let mut notes = Vec::new();
        let hinted = self.hinted_line.unwrap_or(0);
        match self.offset {
            Some(0) => notes.push("where the header said".to_owned()),
            Some(d) => notes.push(format!(
                "{} line{} {} the header's line {hinted}",
                d.unsigned_abs(),
                if d.unsigned_abs() == 1 { "" } else { "s" },
                if d > 0 { "below" } else { "above" }
            )),
            None => notes.push("no line number: placed by its lines".to_owned()),
        }
        if !self.also_matches_at.is_empty() {
            let lines: Vec<String> = self.also_matches_at.iter().map(|l| l.to_string()).collect();
            notes.push(format!(
                "its lines also match at line {}; the one nearest the header was taken: check it is the place meant",
                lines.join(", ")
            ));
        }
        match self.matched {
            Fuzz::Exact => {}
            Fuzz::TrailingWhitespace => notes.push("trailing whitespace differed".into()),
            Fuzz::Whitespace => notes.push("indentation or punctuation differed".into()),
        }
        if self.recounted {
            notes.push("header counts recounted".into());
        }
        format!("hunk {} at line {} ({})", self.hunk, self.line, notes.join("; "))
    }
}

/// The file's lines: with their endings, and the text alone.
struct Lines<'a> {
    full: Vec<&'a str>,
    text: Vec<&'a str>,
}

impl<'a> Lines<'a> {
    fn new(base: &'a str) -> Self {
        let full: Vec<&str> = base.split_inclusive('\n').collect();
        let text = full
            .iter()
            // A CR is an ending only before LF: a last line without LF keeps it.
            .map(|l| l.strip_suffix("\r\n").or_else(|| l.strip_suffix('\n')).unwrap_or(l))
            .collect();
        Self { full, text }
    }

    fn len(&self) -> usize {
        self.full.len()
    }

    fn eol(&self, i: usize) -> &'a str {
        let l = self.full[i];
        if l.ends_with("\r\n") {
            "\r\n"
        } else if l.ends_with('\n') {
            "\n"
        } else {
            ""
        }
    }

    /// Positions from `from` where `pre` matches under `fuzz`.
    fn matches(&self, pre: &[&str], fuzz: Fuzz, from: usize) -> Vec<usize> {
        let n = self.len();
        if pre.len() > n || from > n - pre.len() {
            return Vec::new();
        }
        (from..=n - pre.len())
            .filter(|&at| pre.iter().zip(&self.text[at..]).all(|(w, h)| fuzz.same(w, h)))
            .collect()
    }
}

fn pre_image(hunk: &Hunk) -> Vec<&str> {
    hunk.lines
        .iter()
        .filter(|l| l.kind != LineKind::Insert)
        .map(|l| l.text.as_str())
        .collect()
}

/// Places and applies `hunks` to `base`. On failure, one message per hunk
/// that could not be placed (all of them, not only the first).
pub fn apply(base: &str, hunks: &[Hunk], shown: &str) -> Result<(String, Vec<Placement>), Vec<String>> {
    let lines = Lines::new(base);
    let total = hunks.len();
    let mut cursor = 0usize;
    let mut offset: isize = 0;
    // (start, old lines taken, the hunk's index, its placement, its lines re-indented)
    let mut placed: Vec<Spot> = Vec::new();
    let mut failures = Vec::new();
    for (n, hunk) in hunks.iter().enumerate() {
        let taken: Vec<(usize, usize)> = placed.iter().map(|p| (p.at, p.len)).collect();
        match place_one(&lines, hunk, cursor, offset, &taken) {
            Ok(found) => {
                let len = pre_image(hunk).len();
                cursor = found.at + len;
                if let Some(h) = found.header {
                    offset = found.at as isize - h as isize;
                }
                placed.push(Spot {
                    at: found.at,
                    len,
                    hunk: n,
                    indent: found.indent,
                    placement: Placement {
                        hunk: n + 1,
                        header: hunk.header.clone(),
                        line: found.at + 1,
                        hinted_line: found.header.map(|h| h + 1),
                        offset: found.header.map(|h| found.at as isize - h as isize),
                        matched: found.fuzz,
                        recounted: hunk.recounted(),
                        also_matches_at: found.others.iter().map(|at| at + 1).collect(),
                    },
                });
            }
            Err(why) => failures.push(format!(
                "{shown}: hunk {} of {total} (`{}`) {why}",
                n + 1,
                shorten(&hunk.header)
            )),
        }
    }
    if !failures.is_empty() {
        return Err(failures);
    }
    // Hunks given out of order are applied in file order.
    placed.sort_by_key(|p| (p.at, p.hunk));
    let out = splice(&lines, hunks, &placed);
    Ok((out, placed.into_iter().map(|p| p.placement).collect()))
}

/// A placed hunk.
struct Spot {
    at: usize,
    len: usize,
    hunk: usize,
    /// How to re-indent each line of the hunk (empty: as written).
    indent: Vec<Reindent>,
    placement: Placement,
}

/// Where one hunk goes and how.
struct Found {
    at: usize,
    fuzz: Fuzz,
    /// The index the header itself names.
    header: Option<usize>,
    indent: Vec<Reindent>,
    /// The other places the lines matched, when one was chosen by nearness.
    others: Vec<usize>,
}

/// How to re-indent inserted lines when the hunk matched with its
/// indentation off by a uniform amount.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Reindent {
    #[default]
    Keep,
    /// Prepend this to every inserted line.
    Add(String),
    /// Remove this prefix from every inserted line.
    Strip(String),
}

fn leading_ws(line: &str) -> &str {
    &line[..line.len() - line.trim_start().len()]
}

/// The indentation change from a hunk line to the file's line, or `None`
/// when one indentation is not a suffix of the other (tabs for spaces).
fn indent_delta(want: &str, have: &str) -> Option<Reindent> {
    let (w, h) = (leading_ws(want), leading_ws(have));
    if w == h {
        Some(Reindent::Keep)
    } else if let Some(extra) = h.strip_suffix(w) {
        Some(Reindent::Add(extra.to_owned()))
    } else {
        w.strip_suffix(h).map(|extra| Reindent::Strip(extra.to_owned()))
    }
}

/// For each line of `hunk` matched at `file` with indentation ignored: how to
/// re-indent it, taken from the nearest unchanged or removed line before it
/// (or after it, at the start). `None` when the change cannot be carried over.
fn reindent(hunk: &Hunk, file: &[&str]) -> Option<Vec<Reindent>> {
    let mut deltas: Vec<Option<Reindent>> = Vec::with_capacity(hunk.lines.len());
    let mut k = 0;
    for line in &hunk.lines {
        if line.kind == LineKind::Insert {
            deltas.push(None);
            continue;
        }
        let have = file.get(k).copied().unwrap_or("");
        k += 1;
        if line.text.trim().is_empty() || have.trim().is_empty() {
            deltas.push(None);
        } else {
            deltas.push(Some(indent_delta(&line.text, have)?));
        }
    }
    let mut out = vec![Reindent::Keep; hunk.lines.len()];
    let mut last: Option<Reindent> = None;
    for (i, line) in hunk.lines.iter().enumerate() {
        if line.kind == LineKind::Insert {
            out[i] = last
                .clone()
                .or_else(|| deltas[i..].iter().flatten().next().cloned())
                .unwrap_or_default();
        } else if let Some(d) = &deltas[i] {
            last = Some(d.clone());
        }
    }
    Some(out)
}

/// Lines after `anchor` that belong to it: up to the next non-blank line
/// indented no deeper (a line opening with `{` continues it; one closing
/// with `}` `)` `]` is its last).
fn block_end(lines: &Lines<'_>, anchor: usize) -> usize {
    let depth = leading_ws(lines.text[anchor]).len();
    for i in anchor + 1..lines.len() {
        let t = lines.text[i];
        if t.trim().is_empty() || leading_ws(t).len() > depth || t.trim_start().starts_with('{') {
            continue;
        }
        return if t.trim_start().starts_with(['}', ')', ']']) {
            i + 1
        } else {
            i
        };
    }
    lines.len()
}

/// Where `hunk` goes, or why it cannot be placed. `taken` are the
/// (start, length) of hunks already placed; `cursor` is where the previous
/// one ended and `offset` how far it moved from its header.
fn place_one(
    lines: &Lines<'_>,
    hunk: &Hunk,
    cursor: usize,
    offset: isize,
    taken: &[(usize, usize)],
) -> Result<Found, String> {
    let pre = pre_image(hunk);
    let (adds, dels) = hunk.changes();
    if adds == 0 && dels == 0 {
        return Err(
            "has no line starting with '+' or '-', so it changes nothing; mark the lines to remove with '-' and the lines to add with '+'"
                .into(),
        );
    }
    let n = lines.len();
    // The index the header names, and the same moved by the previous hunk's offset.
    let header = hunk.old_start.map(|start| {
        let empty_old = hunk.counts.is_some_and(|(o, _)| o == 0) && pre.is_empty();
        if empty_old { start } else { start.saturating_sub(1) }
    });
    if let Some(h) = header
        && h > n
        && pre.is_empty()
    {
        return Err(format!(
            "only adds lines, after line {h} by its header, but the file has only {n} lines; read the file again and fix the header's line number",
        ));
    }
    let moved = header.map(|h| (h as isize + offset).clamp(0, n as isize) as usize);

    // Anchors (`@@ class A:` then `@@ def f(self):`): each inside the one before.
    let (mut from, mut until) = (cursor, n);
    for (k, anchor) in hunk.anchors.iter().enumerate() {
        let found = (from..until)
            .find(|&i| lines.text[i].trim() == anchor.trim())
            .or_else(|| (from..until).find(|&i| lines.text[i].contains(anchor.trim())));
        match found {
            Some(i) => {
                from = i + 1;
                until = block_end(lines, i);
            }
            None if k == 0 => {
                return Err(format!(
                    "names the line `{}`, which is not in the file{}; copy the anchor line exactly, or give context lines and no anchor",
                    shorten(anchor),
                    if cursor > 0 { " after the previous hunk" } else { "" }
                ));
            }
            None => {
                return Err(format!(
                    "names `{}` inside `{}`, but no such line is there (lines {}-{}); check that the anchors name the right block",
                    shorten(anchor),
                    shorten(&hunk.anchors[k - 1]),
                    from,
                    until
                ));
            }
        }
    }
    let anchored = !hunk.anchors.is_empty();

    if pre.is_empty() {
        let at = if hunk.at_eof {
            n
        } else if let Some(h) = header {
            h
        } else if n == 0 {
            0
        } else {
            return Err(if anchored {
                "only adds lines, under an anchor but with no unchanged line beside them, so there is no telling where in the block they go; add one or more unchanged lines (starting with a space) before or after them".into()
            } else {
                "only adds lines and has neither context lines nor a line number, so there is no telling where they go; add a few unchanged lines around them (each starting with a space), or a header `@@ -L,0 +L,N @@` that says after which line".into()
            });
        };
        return Ok(Found {
            at,
            fuzz: Fuzz::Exact,
            header,
            indent: Vec::new(),
            others: Vec::new(),
        });
    }

    let overlaps = |at: usize| taken.iter().any(|&(s, l)| at < s + l.max(1) && s < at + pre.len());
    let has_context = hunk.lines.iter().any(|l| l.kind == LineKind::Context);
    for fuzz in Fuzz::ALL {
        // Hinted hunks may sit anywhere (hunks out of order); others after the
        // previous hunk, or inside their anchor's block.
        let start = if header.is_some() { 0 } else { from };
        let mut found: Vec<usize> = lines.matches(&pre, fuzz, start);
        // An anchored hunk starts inside its anchor's block (it may run past it).
        found.retain(|&at| !overlaps(at) && (!anchored || at < until));
        if hunk.at_eof {
            found.retain(|&at| at + pre.len() == n);
        }
        if found.is_empty() && header.is_none() && !anchored && from > 0 {
            // Not after the previous hunk: maybe given out of order.
            found = lines.matches(&pre, fuzz, 0);
            found.retain(|&at| !overlaps(at));
        }
        if found.is_empty() {
            continue;
        }
        let at = match (header, moved) {
            (Some(h), _) if found.contains(&h) => h,
            (Some(h), Some(m)) if has_context => {
                let a = nearest(&found, m)?;
                let b = nearest(&found, h)?;
                if a != b {
                    return Err(format!(
                        "matches at line {} (where the previous hunk's shift puts it) and at line {} (nearest its header's line {}); fix the header's line number or add unchanged lines that tell them apart",
                        a + 1,
                        b + 1,
                        h + 1
                    ));
                }
                a
            }
            // Lines removed without context: only an exact line number places them.
            (Some(_), Some(m)) if found.contains(&m) => m,
            _ if anchored => found[0],
            _ if found.len() == 1 => found[0],
            _ => {
                let shown: Vec<String> = found.iter().take(8).map(|at| (at + 1).to_string()).collect();
                let more = if found.len() > 8 { ", …" } else { "" };
                return Err(format!(
                    "matches the file in {} places (lines {}{more}){}; it must match in one: add more unchanged lines around the change, or give line numbers in the header (`@@ -{},{} +{},{} @@`), or use edit_file with a longer old_string",
                    found.len(),
                    shown.join(", "),
                    if header.is_some() {
                        " but none where the header says"
                    } else {
                        " and has no line number"
                    },
                    found[0] + 1,
                    hunk.body_counts().0,
                    found[0] + 1,
                    hunk.body_counts().1,
                ));
            }
        };
        let indent = if fuzz == Fuzz::Whitespace {
            reindent(hunk, &lines.text[at..at + pre.len()]).ok_or_else(|| {
                format!(
                    "matches lines {}-{} only if indentation is ignored, and its indentation (tabs or spaces) cannot be carried over to the file's; copy the lines with the file's exact indentation",
                    at + 1,
                    at + pre.len()
                )
            })?
        } else {
            Vec::new()
        };
        // Chosen by nearness among several: the others are named.
        let others = match header {
            Some(h) if at != h => found.iter().copied().filter(|&o| o != at).take(8).collect(),
            _ => Vec::new(),
        };
        return Ok(Found {
            at,
            fuzz,
            header,
            indent,
            others,
        });
    }
    Err(explain_missing(lines, hunk, &pre, moved.unwrap_or(from), None))
}

/// The match nearest `hint`; two at the same distance are ambiguous.
fn nearest(found: &[usize], hint: usize) -> Result<usize, String> {
    let distance = |at: usize| at.abs_diff(hint);
    let best = found.iter().copied().min_by_key(|&at| distance(at)).unwrap_or(hint);
    let ties: Vec<usize> = found
        .iter()
        .copied()
        .filter(|&at| distance(at) == distance(best))
        .collect();
    if ties.len() > 1 {
        return Err(format!(
            "matches equally far from its header's line {} at lines {} and {}; fix the header's line number or add unchanged lines that tell them apart",
            hint + 1,
            ties[0] + 1,
            ties[1] + 1
        ));
    }
    Ok(best)
}

/// Why a hunk's lines are not in the file: what it expected, and the closest
/// lines found, with their numbers.
fn explain_missing(
    lines: &Lines<'_>,
    hunk: &Hunk,
    pre: &[&str],
    near: usize,
    anchor_missing: Option<String>,
) -> String {
    const SHOW: usize = 12;
    let mut text = String::from("does not apply: its lines are not in the file.\n");
    if let Some(a) = anchor_missing {
        text.push_str(&format!("Its anchor `{}` is not in the file either.\n", shorten(&a)));
    }
    if hunk.old_start.is_some() {
        text.push_str(&format!(
            "The hunk expects these lines near line {} (context and '-' lines):\n",
            near + 1
        ));
    } else {
        text.push_str("The hunk (no line number in its header) expects these lines (context and '-' lines):\n");
    }
    let marked: Vec<&HunkLine> = hunk.lines.iter().filter(|l| l.kind != LineKind::Insert).collect();
    for l in marked.iter().take(SHOW) {
        let mark = if l.kind == LineKind::Delete { '-' } else { ' ' };
        text.push_str(&format!("  {mark}| {}\n", l.text));
    }
    if marked.len() > SHOW {
        text.push_str(&format!("  … {} more\n", marked.len() - SHOW));
    }
    let n = lines.len();
    if n == 0 {
        text.push_str("but the file is empty.\n");
        return text;
    }
    // The window with the most lines equal (ignoring whitespace), nearest `near`.
    let width = pre.len().min(n);
    let score = |at: usize| (0..width).filter(|&i| loose_eq(pre[i], lines.text[at + i])).count();
    let best = (0..=n - width)
        .map(|at| (score(at), std::cmp::Reverse(at.abs_diff(near)), at))
        .max()
        .map(|(s, _, at)| (s, at));
    match best {
        Some((0, _)) | None => {
            let at = near.min(n.saturating_sub(1));
            text.push_str(&format!(
                "No line of it is in the file. Lines {}-{} of the file are:\n",
                at + 1,
                (at + width.max(1)).min(n)
            ));
            for i in at..(at + width.max(1)).min(n).min(at + SHOW) {
                text.push_str(&format!("{:>6}  | {}\n", i + 1, lines.text[i]));
            }
        }
        Some((matched, at)) => {
            text.push_str(&format!(
                "but the file has, at lines {}-{} ({matched} of {width} lines alike; '!' marks the ones that differ):\n",
                at + 1,
                at + width
            ));
            for (i, (want, have)) in pre.iter().zip(&lines.text[at..]).take(width.min(SHOW)).enumerate() {
                let mark = if want == have { ' ' } else { '!' };
                text.push_str(&format!("{:>6} {mark}| {have}\n", at + i + 1));
            }
        }
    }
    text
}

/// Builds the new text from placed hunks.
fn splice(lines: &Lines<'_>, hunks: &[Hunk], placed: &[Spot]) -> String {
    let default_eol = if lines.full.first().is_some_and(|l| l.ends_with("\r\n")) {
        "\r\n"
    } else {
        "\n"
    };
    let mut out = String::with_capacity(lines.full.iter().map(|l| l.len()).sum::<usize>() + 256);
    // Never glue two lines: a line without an ending gets one when more follows.
    let push = |out: &mut String, piece: &str, eol_hint: &str| {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push_str(if eol_hint.is_empty() { default_eol } else { eol_hint });
        }
        out.push_str(piece);
    };
    // Inserted lines take the file's endings (a model writes LF whatever the
    // file uses), except where the patch itself says: a patch that mixes CRLF
    // and LF lines (as git writes the diff of a mixed-ending file) gives each
    // line its own ending, and in a file with no line ending yet, a CRLF line
    // keeps its CRLF.
    let file_has_eol = lines.full.iter().any(|l| l.ends_with('\n'));
    let (mut crlf_lines, mut lf_lines) = (false, false);
    for l in hunks.iter().flat_map(|h| &h.lines).filter(|l| !l.no_newline) {
        if l.crlf {
            crlf_lines = true;
        } else {
            lf_lines = true;
        }
    }
    let patch_mixed = crlf_lines && lf_lines;
    let mut next = 0usize;
    let mut last_eol = default_eol;
    for spot in placed {
        let (at, hunk) = (&spot.at, &hunks[spot.hunk]);
        for i in next..*at {
            push(&mut out, lines.full[i], lines.eol(i));
            last_eol = nonempty(lines.eol(i), last_eol);
        }
        let mut cursor = *at;
        // The ending of the lines around the hunk, for the lines it inserts.
        let mut eol = if cursor < lines.len() {
            nonempty(lines.eol(cursor), last_eol)
        } else {
            last_eol
        };
        for (idx, line) in hunk.lines.iter().enumerate() {
            match line.kind {
                LineKind::Context => {
                    eol = nonempty(lines.eol(cursor), eol);
                    push(&mut out, lines.full[cursor], eol);
                    cursor += 1;
                }
                LineKind::Delete => {
                    eol = nonempty(lines.eol(cursor), eol);
                    cursor += 1;
                }
                LineKind::Insert => {
                    let ending = match (patch_mixed, line.crlf) {
                        (true, true) => "\r\n",
                        (true, false) => "\n",
                        (false, true) if !file_has_eol => "\r\n",
                        _ => eol,
                    };
                    let text = match spot.indent.get(idx).unwrap_or(&Reindent::Keep) {
                        Reindent::Add(extra) if !line.text.trim().is_empty() => format!("{extra}{}", line.text),
                        Reindent::Strip(extra) => {
                            line.text.strip_prefix(extra.as_str()).unwrap_or(&line.text).to_owned()
                        }
                        _ => line.text.clone(),
                    };
                    push(&mut out, &text, ending);
                    if !line.no_newline {
                        out.push_str(ending);
                    }
                }
            }
        }
        last_eol = eol;
        next = cursor;
    }
    for i in next..lines.len() {
        push(&mut out, lines.full[i], lines.eol(i));
    }
    out
}

fn nonempty<'a>(eol: &'a str, fallback: &'a str) -> &'a str {
    if eol.is_empty() { fallback } else { eol }
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse;
    use super::*;

    fn run(base: &str, patch: &str) -> Result<(String, Vec<Placement>), Vec<String>> {
        let files = parse(patch).unwrap();
        apply(base, &files[0].hunks, "f")
    }

    #[test]
    fn shifted_hunk_lands_nearest_its_hint_and_says_how_far() {
        let base: String = (1..=20).map(|i| format!("l{i}\n")).collect();
        let (out, placed) = run(&base, "--- a/f\n+++ b/f\n@@ -8,3 +8,3 @@\n l10\n-l11\n+eleven\n l12\n").unwrap();
        assert!(out.contains("l10\neleven\nl12\n"));
        assert_eq!(placed[0].line, 10);
        assert_eq!(placed[0].offset, Some(2));
        assert_eq!(
            placed[0].describe(),
            "hunk 1 at line 10 (2 lines below the header's line 8)"
        );
        assert!(placed[0].also_matches_at.is_empty());
    }

    /// A hunk whose lines match in several places away from its header goes
    /// to the nearest, and the answer names the others so that the agent can
    /// check the right one was changed.
    #[test]
    fn a_hunk_placed_among_several_matches_names_the_others() {
        let block = "fn check() {\n    run();\n}\n";
        let base = format!("{block}// a\n// b\n// c\n{block}// d\n{block}");
        let patch = "--- a/f\n+++ b/f\n@@ -6,3 +6,3 @@\n fn check() {\n-    run();\n+    run_twice();\n }\n";
        let (out, placed) = run(&base, patch).unwrap();
        assert_eq!(out.matches("run_twice").count(), 1);
        assert_eq!(placed[0].line, 7);
        assert_eq!(placed[0].also_matches_at, vec![1, 11]);
        let said = placed[0].describe();
        assert!(
            said.starts_with("hunk 1 at line 7 (1 line below the header's line 6; its lines also match at line 1, 11;"),
            "{said}"
        );
        // Where the header's line holds the lines, nothing else is named.
        let patch = patch.replace("@@ -6,3 +6,3 @@", "@@ -7,3 +7,3 @@");
        let (_, placed) = run(&base, &patch).unwrap();
        assert!(placed[0].also_matches_at.is_empty());
        assert_eq!(placed[0].describe(), "hunk 1 at line 7 (where the header said)");
    }

    /// A hunk without a line number that does not fit is not said to be
    /// expected "near" a line; a patch of one hunk is not told about others.
    #[test]
    fn a_bare_hunk_that_does_not_fit_names_no_line_it_never_gave() {
        let err = run("alpha\nbeta\n", "--- a/f\n+++ b/f\n@@\n alpha\n-gamma\n+delta\n").unwrap_err();
        assert!(err[0].contains("(no line number in its header)"), "{err:?}");
        assert!(!err[0].contains("near line"), "{err:?}");
    }

    /// Found by the `patch` fuzz target: a file ending in a bare CR, and
    /// git's diff of it (`-c\r` then `\ No newline at end of file`).
    #[test]
    fn a_bare_cr_at_the_end_of_a_file_is_content() {
        let patch = "--- a/f\n+++ b/f\n@@ -1 +1,2 @@\n-c\r\n\\ No newline at end of file\n+c\r\n+hi\n";
        let (out, _) = run("c\r", patch).unwrap();
        assert_eq!(out, "c\r\nhi\n");
        // A patch converted to CRLF as a whole still reads CR as the ending.
        let converted =
            "--- a/f\r\n+++ b/f\r\n@@ -1,2 +1,3 @@\r\n a\r\n-c\r\n\\ No newline at end of file\r\n+c\r\n+hi\r\n";
        let (out, _) = run("a\r\nc", converted).unwrap();
        assert_eq!(out, "a\r\nc\r\nhi\r\n");
    }

    /// Found by the `patch` fuzz target: git's diff of a file with both CRLF
    /// and LF lines gives each inserted line its own ending.
    #[test]
    fn a_mixed_ending_patch_keeps_each_lines_ending() {
        let base = "one\ntwo\r\nthree\n";
        let patch = "--- a/f\n+++ b/f\n@@ -1,3 +1,4 @@\n one\n two\r\n+new\n three\n";
        let (out, _) = run(base, patch).unwrap();
        assert_eq!(out, "one\ntwo\r\nnew\nthree\n");
        // A model's LF patch to a CRLF file still takes the file's CRLF.
        let (out, _) = run("a\r\nb\r\n", "--- a/f\n+++ b/f\n@@ -1,2 +1,3 @@\n a\n+x\n b\n").unwrap();
        assert_eq!(out, "a\r\nx\r\nb\r\n");
    }

    #[test]
    fn bare_header_must_match_once() {
        let base = "a\nx\nb\nx\n";
        let err = run(base, "--- a/f\n+++ b/f\n@@\n-x\n+y\n").unwrap_err();
        assert!(err[0].contains("2 places (lines 2, 4)"), "{err:?}");
        let (out, _) = run(base, "--- a/f\n+++ b/f\n@@\n b\n-x\n+y\n").unwrap();
        assert_eq!(out, "a\nx\nb\ny\n");
    }

    #[test]
    fn crlf_file_keeps_crlf_and_missing_final_newline_is_not_glued() {
        let (out, _) = run("a\r\nb\r\n", "--- a/f\n+++ b/f\n@@ -1,2 +1,3 @@\n a\n b\n+c\n").unwrap();
        assert_eq!(out, "a\r\nb\r\nc\r\n");
        let (out, _) = run("a\nb", "--- a/f\n+++ b/f\n@@ -1,2 +1,3 @@\n a\n b\n+c\n").unwrap();
        assert_eq!(out, "a\nb\nc\n");
    }

    #[test]
    fn every_failing_hunk_is_reported_with_the_closest_lines() {
        let base = "one\ntwo\nthree\nfour\nfive\n";
        let err = run(
            base,
            "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n one\n-TWO\n+2\n@@ -4,2 +4,2 @@\n four\n-FIVE\n+5\n",
        )
        .unwrap_err();
        assert_eq!(err.len(), 2);
        assert!(err[1].contains("hunk 2 of 2"));
        assert!(err[1].contains("     5 !| five"), "{}", err[1]);
    }

    #[test]
    fn context_only_hunk_is_an_error() {
        let err = run("a\n", "--- a/f\n+++ b/f\n@@\n a\n").unwrap_err();
        assert!(err[0].contains("changes nothing"));
    }
}
