//! Remembered answers: a yes that holds for the MCP session, or for good.
//!
//! An approval question offers, beside yes and no, how long the yes lasts:
//! [`Remember::Once`] (the default), [`Remember::Session`] and
//! [`Remember::Always`]. What would be remembered is a [`Rule`]: for a command
//! the allowlist entry it matched, for a write or a patch the exact files
//! ([`RememberOffer`]). `always` appends that rule to the policy file; `session`
//! keeps it in a [`SessionAnswers`] store under the session's id, which only the
//! session itself knows (the stdio connection, the `Mcp-Session-Id`).

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::rules::{Rule, RuleDecision, RuleSet, Subject, Verdict, exact_paths_glob};

/// How long a yes lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Remember {
    /// This call only.
    #[default]
    Once,
    /// Calls of the same kind in this MCP session.
    Session,
    /// Calls of the same kind, in every session: an `allow` rule in the policy file.
    Always,
}

impl Remember {
    pub fn as_str(self) -> &'static str {
        match self {
            Remember::Once => "once",
            Remember::Session => "session",
            Remember::Always => "always",
        }
    }

    /// Parses `once`, `session` or `always`; anything else is `None` (a no).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "once" => Some(Remember::Once),
            "session" => Some(Remember::Session),
            "always" => Some(Remember::Always),
            _ => None,
        }
    }
}

/// What a yes could be remembered as, for one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RememberOffer {
    /// The `allow` rule that would be remembered.
    pub rule: Rule,
    /// A readable account: "`cargo test …`" or "src/a.rs, src/b.rs".
    pub what: String,
    /// Whether `session` may be chosen (there is a session to bind it to).
    pub session: bool,
}

impl RememberOffer {
    /// The offer for a call of `tool` touching `subject`: the allowlist entry
    /// its argv matched, or its exact files. `None` when nothing can be named.
    pub fn for_call(tool: &str, subject: &Subject, allowlist: &[Vec<String>], session: bool) -> Option<Self> {
        let allow = |command: Option<String>, path: Option<String>| Rule {
            tool: tool.to_owned(),
            command,
            path,
            decision: RuleDecision::Allow,
            reason: None,
            network: None,
            sandbox: None,
        };
        if let Some(argv) = &subject.argv {
            let entry = allowlist
                .iter()
                .filter(|e| argv.len() >= e.len() && e.iter().zip(argv).all(|(w, a)| w == a))
                .max_by_key(|e| e.len())?;
            let prefix = shell_words::join(entry);
            let more = if argv.len() > entry.len() { " …" } else { "" };
            let rule = allow(Some(prefix.clone()), None);
            RuleSet::new(vec![rule.clone()]).ok()?;
            return Some(Self {
                rule,
                what: format!("`{prefix}{more}`"),
                session,
            });
        }
        if subject.unresolved || subject.paths.is_empty() {
            return None;
        }
        let rule = allow(None, Some(exact_paths_glob(&subject.paths)));
        RuleSet::new(vec![rule.clone()]).ok()?;
        Some(Self {
            rule,
            what: subject.paths.join(", "),
            session,
        })
    }

    /// The choices offered, with the titles shown to the person answering.
    pub fn choices(offer: Option<&Self>) -> Vec<(Remember, String)> {
        let mut list = vec![(Remember::Once, "Only this call".to_owned())];
        if let Some(o) = offer {
            if o.session {
                list.push((Remember::Session, format!("Allow {} for this session", o.what)));
            }
            list.push((
                Remember::Always,
                format!("Always allow {} (adds an allow rule to the policy file)", o.what),
            ));
        }
        list
    }
}

/// Session-scoped answers. Held by the instance serving the session (a
/// session lives on one instance), not in the shared state store.
pub trait SessionAnswers: Send + Sync {
    /// Remembers `rule` for `session`.
    fn remember(&self, session: &str, rule: Rule) -> Result<(), String>;
    /// A remembered rule of `session` that allows this call.
    fn find(&self, session: &str, tool: &str, subject: &Subject) -> Option<Verdict>;
    /// Forgets everything of a session that ended.
    fn end(&self, session: &str);
}

/// Session answers held in this process.
#[derive(Default)]
pub struct MemorySessionAnswers {
    sessions: Mutex<HashMap<String, RuleSet>>,
}

impl SessionAnswers for MemorySessionAnswers {
    fn remember(&self, session: &str, rule: Rule) -> Result<(), String> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let set = sessions.entry(session.to_owned()).or_default();
        if set.position(&rule).is_none() {
            set.push(rule)?;
        }
        Ok(())
    }

    fn find(&self, session: &str, tool: &str, subject: &Subject) -> Option<Verdict> {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .get(session)?
            .evaluate(tool, subject)
            .filter(|v| v.decision == RuleDecision::Allow)
    }

    fn end(&self, session: &str) {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(cmd: &str) -> Subject {
        Subject::argv(cmd.split(' ').map(String::from).collect())
    }

    #[test]
    fn a_command_offers_the_allowlist_entry_it_matched() {
        let allowlist = vec![vec!["cargo".to_owned()], vec!["cargo".to_owned(), "test".to_owned()]];
        let offer = RememberOffer::for_call("shell_exec", &argv("cargo test -p core"), &allowlist, true).unwrap();
        assert_eq!(offer.rule.command.as_deref(), Some("cargo test"));
        assert_eq!(offer.what, "`cargo test …`");
        let titles = RememberOffer::choices(Some(&offer));
        assert_eq!(titles.len(), 3);
        assert!(titles[1].1.contains("`cargo test …` for this session"), "{titles:?}");
        let stateless = RememberOffer::for_call("shell_exec", &argv("cargo test"), &allowlist, false).unwrap();
        assert!(
            !RememberOffer::choices(Some(&stateless))
                .iter()
                .any(|(r, _)| *r == Remember::Session)
        );
        assert!(RememberOffer::for_call("shell_exec", &argv("rm -rf"), &allowlist, true).is_none());
    }

    #[test]
    fn session_answers_stay_in_their_session() {
        let store = MemorySessionAnswers::default();
        let subject = Subject::paths(Ok::<_, ()>(vec!["src/a.rs".to_owned()]));
        let offer = RememberOffer::for_call("apply_patch", &subject, &[], true).unwrap();
        store.remember("s1", offer.rule).unwrap();
        assert!(store.find("s1", "apply_patch", &subject).is_some());
        assert!(store.find("s2", "apply_patch", &subject).is_none());
        let other = Subject::paths(Ok::<_, ()>(vec!["src/b.rs".to_owned()]));
        assert!(store.find("s1", "apply_patch", &other).is_none());
        store.end("s1");
        assert!(store.find("s1", "apply_patch", &subject).is_none());
        assert_eq!(Remember::parse("forever"), None);
    }
}
