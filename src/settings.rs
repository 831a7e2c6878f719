//! Settings: the environment (and `.env`) turned into one validated [`Settings`].
//!
//! [`RawEnv`] is a plain map of variables so tests never touch the process
//! environment; [`Settings::from_env`] validates it, applies the defaults and the
//! `MODELS_ROOT` derivations, and names the variable in every error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

/// Variables as strings, before validation.
pub type RawEnv = BTreeMap<String, String>;

/// The commands `shell_exec` may start when `SHELL_ALLOWLIST` is unset.
pub const DEFAULT_SHELL_ALLOWLIST: &str =
    "git status,git diff,git log,git show,cargo test,cargo check,python -m pytest,pip list,ls";

/// Voice file preferred under `$MODELS_ROOT` when it exists.
pub const PREFERRED_VOICE: &str = "xtts/voices/daena_voice.wav";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("{var}: {message}")]
    Invalid { var: &'static str, message: String },
}

fn invalid(var: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        var,
        message: message.into(),
    }
}

/// Everything execlayer reads from its environment, validated.
#[derive(Clone)]
pub struct Settings {
    /// The one directory tools may touch (as given; canonicalized by `Workspace`).
    pub workspace_root: PathBuf,
    /// Required on every HTTP request when set. Never logged.
    pub token: Option<String>,
    /// The policy file.
    pub config_path: PathBuf,
    /// Directory of playbook files.
    pub playbooks_dir: PathBuf,
    /// The JSONL audit log.
    pub audit_log: PathBuf,
    /// The `.env` file the settings were read from, if any.
    pub env_file: Option<PathBuf>,
    /// Command prefixes `shell_exec` may run, each a list of argv words.
    pub shell_allowlist: Vec<Vec<String>>,
    /// Upper bound for a `shell_exec` call's `timeout_secs`.
    pub shell_max_timeout: Duration,
    /// Key that seals `requestState` for 2026-07-28 approvals (random when unset).
    pub state_key: Option<Vec<u8>>,
    /// `EXECUTION_SANDBOX`, `EXECUTION_SANDBOX_READ`, `EXECUTION_SANDBOX_WRITE`.
    pub sandbox: crate::sandbox::SandboxSettings,
    /// Shared approval state (`redis://…`); `None` keeps it in this process.
    pub state_url: Option<String>,
    /// How long one exchange with the shared store may take before the call
    /// it serves is refused (`EXECUTION_STATE_TIMEOUT_SECS`, default 5).
    pub state_timeout: Duration,
    pub models: ModelPaths,
    pub ollama: OllamaSettings,
    /// Timeouts and the connection cap of the HTTP door.
    pub http: HttpLimits,
}

/// How long the HTTP door waits for a slow client, and how many it serves at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// From a connection's start, or a request's first byte, to the end of its head.
    pub header_timeout: Duration,
    /// From the end of a request's head to the end of its body.
    pub body_timeout: Duration,
    /// How long a kept-alive connection may sit between requests.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("workspace_root", &self.workspace_root)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("config_path", &self.config_path)
            .field("audit_log", &self.audit_log)
            .field("shell_allowlist", &self.shell_allowlist)
            .field("sandbox", &self.sandbox)
            .field("models", &self.models)
            .field("ollama", &self.ollama)
            .finish_non_exhaustive()
    }
}

/// Model locations, explicit or derived from `MODELS_ROOT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPaths {
    pub models_root: Option<PathBuf>,
    pub ollama_models: Option<PathBuf>,
    pub xtts_model_path: Option<PathBuf>,
    pub tts_home: Option<PathBuf>,
    pub voice_path: Option<PathBuf>,
}

/// How `reason` reaches Ollama.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OllamaSettings {
    pub base_url: String,
    pub reasoning_model: String,
    pub fallback_model: String,
    /// Longest wait for the next streamed chunk before the call fails.
    pub stall_timeout: Duration,
}

impl Settings {
    /// Reads `.env` from `cwd` (when present) under the process environment,
    /// which wins, and validates the result.
    pub fn load(cwd: &Path) -> Result<Self, SettingsError> {
        let mut env = RawEnv::new();
        let env_file = cwd.join(".env");
        let found = match dotenvy::from_path_iter(&env_file) {
            Ok(iter) => {
                for (key, value) in iter.flatten() {
                    env.insert(key, value);
                }
                true
            }
            Err(_) => false,
        };
        for (key, value) in std::env::vars() {
            env.insert(key, value);
        }
        let mut settings = Self::from_env(&env, cwd)?;
        settings.env_file = found.then_some(env_file);
        Ok(settings)
    }

