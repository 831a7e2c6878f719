//! Generated JSON schemas: each tool's input, output and annotations, and the
//! policy file. `execlayer schemas --out schemas/` writes them; a test fails when
//! the checked-in files differ from what the code generates.

use std::path::Path;

use serde_json::{Value, json};

use crate::policy::PolicyFile;
use crate::tools::{Registry, ToolSpec, schema_of};

/// Every generated file: (path relative to the schemas folder, content).
pub fn generate() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = Registry::builtin()
        .iter()
        .map(|t| {
            let spec = t.spec();
            (format!("tools/{}.json", spec.name), pretty(&tool_document(spec)))
        })
        .collect();
    let mut policy = schema_of::<PolicyFile>();
    policy.insert(
        "$schema".into(),
        Value::from("https://json-schema.org/draft/2020-12/schema"),
    );
    policy.insert(
        "title".into(),
        Value::from("execlayer policy file (config/execution_layer_config.json)"),
    );
    files.push((
        "execution_layer_config.schema.json".into(),
        pretty(&Value::Object(policy)),
    ));
    let mut playbook = schema_of::<crate::playbook::Playbook>();
    playbook.insert(
        "$schema".into(),
        Value::from("https://json-schema.org/draft/2020-12/schema"),
    );
    playbook.insert(
        "title".into(),
        Value::from("execlayer playbook (config/playbooks/NAME.json)"),
    );
    files.push(("playbook.schema.json".into(), pretty(&Value::Object(playbook))));
    files
}

fn tool_document(spec: &ToolSpec) -> Value {
    let a = spec.annotations;
    json!({
        "name": spec.name,
        "title": spec.title,
        "description": spec.description,
        "risk_level": spec.risk.as_str(),
        "annotations": {
            "readOnlyHint": a.read_only,
            "destructiveHint": a.destructive,
            "idempotentHint": a.idempotent,
            "openWorldHint": a.open_world,
        },
        "inputSchema": Value::Object((*spec.input_schema).clone()),
        "outputSchema": Value::Object((*spec.output_schema).clone()),
    })
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// Writes every generated file under `out`.
pub fn write_all(out: &Path) -> std::io::Result<usize> {
    let files = generate();
    for (relative, content) in &files {
        crate::fsutil::write_atomic(&out.join(relative), content.as_bytes(), true)?;
    }
    Ok(files.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyFile;

    /// Set EXECLAYER_REGENERATE=1 to rewrite the checked-in files instead.
    #[test]
    fn checked_in_schemas_match_the_code() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        if std::env::var_os("EXECLAYER_REGENERATE").is_some() {
            write_all(&root).unwrap();
        }
        for (relative, content) in generate() {
            let on_disk = std::fs::read_to_string(root.join(&relative)).unwrap_or_default();
            assert!(
                on_disk == content,
                "schemas/{relative} is out of date: run `cargo run -- schemas --out schemas` (or EXECLAYER_REGENERATE=1 cargo test)"
            );
        }
    }

    #[test]
    fn shipped_policy_file_is_the_builtin_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/execution_layer_config.json");
        let risks = Registry::builtin().risks();
        let shipped = PolicyFile::load(&path, &risks).unwrap();
        assert_eq!(shipped, PolicyFile::defaults(&risks));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            PolicyFile::defaults(&risks).to_pretty_json()
        );
    }
}
