//! execlayer: a guarded execution layer for LLM agents, served over MCP.
//!
//! Every tool call, whichever door it comes through, goes through one gate
//! ([`engine::Engine::call`]) that checks policy, gets approvals, runs the tool
//! inside the workspace and writes the audit log.
//!
//! Module map:
//! - [`settings`]: environment and `.env` → validated [`settings::Settings`].
//! - [`command`]: the command grammar: argv splitting, shell operators, the allowlist, git's options.
//! - [`policy`]: the policy file, the live policy, approval rules, remembered answers.
//! - [`state`]: approval ids, used `requestState`s, session answers (memory or Redis).
//! - [`workspace`]: path confinement ([`workspace::WorkspacePath`]).
//! - [`engine`]: the gate.
//! - [`audit`]: the append-only JSONL log.
//! - [`tools`]: one file per tool and the registry.
//! - [`patch`]: unified-diff parsing and all-or-nothing apply.
//! - [`journal`]: crash-atomic multi-file commits (a journal before the first rename, undone at start).
//! - [`playbook`]: playbook files: load, validate.
//! - [`git`]: opening the workspace repository with libgit2.
//! - [`git_worktree`]: the work tree against the index from the index's stat data (git_status, git_diff).
//! - [`ollama`]: Ollama's HTTP API (version, tags, streamed chat).
//! - [`brain`]: model paths and Ollama status (`brain_status`, `execlayer status`).
//! - [`mcp`]: the rmcp server handler (tools, approvals by elicitation, list changes).
//! - [`http`]: axum: Streamable HTTP, legacy SSE, REST, the token and Host/Origin guard.
//! - [`server`]: starting the doors and the background tasks.
//! - [`sandbox`]: what a command may touch once it runs (Landlock, seccomp, namespaces).
//! - [`schemas`]: generated JSON schemas of the tools and the policy file.
//! - [`cli`]: operator commands against running servers (approve, deny, tools, audit, rules, smoke).
//! - [`operator`]: the per-user Unix socket every server answers approvals on.
//! - [`fsutil`]: atomic writes and small file helpers.

pub mod audit;
pub mod brain;
pub mod cli;
pub mod command;
pub mod engine;
pub mod fsutil;
pub mod git;
pub mod git_worktree;
pub mod http;
pub mod journal;
pub mod mcp;
pub mod ollama;
pub mod operator;
pub mod patch;
pub mod playbook;
pub mod policy;
pub mod sandbox;
pub mod schemas;
pub mod server;
pub mod settings;
pub mod state;
pub mod tools;
pub mod workspace;
