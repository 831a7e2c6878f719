//! Golden-file scenarios for `apply_patch`, run through a real MCP client.
//!
//! Each folder of `tests/fixtures/patch/` is one scenario (see
//! `tests/common/scenario.rs` and `tests/fixtures/patch/README.md`):
//! `input/`, `patch.diff` (the `patch` argument, byte for byte), `expected/`,
//! and optionally `error.txt`, `answer.txt`, `args.json` (more arguments,
//! e.g. `{"dry_run": true}`), `expected_summary.json` (the structured
//! `files`, including where each hunk landed) and `BUG.md` (a known bug).
//!
//! `PATCH_SCENARIO=name` runs the scenarios whose name contains `name`;
//! `PATCH_SCENARIO_SHOW=1` prints each tool answer (`--nocapture`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::common::scenario::{Scenario, run_all, tree_diff};

/// The call's arguments: `patch.diff`, plus `args.json`.
fn patch_args(s: &Scenario) -> Result<Value, String> {
    let patch = String::from_utf8(std::fs::read(s.dir.join("patch.diff")).map_err(|e| format!("patch.diff: {e}"))?)
        .map_err(|_| "patch.diff is not UTF-8".to_owned())?;
    let mut args = json!({ "patch": patch });
    if let Some(Value::Object(extra)) = s.json("args.json")? {
        for (k, v) in extra {
            args[k] = v;
        }
    }
    Ok(args)
}

#[tokio::test]
async fn apply_patch_golden_scenarios() {
    run_all("patch", "apply_patch", 17, patch_args).await;
}

/// The runner itself: it must catch the differences it exists to catch.
#[test]
fn tree_diff_sees_crlf_final_newline_and_extra_files() {
    let tree = |files: &[(&str, &[u8])]| -> BTreeMap<String, Vec<u8>> {
        files.iter().map(|(p, b)| ((*p).to_owned(), b.to_vec())).collect()
    };
    let want = tree(&[("a.txt", b"x\r\ny\r\n")]);
    assert!(tree_diff(&want, &want).is_empty());
    assert_eq!(tree_diff(&want, &tree(&[("a.txt", b"x\ny\n")])).len(), 1);
    assert_eq!(tree_diff(&want, &tree(&[("a.txt", b"x\r\ny")])).len(), 1);
    let extra = tree_diff(
        &want,
        &tree(&[("a.txt", b"x\r\ny\r\n"), (".a.txt.1.execlayer.tmp", b"")]),
    );
    assert_eq!(extra.len(), 1);
    assert!(extra[0].contains("unexpected file"));
}

/// Summaries are matched key by key, into the hunk placements.
#[test]
fn summary_check_reads_nested_placements() {
    use crate::common::scenario::check_subset;
    let got = json!([{"path": "a", "hunks": [{"line": 4, "offset": -2}, {"line": 9, "offset": 0}]}]);
    assert!(check_subset("files", &json!([{"hunks": [{"line": 4}, {"line": 9}]}]), &got).is_ok());
    assert!(check_subset("files", &json!([{"hunks": [{"line": 5}, {"line": 9}]}]), &got).is_err());
    assert!(check_subset("files", &json!([{"hunks": [{"line": 4}]}]), &got).is_err());
    assert!(check_subset("files", &json!([{"path": "a"}, {"path": "b"}]), &got).is_err());
}
