//! Unified diffs of a change, for answers and approval questions.
//!
//! The common first and last lines of the two texts are skipped before the
//! (quadratic in the worst case) line diff runs, so a small edit of a large
//! file costs time in the size of the edit, plus one linear scan.

use diffy::{DiffOptions, Line};

/// Lines of context around each change.
const CONTEXT: usize = 3;

/// The unified diff from `old` to `new` for `path`, with (additions, deletions).
/// Empty when the texts are equal.
pub fn unified(path: &str, old: &str, new: &str) -> (String, usize, usize) {
    if old == new {
        return (String::new(), 0, 0);
    }
    // The changed bytes lie between a common prefix and a common suffix; only
    // the lines around them (with their context) are diffed line by line.
    let (ab, bb) = (old.as_bytes(), new.as_bytes());
    let head = common_prefix(ab, bb);
    let tail = common_suffix(&ab[head..], &bb[head..]);
    // The prefix and suffix are counted in bytes and may end inside a
    // character (`é` and `è` share their first byte): they are walked as
    // bytes, to line boundaries, which are character boundaries.
    let newline_before = |bytes: &[u8]| bytes.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
    let newline_after = |bytes: &[u8]| bytes.iter().position(|&c| c == b'\n').map_or(bytes.len(), |i| i + 1);
    // Back to the start of the line holding the first change, then CONTEXT more.
    let mut begin = newline_before(&ab[..head]);
    for _ in 0..CONTEXT {
        if begin == 0 {
            break;
        }
        begin = newline_before(&ab[..begin - 1]);
    }
    // On to the end of the line holding the last change, then CONTEXT more; the
    // suffix is the same bytes in both texts, so both move by the same amount.
    let (a_end, b_end) = (ab.len() - tail, bb.len() - tail);
    let shared = &ab[a_end..];
    let at_line_end = |bytes: &[u8], end: usize| end == 0 || bytes[end - 1] == b'\n';
    let mut extra = if at_line_end(ab, a_end) && at_line_end(bb, b_end) {
        0
    } else {
        newline_after(shared)
    };
    for _ in 0..CONTEXT {
        if extra >= shared.len() {
            break;
        }
        extra += newline_after(&shared[extra..]);
    }
    let start = old.as_bytes()[..begin].iter().filter(|&&c| c == b'\n').count();
    let a_mid = &old[begin..a_end + extra];
    let b_mid = &new[begin..b_end + extra];
    let patch = DiffOptions::new().set_context_len(CONTEXT).create_patch(a_mid, b_mid);
    let mut out = format!("--- a/{path}\n+++ b/{path}\n");
    let (mut adds, mut dels) = (0, 0);
    for hunk in patch.hunks() {
        let (o, n) = (hunk.old_range(), hunk.new_range());
        out.push_str(&format!(
            "@@ -{},{} +{},{} @@\n",
            o.start() + start,
            o.len(),
            n.start() + start,
            n.len()
        ));
        for line in hunk.lines() {
            let (mark, text) = match line {
                Line::Context(t) => (' ', *t),
                Line::Delete(t) => {
                    dels += 1;
                    ('-', *t)
                }
                Line::Insert(t) => {
                    adds += 1;
                    ('+', *t)
                }
            };
            out.push(mark);
            out.push_str(text);
            if !text.ends_with('\n') {
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
    (out, adds, dels)
}

/// `diff` cut to at most `max` bytes (on a character boundary), saying so
/// when it was cut.
pub fn cut(diff: String, max: usize) -> String {
    match crate::tools::truncate_str(&diff, max) {
        (_, false) => diff,
        (kept, true) => format!("{kept}\n… (diff cut at {max} bytes)\n"),
    }
}

/// How many bytes `a` and `b` share at their start (compared a block at a time).
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 64;
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + BLOCK <= n && a[i..i + BLOCK] == b[i..i + BLOCK] {
        i += BLOCK;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// How many bytes `a` and `b` share at their end.
fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 64;
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + BLOCK <= n && a[a.len() - i - BLOCK..a.len() - i] == b[b.len() - i - BLOCK..b.len() - i] {
        i += BLOCK;
    }
    while i < n && a[a.len() - 1 - i] == b[b.len() - 1 - i] {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_change_in_a_large_file_has_true_line_numbers() {
        let old: String = (1..=5000).map(|i| format!("line {i}\n")).collect();
        let new = old.replace("line 2500\n", "line 2500 changed\n");
        let (diff, adds, dels) = unified("big.txt", &old, &new);
        assert_eq!((adds, dels), (1, 1));
        assert!(diff.contains("@@ -2497,7 +2497,7 @@\n line 2497\n"), "{diff}");
        // The diff applies back with our own placer.
        let files = super::super::parse::parse(&diff).unwrap();
        let (out, placed) = super::super::place::apply(&old, &files[0].hunks, "big.txt").unwrap();
        assert_eq!(out, new);
        assert_eq!(placed[0].offset, Some(0));
    }

    /// Found by the `patch` fuzz target: the common prefix or suffix, counted
    /// in bytes, can end inside a character (`é` and `è` share their first
    /// byte, `é` and `©` their last); the diff must not split it.
    #[test]
    fn a_change_inside_a_multibyte_character_is_a_whole_line_change() {
        let cases = [
            ("café crème\nsecond\n", "cafè crème\nsecond\n"),
            ("first\ncafé\n", "first\ncaf©\n"),
            ("prix: 5 €", "prix: 5 ₤"),
            ("m 1m\n\u{d3591}", "m 1m\n\u{d3592}\u{20d1}"),
        ];
        for (old, new) in cases {
            let (diff, adds, dels) = unified("f", old, new);
            assert_eq!((adds, dels), (1, 1), "{old:?} -> {new:?}: {diff}");
            let files = super::super::parse::parse(&diff).unwrap();
            let (out, _) = super::super::place::apply(old, &files[0].hunks, "f").unwrap();
            assert_eq!(out, new, "{diff}");
        }
    }

    /// The fast path must give the same hunks as diffing the whole texts.
    #[test]
    fn matches_a_whole_text_diff_on_many_edits() {
        let old: String = (1..=300).map(|i| format!("line {}\n", i % 17)).collect();
        let cases = [
            old.replacen("line 5\n", "line five\n", 1),
            old.replace("line 3\n", ""),
            format!("head\n{old}"),
            format!("{old}tail"),
            old.trim_end().to_owned(),
            old.replacen("line 9\nline 10\n", "x\n", 2),
            old.replacen("ne 1", "NE 1", 3),
            String::new(),
        ];
        for new in cases {
            let (fast, adds, dels) = unified("f", &old, &new);
            let whole = DiffOptions::new().set_context_len(CONTEXT).create_patch(&old, &new);
            let mut want = String::from("--- a/f\n+++ b/f\n");
            let (mut wa, mut wd) = (0, 0);
            for h in whole.hunks() {
                want.push_str(&format!(
                    "@@ -{},{} +{},{} @@\n",
                    h.old_range().start(),
                    h.old_range().len(),
                    h.new_range().start(),
                    h.new_range().len()
                ));
                for l in h.lines() {
                    let (m, t) = match l {
                        Line::Context(t) => (' ', *t),
                        Line::Delete(t) => {
                            wd += 1;
                            ('-', *t)
                        }
                        Line::Insert(t) => {
                            wa += 1;
                            ('+', *t)
                        }
                    };
                    want.push(m);
                    want.push_str(t);
                    if !t.ends_with('\n') {
                        want.push_str("\n\\ No newline at end of file\n");
                    }
                }
            }
            assert_eq!((fast.as_str(), adds, dels), (want.as_str(), wa, wd), "for {new:?}");
        }
    }

    #[test]
    fn missing_final_newline_is_marked() {
        let (diff, _, _) = unified("f", "a\nb", "a\nc");
        assert!(diff.ends_with("+c\n\\ No newline at end of file\n"), "{diff}");
    }
}
