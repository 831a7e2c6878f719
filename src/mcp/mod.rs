//! The MCP door: an rmcp `ServerHandler` whose methods hand over to the engine.
//!
//! [`McpServer`] lists the enabled tools and turns `tools/call` into
//! [`Engine::call`], choosing how approvals are asked for by the protocol era
//! and the client's declared capabilities ([`approval`]). [`Hub`] remembers the
//! connected sessions and subscriptions so a policy change reaches every client
//! as `notifications/tools/list_changed`.

pub mod approval;

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListResourcesResult,
    ListToolsResult, MetaObject, PaginatedRequestParams, ProgressNotificationParam, ProtocolVersion,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource, ResourceContents,
    ServerCapabilities, ServerConfig, SubscriptionFilter, Tool, ToolAnnotations,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext, SubscriptionSink};
use rmcp::{ErrorData as McpError, Peer, RoleServer, ServerHandler};
use serde_json::Value;

use crate::audit::Door;
use crate::engine::{CallOptions, CallOutcome, Caller, Engine, GateError, ToolResponse};
use crate::tools::{Progress, ToolSpec};

/// Protocol versions served: the two 2025 revisions and 2026-07-28 (older
/// ones too, for legacy HTTP+SSE clients).
pub const SUPPORTED_VERSIONS: &[ProtocolVersion] = ProtocolVersion::KNOWN_VERSIONS;

const INSTRUCTIONS: &str = "execlayer gives guarded access to one workspace directory: read, list and search files, inspect git, write files, apply unified diffs and run allowlisted commands. Paths are relative to the workspace root. Risky calls may need a human approval: answer the approval question, or when a call is refused with `approval required`, ask the operator to approve the id it gives and retry the same call with `approval_id`.";

/// Resource URIs of playbooks: `playbook://NAME`.
pub const PLAYBOOK_SCHEME: &str = "playbook://";

/// Sessions and subscriptions that should hear about tool list changes.
pub struct Hub {
    peers: Mutex<Vec<Peer<RoleServer>>>,
    /// Live `subscriptions/listen` sinks, by a local id.
    sinks: Mutex<Vec<(u64, SubscriptionSink)>>,
    next_sink: std::sync::atomic::AtomicU64,
    /// Seals `requestState` for 2026-07-28 approvals.
    pub seals: Arc<approval::Seals>,
}

impl Hub {
    /// Starts a hub that forwards the engine's policy changes to every client.
    pub fn start(engine: &Arc<Engine>) -> anyhow::Result<Arc<Self>> {
        let hub = Arc::new(Self {
            peers: Mutex::default(),
            sinks: Mutex::default(),
            next_sink: Default::default(),
            seals: Arc::new(approval::Seals::new(
                engine.settings.state_key.as_deref(),
                engine.state.clone(),
            )?),
        });
        let mut changes = engine.policy.subscribe();
        let weak = Arc::downgrade(&hub);
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let Some(hub) = weak.upgrade() else { break };
                hub.broadcast_list_changed().await;
            }
        });
        Ok(hub)
    }

    fn add_peer(&self, peer: Peer<RoleServer>) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.retain(|p| !p.is_transport_closed());
        peers.push(peer);
    }

    async fn broadcast_list_changed(&self) {
        let peers: Vec<_> = {
            let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
            peers.retain(|p| !p.is_transport_closed());
            peers.clone()
        };
        for peer in peers {
            if let Err(e) = peer.notify_tool_list_changed().await {
                tracing::debug!(error = %e, "could not send tools/list_changed");
            }
        }
        let sinks: Vec<_> = self.sinks.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for (_, sink) in sinks {
            if let Err(e) = sink.notify_tool_list_changed().await {
                tracing::debug!(error = %e, "could not send tools/list_changed to a subscription");
            }
        }
    }
}

/// One MCP session's handler (cheap to clone; the state is shared).
#[derive(Clone)]
pub struct McpServer {
    engine: Arc<Engine>,
    hub: Arc<Hub>,
    door: Door,
    session: Arc<Session>,
}

/// The session a handler serves, for answers remembered for it. A stdio
/// connection is one session, named by a random id that never leaves the
/// process; over HTTP the `Mcp-Session-Id` names it. When the handler goes
/// away (the connection closed, the HTTP session ended) its answers go too.
struct Session {
    /// This connection's own id (stdio and duplex pipes).
    local: String,
    /// Session ids answers were remembered under.
    used: Mutex<Vec<String>>,
    answers: Arc<dyn crate::policy::SessionAnswers>,
}

impl Drop for Session {
    fn drop(&mut self) {
        for id in self.used.get_mut().unwrap_or_else(|p| p.into_inner()).drain(..) {
            self.answers.end(&id);
        }
    }
}

impl McpServer {
    pub fn new(engine: Arc<Engine>, hub: Arc<Hub>, door: Door) -> Self {
        let session = Arc::new(Session {
            local: format!("stdio:{}", crate::policy::approvals::new_id()),
            used: Mutex::default(),
            answers: engine.sessions.clone(),
        });
        Self {
            engine,
            hub,
            door,
            session,
        }
    }

    /// The session of this request, if it has one: the connection for stdio,
    /// the `Mcp-Session-Id` over HTTP (none in stateless 2026-07-28 requests).
    fn session_of(&self, context: &RequestContext<RoleServer>) -> Option<String> {
        let id = match self.door {
            Door::Stdio => self.session.local.clone(),
            _ => {
                let parts = context.extensions.get::<http::request::Parts>()?;
                let header = parts.headers.get("mcp-session-id")?.to_str().ok()?;
                if header.is_empty() || header.len() > 200 {
                    return None;
                }
                format!("http:{header}")
            }
        };
        let mut used = self.session.used.lock().unwrap_or_else(|p| p.into_inner());
        if !used.contains(&id) {
            used.push(id.clone());
        }
        Some(id)
    }
}

