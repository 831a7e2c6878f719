//! Rules per command and path, and remembered answers, through real MCP
//! clients over a stdio pipe and over HTTP, in both protocol eras.

use std::sync::{Arc, Mutex};

use rmcp::model::{
    ClientCapabilities, ClientConfig, ElicitRequestParams, ElicitResult, ElicitationAction, ProtocolVersion,
};
use rmcp::service::RequestContext;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, ErrorData, RoleClient, ServiceExt};
use serde_json::{Value, json};

use crate::common::*;

/// A human who says yes (or no), remembering as told, and notes each question.
#[derive(Clone)]
pub(crate) struct Asker {
    approve: bool,
    remember: Option<&'static str>,
    version: ProtocolVersion,
    /// (message, requested schema) of each question.
    asked: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Asker {
    pub(crate) fn new(version: ProtocolVersion, approve: bool, remember: Option<&'static str>) -> Self {
        Self {
            approve,
            remember,
            version,
            asked: Arc::default(),
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.asked.lock().unwrap().len()
    }

    pub(crate) fn last(&self) -> (String, Value) {
        self.asked
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a question was asked")
    }
}

impl ClientHandler for Asker {
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
        if let ElicitRequestParams::FormElicitationParams {
            message,
            requested_schema,
            ..
        } = &request
        {
            let schema = serde_json::to_value(requested_schema).unwrap();
            self.asked.lock().unwrap().push((message.clone(), schema));
        }
        let mut content = json!({"approve": self.approve});
        if let Some(r) = self.remember {
            content["remember"] = json!(r);
        }
        Ok(ElicitResult::new(ElicitationAction::Accept).with_content(content))
    }
}

/// Connects `handler` over an in-process stdio pipe, in `version`'s way.
pub(crate) async fn stdio_client<H: ClientHandler>(
    core: &execlayer::server::Core,
    handler: H,
    version: &ProtocolVersion,
) -> Client<H> {
    if *version >= ProtocolVersion::V_2026_07_28 {
        let (server_io, client_io) = tokio::io::duplex(1 << 20);
        let core = core.clone();
        tokio::spawn(async move {
            let (r, w) = tokio::io::split(server_io);
            let _ = execlayer::server::serve_stream(&core, execlayer::audit::Door::Stdio, r, w).await;
        });
        handler
            .serve_with_lifecycle(
                client_io,
                ClientLifecycleMode::Discover {
                    preferred_versions: vec![version.clone()],
                },
            )
            .await
            .unwrap()
    } else {
        connect(core, handler).await
    }
}

/// Connects `handler` to the HTTP door's `/mcp`, in `version`'s way.
pub(crate) async fn http_mcp<H: ClientHandler>(
    server: &HttpServer,
    handler: H,
    version: &ProtocolVersion,
) -> Client<H> {
    let transport = rmcp::transport::StreamableHttpClientTransport::with_client(
        http_client(),
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(server.url("/mcp")),
    );
    if *version >= ProtocolVersion::V_2026_07_28 {
        handler
            .serve_with_lifecycle(
                transport,
                ClientLifecycleMode::Discover {
                    preferred_versions: vec![version.clone()],
                },
            )
            .await
            .unwrap()
    } else {
        handler.serve(transport).await.unwrap()
    }
}

const ERAS: [ProtocolVersion; 2] = [ProtocolVersion::V_2025_11_25, ProtocolVersion::V_2026_07_28];

fn with_rules(env: &TestEnv, rules: Value) {
    env.set_policy(|p| p["rules"] = rules);
}

/// The audit lines of `tool` calls (operators' answers left out).
/// The audit lines of `tool`'s calls as they ended: without the operator's
/// and without the 2026-07-28 question rounds (`input_required` … `asked`),
/// which the retry carrying the answer follows.
fn calls_of(env: &TestEnv, tool: &str) -> Vec<Value> {
    env.audit_lines()
        .into_iter()
        .filter(|l| l["tool"] == tool && l["client"] != "operator" && l["approval"]["answer"] != "asked")
        .collect()
}

fn remember_values(schema: &Value) -> Vec<String> {
    schema["properties"]["remember"]["oneOf"]
        .as_array()
        .map(|a| a.iter().map(|c| c["const"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn an_allowed_command_runs_without_a_question_and_a_forbidden_one_is_refused_without_one() {
    for version in ERAS {
        for over_http in [false, true] {
            let env = TestEnv::strict();
            with_rules(
                &env,
                json!([
                    {"tool": "shell_exec", "command": "echo", "decision": "allow"},
                    {"tool": "shell_exec", "command": "printf", "decision": "forbid", "reason": "printing is for humans"},
                ]),
            );
            let human = Asker::new(version.clone(), true, None);
            let server;
            let client = if over_http {
                server = env.http().await;
                http_mcp(&server, human.clone(), &version).await
            } else {
                stdio_client(&env.core(), human.clone(), &version).await
            };
            let case = format!("{version} http={over_http}");

            let r = call(&client, "shell_exec", json!({"command": "echo allowed"})).await;
            assert!(!is_error(&r), "{case}: {}", text(&r));
            assert_eq!(structured(&r)["stdout"], "allowed\n", "{case}");

            let r = call(&client, "shell_exec", json!({"command": "printf nope"})).await;
            assert_tool_error(&r, "forbidden");
            assert!(text(&r).contains("printing is for humans"), "{case}: {}", text(&r));
            assert!(text(&r).contains("rules[1]"), "{case}: {}", text(&r));
            assert_eq!(human.count(), 0, "{case}: no question for either call");

            let lines = calls_of(&env, "shell_exec");
            assert_eq!(lines.len(), 2, "{case}: {lines:?}");
            assert_eq!(lines[0]["decision"], "allowed");
            assert_eq!(lines[0]["rule"], "rules[0] shell_exec command \"echo\" allow");
            assert_eq!(lines[0]["approval"]["via"], "rule");
            assert_eq!(lines[0]["outcome"], "ok");
            assert_eq!(lines[1]["decision"], "denied");
            assert_eq!(lines[1]["rule"], "rules[1] shell_exec command \"printf\" forbid");
            assert!(
                lines[1].get("outcome").is_none(),
                "{case}: the forbidden call never ran"
            );
        }
    }
}

#[tokio::test]
async fn an_ask_rule_asks_in_auto_mode_and_a_rule_never_lets_past_the_allowlist() {
    for version in ERAS {
        let env = TestEnv::new();
        with_rules(
            &env,
            json!([
                {"tool": "shell_exec", "command": "echo", "decision": "ask", "reason": "echo talks"},
                {"tool": "shell_exec", "command": "rm", "decision": "allow"},
            ]),
        );
        let human = Asker::new(version.clone(), true, None);
        let core = env.core();
        let client = stdio_client(&core, human.clone(), &version).await;
        let r = call(&client, "shell_exec", json!({"command": "echo asked"})).await;
        assert!(!is_error(&r), "{version}: {}", text(&r));
        assert_eq!(human.count(), 1, "{version}");
        let (message, schema) = human.last();
        assert!(message.contains("rules[0]"), "{message}");
        assert!(
            remember_values(&schema).is_empty(),
            "an `ask` rule asks every time: {schema}"
        );
        let line = calls_of(&env, "shell_exec").pop().unwrap();
        assert_eq!(line["rule"], "rules[0] shell_exec command \"echo\" ask");
        assert_eq!(line["decision"], "allowed");

        // SHELL_ALLOWLIST stays the outer fence: `rm` is not on it.
        let r = call(&client, "shell_exec", json!({"command": "rm -rf x"})).await;
        assert_tool_error(&r, "not allowed");

        // A client that cannot answer gets a pending id, in auto mode too.
        let plain = connect(&core, client_config(version.clone(), ClientCapabilities::default())).await;
        let r = call(&plain, "shell_exec", json!({"command": "echo again"})).await;
        assert_tool_error(&r, "approval required");
        assert!(text(&r).contains("rules[0]"), "{}", text(&r));
    }
}

fn patch_of(files: &[&str]) -> String {
    files
        .iter()
        .map(|f| format!("--- /dev/null\n+++ b/{f}\n@@ -0,0 +1 @@\n+new\n"))
        .collect()
}

#[tokio::test]
async fn a_path_rule_allows_docs_and_still_asks_for_src() {
    for version in ERAS {
        let env = TestEnv::strict();
        with_rules(
            &env,
            json!([
                {"tool": "filesystem_write", "path": "docs/**", "decision": "allow"},
                {"tool": "apply_patch", "path": "docs/**", "decision": "allow"},
            ]),
        );
        env.write("docs/.keep", "");
        env.write("src/.keep", "");
        let human = Asker::new(version.clone(), true, None);
        let client = stdio_client(&env.core(), human.clone(), &version).await;

        let r = call(
            &client,
            "filesystem_write",
            json!({"path": "docs/x.md", "content": "doc"}),
        )
        .await;
        assert!(!is_error(&r), "{}", text(&r));
        assert_eq!(human.count(), 0, "{version}: docs/x.md needs no question");
        let r = call(
            &client,
            "filesystem_write",
            json!({"path": "src/x.rs", "content": "code"}),
        )
        .await;
        assert!(!is_error(&r), "{}", text(&r));
        assert_eq!(human.count(), 1, "{version}: src/x.rs asks");
        let (message, schema) = human.last();
        assert!(message.contains("src/x.rs"), "{message}");
        assert!(remember_values(&schema).contains(&"always".to_owned()), "{schema}");

        // A patch is allowed only when every file it touches matches.
        let r = call(
            &client,
            "apply_patch",
            json!({"patch": patch_of(&["docs/a.md", "docs/b/c.md"])}),
        )
        .await;
        assert!(!is_error(&r), "{}", text(&r));
        assert_eq!(human.count(), 1, "{version}: a docs-only patch needs no question");
        let r = call(
            &client,
            "apply_patch",
            json!({"patch": patch_of(&["docs/d.md", "src/e.rs"])}),
        )
        .await;
        assert!(!is_error(&r), "{}", text(&r));
        assert_eq!(human.count(), 2, "{version}: a patch reaching into src asks");

        let writes = calls_of(&env, "filesystem_write");
        assert_eq!(writes[0]["rule"], "rules[0] filesystem_write path \"docs/**\" allow");
        assert_eq!(
            writes[1]["approval"]["via"],
            if version >= ProtocolVersion::V_2026_07_28 {
                "input_required"
            } else {
                "elicitation"
            }
        );
        assert!(writes[1].get("rule").is_none(), "{:?}", writes[1]);
    }
}

#[tokio::test]
async fn remember_session_holds_in_the_same_session_and_not_in_a_new_one() {
    for version in ERAS {
        let env = TestEnv::strict();
        let core = env.core();
        let human = Asker::new(version.clone(), true, Some("session"));
        let client = stdio_client(&core, human.clone(), &version).await;
        let r = call(&client, "shell_exec", json!({"command": "echo one"})).await;
        assert!(!is_error(&r), "{version}: {}", text(&r));
        let (message, schema) = human.last();
        assert_eq!(remember_values(&schema), ["once", "session", "always"], "{schema}");
        let titles = schema["properties"]["remember"]["oneOf"].to_string();
        assert!(titles.contains("Allow `echo …` for this session"), "{titles}");
        assert!(message.contains("`echo …`"), "{message}");

        // The same kind of call (the allowlist entry `echo`) no longer asks here.
        let r = call(&client, "shell_exec", json!({"command": "echo two"})).await;
        assert!(!is_error(&r), "{}", text(&r));
        assert_eq!(human.count(), 1, "{version}: the session remembered");
        // Other commands still ask.
        call(&client, "shell_exec", json!({"command": "env"})).await;
        assert_eq!(human.count(), 2, "{version}");

        // A new session asks again.
        let other = Asker::new(version.clone(), true, None);
        let second = stdio_client(&core, other.clone(), &version).await;
        call(&second, "shell_exec", json!({"command": "echo three"})).await;
        assert_eq!(
            other.count(),
            1,
            "{version}: another session does not inherit the answer"
        );

        let lines = calls_of(&env, "shell_exec");
        assert_eq!(lines[0]["remember"], "session");
        assert_eq!(lines[0]["rule"], "session: shell_exec command \"echo\" allow");
        assert_eq!(lines[1]["approval"]["via"], "remembered");
        assert_eq!(lines[1]["rule"], "session: shell_exec command \"echo\" allow");
        assert_ne!(lines[3]["approval"]["via"], "remembered");
        // Nothing was written to the policy file.
        assert!(env.engine().policy.current().rules.is_empty());
    }
}

#[tokio::test]
async fn over_http_a_session_answer_binds_to_the_session_and_stateless_requests_are_not_offered_it() {
    let env = TestEnv::strict();
    let server = env.http().await;
    let v2025 = ProtocolVersion::V_2025_11_25;
    let human = Asker::new(v2025.clone(), true, Some("session"));
    let client = http_mcp(&server, human.clone(), &v2025).await;
    call(&client, "shell_exec", json!({"command": "echo a"})).await;
    call(&client, "shell_exec", json!({"command": "echo b"})).await;
    assert_eq!(human.count(), 1, "the Mcp-Session-Id session remembered");
    let other = Asker::new(v2025.clone(), true, None);
    let second = http_mcp(&server, other.clone(), &v2025).await;
    call(&second, "shell_exec", json!({"command": "echo c"})).await;
    assert_eq!(other.count(), 1, "another HTTP session asks");

    // 2026-07-28 over HTTP has no session: `session` is not offered, and an
    // answer that claims it anyway is a no.
    let v2026 = ProtocolVersion::V_2026_07_28;
    let modern = Asker::new(v2026.clone(), true, Some("session"));
    let client = http_mcp(&server, modern.clone(), &v2026).await;
    let r = call(&client, "filesystem_write", json!({"path": "m.txt", "content": "x"})).await;
    assert_tool_error(&r, "not one of the offered values");
    assert!(!env.path("m.txt").exists());
    assert_eq!(remember_values(&modern.last().1), ["once", "always"]);
}

#[tokio::test]
async fn remember_always_adds_a_rule_a_new_process_honours_and_a_decline_remembers_nothing() {
    for version in ERAS {
        let env = TestEnv::strict();
        let core = env.core();
        let mut changes = core.engine.policy.subscribe();

        // A no with `remember: always` remembers nothing.
        let no = Asker::new(version.clone(), false, Some("always"));
        let client = stdio_client(&core, no.clone(), &version).await;
        let r = call(
            &client,
            "filesystem_write",
            json!({"path": "notes/a.md", "content": "x", "create_dirs": true}),
        )
        .await;
        assert_tool_error(&r, "denied");
        assert_eq!(no.count(), 1, "the human was asked and said no");
        assert!(core.engine.policy.current().rules.is_empty());

        let yes = Asker::new(version.clone(), true, Some("always"));
        let client = stdio_client(&core, yes.clone(), &version).await;
        let r = call(
            &client,
            "filesystem_write",
            json!({"path": "notes/a.md", "content": "x", "create_dirs": true}),
        )
        .await;
        assert!(!is_error(&r), "{}", text(&r));
        assert!(changes.has_changed().unwrap(), "list_changed is signalled");
        changes.borrow_and_update();

        let file: Value = serde_json::from_str(&std::fs::read_to_string(&env.config).unwrap()).unwrap();
        assert_eq!(
            file["rules"],
            json!([{"tool": "filesystem_write", "path": "notes/a.md", "decision": "allow"}])
        );
        let line = calls_of(&env, "filesystem_write").pop().unwrap();
        assert_eq!(line["remember"], "always");
        assert_eq!(line["rule"], "rules[0] filesystem_write path \"notes/a.md\" allow");
        assert_eq!(line["client"], "execlayer-tests");

        // A new process on the same policy file: the same write runs unasked,
        // even for a client that cannot answer questions.
        let fresh = env.core();
        let plain = connect(&fresh, client_config(version.clone(), ClientCapabilities::default())).await;
        let r = call(
            &plain,
            "filesystem_write",
            json!({"path": "notes/a.md", "content": "y"}),
        )
        .await;
        assert!(!is_error(&r), "{}", text(&r));
        assert_eq!(env.read("notes/a.md"), "y");
        assert_eq!(
            calls_of(&env, "filesystem_write").pop().unwrap()["rule"],
            "rules[0] filesystem_write path \"notes/a.md\" allow"
        );
        // ...and only that path.
        let r = call(
            &plain,
            "filesystem_write",
            json!({"path": "notes/b.md", "content": "y"}),
        )
        .await;
        assert_tool_error(&r, "approval required");
    }
}

#[tokio::test]
async fn a_malformed_remember_is_a_no() {
    for version in ERAS {
        let env = TestEnv::strict();
        let human = Asker::new(version.clone(), true, Some("forever"));
        let client = stdio_client(&env.core(), human, &version).await;
        let r = call(&client, "filesystem_write", json!({"path": "a.txt", "content": "x"})).await;
        assert_tool_error(&r, "not one of the offered values");
        assert!(!env.path("a.txt").exists());
        assert!(env.engine().policy.current().rules.is_empty());
    }
}

#[tokio::test]
async fn playbook_steps_meet_the_rules_too() {
    let env = TestEnv::new();
    with_rules(
        &env,
        json!([{"tool": "shell_exec", "command": "printf", "decision": "forbid", "reason": "no printf"}]),
    );
    let client = env.client().await;
    let steps = json!({"steps": [
        {"tool": "shell_exec", "args": {"command": "echo first"}},
        {"tool": "shell_exec", "args": {"command": "printf second"}},
    ]});
    let r = call(&client, "run_playbook", steps).await;
    assert_tool_error(&r, "forbidden");
    assert!(text(&r).contains("no printf"), "{}", text(&r));
    // Nothing ran: the run as a whole was refused before its first step.
    assert!(calls_of(&env, "shell_exec").is_empty());
    assert_eq!(calls_of(&env, "run_playbook").pop().unwrap()["decision"], "denied");
}

#[tokio::test]
async fn rules_are_edited_over_rest_and_validated_server_side() {
    let env = TestEnv::strict();
    let server = env.http().await;
    let http = http_client();
    let bad = http
        .put(server.url("/api/v1/execution/rules"))
        .json(&json!({"rules": [
            {"tool": "shell_exec", "command": "ls", "decision": "allow"},
            {"tool": "filesystem_write", "command": "ls", "decision": "allow"},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let body: Value = bad.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("rules[1].command"), "{body}");
    let unknown = http
        .put(server.url("/api/v1/execution/rules"))
        .json(&json!({"rules": [{"tool": "rm_rf", "decision": "allow"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 422);
    assert!(
        env.engine().policy.current().rules.is_empty(),
        "a refused edit changes nothing"
    );

    let good = http
        .put(server.url("/api/v1/execution/rules"))
        .json(&json!({"rules": [{"tool": "shell_exec", "command": "echo", "decision": "allow"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), 200);
    let listed = server.get_json("/api/v1/execution/rules").await;
    assert_eq!(listed["rules"][0]["command"], "echo");
    assert_eq!(env.engine().policy.current().rules.len(), 1);
    let r = http
        .post(server.url("/api/v1/execution/run"))
        .json(&json!({"tool_name": "shell_exec", "args": {"command": "echo rest"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the REST door honours the new rule");
}

#[tokio::test]
async fn edit_file_meets_path_rules_on_every_file_it_edits() {
    let env = TestEnv::strict();
    with_rules(
        &env,
        json!([{"tool": "edit_file", "path": "docs/**", "decision": "allow"}]),
    );
    env.write("docs/a.md", "old doc\n");
    env.write("src/a.rs", "old code\n");
    let version = ProtocolVersion::V_2025_11_25;
    let human = Asker::new(version.clone(), true, None);
    let client = stdio_client(&env.core(), human.clone(), &version).await;
    let r = call(
        &client,
        "edit_file",
        json!({"path": "docs/a.md", "old_string": "old doc", "new_string": "new doc"}),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(human.count(), 0, "docs/a.md needs no question");
    let r = call(
        &client,
        "edit_file",
        json!({"edits": [
            {"path": "docs/a.md", "old_string": "new doc", "new_string": "newer doc"},
            {"path": "src/a.rs", "old_string": "old code", "new_string": "new code"},
        ]}),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(human.count(), 1, "an edit reaching into src asks");
    assert_eq!(env.read("src/a.rs"), "new code\n");
    let edits = calls_of(&env, "edit_file");
    assert_eq!(edits[0]["rule"], "rules[0] edit_file path \"docs/**\" allow");
    assert!(edits[1].get("rule").is_none(), "{:?}", edits[1]);
}
