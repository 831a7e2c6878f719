//! The gate's approval paths: operator ids, elicitation (2025) and
//! input_required (2026-07-28), each failing closed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientCapabilities, ClientConfig, ElicitRequestParams, ElicitResult,
    ElicitationAction, InputResponses, ProtocolVersion,
};
use rmcp::service::RequestContext;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, ErrorData, RoleClient};
use serde_json::{Value, json};

use crate::common::*;

/// How the test's human answers an approval question.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Answer {
    Yes,
    No,
    Decline,
    Cancel,
    Malformed,
    Slow,
    Fail,
}

#[derive(Clone)]
pub(crate) struct Human {
    answer: Answer,
    version: ProtocolVersion,
    asked: Arc<Mutex<Vec<String>>>,
}

impl Human {
    pub(crate) fn new(answer: Answer, version: ProtocolVersion) -> Self {
        Self {
            answer,
            version,
            asked: Arc::default(),
        }
    }

    pub(crate) fn questions(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl ClientHandler for Human {
    fn get_info(&self) -> ClientConfig {
        client_config(
            self.version.clone(),
            ClientCapabilities::builder().enable_elicitation().build(),
        )
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        if let ElicitRequestParams::FormElicitationParams { message, .. } = &request {
            self.asked.lock().unwrap().push(message.clone());
        }
        let accept = ElicitResult::new(ElicitationAction::Accept);
        Ok(match self.answer {
            Answer::Yes => accept.with_content(json!({"approve": true})),
            Answer::No => accept.with_content(json!({"approve": false})),
            Answer::Decline => ElicitResult::new(ElicitationAction::Decline),
            Answer::Cancel => ElicitResult::new(ElicitationAction::Cancel),
            Answer::Malformed => accept.with_content(json!({"approve": "sure"})),
            Answer::Slow => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                accept.with_content(json!({"approve": true}))
            }
            Answer::Fail => return Err(ErrorData::internal_error("the client's UI crashed", None)),
        })
    }
}

fn write_args(content: &str) -> Value {
    json!({"path": "out.txt", "content": content})
}

#[tokio::test]
async fn without_elicitation_the_operator_approves_an_id_bound_to_the_call() {
    let env = TestEnv::strict();
    let core = env.core();
    let client = connect(
        &core,
        client_config(ProtocolVersion::V_2025_11_25, ClientCapabilities::default()),
    )
    .await;

    let r = call(&client, "filesystem_write", write_args("hello")).await;
    assert_tool_error(&r, "approval required");
    assert!(!env.path("out.txt").exists());
    let pending = r
        .meta
        .as_ref()
        .and_then(|m| m.get("execlayer/pending_approval_id"))
        .and_then(Value::as_str)
        .unwrap()
        .to_owned();
    assert!(
        text(&r).contains(&format!("execlayer approve {pending}")),
        "{}",
        text(&r)
    );

    // Retrying before an operator answers is still refused, with the same id.
    let mut retry = write_args("hello");
    retry["approval_id"] = json!(pending);
    assert_tool_error(&call(&client, "filesystem_write", retry.clone()).await, "still waiting");
    let listed = core.engine.state.pending().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].preview.contains("out.txt") && listed[0].preview.contains("5 bytes"),
        "{}",
        listed[0].preview
    );

    core.engine
        .state
        .decide(&pending, true, "operator", Duration::from_secs(60))
        .await
        .unwrap();
    // An approval for these arguments does not cover others.
    let mut other = write_args("something else");
    other["approval_id"] = json!(pending);
    assert_tool_error(&call(&client, "filesystem_write", other).await, "different arguments");

    let r = call(&client, "filesystem_write", retry.clone()).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(env.read("out.txt"), "hello");
    // Single use.
    assert_tool_error(
        &call(&client, "filesystem_write", retry).await,
        "unknown, already used, or expired",
    );

    let decisions: Vec<(String, String)> = env
        .audit_lines()
        .iter()
        .map(|l| {
            (
                l["decision"].as_str().unwrap().to_owned(),
                l["approval"]["via"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [
            ("approval_required".into(), "operator".into()),
            ("denied".into(), "approval_id".into()),
            ("denied".into(), "approval_id".into()),
            ("allowed".into(), "approval_id".into()),
            ("denied".into(), "approval_id".into()),
        ]
    );
}

#[tokio::test]
async fn tool_wide_grants_are_single_use_and_expire() {
    let env = TestEnv::strict();
    let core = env.core();
    let client = connect(
        &core,
        client_config(ProtocolVersion::V_2025_06_18, ClientCapabilities::default()),
    )
    .await;
    let risk = execlayer::policy::Risk::Medium;
    let grant = core
        .engine
        .state
        .grant_tool("filesystem_write", risk, "op", Duration::from_secs(60))
        .await
        .unwrap();
    let other_tool = core
        .engine
        .state
        .grant_tool("apply_patch", risk, "op", Duration::from_secs(60))
        .await
        .unwrap();
    let mut args = write_args("x");
    args["approval_id"] = json!(other_tool.id);
    assert_tool_error(&call(&client, "filesystem_write", args.clone()).await, "apply_patch");
    args["approval_id"] = json!(grant.id);
    assert!(!is_error(&call(&client, "filesystem_write", args.clone()).await));
    assert_tool_error(&call(&client, "filesystem_write", args.clone()).await, "already used");

    let short = core
        .engine
        .state
        .grant_tool("filesystem_write", risk, "op", Duration::from_millis(50))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    args["approval_id"] = json!(short.id);
    assert_tool_error(&call(&client, "filesystem_write", args).await, "expired");
}

#[tokio::test]
async fn low_risk_and_dry_runs_need_no_approval_and_disabled_tools_are_refused() {
    let env = TestEnv::strict();
    env.init_repo(&[("a.txt", "one\n")]);
    env.set_policy(|p| p["tools"]["shell_exec"]["enabled"] = json!(false));
    let client = env.client().await;
    assert!(!is_error(&call(&client, "git_status", json!({})).await));
    let patch = "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-one\n+two\n";
    let r = call(&client, "apply_patch", json!({"patch": patch, "dry_run": true})).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(env.read("a.txt"), "one\n");
    assert_tool_error(
        &call(&client, "apply_patch", json!({"patch": patch})).await,
        "approval required",
    );

    let tools = client.list_all_tools().await.unwrap();
    assert!(
        tools.iter().all(|t| t.name != "shell_exec"),
        "a disabled tool is not listed"
    );
    assert_tool_error(
        &call(&client, "shell_exec", json!({"command": "ls"})).await,
        "tool disabled: shell_exec",
    );

    let lines = env.audit_lines();
    let dry = lines
        .iter()
        .find(|l| l["tool"] == "apply_patch" && l["dry_run"] == true)
        .expect("dry run audited");
    assert_eq!(
        (dry["decision"].as_str(), dry["risk"].as_str()),
        (Some("allowed"), Some("low"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l["tool"] == "shell_exec" && l["decision"] == "disabled")
    );
}

/// A client for `env` whose human answers as `human` does, speaking `version`
/// (2026-07-28 through `server/discover`, 2025 revisions through `initialize`).
pub(crate) async fn human_client(
    env: &TestEnv,
    human: &Human,
    version: ProtocolVersion,
) -> rmcp::service::RunningService<RoleClient, Human> {
    let core = env.core();
    if version >= ProtocolVersion::V_2026_07_28 {
        let (server_io, client_io) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move {
            let (r, w) = tokio::io::split(server_io);
            let _ = execlayer::server::serve_stream(&core, execlayer::audit::Door::Stdio, r, w).await;
        });
        human
            .clone()
            .serve_with_lifecycle(
                client_io,
                ClientLifecycleMode::Discover {
                    preferred_versions: vec![version],
                },
            )
            .await
            .unwrap()
    } else {
        connect(&core, human.clone()).await
    }
}

async fn elicit_once(answer: Answer, version: ProtocolVersion) -> (TestEnv, Human, rmcp::model::CallToolResult) {
    let env = TestEnv::strict();
    env.set_policy(|p| p["approval_timeout_seconds"] = json!(1));
    let human = Human::new(answer, version.clone());
    let client = human_client(&env, &human, version).await;
    let r = call(&client, "filesystem_write", write_args("approved text")).await;
    (env, human, r)
}

#[tokio::test]
async fn elicitation_yes_runs_the_call_and_shows_what_will_happen() {
    for version in [
        ProtocolVersion::V_2025_06_18,
        ProtocolVersion::V_2025_11_25,
        ProtocolVersion::V_2026_07_28,
    ] {
        let (env, human, r) = elicit_once(Answer::Yes, version.clone()).await;
        assert!(!is_error(&r), "{version}: {}", text(&r));
        assert_eq!(env.read("out.txt"), "approved text");
        let questions = human.questions();
        assert_eq!(questions.len(), 1, "{version}");
        assert!(
            questions[0].contains("create out.txt with 13 bytes"),
            "{}",
            questions[0]
        );
        let via = if version >= ProtocolVersion::V_2026_07_28 {
            "input_required"
        } else {
            "elicitation"
        };
        let last = env.audit_lines().pop().unwrap();
        assert_eq!(
            (last["decision"].as_str(), last["approval"]["via"].as_str()),
            (Some("allowed"), Some(via))
        );
    }
}

#[tokio::test]
async fn every_answer_but_yes_leaves_the_disk_unchanged() {
    let cases = [
        (Answer::No, "answered no"),
        (Answer::Decline, "declined"),
        (Answer::Cancel, "cancelled"),
        (Answer::Malformed, "approve: true"),
        (Answer::Slow, "no answer within 1 s"),
        (Answer::Fail, "failed"),
    ];
    for (answer, reason) in cases {
        for version in [ProtocolVersion::V_2025_11_25, ProtocolVersion::V_2026_07_28] {
            if matches!(answer, Answer::Slow | Answer::Fail) && version >= ProtocolVersion::V_2026_07_28 {
                continue; // input_required has no server-side wait; the client's own error ends the call.
            }
            let (env, _, r) = elicit_once(answer, version.clone()).await;
            assert_tool_error(&r, "denied");
            assert!(text(&r).contains(reason), "{answer:?} {version}: {}", text(&r));
            assert!(!env.path("out.txt").exists(), "{answer:?} {version} wrote the file");
            assert_eq!(env.audit_lines().pop().unwrap()["decision"], "denied");
        }
    }
}

/// A 2026-07-28 client driving the rounds by hand.
async fn modern_client(env: &TestEnv) -> Client<Human> {
    let core = env.core();
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        let (r, w) = tokio::io::split(server_io);
        let _ = execlayer::server::serve_stream(&core, execlayer::audit::Door::Stdio, r, w).await;
    });
    Human::new(Answer::Yes, ProtocolVersion::V_2026_07_28)
        .serve_with_lifecycle(
            client_io,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .unwrap()
}

fn params(args: Value) -> CallToolRequestParams {
    CallToolRequestParams::new("filesystem_write").with_arguments(args.as_object().unwrap().clone())
}

fn yes() -> InputResponses {
    let mut responses = InputResponses::new();
    let answer = ElicitResult::new(ElicitationAction::Accept).with_content(json!({"approve": true}));
    responses.insert("approval".into(), serde_json::to_value(answer).unwrap());
    responses
}

#[tokio::test]
async fn request_state_is_bound_sealed_and_single_use() {
    let env = TestEnv::strict();
    let client = modern_client(&env).await;
    let first = client.call_tool_once(params(write_args("one"))).await.unwrap();
    let CallToolResponse::InputRequired(required) = first else {
        panic!("expected input_required, got {first:?}")
    };
    let state = required.request_state.clone().unwrap();
    assert!(required.input_requests.as_ref().unwrap().contains_key("approval"));
    // The question is on record, so that one never answered (the client gone,
    // the human away) is seen in the audit log, with nothing run.
    let asked = env.audit_lines().pop().unwrap();
    assert_eq!(asked["tool"], "filesystem_write");
    assert_eq!(asked["decision"], "approval_required");
    assert_eq!(asked["approval"]["via"], "input_required");
    assert_eq!(asked["approval"]["answer"], "asked");
    assert!(asked.get("outcome").is_none(), "{asked}");

    let complete = |r: CallToolResponse| match r {
        CallToolResponse::Complete(c) => c,
        other => panic!("expected a complete result, got {other:?}"),
    };
    // Changed arguments.
    let r = complete(
        client
            .call_tool_once(
                params(write_args("two"))
                    .with_input_responses(yes())
                    .with_request_state(state.clone()),
            )
            .await
            .unwrap(),
    );
    assert_tool_error(&r, "requestState is invalid");
    // Tampered state: flip one character of the body.
    let mut tampered: Vec<char> = state.chars().collect();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    let r = complete(
        client
            .call_tool_once(
                params(write_args("one"))
                    .with_input_responses(yes())
                    .with_request_state(tampered),
            )
            .await
            .unwrap(),
    );
    assert_tool_error(&r, "requestState is invalid");
    assert!(!env.path("out.txt").exists());

    // The genuine retry runs once...
    let r = complete(
        client
            .call_tool_once(
                params(write_args("one"))
                    .with_input_responses(yes())
                    .with_request_state(state.clone()),
            )
            .await
            .unwrap(),
    );
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(env.read("out.txt"), "one");
    // ...and a replay is refused.
    std::fs::remove_file(env.path("out.txt")).unwrap();
    let r = complete(
        client
            .call_tool_once(
                params(write_args("one"))
                    .with_input_responses(yes())
                    .with_request_state(state),
            )
            .await
            .unwrap(),
    );
    assert_tool_error(&r, "requestState is invalid");
    assert!(!env.path("out.txt").exists());
}

#[tokio::test]
async fn an_expired_request_state_is_refused() {
    let env = TestEnv::strict();
    env.set_policy(|p| p["approval_timeout_seconds"] = json!(1));
    let client = modern_client(&env).await;
    let CallToolResponse::InputRequired(required) = client.call_tool_once(params(write_args("late"))).await.unwrap()
    else {
        panic!("expected input_required")
    };
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = client
        .call_tool_once(
            params(write_args("late"))
                .with_input_responses(yes())
                .with_request_state(required.request_state.unwrap()),
        )
        .await
        .unwrap();
    let CallToolResponse::Complete(r) = r else {
        panic!("expected complete")
    };
    assert_tool_error(&r, "requestState is invalid");
    assert!(!env.path("out.txt").exists());
}

#[tokio::test]
async fn no_tool_can_rewrite_the_policy_playbooks_audit_or_read_the_env_file() {
    // The defaults put config/ in the current directory; here that is inside the workspace.
    let mut env = TestEnv::strict();
    let config = env.ws.join("config/execution_layer_config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::copy(&env.config, &config).unwrap();
    env.set_var("EXECUTION_CONFIG", config.to_str().unwrap());
    env.set_var("EXECUTION_AUDIT_LOG", env.ws.join("audit.jsonl").to_str().unwrap());
    let before = std::fs::read_to_string(&config).unwrap();
    let core = env.core();
    let client = connect(
        &core,
        client_config(ProtocolVersion::V_2025_11_25, ClientCapabilities::default()),
    )
    .await;
    let auto = before.replace("require_approval", "auto");
    // Even with an operator's approval, the write is refused by confinement.
    let grant = core
        .engine
        .state
        .grant_tool(
            "filesystem_write",
            execlayer::policy::Risk::Medium,
            "op",
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let r = call(
        &client,
        "filesystem_write",
        json!({"path": "config/execution_layer_config.json", "content": auto, "approval_id": grant.id}),
    )
    .await;
    assert_tool_error(&r, "execlayer's policy file");
    let patch = "--- a/config/playbooks/x.json\n+++ b/config/playbooks/x.json\n@@ -0,0 +1 @@\n+{}\n";
    let r = call(
        &client,
        "apply_patch",
        json!({"patch": patch.replace("--- a/config/playbooks/x.json", "--- /dev/null"), "dry_run": true}),
    )
    .await;
    assert_tool_error(&r, "playbooks folder");
    let r = call(
        &client,
        "apply_patch",
        json!({"patch": "--- a/audit.jsonl\n+++ b/audit.jsonl\n@@ -1 +1 @@\n-x\n+y\n", "dry_run": true}),
    )
    .await;
    assert_tool_error(&r, "audit log");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);
    assert_eq!(
        core.engine.policy.current().approval_mode,
        execlayer::policy::ApprovalMode::RequireApproval
    );

    // The .env file the server read its settings from is not readable either.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "EXECUTION_TOKEN=super-secret-token\n").unwrap();
    let settings = execlayer::settings::Settings::load(dir.path()).unwrap();
    assert!(settings.env_file.is_some());
    let engine = execlayer::engine::Engine::new(execlayer::settings::Settings {
        workspace_root: dir.path().to_path_buf(),
        config_path: env.config.clone(),
        audit_log: env.audit.clone(),
        ..settings
    })
    .unwrap();
    let err = engine
        .workspace
        .resolve(".env", execlayer::workspace::Access::Read)
        .unwrap_err();
    assert!(err.to_string().contains(".env file"), "{err}");
}
