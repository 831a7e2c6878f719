//! Golden-file scenarios for `apply_patch`, run through a real MCP client.
//!
//! Each folder of `tests/fixtures/patch/` is one scenario:
//! - `input/`: the workspace before (a lone `.keep` stands for an empty tree);
//! - `patch.diff`: the diff handed to the tool, byte for byte;
//! - `expected/`: the workspace after, compared byte for byte (CRLF, missing
//!   final newline), with no extra file and no leftover temp file;
//! - `error.txt` (optional): the call must be a tool error and change nothing;
//!   every non-empty line of it must occur in the error text;
//! - `args.json` (optional): more arguments, e.g. `{"dry_run": true}`;
//! - `expected_summary.json` (optional): the `files` of the structured result,
//!   in order; each expected key must match (`path`, `action`, `additions`,
//!   `deletions`, `old_path`).
//!
//! `PATCH_SCENARIO=name` runs the scenarios whose name contains `name`;
//! `PATCH_SCENARIO_SHOW=1` prints each tool answer (`--nocapture`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::*;

/// Placeholder that keeps an otherwise empty fixture folder in git.
const KEEP: &str = ".keep";

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/patch")
}

/// Scenario folder names, sorted.
fn scenario_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_root())
        .expect("tests/fixtures/patch exists")
        .map(|e| e.expect("dir entry"))
        .filter(|e| e.file_type().expect("file type").is_dir())
        .map(|e| e.file_name().into_string().expect("UTF-8 scenario name"))
        .collect();
    names.sort();
    names
}

/// Every regular file under `root`, by `/`-separated relative path.
/// Directories are walked, not listed; anything else (a symlink) is an error.
fn read_tree(root: &Path, skip_keep: bool) -> Result<BTreeMap<String, Vec<u8>>, String> {
    fn walk(root: &Path, dir: &Path, skip_keep: bool, out: &mut BTreeMap<String, Vec<u8>>) -> Result<(), String> {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| e.to_string())?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| e.to_string())?;
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_str()
                .ok_or_else(|| format!("non-UTF-8 path {}", path.display()))?
                .to_owned();
            if kind.is_dir() {
                walk(root, &path, skip_keep, out)?;
            } else if kind.is_file() {
                if skip_keep && entry.file_name() == KEEP {
                    continue;
                }
                let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {rel}: {e}"))?;
                out.insert(rel, bytes);
            } else {
                return Err(format!("{rel} is neither a file nor a directory"));
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    if root.exists() {
        walk(root, root, skip_keep, &mut out)?;
    }
    Ok(out)
}

