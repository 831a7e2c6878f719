//! The approval state shared by every instance, in Redis (`EXECUTION_STATE_URL`).
//!
//! Keys (all under `execlayer:`), each with its TTL set by Redis:
//! - `approval:{id}`: a hash (`id tool digest preview risk state by created_ms
//!   expires_ms`, and once the gate notes them `remember` (the offer as JSON),
//!   `session` and `door`); `digest` is empty for a tool-wide grant.
//! - `pending`: a sorted set of pending ids scored by expiry, for listing.
//! - `call:{tool}:{digest}`: the id pending for that exact call, so a retry on
//!   any instance gets the same id.
//! - `nonce:{nonce}`: a used `requestState` (`SET NX PX`).
//! - `session:{sha256(session, key)}`: a remembered session answer.
//!
//! Each consume or decision is one Lua script or one `SET NX`, run by Redis as
//! one step, so two instances racing for the same id cannot both win. Every
//! call is bounded (`EXECUTION_STATE_TIMEOUT_SECS`, [`DEFAULT_CALL_TIMEOUT`]); a Redis that is down or slow is an
//! [`ApprovalError::Unavailable`], which callers turn into a refusal. The
//! connection is made lazily and remade after a failure, so the server
//! recovers by itself when Redis is back.
//!
//! TLS (`rediss://`) is not built in: it would bring a TLS stack into a binary
//! that has none; reach Redis over a private network, a Unix socket
//! (`redis+unix:///path`) or a local TLS tunnel.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use redis::aio::ConnectionManager;
use redis::{Client, Script};
use sha2::{Digest, Sha256};

use super::{Approval, ApprovalError, ApprovalState, StateStore, new_id};
use crate::policy::{RememberOffer, Risk};
use crate::tools::BoxFuture;

/// Longest wait for any one Redis call, connecting included, unless the
/// settings say otherwise.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);
const PREFIX: &str = "execlayer:";

/// Creates a pending approval, or returns the one already pending for the call.
/// ARGV: prefix, id, tool, digest, preview, risk, created_ms, expires_ms, ttl_ms.
const REQUEST: &str = r"
local prefix = ARGV[1]
local call = prefix .. 'call:' .. ARGV[3] .. ':' .. ARGV[4]
local existing = redis.call('GET', call)
if existing then
  local key = prefix .. 'approval:' .. existing
  if redis.call('HGET', key, 'state') == 'pending' then
    return redis.call('HGETALL', key)
  end
end
local key = prefix .. 'approval:' .. ARGV[2]
redis.call('HSET', key, 'id', ARGV[2], 'tool', ARGV[3], 'digest', ARGV[4], 'preview', ARGV[5],
  'risk', ARGV[6], 'state', 'pending', 'by', '', 'created_ms', ARGV[7], 'expires_ms', ARGV[8])
redis.call('PEXPIRE', key, ARGV[9])
redis.call('SET', call, ARGV[2], 'PX', ARGV[9])
redis.call('ZADD', prefix .. 'pending', ARGV[8], ARGV[2])
return redis.call('HGETALL', key)
";

