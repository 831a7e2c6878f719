//! The agent's daily path through a real MCP client: `edit_file`, patches in
//! the forms models write (bare `@@`, Codex's envelope, shifted and
//! miscounted hunks) on real files of other projects, and the rule that a
//! call which cannot succeed is refused before anyone is asked.

use std::path::Path;

use rmcp::model::ProtocolVersion;
use serde_json::{Value, json};

use super::approvals::{Answer, Human, human_client};
use crate::common::*;

fn real(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/real")
        .join(name);
    std::fs::read_to_string(path).expect("fixture")
}

#[tokio::test]
async fn edit_file_changes_a_real_file_exactly_and_answers_with_the_diff() {
    let env = TestEnv::new();
    let original = real("serde_json_read.rs");
    env.write("src/read.rs", &original);
    let client = env.client().await;
    // `peek_position` is defined by four readers: refused with every line.
    let twice = "    fn peek_position(&self) -> Position {\n        // Cap it at slice.len()";
    let r = call(
        &client,
        "edit_file",
        json!({"path": "src/read.rs", "old_string": "fn peek_position(&self) -> Position {", "new_string": "fn peek(&self) -> Position {"}),
    )
    .await;
    assert_tool_error(&r, "occurs 4 times (at lines 326, 604, 736, 817)");
    assert_eq!(env.read("src/read.rs"), original);

    let r = call(
        &client,
        "edit_file",
        json!({"path": "src/read.rs", "old_string": twice, "new_string": "    fn peek_position(&self) -> Position {\n        // Capped at slice.len()"}),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    let s = structured(&r);
    assert_eq!((s["additions"].as_u64(), s["deletions"].as_u64()), (Some(1), Some(1)));
    assert_eq!(s["files"][0]["replacements"], 1);
    assert!(text(&r).contains("@@ -602,7 +602,7 @@"), "{}", text(&r));
    assert!(text(&r).contains("+        // Capped at slice.len()"));
    let expected = original.replacen(
        "        // Cap it at slice.len()",
        "        // Capped at slice.len()",
        1,
    );
    assert_eq!(env.read("src/read.rs"), expected);
}

#[tokio::test]
async fn a_multi_file_edit_with_one_miss_changes_nothing_and_names_the_miss() {
    let env = TestEnv::new();
    env.write("read.rs", real("serde_json_read.rs"));
    env.write("textwrap.py", real("textwrap.py"));
    let client = env.client().await;
    let r = call(
        &client,
        "edit_file",
        json!({"edits": [
            {"path": "read.rs", "old_string": "    fn byte_offset(&self) -> usize {\n        self.index\n    }", "new_string": "    fn byte_offset(&self) -> usize {\n        self.index + 0\n    }"},
            {"path": "textwrap.py", "old_string": "def dedent(text):\n    \"\"\"Remove all common leading whitespace", "new_string": "x"}
        ]}),
    )
    .await;
    assert_tool_error(&r, "edit 2 (textwrap.py): old_string is not in the file");
    // The closest lines are shown with their numbers, the differing one marked.
    assert_tool_error(&r, "   420 !|     \"\"\"Remove any common leading whitespace");
    assert_eq!(env.read("read.rs"), real("serde_json_read.rs"));
    assert_eq!(env.read("textwrap.py"), real("textwrap.py"));

    // Indentation lost in old_string: refused with the exact lines to copy.
    let r = call(
        &client,
        "edit_file",
        json!({"path": "textwrap.py", "old_string": "margin = None\ntext = _whitespace_only_re.sub('', text)", "new_string": "x"}),
    )
    .await;
    assert_tool_error(&r, "different whitespace or indentation");
    assert_tool_error(&r, "   434 !|     margin = None");
}

#[tokio::test]
async fn patches_in_the_forms_models_write_land_where_their_lines_are() {
    let env = TestEnv::new();
    env.write("textwrap.py", real("textwrap.py"));
    let client = env.client().await;

    // Codex's envelope with an anchor, no line numbers.
    let codex = "*** Begin Patch\n*** Update File: textwrap.py\n@@ def dedent(text):\n     margin = None\n-    text = _whitespace_only_re.sub('', text)\n+    text = _whitespace_only_re.sub('', text)  # blank lines\n     indents = _leading_whitespace_re.findall(text)\n*** End Patch\n";
    let r = call(&client, "apply_patch", json!({"patch": codex})).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert!(
        text(&r).contains("hunk 1 at line 434 (no line number: placed by its lines)"),
        "{}",
        text(&r)
    );
    assert!(
        env.read("textwrap.py")
            .contains("    text = _whitespace_only_re.sub('', text)  # blank lines\n")
    );

    // A unified hunk 30 lines off with miscounted header: placed, and said so.
    let shifted = "--- a/textwrap.py\n+++ b/textwrap.py\n@@ -440,9 +440,9 @@ def dedent(text):\n         # Current line more deeply indented than previous winner:\n         # no change (previous winner is still on top).\n-        elif indent.startswith(margin):\n+        elif indent.startswith(margin):  # deeper\n             pass\n";
    let r = call(&client, "apply_patch", json!({"patch": shifted})).await;
    assert!(!is_error(&r), "{}", text(&r));
    let hunk = &structured(&r)["files"][0]["hunks"][0];
    assert_eq!((hunk["line"].as_u64(), hunk["offset"].as_i64()), (Some(441), Some(1)));
    assert_eq!(hunk["recounted"], true);

    // A bare `@@` whose lines occur twice: refused, naming both places.
    let before = env.read("textwrap.py");
    let bare = "--- a/textwrap.py\n+++ b/textwrap.py\n@@\n-            margin = indent\n+            margin = indent  # which one?\n";
    let r = call(&client, "apply_patch", json!({"patch": bare})).await;
    assert_tool_error(&r, "textwrap.py: hunk 1 of 1");
    assert_tool_error(&r, "matches the file in 2 places (lines 439, 449)");
    assert_eq!(env.read("textwrap.py"), before);

    // Only context: it changes nothing, and says so instead of "applied".
    let noop = "--- a/textwrap.py\n+++ b/textwrap.py\n@@\n     margin = None\n";
    let r = call(&client, "apply_patch", json!({"patch": noop})).await;
    assert_tool_error(&r, "changes nothing");
}

#[tokio::test]
async fn a_call_that_cannot_succeed_is_refused_before_anyone_is_asked() {
    for version in [ProtocolVersion::V_2025_11_25, ProtocolVersion::V_2026_07_28] {
        let env = TestEnv::strict();
        env.write("textwrap.py", real("textwrap.py"));
        let human = Human::new(Answer::Yes, version.clone());
        let client = human_client(&env, &human, version.clone()).await;
        let cannot: [(&str, Value, &str); 4] = [
            (
                "apply_patch",
                json!({"patch": "--- a/textwrap.py\n+++ b/textwrap.py\n@@ -1,2 +1,2 @@\n-not in the file\n+x\n"}),
                "does not apply",
            ),
            (
                "edit_file",
                json!({"path": "textwrap.py", "old_string": "not in the file", "new_string": "x"}),
                "not in the file",
            ),
            ("shell_exec", json!({"command": "rm -rf ."}), "not allowed"),
            (
                "filesystem_write",
                json!({"path": "../outside.txt", "content": "x"}),
                "outside",
            ),
        ];
        for (tool, args, needle) in cannot {
            let r = call(&client, tool, args).await;
            assert_tool_error(&r, needle);
            assert_tool_error(&r, "no one was asked");
        }
        assert!(human.questions().is_empty(), "{version}: {:?}", human.questions());

        // A call that can succeed is asked about, with the diff in the question.
        let r = call(
            &client,
            "edit_file",
            json!({"path": "textwrap.py", "old_string": "    margin = None\n", "new_string": "    margin = None  # none yet\n"}),
        )
        .await;
        assert!(!is_error(&r), "{version}: {}", text(&r));
        let questions = human.questions();
        assert_eq!(questions.len(), 1, "{version}");
        assert!(
            questions[0].contains("+    margin = None  # none yet"),
            "{}",
            questions[0]
        );
        let audit = env.audit_lines();
        let refused: Vec<&Value> = audit.iter().filter(|l| l["outcome"] == "error").collect();
        assert_eq!(refused.len(), 4, "{audit:?}");
        assert!(refused.iter().all(|l| l.get("approval").is_none_or(Value::is_null)));
    }
}

/// A rename is asked about as a rename: the human sees `rename a -> b` and
/// what changed inside, not the whole file deleted and added again.
#[tokio::test]
async fn a_rename_is_asked_about_as_a_rename() {
    let version = ProtocolVersion::V_2025_11_25;
    let env = TestEnv::strict();
    let original = real("textwrap.py");
    env.write("lib/textwrap.py", &original);
    env.write("lib/other.py", "x = 1\n");
    let human = Human::new(Answer::Yes, version.clone());
    let client = human_client(&env, &human, version).await;

    let pure = "diff --git a/lib/textwrap.py b/lib/wrap.py\nsimilarity index 100%\nrename from lib/textwrap.py\nrename to lib/wrap.py\n";
    let r = call(&client, "apply_patch", json!({"patch": pure})).await;
    assert!(!is_error(&r), "{}", text(&r));
    let question = human.questions().pop().unwrap();
    assert!(
        question.contains("rename lib/textwrap.py -> lib/wrap.py (content unchanged)"),
        "{question}"
    );
    assert!(!question.contains("-def dedent(text):"), "{question}");
    assert_eq!(env.read("lib/wrap.py"), original);
    assert!(!env.path("lib/textwrap.py").exists());

    // Renamed and changed, beside another file's change: each shown once.
    let patch = "diff --git a/lib/wrap.py b/lib/textwrap.py\nsimilarity index 99%\nrename from lib/wrap.py\nrename to lib/textwrap.py\n--- a/lib/wrap.py\n+++ b/lib/textwrap.py\n@@ -434,2 +434,2 @@ def dedent(text):\n     margin = None\n-    text = _whitespace_only_re.sub('', text)\n+    text = _whitespace_only_re.sub('', text)  # blank lines\n--- a/lib/other.py\n+++ b/lib/other.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n";
    let r = call(&client, "apply_patch", json!({"patch": patch})).await;
    assert!(!is_error(&r), "{}", text(&r));
    let question = human.questions().pop().unwrap();
    assert!(
        question.contains("rename lib/wrap.py -> lib/textwrap.py\n"),
        "{question}"
    );
    assert!(
        question.contains("+    text = _whitespace_only_re.sub('', text)  # blank lines"),
        "{question}"
    );
    assert!(question.contains("+x = 2"), "{question}");
    assert_eq!(question.matches("-def dedent").count(), 0, "{question}");
}

/// Accented letters that share a byte with their replacement (`é` → `è`:
/// the first byte; `é` → `©`: the last) are edited, answered with their diff
/// and asked about, like any other change (the diff once split them and
/// panicked: found by the `patch` fuzz target).
#[tokio::test]
async fn an_edit_between_accented_letters_is_diffed_whole() {
    let env = TestEnv::new();
    env.write("menu.txt", "Entrées\ncafé crème\nprix: 5 €\n");
    let client = env.client().await;
    let r = call(
        &client,
        "edit_file",
        json!({"edits": [
            {"path": "menu.txt", "old_string": "café", "new_string": "cafè"},
            {"path": "menu.txt", "old_string": "5 €", "new_string": "5 ₤"}
        ]}),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    for line in ["-café crème\n", "+cafè crème\n", "-prix: 5 €\n", "+prix: 5 ₤\n"] {
        assert!(text(&r).contains(line), "{line}: {}", text(&r));
    }
    assert_eq!(env.read("menu.txt"), "Entrées\ncafè crème\nprix: 5 ₤\n");
    let r = call(
        &client,
        "apply_patch",
        json!({"patch": "--- a/menu.txt\n+++ b/menu.txt\n@@ -1 +1 @@\n-Entrées\n+Entrée©\n"}),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(env.read("menu.txt"), "Entrée©\ncafè crème\nprix: 5 ₤\n");
}
