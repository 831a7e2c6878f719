//! Golden-file scenarios shared by the `apply_patch` and `edit_file` runners.
//!
//! A scenario folder holds `input/` (the workspace before), `expected/` (the
//! whole workspace after, byte for byte), and optional files:
//! - `error.txt`: the call must be a tool error that changes nothing; every
//!   non-empty line must occur in the error text;
//! - `answer.txt`: every non-empty line must occur in a successful answer;
//! - `expected_summary.json`: matched against the structured `files`, key by
//!   expected key, recursively (objects: only the keys given; arrays: same
//!   length, element by element);
//! - `BUG.md`: the scenario documents a known engine bug and fails until it
//!   is fixed; its first line is printed with the failure. A scenario that
//!   passes while it still has a `BUG.md` fails too, so the marker goes away
//!   with the bug.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rmcp::model::CallToolResult;
use serde_json::{Value, json};

use super::{TestEnv, call, is_error, structured, text};

/// Placeholder that keeps an otherwise empty fixture folder in git.
pub const KEEP: &str = ".keep";

pub fn fixtures(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(kind)
}

/// Scenario folder names under `root`, sorted.
pub fn scenario_names(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("{} exists: {e}", root.display()))
        .map(|e| e.expect("dir entry"))
        .filter(|e| e.file_type().expect("file type").is_dir())
        .map(|e| e.file_name().into_string().expect("UTF-8 scenario name"))
        .collect();
    names.sort();
    names
}