/// An operator's answer. ARGV: prefix, id, new state, by, expires_ms, ttl_ms.
/// Returns `{'ok', fields…}`, `{'unknown'}` or `{'not_pending'}`.
const DECIDE: &str = r"
local prefix = ARGV[1]
local key = prefix .. 'approval:' .. ARGV[2]
local state = redis.call('HGET', key, 'state')
if not state then return {'unknown'} end
if state ~= 'pending' then return {'not_pending'} end
redis.call('HSET', key, 'state', ARGV[3], 'by', ARGV[4], 'expires_ms', ARGV[5])
redis.call('PEXPIRE', key, ARGV[6])
redis.call('ZREM', prefix .. 'pending', ARGV[2])
local tool = redis.call('HGET', key, 'tool')
local digest = redis.call('HGET', key, 'digest')
redis.call('DEL', prefix .. 'call:' .. tool .. ':' .. digest)
local out = {'ok'}
for _, v in ipairs(redis.call('HGETALL', key)) do out[#out + 1] = v end
return out
";

/// Uses an id once. ARGV: prefix, id, tool, digest. Returns `{'ok', fields…}`,
/// `{'unknown'}`, `{'wrong_tool', granted}`, `{'wrong_arguments'}`,
/// `{'pending'}` or `{'denied', by}`; an approved or denied id is deleted.
const CONSUME: &str = r"
local key = ARGV[1] .. 'approval:' .. ARGV[2]
local h = redis.call('HGETALL', key)
if #h == 0 then return {'unknown'} end
local f = {}
for i = 1, #h, 2 do f[h[i]] = h[i + 1] end
if f.tool ~= ARGV[3] then return {'wrong_tool', f.tool} end
if f.digest ~= '' and f.digest ~= ARGV[4] then return {'wrong_arguments'} end
if f.state == 'pending' then return {'pending'} end
redis.call('DEL', key)
if f.state ~= 'approved' then return {'denied', f.by} end
local out = {'ok'}
for _, v in ipairs(h) do out[#out + 1] = v end
return out
";

/// Notes the remember offer, session and door on an approval that still
/// exists. ARGV: prefix, id, remember (JSON or empty), session, door.
const ANNOTATE: &str = r"
local key = ARGV[1] .. 'approval:' .. ARGV[2]
if redis.call('EXISTS', key) == 1 then
  redis.call('HSET', key, 'remember', ARGV[3], 'session', ARGV[4], 'door', ARGV[5])
end
return 1
";

/// Pending approvals, expired ones dropped. ARGV: prefix, now_ms.
const PENDING: &str = r"
local prefix = ARGV[1]
redis.call('ZREMRANGEBYSCORE', prefix .. 'pending', '-inf', ARGV[2])
local out = {}
for _, id in ipairs(redis.call('ZRANGE', prefix .. 'pending', 0, -1)) do
  local h = redis.call('HGETALL', prefix .. 'approval:' .. id)
  if #h > 0 then out[#out + 1] = h else redis.call('ZREM', prefix .. 'pending', id) end
end
return out
";

struct Scripts {
    request: Script,
    decide: Script,
    consume: Script,
    annotate: Script,
    pending: Script,
}

/// Approval state in Redis, shared by every instance that points at it.
pub struct RedisStore {
    client: Client,
    /// Made on first use (it needs the runtime), then reused: it reconnects
    /// by itself after a failure.
    manager: Mutex<Option<ConnectionManager>>,
    /// `redis://host:port/db` without credentials, for logs and errors.
    address: String,
    scripts: Scripts,
    /// Longest wait for any one Redis call, connecting included.
    call_timeout: Duration,
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn ttl_ms(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

impl RedisStore {
    /// Parses the URL; no connection is made until the first call, and no
    /// call waits longer than `call_timeout`.
    pub fn open(url: &str, call_timeout: Duration) -> anyhow::Result<Self> {
        let client = Client::open(url).map_err(|e| {
            anyhow::anyhow!("EXECUTION_STATE_URL: {e}; expected redis://[user:password@]host[:port][/db]")
        })?;
        let info = client.get_connection_info();
        let address = format!("redis://{}/{}", info.addr(), info.redis_settings().db());
        Ok(Self {
            client,
            manager: Mutex::new(None),
            address,
            scripts: Scripts {
                request: Script::new(REQUEST),
                decide: Script::new(DECIDE),
                consume: Script::new(CONSUME),
                annotate: Script::new(ANNOTATE),
                pending: Script::new(PENDING),
            },
            call_timeout,
        })
    }

    /// Ids are 32 hex digits ([`new_id`]); anything else is unknown without asking Redis.
    fn is_id(id: &str) -> bool {
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
    }

    fn unavailable(&self, reason: impl std::fmt::Display) -> ApprovalError {
        ApprovalError::Unavailable {
            store: self.address.clone(),
            reason: reason.to_string(),
        }
    }

    fn connection(&self) -> Result<ConnectionManager, ApprovalError> {
        let mut guard = self.manager.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(manager) = guard.as_ref() {
            return Ok(manager.clone());
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.call_timeout))
            .set_response_timeout(Some(self.call_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let manager =
            ConnectionManager::new_lazy_with_config(self.client.clone(), config).map_err(|e| self.unavailable(e))?;
        *guard = Some(manager.clone());
        Ok(manager)
    }

    /// Runs one Redis exchange under the call timeout.
    async fn bounded<T, F>(&self, work: impl FnOnce(ConnectionManager) -> F) -> Result<T, ApprovalError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let con = self.connection()?;
        match tokio::time::timeout(self.call_timeout, work(con)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.unavailable(e)),
            Err(_) => Err(self.unavailable(format!(
                "no answer within {} s (EXECUTION_STATE_TIMEOUT_SECS)",
                self.call_timeout.as_secs()
            ))),
        }
    }

    /// Builds an approval from a hash's flat `field, value, …` list.
    fn parse(&self, flat: &[String]) -> Result<Approval, ApprovalError> {
        let fields: HashMap<&str, &str> = flat
            .chunks_exact(2)
            .map(|pair| (pair[0].as_str(), pair[1].as_str()))
            .collect();
        let field = |name: &str| fields.get(name).copied().unwrap_or_default();
        let time = |name: &str| SystemTime::UNIX_EPOCH + Duration::from_millis(field(name).parse().unwrap_or(0));
        let by = field("by").to_owned();
        let state = match field("state") {
            "pending" => ApprovalState::Pending,
            "approved" => ApprovalState::Approved { by },
            "denied" => ApprovalState::Denied { by },
            other => return Err(self.unavailable(format!("an approval record has an unknown state {other:?}"))),
        };
        let risk = match field("risk") {
            "low" => Risk::Low,
            "medium" => Risk::Medium,
            _ => Risk::High,
        };
        let digest = field("digest");
        let remember =
            match field("remember") {
                "" => None,
                json => Some(serde_json::from_str(json).map_err(|e| {
                    self.unavailable(format!("an approval record has an unreadable remember offer: {e}"))
                })?),
            };
        let text = |name: &str| Some(field(name)).filter(|v| !v.is_empty()).map(str::to_owned);
        Ok(Approval {
            id: field("id").to_owned(),
            tool: field("tool").to_owned(),
            args_digest: (!digest.is_empty()).then(|| digest.to_owned()),
            preview: field("preview").to_owned(),
            risk,
            state,
            created_at: time("created_ms"),
            expires_at: time("expires_ms"),
            remember,
            session: text("session"),
            door: text("door"),
        })
    }
}

impl StateStore for RedisStore {
    fn describe(&self) -> String {
        self.address.clone()
    }

    fn request<'a>(
        &'a self,
        tool: &'a str,
        digest: &'a str,
        preview: &'a str,
        risk: Risk,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Approval, ApprovalError>> {
        Box::pin(async move {
            let now = SystemTime::now();
            let flat: Vec<String> = self
                .bounded(|mut con| async move {
                    self.scripts
                        .request
                        .arg(PREFIX)
                        .arg(new_id())
                        .arg(tool)
                        .arg(digest)
                        .arg(preview)
                        .arg(risk.as_str())
                        .arg(millis(now))
                        .arg(millis(now + ttl))
                        .arg(ttl_ms(ttl))
                        .invoke_async(&mut con)
                        .await
                })
                .await?;
            self.parse(&flat)
        })
    }

    fn grant_tool<'a>(
        &'a self,
        tool: &'a str,
        risk: Risk,
        by: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Approval, ApprovalError>> {
        Box::pin(async move {
            let approval = Approval::new(
                tool,
                None,
                "any call of this tool",
                risk,
                ApprovalState::Approved { by: by.to_owned() },
                ttl,
            );
            let key = format!("{PREFIX}approval:{}", approval.id);
            let fields = [
                ("id", approval.id.clone()),
                ("tool", approval.tool.clone()),
                ("digest", String::new()),
                ("preview", approval.preview.clone()),
                ("risk", risk.as_str().to_owned()),
                ("state", "approved".to_owned()),
                ("by", by.to_owned()),
                ("created_ms", millis(approval.created_at).to_string()),
                ("expires_ms", millis(approval.expires_at).to_string()),
            ];
            let () = self
                .bounded(|mut con| async move {
                    redis::pipe()
                        .atomic()
                        .hset_multiple(&key, &fields)
                        .ignore()
                        .pexpire(&key, ttl_ms(ttl) as i64)
                        .ignore()
                        .query_async(&mut con)
                        .await
                })
                .await?;
            Ok(approval)
        })
    }

    fn annotate<'a>(
        &'a self,
        id: &'a str,
        offer: Option<RememberOffer>,
        session: Option<String>,
        door: &'a str,
    ) -> BoxFuture<'a, Result<(), ApprovalError>> {
        Box::pin(async move {
            if !Self::is_id(id) {
                return Ok(());
            }
            let remember = match &offer {
                Some(o) => serde_json::to_string(o).map_err(|e| self.unavailable(e))?,
                None => String::new(),
            };
            let session = session.unwrap_or_default();
            let _: i64 = self
                .bounded(|mut con| async move {
                    self.scripts
                        .annotate
                        .arg(PREFIX)
                        .arg(id)
                        .arg(remember)
                        .arg(session)
                        .arg(door)
                        .invoke_async(&mut con)
                        .await
                })
                .await?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Approval>, ApprovalError>> {
        Box::pin(async move {
            if !Self::is_id(id) {
                return Ok(None);
            }
            let key = format!("{PREFIX}approval:{id}");
            let flat: Vec<String> = self
                .bounded(|mut con| async move { redis::cmd("HGETALL").arg(&key).query_async(&mut con).await })
                .await?;
            if flat.is_empty() {
                return Ok(None);
            }
            self.parse(&flat).map(Some)
        })
    }

    fn decide<'a>(
        &'a self,
        id: &'a str,
        approve: bool,
        by: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Approval, ApprovalError>> {
        Box::pin(async move {
            if !Self::is_id(id) {
                return Err(ApprovalError::Unknown(id.to_owned()));
            }
            let expires = SystemTime::now() + ttl;
            let reply: Vec<String> = self
                .bounded(|mut con| async move {
                    self.scripts
                        .decide
                        .arg(PREFIX)
                        .arg(id)
                        .arg(if approve { "approved" } else { "denied" })
                        .arg(by)
                        .arg(millis(expires))
                        .arg(ttl_ms(ttl))
                        .invoke_async(&mut con)
                        .await
                })
                .await?;
            match reply.first().map(String::as_str) {
                Some("ok") => self.parse(&reply[1..]),
                Some("not_pending") => Err(ApprovalError::NotPending(id.to_owned())),
                _ => Err(ApprovalError::Unknown(id.to_owned())),
            }
        })
    }

    fn consume<'a>(
        &'a self,
        id: &'a str,
        tool: &'a str,
        digest: &'a str,
    ) -> BoxFuture<'a, Result<Approval, ApprovalError>> {
        Box::pin(async move {
            if !Self::is_id(id) {
                return Err(ApprovalError::Unknown(id.to_owned()));
            }
            let reply: Vec<String> = self
                .bounded(|mut con| async move {
                    self.scripts
                        .consume
                        .arg(PREFIX)
                        .arg(id)
                        .arg(tool)
                        .arg(digest)
                        .invoke_async(&mut con)
                        .await
                })
                .await?;
            let second = || reply.get(1).cloned().unwrap_or_default();
            match reply.first().map(String::as_str) {
                Some("ok") => self.parse(&reply[1..]),
                Some("wrong_tool") => Err(ApprovalError::WrongTool {
                    id: id.to_owned(),
                    granted: second(),
                    asked: tool.to_owned(),
                }),
                Some("wrong_arguments") => Err(ApprovalError::WrongArguments(id.to_owned())),
                Some("pending") => Err(ApprovalError::StillPending(id.to_owned())),
                Some("denied") => Err(ApprovalError::Denied {
                    id: id.to_owned(),
                    by: second(),
                }),
                _ => Err(ApprovalError::Unknown(id.to_owned())),
            }
        })
    }

    fn pending(&self) -> BoxFuture<'_, Result<Vec<Approval>, ApprovalError>> {
        Box::pin(async move {
            let now = millis(SystemTime::now());
            let rows: Vec<Vec<String>> = self
                .bounded(
                    |mut con| async move { self.scripts.pending.arg(PREFIX).arg(now).invoke_async(&mut con).await },
                )
                .await?;
            let mut list = rows.iter().map(|r| self.parse(r)).collect::<Result<Vec<_>, _>>()?;
            list.retain(|a| a.state == ApprovalState::Pending);
            list.sort_by_key(|a| a.created_at);
            Ok(list)
        })
    }

    fn consume_nonce<'a>(&'a self, nonce: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool, ApprovalError>> {
        Box::pin(async move {
            let key = format!("{PREFIX}nonce:{nonce}");
            let set: Option<String> = self
                .bounded(|mut con| async move {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(1)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl_ms(ttl))
                        .query_async(&mut con)
                        .await
                })
                .await?;
            Ok(set.is_some())
        })
    }

    fn remember_session<'a>(
        &'a self,
        session_id: &'a str,
        key: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), ApprovalError>> {
        Box::pin(async move {
            let key = session_key(session_id, key);
            let () = self
                .bounded(|mut con| async move {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(1)
                        .arg("PX")
                        .arg(ttl_ms(ttl))
                        .query_async(&mut con)
                        .await
                })
                .await?;
            Ok(())
        })
    }

    fn is_remembered<'a>(&'a self, session_id: &'a str, key: &'a str) -> BoxFuture<'a, Result<bool, ApprovalError>> {
        Box::pin(async move {
            let key = session_key(session_id, key);
            let found: i64 = self
                .bounded(|mut con| async move { redis::cmd("EXISTS").arg(&key).query_async(&mut con).await })
                .await?;
            Ok(found > 0)
        })
    }
}

/// One key per (session, answer), whatever characters they hold.
fn session_key(session_id: &str, key: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(session_id.as_bytes());
    hash.update([0]);
    hash.update(key.as_bytes());
    format!("{PREFIX}session:{}", hex::encode(hash.finalize()))
}
