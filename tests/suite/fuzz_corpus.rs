//! The coverage-guided fuzz targets' checks (`fuzz/checks.rs`), replayed on
//! stable over the kept corpus (`fuzz/corpus/<target>/`) and every input a
//! fuzzer ever broke an invariant with (`fuzz/regressions/<target>/`).

use std::path::Path;

#[path = "../../fuzz/checks.rs"]
mod checks;

fn replay(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(kind).join(target)) else {
            continue;
        };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            if std::panic::catch_unwind(|| check(&bytes)).is_err() {
                panic!("{} breaks an invariant of the {target} target", file.display());
            }
            n += 1;
        }
    }
    assert!(n > 0, "no corpus for {target}");
    eprintln!("fuzz corpus {target}: {n} inputs hold");
}

#[test]
fn fuzz_corpus_patch_parse_place_rediff() {
    replay("patch", checks::patch);
}

#[test]
fn fuzz_corpus_edit_file_matcher() {
    replay("edit_match", checks::edit_match);
}

#[test]
fn fuzz_corpus_path_resolver() {
    replay("path_resolve", checks::path_resolve);
}

#[test]
fn fuzz_corpus_command_checker() {
    replay("command_check", checks::command_check);
}

#[test]
fn fuzz_corpus_policy_parser() {
    replay("policy_parse", checks::policy_parse);
}

#[test]
fn fuzz_corpus_jsonrpc_framing() {
    replay("jsonrpc_frame", checks::jsonrpc_frame);
}

#[test]
fn fuzz_corpus_rules() {
    replay("rules", checks::rules);
}