    /// Validates `env`; relative paths are taken from `cwd`.
    pub fn from_env(env: &RawEnv, cwd: &Path) -> Result<Self, SettingsError> {
        let get = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let home = get("HOME").map(PathBuf::from);
        let path = |var: &'static str| -> Result<Option<PathBuf>, SettingsError> {
            get(var)
                .map(|v| expand_path(v, home.as_deref(), cwd).map_err(|m| invalid(var, m)))
                .transpose()
        };

        let workspace_root = path("EXECUTION_WORKSPACE_ROOT")?.unwrap_or_else(|| cwd.to_path_buf());
        if !workspace_root.is_dir() {
            return Err(invalid(
                "EXECUTION_WORKSPACE_ROOT",
                format!("{} is not an existing directory", workspace_root.display()),
            ));
        }
        let token = get("EXECUTION_TOKEN").map(str::to_owned);
        if let Some(t) = &token
            && t.len() < 8
        {
            return Err(invalid(
                "EXECUTION_TOKEN",
                "must be at least 8 characters (use e.g. `openssl rand -hex 32`)",
            ));
        }
        let config_path = path("EXECUTION_CONFIG")?.unwrap_or_else(|| cwd.join("config/execution_layer_config.json"));
        let playbooks_dir = path("EXECUTION_PLAYBOOKS_DIR")?.unwrap_or_else(|| {
            config_path
                .parent()
                .map(|p| p.join("playbooks"))
                .unwrap_or_else(|| cwd.join("config/playbooks"))
        });
        let audit_log = match path("EXECUTION_AUDIT_LOG")? {
            Some(p) => p,
            None => default_state_dir(env, home.as_deref())
                .ok_or_else(|| {
                    invalid(
                        "EXECUTION_AUDIT_LOG",
                        "is unset and neither XDG_STATE_HOME nor HOME is set to derive it; set it to a file path",
                    )
                })?
                .join("audit.jsonl"),
        };
        let shell_allowlist = parse_allowlist(get("SHELL_ALLOWLIST").unwrap_or(DEFAULT_SHELL_ALLOWLIST))?;
        let shell_max_timeout = Duration::from_secs(parse_u64(
            get("SHELL_MAX_TIMEOUT_SECS"),
            "SHELL_MAX_TIMEOUT_SECS",
            600,
            1..=86_400,
        )?);
        let state_timeout = Duration::from_secs(parse_u64(
            get("EXECUTION_STATE_TIMEOUT_SECS"),
            "EXECUTION_STATE_TIMEOUT_SECS",
            crate::state::redis::DEFAULT_CALL_TIMEOUT.as_secs(),
            1..=60,
        )?);
        let state_key = match get("EXECUTION_STATE_KEY") {
            None => None,
            Some(k) if k.len() >= 32 => Some(k.as_bytes().to_vec()),
            Some(_) => {
                return Err(invalid(
                    "EXECUTION_STATE_KEY",
                    "must be at least 32 characters (use e.g. `openssl rand -hex 32`)",
                ));
            }
        };
        let sandbox = crate::sandbox::SandboxSettings {
            mode: match get("EXECUTION_SANDBOX") {
                None => crate::sandbox::SandboxMode::default(),
                Some(v) => crate::sandbox::SandboxMode::parse(v).ok_or_else(|| {
                    invalid(
                        "EXECUTION_SANDBOX",
                        format!("{v:?} must be auto (confine as far as the kernel allows), required (refuse commands the kernel cannot confine) or off"),
                    )
                })?,
            },
            read: path_list(get("EXECUTION_SANDBOX_READ"), "EXECUTION_SANDBOX_READ", home.as_deref(), cwd)?,
            write: path_list(get("EXECUTION_SANDBOX_WRITE"), "EXECUTION_SANDBOX_WRITE", home.as_deref(), cwd)?,
        };

