//! Many instances, one state: three real `execlayer serve --http` processes
//! share one real `redis-server` and one `EXECUTION_STATE_KEY`. A requestState
//! or an approval id works once across all of them, an operator on any
//! instance sees and answers every pending call, a restart forgets nothing,
//! and a Redis outage refuses approvals (never grants them) until it is back.

use std::time::Duration;

use reqwest::Method;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ElicitResult, ElicitationAction, InputResponses,
    ProtocolVersion,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt};
use serde_json::{Value, json};

use super::approvals::{Answer, Human};
use crate::common::redis::{Instance, RedisServer, instance_vars};
use crate::common::*;

const KEY: &str = "0123456789abcdef0123456789abcdef-shared";

/// Three instances on one workspace, one Redis, one key.
async fn cluster(env: &TestEnv, redis: &RedisServer) -> Vec<Instance> {
    cluster_with(env, redis, &[]).await
}

async fn cluster_with(env: &TestEnv, redis: &RedisServer, extra: &[(&str, &str)]) -> Vec<Instance> {
    let mut instances = Vec::new();
    for name in ["a", "b", "c"] {
        let url = redis.url();
        let mut vars = vec![("EXECUTION_STATE_KEY", KEY), ("EXECUTION_STATE_URL", url.as_str())];
        vars.extend_from_slice(extra);
        let vars = instance_vars(env, name, &vars);
        instances.push(Instance::start(env, &vars).await);
    }
    instances
}

/// A 2026-07-28 client with elicitation, over Streamable HTTP.
async fn modern_client(instance: &Instance) -> Client<Human> {
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", instance.base));
    let transport = StreamableHttpClientTransport::with_client(http_client(), config);
    Human::new(Answer::Yes, ProtocolVersion::V_2026_07_28)
        .serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("MCP client over HTTP")
}

fn write(content: &str) -> CallToolRequestParams {
    let args = json!({"path": "out.txt", "content": content});
    CallToolRequestParams::new("filesystem_write").with_arguments(args.as_object().unwrap().clone())
}

fn yes() -> InputResponses {
    let mut responses = InputResponses::new();
    let answer = ElicitResult::new(ElicitationAction::Accept).with_content(json!({"approve": true}));
    responses.insert("approval".into(), serde_json::to_value(answer).unwrap());
    responses
}

/// First round: the `requestState` of an `input_required` answer.
async fn request_state(client: &Client<Human>, content: &str) -> String {
    match client.call_tool_once(write(content)).await.unwrap() {
        CallToolResponse::InputRequired(required) => required.request_state.expect("a requestState"),
        other => panic!("expected input_required, got {other:?}"),
    }
}

/// The retry with the state and a yes.
async fn retry(client: &Client<Human>, content: &str, state: &str) -> CallToolResult {
    let params = write(content)
        .with_input_responses(yes())
        .with_request_state(state.to_owned());
    match client.call_tool_once(params).await.unwrap() {
        CallToolResponse::Complete(result) => result,
        other => panic!("expected a complete result, got {other:?}"),
    }
}

fn write_body(path: &str, approval_id: Option<&str>) -> Value {
    let mut body = json!({"tool_name": "filesystem_write", "args": {"path": path, "content": "x"}});
    if let Some(id) = approval_id {
        body["approval_id"] = json!(id);
    }
    body
}

#[tokio::test]
async fn a_request_state_used_on_one_instance_is_refused_on_the_other_two() {
    let env = TestEnv::strict();
    let redis = RedisServer::start().await;
    let nodes = cluster(&env, &redis).await;
    let clients = [
        modern_client(&nodes[0]).await,
        modern_client(&nodes[1]).await,
        modern_client(&nodes[2]).await,
    ];
    // Issued by a, used on b: the shared key opens it there.
    let state = request_state(&clients[0], "once").await;
    let r = retry(&clients[1], "once", &state).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(env.read("out.txt"), "once");
    std::fs::remove_file(env.path("out.txt")).unwrap();
    // The same state on a and c (and b again) is refused, and nothing runs.
    for client in [&clients[0], &clients[2], &clients[1]] {
        let r = retry(client, "once", &state).await;
        assert_tool_error(&r, "requestState is invalid, expired, already used");
        assert!(!env.path("out.txt").exists());
    }
}

