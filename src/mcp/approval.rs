//! How an MCP call gets its human yes, by protocol era and client capability.
//!
//! - 2025 revisions, client declared elicitation: ask with `elicitation/create`
//!   ([`ElicitApprover`]) and wait up to `approval_timeout_seconds`.
//! - 2026-07-28, client declared elicitation: answer with `input_required`
//!   carrying the question and a sealed `requestState` ([`Seals`]); the retry's
//!   answer is trusted only when the state opens with this exact tool and
//!   argument digest, has not expired and was not used before on any instance
//!   sharing the state store (its nonce is consumed there, atomically).
//! - Otherwise: the operator path (a pending approval id).
//!
//! The form has a required `approve` boolean and, when the call can be
//! remembered, a `remember` titled enum (`once`, `session` where there is a
//! session, `always`) whose titles say exactly what would be remembered. An
//! answer with a `remember` value that was not offered is a no.
//!
//! Anything but an explicit yes is a no.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ConstTitle, ElicitRequest, ElicitRequestParams, ElicitResult,
    ElicitationAction, ElicitationSchema, EnumSchema, InputRequest, InputRequiredResult, PrimitiveSchemaDefinition,
    ProtocolVersion, RequestStateCodec, SealOptions, SingleSelectEnumSchema, TitledSingleSelectEnumSchema,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, Peer, RoleServer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::{ApprovalAnswer, ApprovalQuestion, ApprovalSource, Approver, call_digest};
use crate::policy::Remember;
use crate::state::StateStore;
use crate::tools::BoxFuture;

/// The key under which the approval question travels in `inputRequests`.
pub const INPUT_KEY: &str = "approval";
/// The yes/no field of the approval form.
pub const APPROVE_FIELD: &str = "approve";
/// The field saying how long a yes lasts.
pub const REMEMBER_FIELD: &str = "remember";

/// Seals and checks `requestState` tokens; the state store remembers used
/// ones until they expire.
pub struct Seals {
    codec: RequestStateCodec,
    store: Arc<dyn StateStore>,
}

#[derive(Serialize, Deserialize)]
struct SealedApproval {
    /// Random, single use.
    nonce: String,
    tool: String,
    digest: String,
    /// The `remember` values the question offered.
    #[serde(default)]
    offered: Vec<Remember>,
}

impl Seals {
    /// `key` (at least 32 bytes) lets several instances share states; `None`
    /// picks a random key. Used nonces go to `store`.
    pub fn new(key: Option<&[u8]>, store: Arc<dyn StateStore>) -> anyhow::Result<Self> {
        let key = match key {
            Some(k) => k.to_vec(),
            None => {
                let bytes: [u8; 32] = rand::random();
                bytes.to_vec()
            }
        };
        Ok(Self {
            codec: RequestStateCodec::try_new(key).map_err(|e| anyhow::anyhow!("EXECUTION_STATE_KEY: {e}"))?,
            store,
        })
    }

    /// What the seal binds besides its own payload: the tool, the argument
    /// digest and the caller (the client's declared name).
    fn associated_data(tool: &str, digest: &str, caller: &str) -> Vec<u8> {
        format!("execlayer/approval/v1\0{tool}\0{digest}\0{caller}").into_bytes()
    }

    /// A state bound to `tool` and `digest`, valid for `ttl`.
    pub fn seal(
        &self,
        tool: &str,
        digest: &str,
        caller: &str,
        offered: Vec<Remember>,
        ttl: Duration,
    ) -> Result<String, McpError> {
        let payload = SealedApproval {
            nonce: crate::policy::approvals::new_id(),
            tool: tool.to_owned(),
            digest: digest.to_owned(),
            offered,
        };
        let ad = Self::associated_data(tool, digest, caller);
        self.codec
            .seal_json_with(&payload, &SealOptions::new().associated_data(&ad).ttl(ttl))
            .map_err(|e| McpError::internal_error(format!("cannot seal the request state: {e}"), None))
    }