        let state_url = match get("EXECUTION_STATE_URL") {
            None => None,
            Some(u) if u.starts_with("rediss://") || u.starts_with("valkeys://") => {
                return Err(invalid(
                    "EXECUTION_STATE_URL",
                    "TLS (rediss://) is not built into execlayer; reach Redis over a private network, a Unix socket (redis+unix:///path) or a local TLS tunnel, with a redis:// URL",
                ));
            }
            Some(u) if u.starts_with("redis://") || u.starts_with("redis+unix://") || u.starts_with("unix://") => {
                Some(u.to_owned())
            }
            Some(u) => {
                return Err(invalid(
                    "EXECUTION_STATE_URL",
                    format!(
                        "{:?} is not a Redis URL; expected redis://[user:password@]host[:port][/db] or redis+unix:///path",
                        u.split('@').next_back().unwrap_or_default()
                    ),
                ));
            }
        };
        if state_url.is_some() && state_key.is_none() {
            return Err(invalid(
                "EXECUTION_STATE_KEY",
                "must be set when EXECUTION_STATE_URL is: every instance sharing the store needs the same key to open each other's requestStates (use e.g. `openssl rand -hex 32`)",
            ));
        }

        let models_root = path("MODELS_ROOT")?;
        let derived = |sub: &str| models_root.as_ref().map(|r| r.join(sub));
        let ollama_models = path("OLLAMA_MODELS")?.or_else(|| derived("ollama"));
        let xtts_model_path = path("XTTS_MODEL_PATH")?.or_else(|| derived("xtts"));
        let tts_home = path("TTS_HOME")?.or_else(|| derived("xtts"));
        let preferred_voice = derived(PREFERRED_VOICE).filter(|p| p.is_file());
        let voice_path = preferred_voice.or(path("XTTS_VOICE_PATH")?);

        let base_url = get("OLLAMA_BASE_URL").unwrap_or("http://127.0.0.1:11434");
        if !base_url.starts_with("http://") {
            return Err(invalid(
                "OLLAMA_BASE_URL",
                format!(
                    "{base_url:?} must be a plain http:// URL (Ollama's API has no TLS), e.g. http://127.0.0.1:11434"
                ),
            ));
        }
        let ollama = OllamaSettings {
            base_url: base_url.trim_end_matches('/').to_owned(),
            reasoning_model: get("OLLAMA_REASONING_MODEL").unwrap_or("deepseek-r1:8b").to_owned(),
            fallback_model: get("OLLAMA_REASONING_FALLBACK").unwrap_or("qwen2.5:7b").to_owned(),
            stall_timeout: Duration::from_secs(parse_u64(
                get("OLLAMA_STALL_TIMEOUT_SECS"),
                "OLLAMA_STALL_TIMEOUT_SECS",
                120,
                1..=3_600,
            )?),
        };

        let defaults = HttpLimits::default();
        let secs = |var: &'static str, default: Duration| -> Result<Duration, SettingsError> {
            parse_u64(get(var), var, default.as_secs(), 1..=3_600).map(Duration::from_secs)
        };
        let http = HttpLimits {
            header_timeout: secs("EXECUTION_HTTP_HEADER_TIMEOUT_SECS", defaults.header_timeout)?,
            body_timeout: secs("EXECUTION_HTTP_BODY_TIMEOUT_SECS", defaults.body_timeout)?,
            idle_timeout: secs("EXECUTION_HTTP_IDLE_TIMEOUT_SECS", defaults.idle_timeout)?,
            max_connections: parse_u64(
                get("EXECUTION_HTTP_MAX_CONNECTIONS"),
                "EXECUTION_HTTP_MAX_CONNECTIONS",
                defaults.max_connections as u64,
                1..=65_536,
            )? as usize,
        };

        Ok(Self {
            workspace_root,
            token,
            config_path,
            playbooks_dir,
            audit_log,
            env_file: None,
            shell_allowlist,
            shell_max_timeout,
            state_key,
            sandbox,
            state_url,
            state_timeout,
            models: ModelPaths {
                models_root,
                ollama_models,
                xtts_model_path,
                tts_home,
                voice_path,
            },
            ollama,
            http,
        })
    }
}