#[tokio::test]
async fn an_id_issued_on_one_is_approved_through_another_and_used_once_on_the_third() {
    let env = TestEnv::strict();
    let redis = RedisServer::start().await;
    let nodes = cluster(&env, &redis).await;
    let http = http_client();

    let (status, refused) = nodes[0].run(&http, &write_body("shared.txt", None)).await;
    assert_eq!(status, 403, "{refused}");
    let id = refused["pending_id"].as_str().expect("a pending id").to_owned();
    // The same call refused on c gets the same id: one pending entry, not two.
    let (_, again) = nodes[2].run(&http, &write_body("shared.txt", None)).await;
    assert_eq!(again["pending_id"], json!(id));

    // Every instance lists it, with its preview.
    for node in &nodes {
        let (status, list) = node.rest(Method::GET, "/api/v1/execution/approvals").await;
        assert_eq!(status, 200);
        let pending = list["pending"].as_array().unwrap();
        assert_eq!(pending.len(), 1, "{list}");
        assert_eq!(pending[0]["id"], json!(id));
        assert!(pending[0]["preview"].as_str().unwrap().contains("shared.txt"), "{list}");
    }
    let (status, approved) = nodes[1]
        .rest(Method::POST, &format!("/api/v1/execution/approvals/{id}/approve"))
        .await;
    assert_eq!(
        (status, approved["state"]["state"].as_str()),
        (200, Some("approved")),
        "{approved}"
    );
    // Approving twice, from anywhere, is a conflict.
    let (status, _) = nodes[0]
        .rest(Method::POST, &format!("/api/v1/execution/approvals/{id}/approve"))
        .await;
    assert_eq!(status, 409);

    let (status, done) = nodes[2].run(&http, &write_body("shared.txt", Some(&id))).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(env.read("shared.txt"), "x");
    std::fs::remove_file(env.path("shared.txt")).unwrap();
    for node in &nodes {
        let (status, body) = node.run(&http, &write_body("shared.txt", Some(&id))).await;
        assert_eq!(status, 403, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("already used"), "{body}");
    }
    assert!(!env.path("shared.txt").exists());

    // A denial given on one instance holds on the others.
    let (_, refused) = nodes[1].run(&http, &write_body("denied.txt", None)).await;
    let denied = refused["pending_id"].as_str().unwrap().to_owned();
    let (status, _) = nodes[2]
        .rest(Method::POST, &format!("/api/v1/execution/approvals/{denied}/deny"))
        .await;
    assert_eq!(status, 200);
    let (status, body) = nodes[0].run(&http, &write_body("denied.txt", Some(&denied))).await;
    assert_eq!(status, 403);
    assert!(body["detail"].as_str().unwrap().contains("was denied by"), "{body}");
    assert!(!env.path("denied.txt").exists());
}