    /// Opens a state for `tool` and `digest` and marks it used; returns the
    /// `remember` values its question offered. The error is deliberately the
    /// same for every kind of failure, except a state store that cannot be
    /// reached (then nothing is known, and the answer is no).
    pub async fn open(
        &self,
        sealed: &str,
        tool: &str,
        digest: &str,
        caller: &str,
        ttl: Duration,
    ) -> Result<Vec<Remember>, String> {
        const REFUSED: &str = "the requestState is invalid, expired, already used, or was issued for other arguments; call the tool again without it";
        let ad = Self::associated_data(tool, digest, caller);
        let payload: SealedApproval = self.codec.open_json_with(sealed, &ad).map_err(|_| REFUSED.to_owned())?;
        if payload.tool != tool || payload.digest != digest {
            return Err(REFUSED.to_owned());
        }
        // Remember it a little longer than it can live.
        match self
            .store
            .consume_nonce(&payload.nonce, ttl + Duration::from_secs(60))
            .await
        {
            Ok(true) => Ok(payload.offered),
            Ok(false) => Err(REFUSED.to_owned()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Asks through `elicitation/create` (2025 protocol revisions).
pub struct ElicitApprover {
    peer: Peer<RoleServer>,
}

/// The approval form: a required boolean and, when the yes can be
/// remembered, the titled `remember` choices.
fn approval_schema(choices: &[(Remember, String)]) -> Result<ElicitationSchema, McpError> {
    let mut builder = ElicitationSchema::builder().required_bool(APPROVE_FIELD);
    let description = if choices.len() > 1 {
        let mut one_of = TitledSingleSelectEnumSchema::new(
            choices
                .iter()
                .map(|(value, title)| ConstTitle::new(value.as_str(), title.clone()))
                .collect(),
        );
        one_of.title = Some("Remember".into());
        one_of.description = Some("How long a yes lasts; a no is never remembered.".into());
        one_of.default = Some(Remember::Once.as_str().into());
        builder = builder.property(
            REMEMBER_FIELD,
            PrimitiveSchemaDefinition::Enum(EnumSchema::Single(SingleSelectEnumSchema::Titled(one_of))),
        );
        "Set approve to true to run this call (remember: once, or longer as offered); false (or decline) refuses it."
    } else {
        "Set approve to true to run this call once; false (or decline) refuses it."
    };
    builder
        .description(description)
        .build()
        .map_err(|e| McpError::internal_error(format!("cannot build the approval form: {e}"), None))
}

fn form(question: &ApprovalQuestion) -> Result<ElicitRequestParams, McpError> {
    Ok(ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: question.message(),
        requested_schema: approval_schema(&question.choices())?,
    })
}

/// Reads an elicitation answer: only `accept` with `approve: true` is a yes,
/// and its `remember` (absent means once) must be one of `offered`.
pub fn judge(result: &ElicitResult, offered: &[Remember]) -> ApprovalAnswer {
    match result.action {
        ElicitationAction::Accept => {
            let content = result.content.as_ref();
            let remember = match content.and_then(|c| c.get(REMEMBER_FIELD)) {
                None | Some(Value::Null) => Some(Remember::Once),
                Some(Value::String(s)) => Remember::parse(s).filter(|r| offered.contains(r)),
                Some(_) => None,
            };
            match (content.and_then(|c| c.get(APPROVE_FIELD)), remember) {
                (Some(Value::Bool(true)), Some(remember)) => ApprovalAnswer::Approved(remember),
                (Some(Value::Bool(false)), _) => ApprovalAnswer::Denied("the user answered no".into()),
                (Some(Value::Bool(true)), None) => ApprovalAnswer::Denied(format!(
                    "the answer's `remember` was not one of the offered values ({})",
                    offered.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
                )),
                _ => ApprovalAnswer::Denied("the answer did not say approve: true".into()),
            }
        }
        ElicitationAction::Decline => ApprovalAnswer::Denied("the user declined".into()),
        ElicitationAction::Cancel => ApprovalAnswer::Denied("the user cancelled".into()),
        _ => ApprovalAnswer::Denied("the answer was not understood".into()),
    }
}

impl Approver for ElicitApprover {
    fn channel(&self) -> &'static str {
        "elicitation"
    }

    fn ask<'a>(&'a self, question: &'a ApprovalQuestion) -> BoxFuture<'a, ApprovalAnswer> {
        Box::pin(async move {
            let params = match form(question) {
                Ok(p) => p,
                Err(e) => return ApprovalAnswer::Denied(e.message.to_string()),
            };
            match self
                .peer
                .create_elicitation_with_timeout(params, Some(question.timeout))
                .await
            {
                Ok(result) => {
                    let offered: Vec<Remember> = question.choices().into_iter().map(|(r, _)| r).collect();
                    judge(&result, &offered)
                }
                Err(rmcp::ServiceError::Timeout { .. }) => {
                    ApprovalAnswer::Denied(format!("no answer within {} s", question.timeout.as_secs()))
                }
                Err(e) => ApprovalAnswer::Denied(format!("the approval question failed: {e}")),
            }
        })
    }
}

/// The approval channel chosen for one `tools/call`.
pub enum Channel {
    IdOnly,
    Elicit(ElicitApprover),
    /// 2026-07-28 first round: answer `input_required`.
    Defer {
        seals: std::sync::Arc<Seals>,
        caller: String,
    },
    /// 2026-07-28 retry whose state and answer were checked.
    Answered(ApprovalAnswer),
}

/// The caller a sealed state is bound to: the client's declared name.
fn caller_name(context: &RequestContext<RoleServer>) -> String {
    context.client_info().map(|c| c.name).unwrap_or_default()
}

fn can_elicit(context: &RequestContext<RoleServer>) -> bool {
    context
        .client_capabilities()
        .and_then(|c| c.elicitation)
        .is_some_and(|e| e.form.is_some() || e.url.is_none())
}

impl Channel {
    pub async fn for_request(
        engine: &crate::engine::Engine,
        seals: &std::sync::Arc<Seals>,
        ttl: Duration,
        request: &CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Channel {
        let modern = context
            .protocol_version()
            .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
        if modern && let Some(state) = &request.request_state {
            let digest = engine
                .approval_digest(&request.name, request.arguments.as_ref())
                .unwrap_or_else(|| call_digest(request.arguments.as_ref()));
            let offered = match seals
                .open(state, &request.name, &digest, &caller_name(context), ttl)
                .await
            {
                Ok(offered) => offered,
                Err(reason) => return Channel::Answered(ApprovalAnswer::Denied(reason)),
            };
            let answer = request
                .input_responses
                .as_ref()
                .and_then(|r| r.get(INPUT_KEY))
                .map(|v| match serde_json::from_value::<ElicitResult>(v.clone()) {
                    Ok(result) => judge(&result, &offered),
                    Err(_) => ApprovalAnswer::Denied("the answer was not a valid elicitation result".into()),
                })
                .unwrap_or_else(|| {
                    ApprovalAnswer::Denied(format!("the retry carried no `{INPUT_KEY}` input response"))
                });
            return Channel::Answered(answer);
        }
        if !can_elicit(context) {
            return Channel::IdOnly;
        }
        if modern {
            Channel::Defer {
                seals: seals.clone(),
                caller: caller_name(context),
            }
        } else {
            Channel::Elicit(ElicitApprover {
                peer: context.peer.clone(),
            })
        }
    }

    pub fn source(&self) -> ApprovalSource<'_> {
        match self {
            Channel::IdOnly => ApprovalSource::IdOnly,
            Channel::Elicit(approver) => ApprovalSource::Ask(approver),
            Channel::Defer { .. } => ApprovalSource::Defer,
            Channel::Answered(ApprovalAnswer::Approved(remember)) => ApprovalSource::Granted {
                via: "input_required",
                id: None,
                remember: *remember,
            },
            Channel::Answered(ApprovalAnswer::Denied(reason)) => ApprovalSource::Refused {
                via: "input_required",
                reason: reason.clone(),
            },
        }
    }

    /// The `input_required` answer for a first round.
    pub fn input_required(
        &self,
        request: &CallToolRequestParams,
        question: &ApprovalQuestion,
    ) -> Result<CallToolResponse, McpError> {
        let Channel::Defer { seals, caller } = self else {
            return Err(McpError::internal_error("approval needed but no channel can ask", None));
        };
        let offered = question.choices().into_iter().map(|(r, _)| r).collect();
        let state = seals.seal(&request.name, &question.args_digest, caller, offered, question.timeout)?;
        let mut requests = BTreeMap::new();
        requests.insert(
            INPUT_KEY.to_owned(),
            InputRequest::Elicitation(ElicitRequest::new(form(question)?)),
        );
        Ok(InputRequiredResult::new(Some(requests), Some(state)).into())
    }
}