/// Expands a leading `~` and makes relative paths absolute against `cwd`.
fn expand_path(value: &str, home: Option<&Path>, cwd: &Path) -> Result<PathBuf, String> {
    if value.contains('\0') {
        return Err("contains a NUL byte".to_owned());
    }
    let expanded = if value == "~" || value.starts_with("~/") {
        let home = home.ok_or("starts with ~ but HOME is unset; give an absolute path")?;
        home.join(value.trim_start_matches('~').trim_start_matches('/'))
    } else {
        PathBuf::from(value)
    };
    Ok(if expanded.is_absolute() {
        expanded
    } else {
        cwd.join(expanded)
    })
}

/// A comma-separated list of existing paths (`~` expanded, relative to `cwd`).
fn path_list(
    value: Option<&str>,
    var: &'static str,
    home: Option<&Path>,
    cwd: &Path,
) -> Result<Vec<PathBuf>, SettingsError> {
    let mut paths = Vec::new();
    for item in value.unwrap_or("").split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let path = expand_path(item, home, cwd).map_err(|m| invalid(var, format!("{item:?} {m}")))?;
        if !path.exists() {
            return Err(invalid(
                var,
                format!(
                    "{} does not exist; give existing paths, separated by commas",
                    path.display()
                ),
            ));
        }
        paths.push(path);
    }
    Ok(paths)
}

fn default_state_dir(env: &RawEnv, home: Option<&Path>) -> Option<PathBuf> {
    match env.get("XDG_STATE_HOME").filter(|v| v.starts_with('/')) {
        Some(state) => Some(PathBuf::from(state).join("execlayer")),
        None => home.map(|h| h.join(".local/state/execlayer")),
    }
}

fn parse_u64(
    value: Option<&str>,
    var: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, SettingsError> {
    let Some(value) = value else {
        return Ok(default);
    };
    let n: u64 = value
        .parse()
        .map_err(|_| invalid(var, format!("{value:?} is not a whole number")))?;
    if !range.contains(&n) {
        return Err(invalid(
            var,
            format!("{n} is out of range {}..={}", range.start(), range.end()),
        ));
    }
    Ok(n)
}

/// Splits `git status,cargo test` into `[["git","status"],["cargo","test"]]`;
/// each entry is read with the command grammar ([`crate::command`]).
pub fn parse_allowlist(value: &str) -> Result<Vec<Vec<String>>, SettingsError> {
    let mut rules = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let words = crate::command::parse_entry(entry)
            .map_err(|e| invalid("SHELL_ALLOWLIST", format!("entry {entry:?}: {e}")))?;
        rules.extend(words);
    }
    Ok(rules)
}

