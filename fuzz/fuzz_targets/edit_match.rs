//! The `edit_file` matcher. Input: `file NUL old_string NUL new_string [NUL 1]`
//! (a trailing `1` asks for replace_all).
//!
//! Invariants: nothing panics; an accepted edit replaced at least one match,
//! exactly one unless replace_all; where old_string is in the file as given,
//! the count is its number of matches and the length changes by exactly that
//! many replacements; a unique match is never refused.
#![no_main]

use execlayer::tools::edit_file::{Edit, apply_edit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(4, '\0');
    let (Some(file), Some(old), Some(new)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let replace_all = parts.next().is_some_and(|f| f.starts_with('1'));
    let edit = Edit {
        path: None,
        old_string: old.to_owned(),
        new_string: new.to_owned(),
        replace_all,
    };
    let matches = if old.is_empty() { 0 } else { file.matches(old).count() };
    match apply_edit(file, &edit, "f.txt", "the edit") {
        Ok((out, n)) => {
            assert!(!old.is_empty() && old != new, "a no-op edit was accepted");
            assert!(n >= 1);
            if !replace_all {
                assert_eq!(n, 1, "several replaced without replace_all");
            }
            if matches > 0 {
                assert_eq!(n, matches);
                let want = file.len() as i64 + n as i64 * (new.len() as i64 - old.len() as i64);
                assert_eq!(out.len() as i64, want);
            }
        }
        Err(msg) => {
            assert!(!msg.is_empty());
            assert!(
                old.is_empty() || old == new || matches != 1,
                "a unique match was refused: {msg}"
            );
        }
    }
});
