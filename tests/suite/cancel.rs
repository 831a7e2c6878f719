//! Progress notifications and cancellation of long calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, ClientCapabilities, ClientConfig, ClientRequest, ElicitRequestParams,
    ElicitResult, ElicitationAction, ProgressNotificationParam, ProtocolVersion,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RequestContext};
use rmcp::{ClientHandler, ErrorData, RoleClient};
use serde_json::json;

use crate::common::*;

#[derive(Clone, Default)]
struct Listener {
    progress: Arc<AtomicUsize>,
    asked: Arc<AtomicUsize>,
}

impl ClientHandler for Listener {
    fn get_info(&self) -> ClientConfig {
        client_config(
            ProtocolVersion::V_2025_11_25,
            ClientCapabilities::builder().enable_elicitation().build(),
        )
    }

    async fn on_progress(&self, _params: ProgressNotificationParam, _context: NotificationContext<RoleClient>) {
        self.progress.fetch_add(1, Ordering::SeqCst);
    }

    /// A human who never answers.
    async fn create_elicitation(
        &self,
        _request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(3_600)).await;
        Ok(ElicitResult::new(ElicitationAction::Accept).with_content(json!({"approve": true})))
    }
}

fn request(tool: &str, args: serde_json::Value) -> ClientRequest {
    let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(args.as_object().unwrap().clone());
    ClientRequest::CallToolRequest(CallToolRequest::new(params))
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test]
async fn a_long_command_reports_progress_and_dies_with_its_group_on_cancel() {
    let env = TestEnv::new();
    env.write(
        "scripts/pid.sh",
        "echo $$ > pid.txt\nsleep 300 &\necho $! > child.txt\nwait\n",
    );
    let listener = Listener::default();
    let client = env.client_with(listener.clone()).await;
    let handle = client
        .send_cancellable_request(
            request(
                "shell_exec",
                json!({"command": "bash ./scripts/pid.sh", "timeout_secs": 60}),
            ),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    // Wait until the command runs and has reported progress at least twice.
    for _ in 0..100 {
        if env.path("child.txt").exists() && listener.progress.load(Ordering::SeqCst) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        listener.progress.load(Ordering::SeqCst) >= 2,
        "progress notifications while it runs"
    );
    let shell: u32 = env.read("pid.txt").trim().parse().unwrap();
    let sleeper: u32 = env.read("child.txt").trim().parse().unwrap();
    assert!(alive(shell) && alive(sleeper));
    handle.cancel(Some("user pressed stop".into())).await.unwrap();
    let mut gone = false;
    for _ in 0..40 {
        if !alive(shell) && !alive(sleeper) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the command and its child are killed on cancel");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let last = env.audit_lines().pop().unwrap();
    assert_eq!(last["outcome"], "error");
    assert!(last["error"].as_str().unwrap().contains("cancelled"), "{last}");
}

#[tokio::test]
async fn cancelling_while_an_approval_is_pending_denies_and_nothing_runs_later() {
    let env = TestEnv::strict();
    let listener = Listener::default();
    let client = env.client_with(listener.clone()).await;
    let handle = client
        .send_request_with_option(
            request("filesystem_write", json!({"path": "late.txt", "content": "too late"})),
            PeerRequestOptions::with_timeout(Duration::from_millis(800)),
        )
        .await
        .unwrap();
    let outcome = handle.await_response().await;
    assert!(
        matches!(outcome, Err(rmcp::ServiceError::Timeout { .. })),
        "{outcome:?}"
    );
    assert_eq!(listener.asked.load(Ordering::SeqCst), 1, "the human was asked");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(!env.path("late.txt").exists());
    let last = env.audit_lines().pop().expect("the cancelled call is audited");
    assert_eq!(
        (last["tool"].as_str(), last["decision"].as_str()),
        (Some("filesystem_write"), Some("denied"))
    );
    assert!(
        last["approval"]["answer"].as_str().unwrap().contains("cancelled"),
        "{last}"
    );
}