/// The derived model paths as `export` lines for a POSIX shell.
pub fn env_exports(settings: &Settings) -> String {
    let m = &settings.models;
    let mut out = String::new();
    let mut line = |name: &str, value: Option<&Path>| {
        if let Some(v) = value {
            out.push_str(&format!("export {name}={}\n", shell_words::quote(&v.to_string_lossy())));
        }
    };
    line("MODELS_ROOT", m.models_root.as_deref());
    line("OLLAMA_MODELS", m.ollama_models.as_deref());
    line("XTTS_MODEL_PATH", m.xtts_model_path.as_deref());
    line("TTS_HOME", m.tts_home.as_deref());
    line("XTTS_VOICE_PATH", m.voice_path.as_deref());
    out.push_str(&format!(
        "export OLLAMA_BASE_URL={}\nexport OLLAMA_REASONING_MODEL={}\nexport OLLAMA_REASONING_FALLBACK={}\n",
        shell_words::quote(&settings.ollama.base_url),
        shell_words::quote(&settings.ollama.reasoning_model),
        shell_words::quote(&settings.ollama.fallback_model)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> RawEnv {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_derive_from_cwd_and_home() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings::from_env(&env(&[("HOME", "/home/u")]), dir.path()).unwrap();
        assert_eq!(s.workspace_root, dir.path());
        assert_eq!(s.config_path, dir.path().join("config/execution_layer_config.json"));
        assert_eq!(s.playbooks_dir, dir.path().join("config/playbooks"));
        assert_eq!(s.audit_log, PathBuf::from("/home/u/.local/state/execlayer/audit.jsonl"));
        assert!(s.shell_allowlist.contains(&vec!["git".to_owned(), "status".to_owned()]));
        assert_eq!(s.models.ollama_models, None);
        assert_eq!(s.ollama.base_url, "http://127.0.0.1:11434");
    }

    #[test]
    fn models_root_derives_unset_paths_and_explicit_values_win() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("models");
        std::fs::create_dir_all(root.join("xtts/voices")).unwrap();
        let e = env(&[("HOME", "/h"), ("MODELS_ROOT", root.to_str().unwrap())]);
        let s = Settings::from_env(&e, dir.path()).unwrap();
        assert_eq!(s.models.ollama_models, Some(root.join("ollama")));
        assert_eq!(s.models.xtts_model_path, Some(root.join("xtts")));
        assert_eq!(s.models.tts_home, Some(root.join("xtts")));
        assert_eq!(s.models.voice_path, None);

        std::fs::write(root.join(PREFERRED_VOICE), b"RIFF").unwrap();
        let e = env(&[
            ("HOME", "/h"),
            ("MODELS_ROOT", root.to_str().unwrap()),
            ("OLLAMA_MODELS", "~/ollama"),
            ("XTTS_VOICE_PATH", "/v/other.wav"),
        ]);
        let s = Settings::from_env(&e, dir.path()).unwrap();
        assert_eq!(s.models.ollama_models, Some(PathBuf::from("/h/ollama")));
        assert_eq!(s.models.voice_path, Some(root.join(PREFERRED_VOICE)));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("EXECUTION_WORKSPACE_ROOT", "/definitely/not/here"),
            ("EXECUTION_TOKEN", "short"),
            ("SHELL_MAX_TIMEOUT_SECS", "ten"),
            ("SHELL_MAX_TIMEOUT_SECS", "0"),
            ("SHELL_ALLOWLIST", "git status,rm -rf /;"),
            ("OLLAMA_BASE_URL", "localhost:11434"),
            ("EXECUTION_STATE_KEY", "too-short"),
            ("EXECUTION_SANDBOX", "maybe"),
            ("EXECUTION_SANDBOX_READ", "/definitely/not/here"),
            ("EXECUTION_SANDBOX_WRITE", "/tmp,/definitely/not/here"),
            ("EXECUTION_HTTP_HEADER_TIMEOUT_SECS", "0"),
            ("EXECUTION_HTTP_IDLE_TIMEOUT_SECS", "soon"),
            ("EXECUTION_HTTP_MAX_CONNECTIONS", "0"),
            ("EXECUTION_STATE_TIMEOUT_SECS", "0"),
            ("EXECUTION_STATE_TIMEOUT_SECS", "61"),
            ("EXECUTION_STATE_URL", "rediss://cache.internal:6380"),
            ("EXECUTION_STATE_URL", "http://cache.internal:6379"),
            // A shared store without a shared key cannot open other instances' states.
            ("EXECUTION_STATE_KEY", ""),
        ];
        for (var, value) in cases {
            let pairs = if value.is_empty() {
                vec![("HOME", "/h"), ("EXECUTION_STATE_URL", "redis://127.0.0.1:6379")]
            } else {
                vec![("HOME", "/h"), (var, value)]
            };
            let err = Settings::from_env(&env(&pairs), dir.path()).unwrap_err();
            assert!(err.to_string().starts_with(var), "{err}");
        }
    }

    #[test]
    fn sandbox_settings_parse_mode_and_path_lists() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings::from_env(&env(&[("HOME", "/h")]), dir.path()).unwrap();
        assert_eq!(s.sandbox.mode, crate::sandbox::SandboxMode::Auto);
        let e = env(&[
            ("HOME", "/h"),
            ("EXECUTION_SANDBOX", "Required"),
            ("EXECUTION_SANDBOX_READ", " /usr , ."),
            ("EXECUTION_SANDBOX_WRITE", "/tmp"),
        ]);
        let s = Settings::from_env(&e, dir.path()).unwrap();
        assert_eq!(s.sandbox.mode, crate::sandbox::SandboxMode::Required);
        assert_eq!(s.sandbox.read, [PathBuf::from("/usr"), dir.path().join(".")]);
        assert_eq!(s.sandbox.write, [PathBuf::from("/tmp")]);
    }

    #[test]
    fn debug_never_shows_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings::from_env(
            &env(&[("HOME", "/h"), ("EXECUTION_TOKEN", "supersecret-token")]),
            dir.path(),
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("supersecret"));
    }
}