/// The remember offer and the door a pending call was noted with travel
/// through Redis: another instance shows them, takes `remember: always` (which
/// needs the offer) and refuses `remember: session` (a REST call has no session).
#[tokio::test]
async fn a_pending_calls_remember_offer_and_door_are_shared_through_redis() {
    let env = TestEnv::strict();
    let redis = RedisServer::start().await;
    let nodes = cluster(&env, &redis).await;
    let http = http_client();

    let (status, refused) = nodes[0].run(&http, &write_body("kept.txt", None)).await;
    assert_eq!(status, 403, "{refused}");
    let id = refused["pending_id"].as_str().expect("a pending id").to_owned();

    let (status, list) = nodes[1].rest(Method::GET, "/api/v1/execution/approvals").await;
    assert_eq!(status, 200);
    let pending = &list["pending"][0];
    assert_eq!(pending["id"], json!(id), "{list}");
    assert_eq!(pending["door"], json!("rest"), "{list}");
    assert_eq!(pending["remember"]["what"], json!("kept.txt"), "{list}");
    let values: Vec<&str> = pending["remember"]["choices"]
        .as_array()
        .expect("choices")
        .iter()
        .filter_map(|c| c["value"].as_str())
        .collect();
    assert_eq!(values, ["once", "always"], "{list}");

    let answer = |node: usize, remember: &'static str| {
        let url = format!("{}/api/v1/execution/approvals/{id}/approve", nodes[node].base);
        let http = http.clone();
        async move {
            let r = http
                .post(url)
                .json(&json!({"remember": remember}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, body) = answer(2, "session").await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = answer(2, "always").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["remembered"], json!("always"), "{body}");
    let policy = std::fs::read_to_string(&env.config).expect("the policy file");
    assert!(policy.contains("kept.txt"), "the allow rule was written: {policy}");
}

#[tokio::test]
async fn a_thousand_concurrent_uses_of_one_id_across_three_instances_run_once() {
    let env = TestEnv::strict();
    let redis = RedisServer::start().await;
    // The point is single use under contention. On a loaded 2-core machine
    // 1,000 concurrent calls can wait more than the default 5 s for Redis,
    // and a call that does is refused (fail closed) rather than run: give
    // them the time, so that every answer is "ran" or "already used".
    let nodes = cluster_with(&env, &redis, &[("EXECUTION_STATE_TIMEOUT_SECS", "60")]).await;
    let (status, grant) = nodes[0]
        .rest(Method::POST, "/api/v1/execution/approve?tool_name=filesystem_write")
        .await;
    assert_eq!(status, 200, "{grant}");
    let id = grant["approval_id"].as_str().unwrap().to_owned();

    let http = http_client();
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    let mut tasks = Vec::new();
    for attempt in 0..1_000usize {
        let http = http.clone();
        let url = format!("{}/api/v1/execution/run", bases[attempt % 3]);
        let body = write_body(&format!("race-{attempt}.txt"), Some(&id));
        tasks.push(tokio::spawn(async move {
            let r = http.post(url).json(&body).send().await.expect("POST run");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    let started = std::time::Instant::now();
    let (mut successes, mut already_used, mut other) = (0, 0, Vec::new());
    for task in tasks {
        let (status, body) = task.await.unwrap();
        let detail = body["detail"].as_str().unwrap_or_default();
        match status {
            200 if body["ok"] == json!(true) => successes += 1,
            403 if detail.contains("already used") => already_used += 1,
            _ => other.push(format!("{status} {detail}")),
        }
    }
    eprintln!("1,000 attempts in {:?}", started.elapsed());
    assert!(
        other.is_empty(),
        "{} other answers, e.g. {:?}",
        other.len(),
        other.first()
    );
    assert_eq!((successes, already_used), (1, 999));
    let written = std::fs::read_dir(&env.ws)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("race-"))
        .count();
    assert_eq!(written, 1, "exactly one write ran");
}

#[tokio::test]
async fn a_restarted_instance_refuses_a_state_used_before_the_restart() {
    let env = TestEnv::strict();
    let redis = RedisServer::start().await;
    let shared = instance_vars(
        &env,
        "redis",
        &[("EXECUTION_STATE_KEY", KEY), ("EXECUTION_STATE_URL", &redis.url())],
    );
    // Without Redis, the used states persist in a file beside the audit log.
    let alone = instance_vars(&env, "alone", &[("EXECUTION_STATE_KEY", KEY)]);
    for vars in [shared, alone] {
        let node = Instance::start(&env, &vars).await;
        let client = modern_client(&node).await;
        let state = request_state(&client, "before").await;
        assert!(!is_error(&retry(&client, "before", &state).await));
        std::fs::remove_file(env.path("out.txt")).unwrap();
        drop(client);
        node.stop().await;

        let node = Instance::start(&env, &vars).await;
        let client = modern_client(&node).await;
        let r = retry(&client, "before", &state).await;
        assert_tool_error(&r, "already used");
        assert!(!env.path("out.txt").exists());
        // A fresh state still works after the restart.
        let fresh = request_state(&client, "after").await;
        assert!(!is_error(&retry(&client, "after", &fresh).await));
        std::fs::remove_file(env.path("out.txt")).unwrap();
        node.stop().await;
    }
}

#[tokio::test]
async fn a_key_without_a_store_is_warned_about_at_start() {
    let env = TestEnv::strict();
    let vars = instance_vars(&env, "warn", &[("EXECUTION_STATE_KEY", KEY)]);
    let node = Instance::start(&env, &vars).await;
    let log = node.stderr.lock().unwrap().clone();
    assert!(
        log.contains("EXECUTION_STATE_KEY is set but EXECUTION_STATE_URL is not"),
        "{log}"
    );
    node.stop().await;
}

#[tokio::test]
async fn a_redis_outage_refuses_approvals_serves_reads_and_recovers() {
    let env = TestEnv::strict();
    env.write("a.txt", "read me\n");
    let mut redis = RedisServer::start().await;
    let nodes = cluster(&env, &redis).await;
    let http = http_client();
    let client = modern_client(&nodes[0]).await;
    let state = request_state(&client, "during").await;
    let (_, granted) = nodes[1]
        .rest(Method::POST, "/api/v1/execution/approve?tool_name=filesystem_write")
        .await;
    let id = granted["approval_id"].as_str().unwrap().to_owned();

    redis.stop().await;
    // Reads need no approval: served on every instance.
    for node in &nodes {
        let (status, body) = node
            .run(
                &http,
                &json!({"tool_name": "filesystem_read", "args": {"path": "a.txt"}}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["text"], "read me\n");
    }
    // A call needing approval: refused with a clear error, nothing run.
    let (status, body) = nodes[2].run(&http, &write_body("down.txt", None)).await;
    assert_eq!(status, 403, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("approval state store") && detail.contains("unavailable"),
        "{detail}"
    );
    assert!(body["pending_id"].is_null());
    // An approval granted before the outage cannot be checked, so it does not work.
    let (status, body) = nodes[0].run(&http, &write_body("down.txt", Some(&id))).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("unavailable"), "{body}");
    // A requestState retry cannot be checked either: no.
    let r = retry(&client, "during", &state).await;
    assert_tool_error(&r, "unavailable");
    let (status, _) = nodes[1].rest(Method::GET, "/api/v1/execution/approvals").await;
    assert_eq!(status, 503);
    assert!(!env.path("down.txt").exists() && !env.path("out.txt").exists());

    // Redis back (empty: it kept nothing): approvals work again.
    redis.restart().await;
    let mut pending = None;
    for _ in 0..50 {
        let (status, body) = nodes[2].run(&http, &write_body("back.txt", None)).await;
        if let Some(id) = body["pending_id"].as_str() {
            pending = Some(id.to_owned());
            break;
        }
        assert_eq!(status, 403, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pending = pending.expect("a pending id once Redis is back");
    let (status, _) = nodes[0]
        .rest(Method::POST, &format!("/api/v1/execution/approvals/{pending}/approve"))
        .await;
    assert_eq!(status, 200);
    let (status, body) = nodes[1].run(&http, &write_body("back.txt", Some(&pending))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(env.read("back.txt"), "x");
    let fresh = request_state(&client, "after").await;
    let r = retry(&client, "after", &fresh).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(env.read("out.txt"), "after");
}

#[tokio::test]
async fn two_store_handles_on_one_redis_share_session_answers_and_nonces() {
    use execlayer::state::StateStore;
    use execlayer::state::redis::RedisStore;
    let redis = RedisServer::start().await;
    let timeout = execlayer::state::redis::DEFAULT_CALL_TIMEOUT;
    let a = RedisStore::open(&redis.url(), timeout).unwrap();
    let b = RedisStore::open(&redis.url(), timeout).unwrap();
    let ttl = Duration::from_secs(60);

    a.remember_session("session-1", "shell_exec:cargo test", ttl)
        .await
        .unwrap();
    a.remember_session("session-1", "brief", Duration::from_millis(50))
        .await
        .unwrap();
    assert!(b.is_remembered("session-1", "shell_exec:cargo test").await.unwrap());
    assert!(!b.is_remembered("session-2", "shell_exec:cargo test").await.unwrap());
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(!b.is_remembered("session-1", "brief").await.unwrap(), "expired");

    assert!(a.consume_nonce("n1", ttl).await.unwrap());
    assert!(!b.consume_nonce("n1", ttl).await.unwrap());
    assert!(!a.consume_nonce("n1", ttl).await.unwrap());

    // Pending ids: one per call, visible through both, bound to the arguments.
    let p = a
        .request("shell_exec", "d1", "run ls", execlayer::policy::Risk::High, ttl)
        .await
        .unwrap();
    let same = b
        .request("shell_exec", "d1", "run ls", execlayer::policy::Risk::High, ttl)
        .await
        .unwrap();
    assert_eq!(same.id, p.id);
    let listed = b.pending().await.unwrap();
    assert_eq!((listed.len(), listed[0].preview.as_str()), (1, "run ls"));
    assert_eq!(listed[0].risk, execlayer::policy::Risk::High);
    b.decide(&p.id, true, "op", ttl).await.unwrap();
    assert!(a.pending().await.unwrap().is_empty());
    let wrong = a.consume(&p.id, "shell_exec", "d2").await.unwrap_err();
    assert!(
        matches!(wrong, execlayer::state::ApprovalError::WrongArguments(_)),
        "{wrong}"
    );
    a.consume(&p.id, "shell_exec", "d1").await.unwrap();
    let again = b.consume(&p.id, "shell_exec", "d1").await.unwrap_err();
    assert!(matches!(again, execlayer::state::ApprovalError::Unknown(_)), "{again}");
    // Not an id at all: unknown, without a Redis key built from it.
    let odd = b.consume("approval:*", "shell_exec", "d1").await.unwrap_err();
    assert!(matches!(odd, execlayer::state::ApprovalError::Unknown(_)), "{odd}");
}
