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
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let max_suffix = a.len().min(b.len()) - prefix;
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(max_suffix)
        .take_while(|(x, y)| x == y)
        .count();
    // Keep some shared lines on each side so the hunks carry their context.
    let start = prefix.saturating_sub(CONTEXT);
    let a_end = (a.len() - suffix + CONTEXT).min(a.len());
    let b_end = (b.len() - suffix + CONTEXT).min(b.len());
    let a_mid: String = a[start..a_end].concat();
    let b_mid: String = b[start..b_end].concat();
    let patch = DiffOptions::new().set_context_len(CONTEXT).create_patch(&a_mid, &b_mid);
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

    #[test]
    fn missing_final_newline_is_marked() {
        let (diff, _, _) = unified("f", "a\nb", "a\nc");
        assert!(diff.ends_with("+c\n\\ No newline at end of file\n"), "{diff}");
    }
}