/// Every regular file under `root`, by `/`-separated relative path.
/// Directories are walked, not listed; anything else (a symlink) is an error.
pub fn read_tree(root: &Path, skip_keep: bool) -> Result<BTreeMap<String, Vec<u8>>, String> {
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
pub fn shown(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// Describes every difference between two trees; empty when equal.
pub fn tree_diff(expected: &BTreeMap<String, Vec<u8>>, actual: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let mut out = Vec::new();
    let paths: BTreeSet<&String> = expected.keys().chain(actual.keys()).collect();
    for path in paths {
        match (expected.get(path), actual.get(path)) {
            (Some(_), None) => out.push(format!("missing file {path}")),
            (None, Some(bytes)) => out.push(format!("unexpected file {path}: {}", shown(bytes))),
            (Some(want), Some(got)) if want != got => {
                out.push(format!("{path} differs\n{}", first_difference(want, got)))
            }
            _ => {}
        }
    }
    out
}

/// Where two versions of a file first differ: the line number and a few
/// lines of each side (every byte visible), or both whole when short.
fn first_difference(want: &[u8], got: &[u8]) -> String {
    if want.len() + got.len() < 400 {
        return format!("    expected {}\n    found    {}", shown(want), shown(got));
    }
    let a: Vec<&[u8]> = want.split_inclusive(|&b| b == b'\n').collect();
    let b: Vec<&[u8]> = got.split_inclusive(|&b| b == b'\n').collect();
    let at = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let side = |lines: &[&[u8]]| -> String {
        lines
            .iter()
            .skip(at)
            .take(4)
            .map(|l| shown(l))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "    first difference at line {} ({} lines expected, {} found)\n    expected {}\n    found    {}",
        at + 1,
        a.len(),
        b.len(),
        side(&a),
        side(&b)
    )
}

pub fn copy_tree(files: &BTreeMap<String, Vec<u8>>, to: &Path) {
    for (rel, bytes) in files {
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::write(&dest, bytes).expect("write input file");
    }
}

/// Names directly under the test's temp dir (outside the workspace).
pub fn top_level(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("list temp dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

/// `want` matches `got`: objects by the keys `want` gives, arrays element by
/// element (same length), anything else by equality. `at` names the place.
pub fn check_subset(at: &str, want: &Value, got: &Value) -> Result<(), String> {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (key, value) in w {
                let here = format!("{at}.{key}");
                match g.get(key) {
                    Some(v) => check_subset(&here, value, v)?,
                    None => return Err(format!("{here} expected {value}, missing in {got}")),
                }
            }
            Ok(())
        }
        (Value::Array(w), Value::Array(g)) => {
            if w.len() != g.len() {
                return Err(format!("{at}: expected {} entries, got {}: {got}", w.len(), g.len()));
            }
            for (i, (a, b)) in w.iter().zip(g).enumerate() {
                check_subset(&format!("{at}[{i}]"), a, b)?;
            }
            Ok(())
        }
        _ if want == got => Ok(()),
        _ => Err(format!("{at} expected {want}, got {got}")),
    }
}

/// One scenario folder, read.
pub struct Scenario {
    pub name: String,
    pub dir: PathBuf,
    pub input: BTreeMap<String, Vec<u8>>,
    pub expected: BTreeMap<String, Vec<u8>>,
    pub error: Option<String>,
    pub answer: Option<String>,
    pub summary: Option<Value>,
    pub bug: Option<String>,
}

impl Scenario {
    pub fn load(root: &Path, name: &str) -> Result<Self, String> {
        let dir = root.join(name);
        let summary = read_json(&dir, "expected_summary.json")?;
        Ok(Self {
            name: name.to_owned(),
            input: read_tree(&dir.join("input"), true)?,
            expected: read_tree(&dir.join("expected"), true)?,
            error: std::fs::read_to_string(dir.join("error.txt")).ok(),
            answer: std::fs::read_to_string(dir.join("answer.txt")).ok(),
            bug: std::fs::read_to_string(dir.join("BUG.md")).ok(),
            summary,
            dir,
        })
    }

    pub fn json(&self, file: &str) -> Result<Option<Value>, String> {
        read_json(&self.dir, file)
    }

    /// Runs `tool` with `args` in a fresh workspace holding `input/`, and
    /// checks the answer and the workspace after. `Err` lists every problem.
    pub async fn run(&self, tool: &str, args: Value) -> Result<(), String> {
        let dry_run = args.get("dry_run") == Some(&Value::Bool(true));
        let unchanged = tree_diff(&self.input, &self.expected).is_empty();
        if self.error.is_some() && !unchanged {
            return Err("fixture error: a failing scenario must have expected/ identical to input/".into());
        }
        if self.error.is_none() && dry_run != unchanged {
            return Err(if dry_run {
                "fixture error: a dry run must have expected/ identical to input/".into()
            } else {
                "fixture error: a successful scenario must change the workspace (expected/ differs from input/)".into()
            });
        }

        let env = TestEnv::new();
        copy_tree(&self.input, &env.ws);
        let outside_before = top_level(env.dir.path());
        let client = env.client().await;
        let result = call(&client, tool, args).await;
        let message = text(&result);
        let _ = client.cancel().await;
        if std::env::var_os("PATCH_SCENARIO_SHOW").is_some() {
            eprintln!("--- {} (is_error {:?}):\n{message}", self.name, result.is_error);
        }

        let mut problems = self.check_answer(&result, &message, dry_run);
        let actual = read_tree(&env.ws, false)?;
        for d in tree_diff(&self.expected, &actual) {
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

    fn check_answer(&self, result: &CallToolResult, message: &str, dry_run: bool) -> Vec<String> {
        let mut problems = Vec::new();
        let missing = |needles: &str| -> Vec<String> {
            needles
                .lines()
                .filter(|l| !l.trim().is_empty() && !message.contains(*l))
                .map(|l| format!("the answer does not contain {l:?}"))
                .collect()
        };
        match &self.error {
            Some(needles) => {
                if !is_error(result) {
                    problems.push("expected a tool error, got success".into());
                }
                problems.extend(missing(needles));
            }
            None if is_error(result) => problems.push("expected success, got a tool error".into()),
            None => {
                let s = structured(result);
                if s["applied"] != json!(!dry_run) || s["dry_run"] != json!(dry_run) {
                    problems.push(format!("applied/dry_run flags wrong: {s}"));
                }
                if dry_run && !message.contains("nothing was changed") {
                    problems.push("a dry run should say nothing was changed".into());
                }
                if let Some(needles) = &self.answer {
                    problems.extend(missing(needles));
                }
                if let Some(summary) = &self.summary {
                    if let Err(e) = check_subset("files", summary, &s["files"]) {
                        problems.push(e);
                    }
                    // A rename is reported only where one is expected.
                    for (i, (w, g)) in summary
                        .as_array()
                        .into_iter()
                        .flatten()
                        .zip(s["files"].as_array().into_iter().flatten())
                        .enumerate()
                    {
                        if w.get("old_path").is_none() && g.get("old_path").is_some() {
                            problems.push(format!("files[{i}]: unexpected old_path in {g}"));
                        }
                    }
                    if let Err(e) = check_totals(summary, s) {
                        problems.push(e);
                    }
                }
            }
        }
        if !problems.is_empty() {
            problems.push(format!("the answer was:\n{message}"));
        }
        problems
    }
}

/// The structured totals agree with the expected per-file counts (when every
/// file gives them).
fn check_totals(summary: &Value, s: &Value) -> Result<(), String> {
    let files = summary.as_array().map(Vec::as_slice).unwrap_or_default();
    let total = |key: &str| -> Option<u64> { files.iter().map(|f| f[key].as_u64()).sum() };
    if let (Some(adds), Some(dels)) = (total("additions"), total("deletions"))
        && (s["additions"] != json!(adds) || s["deletions"] != json!(dels))
    {
        return Err(format!("totals expected +{adds} -{dels}, got {s}"));
    }
    Ok(())
}

fn read_json(dir: &Path, file: &str) -> Result<Option<Value>, String> {
    match std::fs::read_to_string(dir.join(file)) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{file}: {e}")),
        Err(_) => Ok(None),
    }
}

/// Runs every scenario under `kind` whose name contains `$PATCH_SCENARIO`;
/// `args` builds the call's arguments from the scenario.
pub async fn run_all(kind: &str, tool: &str, min: usize, args: impl Fn(&Scenario) -> Result<Value, String>) {
    let filter = std::env::var("PATCH_SCENARIO").unwrap_or_default();
    let root = fixtures(kind);
    let names: Vec<String> = scenario_names(&root)
        .into_iter()
        .filter(|n| n.contains(&filter))
        .collect();
    if filter.is_empty() {
        assert!(
            names.len() >= min,
            "expected the {kind} scenario folders, found {names:?}"
        );
    }
    let mut failures = Vec::new();
    let mut known = 0;
    for name in &names {
        let outcome = match Scenario::load(&root, name) {
            Ok(s) => match args(&s) {
                Ok(a) => s.run(tool, a).await.map(|()| s.bug.clone()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let bug = std::fs::read_to_string(root.join(name).join("BUG.md")).ok();
        match (outcome, bug) {
            (Ok(None), _) => {}
            (Ok(Some(_)), _) => failures.push(format!(
                "scenario {name}: passes but still has BUG.md; the bug is fixed, remove tests/fixtures/{kind}/{name}/BUG.md"
            )),
            (Err(e), Some(bug)) => {
                known += 1;
                failures.push(format!(
                    "scenario {name} [KNOWN ENGINE BUG: {}]:\n  {e}",
                    bug.lines().next().unwrap_or_default()
                ));
            }
            (Err(e), None) => failures.push(format!("scenario {name}:\n  {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} {tool} scenarios failed ({known} of them marked as known engine bugs by BUG.md):\n\n{}",
        failures.len(),
        names.len(),
        failures.join("\n\n")
    );
}