/// Shows bytes so that `\r`, tabs and a missing final newline are visible.
fn shown(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// Describes every difference between two trees; empty when equal.
fn tree_diff(expected: &BTreeMap<String, Vec<u8>>, actual: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let mut out = Vec::new();
    let paths: BTreeSet<&String> = expected.keys().chain(actual.keys()).collect();
    for path in paths {
        match (expected.get(path), actual.get(path)) {
            (Some(_), None) => out.push(format!("missing file {path}")),
            (None, Some(bytes)) => out.push(format!("unexpected file {path}: {}", shown(bytes))),
            (Some(want), Some(got)) if want != got => {
                out.push(format!(
                    "{path} differs\n    expected {}\n    found    {}",
                    shown(want),
                    shown(got)
                ));
            }
            _ => {}
        }
    }
    out
}

fn copy_tree(files: &BTreeMap<String, Vec<u8>>, to: &Path) {
    for (rel, bytes) in files {
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::write(&dest, bytes).expect("write input file");
    }
}

/// Names directly under the test's temp dir (outside the workspace).
fn top_level(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("list temp dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

/// Compares the structured `files` with the expectation, key by expected key.
fn check_summary(expected: &Value, actual: &Value) -> Result<(), String> {
    let (Some(want), Some(got)) = (expected.as_array(), actual.as_array()) else {
        return Err(format!("files is not an array: {actual}"));
    };
    if want.len() != got.len() {
        return Err(format!(
            "expected {} files in the summary, got {}: {actual}",
            want.len(),
            got.len()
        ));
    }
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        let w = w.as_object().expect("summary entries are objects");
        for (key, value) in w {
            if g.get(key) != Some(value) {
                return Err(format!("summary entry {i}: {key} expected {value}, got {g}"));
            }
        }
        if !w.contains_key("old_path") && g.get("old_path").is_some() {
            return Err(format!("summary entry {i}: unexpected old_path in {g}"));
        }
    }
    Ok(())
}

/// Runs one scenario; `Err` says what went wrong.
async fn run_scenario(name: &str) -> Result<(), String> {
    let dir = fixtures_root().join(name);
    let input = read_tree(&dir.join("input"), true)?;
    let expected = read_tree(&dir.join("expected"), true)?;
    let patch = String::from_utf8(std::fs::read(dir.join("patch.diff")).map_err(|e| format!("patch.diff: {e}"))?)
        .map_err(|_| "patch.diff is not UTF-8".to_owned())?;
    let error = std::fs::read_to_string(dir.join("error.txt")).ok();
    let read_json = |file: &str| -> Result<Option<Value>, String> {
        match std::fs::read_to_string(dir.join(file)) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| format!("{file}: {e}")),
            Err(_) => Ok(None),
        }
    };
    let extra = read_json("args.json")?;
    let summary = read_json("expected_summary.json")?;
    if error.is_some() && !tree_diff(&input, &expected).is_empty() {
        return Err("fixture error: a failing scenario must have expected/ identical to input/".into());
    }

    let mut args = json!({ "patch": patch });
    if let Some(Value::Object(extra)) = extra {
        for (k, v) in extra {
            args[k] = v;
        }
    }
    let dry_run = args.get("dry_run") == Some(&Value::Bool(true));

    let env = TestEnv::new();
    copy_tree(&input, &env.ws);
    let outside_before = top_level(env.dir.path());
    let client = env.client().await;
    let result = call(&client, "apply_patch", args).await;
    let message = text(&result);
    let _ = client.cancel().await;
    if std::env::var_os("PATCH_SCENARIO_SHOW").is_some() {
        eprintln!("--- {name} (is_error {:?}):\n{message}", result.is_error);
    }

    let mut problems = Vec::new();
    match &error {
        Some(needles) => {
            if !is_error(&result) {
                problems.push(format!("expected a tool error, got success: {message}"));
            }
            for needle in needles.lines().filter(|l| !l.trim().is_empty()) {
                if !message.contains(needle) {
                    problems.push(format!("error does not contain {needle:?}"));
                }
            }
            if !problems.is_empty() {
                problems.push(format!("the error was:\n{message}"));
            }
        }
        None if is_error(&result) => problems.push(format!("expected success, got a tool error:\n{message}")),
        None => {
            let s = structured(&result);
            if s["applied"] != json!(!dry_run) || s["dry_run"] != json!(dry_run) {
                problems.push(format!("applied/dry_run flags wrong: {s}"));
            }
            if dry_run && !message.contains("nothing was changed") {
                problems.push(format!("a dry run should say nothing was changed: {message}"));
            }
            if let Some(summary) = &summary {
                if let Err(e) = check_summary(summary, &s["files"]) {
                    problems.push(e);
                }
                let total = |key: &str| -> u64 {
                    summary
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|f| f[key].as_u64())
                        .sum()
                };
                let (adds, dels) = (total("additions"), total("deletions"));
                if s["additions"] != json!(adds) || s["deletions"] != json!(dels) {
                    problems.push(format!("totals expected +{adds} -{dels}, got {s}"));
                }
            }
        }
    }

    let actual = read_tree(&env.ws, false)?;
    for d in tree_diff(&expected, &actual) {
        problems.push(format!("workspace: {d}"));
    }
    let appeared: Vec<String> = top_level(env.dir.path())
        .difference(&outside_before)
        .filter(|n| !matches!(n.as_str(), "state" | "home"))
        .cloned()
        .collect();
    if !appeared.is_empty() {
        problems.push(format!("files appeared outside the workspace: {appeared:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n  "))
    }
}

#[tokio::test]
async fn apply_patch_golden_scenarios() {
    let filter = std::env::var("PATCH_SCENARIO").unwrap_or_default();
    let names: Vec<String> = scenario_names().into_iter().filter(|n| n.contains(&filter)).collect();
    if filter.is_empty() {
        assert!(names.len() >= 17, "expected the scenario folders, found {names:?}");
    }
    let mut failures = Vec::new();
    for name in &names {
        if let Err(e) = run_scenario(name).await {
            failures.push(format!("scenario {name}:\n  {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} patch scenarios failed:\n\n{}",
        failures.len(),
        names.len(),
        failures.join("\n\n")
    );
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
