//! Playbooks: named sequences of tool calls, kept as data in
//! `config/playbooks/*.json` and checked when loaded (every step names a known
//! tool and carries arguments that tool accepts), with errors that name the
//! file, the step and the field.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::tools::{APPROVAL_ID_ARG, Registry};

/// One step: a tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The tool to call.
    pub tool: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Map<String, Value>,
    /// Retries when the step fails (capped by the policy's max_retries_per_tool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Go on with the next step when this one fails for good.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_error: bool,
    /// A label for the step in results and logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A playbook file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    /// Defaults to the file name without `.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub description: String,
    pub steps: Vec<Step>,
}

/// Checks steps against the registry; the message names the step and field.
pub fn validate_steps(steps: &[Step], registry: &Registry) -> Result<(), String> {
    if steps.is_empty() {
        return Err("`steps` is empty; a playbook needs at least one step".into());
    }
    for (i, step) in steps.iter().enumerate() {
        let at = format!("steps[{i}]");
        if step.tool == "run_playbook" {
            return Err(format!("{at}.tool: a playbook cannot run another playbook"));
        }
        let Some(tool) = registry.get(&step.tool) else {
            let known: Vec<&str> = registry.iter().map(|t| t.spec().name).collect();
            return Err(format!(
                "{at}.tool: `{}` is not a known tool; known tools: {}",
                step.tool,
                known.join(", ")
            ));
        };
        if step.args.contains_key(APPROVAL_ID_ARG) {
            return Err(format!(
                "{at}.args.{APPROVAL_ID_ARG}: steps cannot carry approval ids; the run is approved as a whole"
            ));
        }
        if let Err(e) = tool.prepare(Value::Object(step.args.clone())) {
            return Err(format!("{at}.args: {e}"));
        }
    }
    Ok(())
}

/// Reads and checks one playbook file.
pub fn load_file(path: &Path, registry: &Registry) -> Result<(String, Playbook), String> {
    let origin = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{origin}: cannot read: {e}"))?;
    let playbook: Playbook = serde_json::from_str(&text).map_err(|e| format!("{origin}: {e}"))?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = playbook.name.clone().unwrap_or(stem);
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(format!("{origin}: name: {name:?} must be letters, digits, `-` or `_`"));
    }
    validate_steps(&playbook.steps, registry).map_err(|e| format!("{origin}: {e}"))?;
    Ok((name, playbook))
}

/// Every playbook in `dir`, sorted by name, and the files that failed to load.
pub fn load_dir(dir: &Path, registry: &Registry) -> (Vec<(String, Playbook)>, Vec<String>) {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (found, errors);
    };
    let mut paths: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    for path in paths {
        match load_file(&path, registry) {
            Ok(p) => found.push(p),
            Err(e) => errors.push(e),
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    (found, errors)
}

/// Finds the playbook called `name`.
pub fn find(dir: &Path, name: &str, registry: &Registry) -> Result<Playbook, String> {
    let (found, errors) = load_dir(dir, registry);
    if let Some((_, p)) = found.into_iter().find(|(n, _)| n == name) {
        return Ok(p);
    }
    if let Some(e) = errors.iter().find(|e| e.contains(&format!("{name}.json"))) {
        return Err(e.clone());
    }
    Err(format!("no playbook named `{name}` in {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_playbooks_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/playbooks");
        let (found, errors) = load_dir(&dir, &Registry::builtin());
        assert!(errors.is_empty(), "{errors:?}");
        let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["review-changes", "test-and-report"]);
    }

    #[test]
    fn errors_name_the_file_the_step_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::builtin();
        let cases = [
            (
                "unknown_tool.json",
                r#"{"steps":[{"tool":"git_status"},{"tool":"rm_rf"}]}"#,
                "steps[1].tool",
            ),
            (
                "bad_args.json",
                r#"{"steps":[{"tool":"filesystem_read","args":{"path":3}}]}"#,
                "steps[0].args",
            ),
            (
                "extra_field.json",
                r#"{"steps":[{"tool":"git_status","retries":2}]}"#,
                "retries",
            ),
            ("empty.json", r#"{"steps":[]}"#, "steps"),
            (
                "nested.json",
                r#"{"steps":[{"tool":"run_playbook","args":{"name":"x"}}]}"#,
                "steps[0].tool",
            ),
            (
                "sneaky.json",
                r#"{"steps":[{"tool":"git_status","args":{"approval_id":"x"}}]}"#,
                "approval_id",
            ),
            ("syntax.json", r#"{"steps": ["#, "syntax.json"),
        ];
        for (file, text, needle) in cases {
            let path = dir.path().join(file);
            std::fs::write(&path, text).unwrap();
            let err = load_file(&path, &registry).unwrap_err();
            assert!(err.contains(file) && err.contains(needle), "{file}: {err}");
        }
    }
}
