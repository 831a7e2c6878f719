//! Playbooks: the budget guard, retries, one approval per run, dry runs,
//! and the listing doors (MCP resources, REST).

use std::time::Duration;

use rmcp::model::ReadResourceRequestParams;
use serde_json::{Value, json};

use crate::common::*;

fn playbook_env(mode: &str) -> TestEnv {
    let mut env = TestEnv::with_mode(mode);
    let dir = env.dir.path().join("config/playbooks");
    std::fs::create_dir_all(&dir).unwrap();
    env.set_var("EXECUTION_PLAYBOOKS_DIR", dir.to_str().unwrap());
    env.set_var("SHELL_ALLOWLIST", "bash ./flaky.sh,bash ./fail.sh,git status");
    env.write(
        "flaky.sh",
        "if [ -f marker ]; then echo second try; exit 0; fi\ntouch marker\necho first try fails >&2\nexit 1\n",
    );
    env.write("fail.sh", "echo always fails >&2\nexit 3\n");
    env.init_repo(&[("a.txt", "a\n")]);
    env
}

fn write_playbook(env: &TestEnv, name: &str, body: Value) {
    std::fs::write(
        env.dir.path().join(format!("config/playbooks/{name}.json")),
        body.to_string(),
    )
    .unwrap();
}

fn step_lines(env: &TestEnv, run_id: &str) -> Vec<Value> {
    env.audit_lines()
        .into_iter()
        .filter(|l| l["run_id"] == run_id)
        .collect()
}