/// The MCP form of a tool.
pub fn to_mcp_tool(spec: &ToolSpec) -> Tool {
    let a = spec.annotations;
    let mut tool = Tool::new(spec.name, spec.description.clone(), spec.input_schema.clone())
        .with_title(spec.title)
        .with_raw_output_schema(spec.output_schema.clone())
        .with_annotations(
            ToolAnnotations::with_title(spec.title)
                .read_only(a.read_only)
                .destructive(a.destructive)
                .idempotent(a.idempotent)
                .open_world(a.open_world),
        );
    let mut meta = MetaObject::new();
    meta.insert("execlayer/risk".into(), Value::from(spec.risk.as_str()));
    tool.meta = Some(meta);
    tool
}

/// The MCP form of an answer. Error results carry `structuredContent` only
/// when it conforms to the output schema (a failed command's output does).
pub fn to_mcp_result(response: ToolResponse) -> CallToolResult {
    let content = if response.blocks.is_empty() {
        vec![ContentBlock::text(response.text)]
    } else {
        response
            .blocks
            .into_iter()
            .map(|b| ContentBlock::text(b.text))
            .collect()
    };
    let mut result = if response.is_error {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    };
    result.structured_content = response.structured;
    if let Some(id) = response.pending_id {
        let mut meta = MetaObject::new();
        meta.insert("execlayer/pending_approval_id".into(), Value::from(id));
        result.meta = Some(meta);
    }
    result
}

pub fn gate_error(e: GateError) -> McpError {
    McpError::invalid_params(e.to_string(), None)
}

/// Sends progress notifications in order, from a synchronous callback.
fn progress_for(ctx: &RequestContext<RoleServer>) -> Progress {
    let Some(token) = ctx.meta.get_progress_token() else {
        return Progress::default();
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(f64, Option<f64>, String)>();
    let peer = ctx.peer.clone();
    tokio::spawn(async move {
        while let Some((progress, total, message)) = rx.recv().await {
            let mut param = ProgressNotificationParam::new(token.clone(), progress).with_message(message);
            if let Some(total) = total {
                param = param.with_total(total);
            }
            if peer.notify_progress(param).await.is_err() {
                break;
            }
        }
    });
    Progress::new(move |progress, total, message| {
        let _ = tx.send((progress, total, message));
    })
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .build(),
        )
        .with_server_info(
            Implementation::new("execlayer", env!("CARGO_PKG_VERSION")).with_title("execlayer guarded execution layer"),
        )
        .with_instructions(INSTRUCTIONS)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(SUPPORTED_VERSIONS)
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.engine
            .enabled_tools()
            .into_iter()
            .find(|s| s.name == name)
            .map(to_mcp_tool)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let tools = self.engine.enabled_tools().into_iter().map(to_mcp_tool).collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let mut caller = Caller::new(self.door);
        caller.client = context.client_info().map(|c| c.name);
        caller.session = self.session_of(&context);
        let opts = CallOptions {
            cancel: context.ct.clone(),
            progress: progress_for(&context),
        };
        let ttl = std::time::Duration::from_secs(self.engine.policy.current().approval_timeout_seconds);
        let channel = approval::Channel::for_request(&self.engine, &self.hub.seals, ttl, &request, &context).await;
        let outcome = self
            .engine
            .call(
                &caller,
                &request.name,
                request.arguments.clone(),
                channel.source(),
                opts,
            )
            .await
            .map_err(gate_error)?;
        match outcome {
            CallOutcome::Done(response) => Ok(to_mcp_result(response).into()),
            CallOutcome::NeedsInput(question) => channel.input_required(&request, &question),
        }
    }

    /// Each playbook is a resource `playbook://NAME` (JSON: description and steps).
    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let (found, _) = crate::playbook::load_dir(&self.engine.settings.playbooks_dir, &self.engine.registry);
        let resources = found
            .into_iter()
            .map(|(name, book)| {
                Resource::new(format!("{PLAYBOOK_SCHEME}{name}"), name.clone())
                    .with_title(format!("Playbook {name}"))
                    .with_description(format!(
                        "{} ({} steps; run with run_playbook {{\"name\": \"{name}\"}})",
                        book.description,
                        book.steps.len()
                    ))
                    .with_mime_type("application/json")
            })
            .collect();
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let name = request.uri.strip_prefix(PLAYBOOK_SCHEME).ok_or_else(|| {
            McpError::invalid_params(
                format!("unknown resource {}; playbooks are {PLAYBOOK_SCHEME}NAME", request.uri),
                None,
            )
        })?;
        let book = crate::playbook::find(&self.engine.settings.playbooks_dir, name, &self.engine.registry)
            .map_err(|e| McpError::invalid_params(e, None))?;
        let text = serde_json::to_string_pretty(&book).map_err(|e| McpError::internal_error(e.to_string(), None))?;
        let contents = ResourceContents::text(text, request.uri.clone()).with_mime_type("application/json");
        Ok(ReadResourceResponse::Complete(ReadResourceResult::new(vec![contents])))
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.hub.add_peer(context.peer);
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        Some(requested.supported_by(&self.get_info().capabilities))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let id = self.hub.next_sink.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sink = context.sink().clone();
        self.hub
            .sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, sink));
        context.cancelled().await;
        self.hub
            .sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(i, _)| *i != id);
        Ok(())
    }
}