#[tokio::test]
async fn a_run_stops_at_the_step_budget() {
    let env = playbook_env("auto");
    env.set_policy(|p| p["max_steps_per_run"] = json!(3));
    let steps: Vec<Value> = (0..5).map(|_| json!({"tool": "git_status"})).collect();
    write_playbook(&env, "long", json!({"description": "five steps", "steps": steps}));
    let client = env.client().await;
    let r = call(&client, "run_playbook", json!({"name": "long"})).await;
    let s = structured(&r);
    assert_eq!(s["budget_exhausted"], true);
    assert_eq!(s["stopped_before"], 3);
    assert_eq!(s["completed"], false);
    let outcomes: Vec<&str> = s["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["ok", "ok", "ok", "skipped", "skipped"]);
    assert!(text(&r).contains("budget exhausted"), "{}", text(&r));

    let run_id = s["run_id"].as_str().unwrap();
    let lines = step_lines(&env, run_id);
    let ran: Vec<&Value> = lines.iter().filter(|l| l["decision"] == "allowed").collect();
    assert_eq!(ran.len(), 3, "exactly the budget's worth of step lines");
    assert!(ran.iter().all(|l| l["door"] == "playbook" && l["tool"] == "git_status"));
    let steps: Vec<u64> = ran.iter().map(|l| l["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, [0, 1, 2]);
    let stop: Vec<&Value> = lines.iter().filter(|l| l["decision"] == "budget_exhausted").collect();
    assert_eq!((stop.len(), stop[0]["step"].as_u64()), (1, Some(3)));
}

#[tokio::test]
async fn a_flaky_step_is_retried_and_retries_are_capped_by_policy() {
    let env = playbook_env("auto");
    env.set_policy(|p| p["max_retries_per_tool"] = json!(2));
    let client = env.client().await;
    let r = call(
        &client,
        "run_playbook",
        json!({"steps": [{"tool": "shell_exec", "args": {"command": "bash ./flaky.sh"}, "max_retries": 2}, {"tool": "git_status"}]}),
    )
    .await;
    let s = structured(&r);
    assert_eq!(s["completed"], true, "{}", text(&r));
    assert_eq!(s["steps"][0]["attempts"], 2);
    assert!(s["steps"][0]["output"].as_str().unwrap().contains("second try"));

    let r = call(
        &client,
        "run_playbook",
        json!({"steps": [{"tool": "shell_exec", "args": {"command": "bash ./fail.sh"}, "max_retries": 5}, {"tool": "git_status"}]}),
    )
    .await;
    assert!(is_error(&r));
    let s = structured(&r);
    assert_eq!(
        s["steps"][0]["attempts"], 3,
        "min(5, max_retries_per_tool 2) retries: 3 attempts"
    );
    assert_eq!(s["steps"][1]["outcome"], "skipped", "the run stops after a failed step");
    let run_id = s["run_id"].as_str().unwrap();
    assert_eq!(
        step_lines(&env, run_id)
            .iter()
            .filter(|l| l["tool"] == "shell_exec")
            .count(),
        3
    );

    // continue_on_error goes on.
    let r = call(
        &client,
        "run_playbook",
        json!({"steps": [{"tool": "shell_exec", "args": {"command": "bash ./fail.sh"}, "continue_on_error": true}, {"tool": "git_status"}]}),
    )
    .await;
    let s = structured(&r);
    assert_eq!(
        (s["steps"][0]["outcome"].as_str(), s["steps"][1]["outcome"].as_str()),
        (Some("error"), Some("ok"))
    );
    assert_eq!(s["completed"], false);
}

#[tokio::test]
async fn one_approval_covers_a_run_and_is_bound_to_its_steps() {
    let env = playbook_env("require_approval");
    let patch = "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-a\n+b\n";
    write_playbook(
        &env,
        "change",
        json!({"steps": [{"tool": "git_status"}, {"tool": "apply_patch", "args": {"patch": patch}}, {"tool": "shell_exec", "args": {"command": "git status"}}]}),
    );
    let core = env.core();
    let client = connect(
        &core,
        client_config(rmcp::model::ProtocolVersion::V_2025_11_25, Default::default()),
    )
    .await;

    let dry = call(&client, "run_playbook", json!({"name": "change", "dry_run": true})).await;
    let needs: Vec<bool> = structured(&dry)["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["needs_approval"].as_bool().unwrap())
        .collect();
    assert_eq!(needs, [false, true, true]);
    assert_eq!(env.read("a.txt"), "a\n");

    let r = call(&client, "run_playbook", json!({"name": "change"})).await;
    assert_tool_error(&r, "approval required");
    assert!(
        text(&r).contains("shell_exec") && text(&r).contains("(needs approval)"),
        "{}",
        text(&r)
    );
    assert!(
        text(&r).contains("is high risk"),
        "a run is as risky as its riskiest step: {}",
        text(&r)
    );
    let id = core.engine.state.pending().await.unwrap()[0].id.clone();
    core.engine
        .state
        .decide(&id, true, "op", Duration::from_secs(60))
        .await
        .unwrap();

    // The playbook changes after the approval: the approval no longer fits.
    let edited = "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-a\n+c\n";
    write_playbook(
        &env,
        "change",
        json!({"steps": [{"tool": "git_status"}, {"tool": "apply_patch", "args": {"patch": edited}}, {"tool": "shell_exec", "args": {"command": "git status"}}]}),
    );
    assert_tool_error(
        &call(&client, "run_playbook", json!({"name": "change", "approval_id": id})).await,
        "different arguments",
    );
    assert_eq!(env.read("a.txt"), "a\n");

    // Approve the current steps; one approval runs every step.
    let r = call(&client, "run_playbook", json!({"name": "change"})).await;
    let id = r.meta.as_ref().unwrap()["execlayer/pending_approval_id"]
        .as_str()
        .unwrap()
        .to_owned();
    core.engine
        .state
        .decide(&id, true, "op", Duration::from_secs(60))
        .await
        .unwrap();
    let r = call(&client, "run_playbook", json!({"name": "change", "approval_id": id})).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(env.read("a.txt"), "c\n");
    let run_id = structured(&r)["run_id"].as_str().unwrap().to_owned();
    let lines = step_lines(&env, &run_id);
    assert_eq!(lines.len(), 3);
    assert!(
        lines
            .iter()
            .all(|l| l["approval"].is_null() || l["approval"]["via"] == "playbook")
    );
}

#[tokio::test]
async fn a_disabled_step_stops_the_run_with_a_reason() {
    let env = playbook_env("auto");
    env.set_policy(|p| p["tools"]["git_diff"]["enabled"] = json!(false));
    let client = env.client().await;
    let r = call(
        &client,
        "run_playbook",
        json!({"steps": [{"tool": "git_status"}, {"tool": "git_diff"}, {"tool": "git_status"}]}),
    )
    .await;
    let s = structured(&r);
    assert_eq!(s["steps"][1]["outcome"], "refused");
    assert!(
        s["stopped_reason"]
            .as_str()
            .unwrap()
            .contains("step 2 (git_diff) was refused"),
        "{s}"
    );
    assert!(
        s["steps"][1]["output"]
            .as_str()
            .unwrap()
            .contains("tool disabled: git_diff")
    );
    assert_eq!(s["steps"][2]["outcome"], "skipped");
}

#[tokio::test]
async fn bad_steps_and_unknown_playbooks_are_clear_errors() {
    let env = playbook_env("auto");
    let client = env.client().await;
    assert_tool_error(
        &call(&client, "run_playbook", json!({"name": "nope"})).await,
        "no playbook named `nope`",
    );
    assert_tool_error(&call(&client, "run_playbook", json!({})).await, "give `name`");
    assert_tool_error(
        &call(&client, "run_playbook", json!({"steps": [{"tool": "rm"}]})).await,
        "steps[0].tool",
    );
    assert_tool_error(
        &call(
            &client,
            "run_playbook",
            json!({"steps": [{"tool": "filesystem_read", "args": {"paht": "a"}}]}),
        )
        .await,
        "steps[0].args",
    );
    std::fs::write(
        env.dir.path().join("config/playbooks/broken.json"),
        r#"{"steps":[{"tool":"git_status","when":"now"}]}"#,
    )
    .unwrap();
    let r = call(&client, "run_playbook", json!({"name": "broken"})).await;
    assert_tool_error(&r, "broken.json");
    assert!(text(&r).contains("when"), "{}", text(&r));
}

#[tokio::test]
async fn playbooks_are_listed_as_resources_and_over_rest() {
    let env = playbook_env("auto");
    write_playbook(
        &env,
        "review",
        json!({"description": "look at changes", "steps": [{"tool": "git_status"}]}),
    );
    let client = env.client().await;
    let resources = client.list_all_resources().await.unwrap();
    assert_eq!(resources.len(), 1);
    assert_eq!(resources[0].uri, "playbook://review");
    let read = client
        .read_resource(ReadResourceRequestParams::new("playbook://review"))
        .await
        .unwrap();
    let rmcp::model::ResourceContents::TextResourceContents { text: body, .. } = &read.contents[0] else {
        panic!("text contents")
    };
    let parsed: Value = serde_json::from_str(body).unwrap();
    assert_eq!(parsed["steps"][0]["tool"], "git_status");

    let server = env.http().await;
    let http = http_client();
    let list: Value = server.get_json("/api/v1/execution/playbooks").await;
    assert_eq!(list["playbooks"][0]["name"], "review");
    let ran = http
        .post(server.url("/api/v1/execution/playbooks/review/run"))
        .send()
        .await
        .unwrap();
    assert_eq!(ran.status(), 200);
    let ran: Value = ran.json().await.unwrap();
    assert_eq!(ran["result"]["completed"], true, "{ran}");
}

#[tokio::test]
async fn the_shipped_review_playbook_runs() {
    let mut env = TestEnv::new();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/playbooks");
    env.set_var("EXECUTION_PLAYBOOKS_DIR", shipped.to_str().unwrap());
    env.init_repo(&[("a.txt", "one\n")]);
    env.write("a.txt", "two\n");
    let client = env.client().await;
    let r = call(&client, "run_playbook", json!({"name": "review-changes"})).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert!(text(&r).contains("+two"), "{}", text(&r));
}
