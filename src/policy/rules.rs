//! Rules: per command and per path decisions, checked by the gate before risk.
//!
//! A rule names a tool and, optionally, a `command` (a prefix of whole argv
//! words, as `SHELL_ALLOWLIST` matches) or a `path` glob over workspace-relative
//! paths; it decides `allow`, `ask` or `forbid`. A path rule matches a call only
//! when every path the call touches matches it. Of the rules that match a call
//! the strictest wins (`forbid` > `ask` > `allow`); ties go to the first.
//!
//! [`RuleSet`] holds the rules as written (that is what is saved and compared)
//! and their compiled form (argv words, glob matchers), built once when the
//! policy is loaded, so checking a call costs no parsing.

use std::fmt;

use globset::{Candidate, GlobBuilder, GlobMatcher};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a rule decides. Ordered by strictness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleDecision {
    /// Run without asking (the tool must still be enabled, the command still allowlisted).
    Allow,
    /// Ask a human every time, even in `auto` mode.
    Ask,
    /// Refuse without asking, giving the rule's `reason`.
    Forbid,
}

impl RuleDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleDecision::Allow => "allow",
            RuleDecision::Ask => "ask",
            RuleDecision::Forbid => "forbid",
        }
    }
}

/// Tools whose calls run a command (`command` rules apply to them).
pub const COMMAND_TOOLS: &[&str] = &["shell_exec"];
/// Tools whose calls touch named files (`path` rules apply to them).
pub const PATH_TOOLS: &[&str] = &["filesystem_write", "apply_patch", "edit_file"];

/// One rule as written in the policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The tool the rule is about, e.g. `shell_exec`.
    pub tool: String,
    /// For `shell_exec`: a command prefix matched on whole argv words (`git status` matches `git status -s`, not `git statusx`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// For `filesystem_write`, `apply_patch`, `edit_file`: a glob over workspace-relative paths (`docs/**`, `*.md`); a call matches only when every path it touches matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `allow` runs without asking, `ask` always asks (even in `auto` mode), `forbid` refuses without asking.
    pub decision: RuleDecision,
    /// Why; shown to the agent when a `forbid` rule refuses a call, and to the human asked by an `ask` rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For command rules: the command may use the network (applied by the sandbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<bool>,
    /// For command rules: `false` runs the command outside the sandbox; such a command always asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<bool>,
}

impl Rule {
    /// The decision in force: a command that leaves the sandbox always asks.
    pub fn effective(&self) -> RuleDecision {
        if self.sandbox == Some(false) {
            self.decision.max(RuleDecision::Ask)
        } else {
            self.decision
        }
    }

    /// A one-line account, e.g. `shell_exec command "git push" forbid`.
    pub fn summary(&self) -> String {
        let mut text = self.tool.clone();
        if let Some(c) = &self.command {
            text.push_str(&format!(" command {c:?}"));
        }
        if let Some(p) = &self.path {
            text.push_str(&format!(" path {p:?}"));
        }
        text.push(' ');
        text.push_str(self.decision.as_str());
        if self.network == Some(true) {
            text.push_str(" (network)");
        }
        if self.sandbox == Some(false) {
            text.push_str(" (unsandboxed, always asks)");
        }
        text
    }

    /// What the sandbox should grant a command this rule matched.
    pub fn grant(&self) -> Option<RuleGrant> {
        self.command.as_ref()?;
        Some(RuleGrant {
            network: self.network.unwrap_or(false),
            sandbox: self.sandbox.unwrap_or(true),
        })
    }
}

/// What a command rule grants the command's process (the sandbox applies it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleGrant {
    pub network: bool,
    pub sandbox: bool,
}

/// What a call touches, as rules see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    /// Workspace-relative paths with `/` separators.
    pub paths: Vec<String>,
    /// The command's argv, for calls that run one.
    pub argv: Option<Vec<String>>,
    /// Some path could not be resolved inside the workspace: no path rule matches.
    pub unresolved: bool,
}

impl Subject {
    pub fn argv(argv: Vec<String>) -> Self {
        Self {
            argv: Some(argv),
            ..Self::default()
        }
    }

    /// The subject of a call touching `paths`, or an unresolved one.
    pub fn paths(paths: Result<Vec<String>, impl Sized>) -> Self {
        match paths {
            Ok(paths) => Self {
                paths,
                ..Self::default()
            },
            Err(_) => Self {
                unresolved: true,
                ..Self::default()
            },
        }
    }
}

/// A rule that decided a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Index in the policy's `rules`.
    pub index: usize,
    pub decision: RuleDecision,
    pub rule: Rule,
}

impl Verdict {
    /// How the audit line names the rule: `rules[3] shell_exec command "git push" forbid`.
    pub fn label(&self) -> String {
        format!("rules[{}] {}", self.index, self.rule.summary())
    }
}

#[derive(Debug, Clone)]
enum Matcher {
    /// Any call of the tool.
    Any,
    Command(Vec<String>),
    Path(GlobMatcher),
}

/// The policy's rules, as written and compiled.
#[derive(Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    compiled: Vec<Matcher>,
}

impl fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.rules.fmt(f)
    }
}

impl PartialEq for RuleSet {
    fn eq(&self, other: &Self) -> bool {
        self.rules == other.rules
    }
}

impl Eq for RuleSet {}

impl Serialize for RuleSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.rules.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RuleSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let rules = Vec::<Rule>::deserialize(d)?;
        RuleSet::new(rules).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for RuleSet {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RuleSet".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Vec::<Rule>::json_schema(generator)
    }

    fn inline_schema() -> bool {
        true
    }
}

/// Compiles a path glob: `*` stays inside one folder, `**` crosses folders.
fn compile_glob(glob: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(glob)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| e.to_string())
}

/// A glob that matches exactly these paths (special characters escaped).
pub fn exact_paths_glob(paths: &[String]) -> String {
    let escape = |p: &str| {
        let mut out = String::with_capacity(p.len());
        for c in p.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\' | ',') {
                out.push('\\');
            }
            out.push(c);
        }
        out
    };
    match paths {
        [one] => escape(one),
        many => format!("{{{}}}", many.iter().map(|p| escape(p)).collect::<Vec<_>>().join(",")),
    }
}

fn compile(index: usize, rule: &Rule) -> Result<Matcher, String> {
    let at = |field: &str, message: String| format!("`rules[{index}].{field}`: {message}");
    if rule.tool.trim().is_empty() {
        return Err(at("tool", "is empty; name a tool, e.g. `shell_exec`".into()));
    }
    if rule.command.is_some() && rule.path.is_some() {
        return Err(at(
            "path",
            "a rule has either `command` or `path`, not both; split it into two rules".into(),
        ));
    }
    if (rule.network.is_some() || rule.sandbox.is_some()) && rule.command.is_none() {
        let field = if rule.network.is_some() { "network" } else { "sandbox" };
        return Err(at(field, "applies only to rules with a `command`".into()));
    }
    if let Some(reason) = &rule.reason
        && reason.len() > 500
    {
        return Err(at("reason", "is longer than 500 bytes".into()));
    }
    if let Some(command) = &rule.command {
        if !COMMAND_TOOLS.contains(&rule.tool.as_str()) {
            return Err(at(
                "command",
                format!(
                    "`{}` does not run commands; command rules apply to: {}",
                    rule.tool,
                    COMMAND_TOOLS.join(", ")
                ),
            ));
        }
        // The same grammar as the commands it will be compared with.
        let words = crate::command::parse_entry(command)
            .map_err(|e| at("command", format!("cannot be split into words: {e}")))?
            .unwrap_or_default();
        if words.is_empty() {
            return Err(at(
                "command",
                "is empty; give a command prefix, e.g. `git status`".into(),
            ));
        }
        return Ok(Matcher::Command(words));
    }
    if let Some(path) = &rule.path {
        if !PATH_TOOLS.contains(&rule.tool.as_str()) {
            return Err(at(
                "path",
                format!(
                    "`{}` does not write named files; path rules apply to: {}",
                    rule.tool,
                    PATH_TOOLS.join(", ")
                ),
            ));
        }
        if path.is_empty() || path.starts_with('/') || path.split('/').any(|part| part == "..") {
            return Err(at(
                "path",
                format!("{path:?} must be a glob relative to the workspace root, without `..` (e.g. `docs/**`)"),
            ));
        }
        return compile_glob(path)
            .map(Matcher::Path)
            .map_err(|e| at("path", format!("{path:?} is not a valid glob: {e}")));
    }
    Ok(Matcher::Any)
}

impl RuleSet {
    /// Compiles `rules`; the error names the rule's index and field.
    pub fn new(rules: Vec<Rule>) -> Result<Self, String> {
        let compiled = rules
            .iter()
            .enumerate()
            .map(|(i, r)| compile(i, r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { rules, compiled })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Appends a rule; returns its index.
    pub fn push(&mut self, rule: Rule) -> Result<usize, String> {
        let index = self.rules.len();
        let matcher = compile(index, &rule)?;
        self.rules.push(rule);
        self.compiled.push(matcher);
        Ok(index)
    }

    /// Checks every rule's tool against the registered tools.
    pub fn validate_tools(&self, known: &[&str]) -> Result<(), String> {
        for (i, rule) in self.rules.iter().enumerate() {
            if !known.contains(&rule.tool.as_str()) {
                return Err(format!(
                    "`rules[{i}].tool`: `{}` is not a known tool; known tools: {}",
                    rule.tool,
                    known.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Whether any rule is about `tool` (otherwise its calls need no subject).
    pub fn mentions(&self, tool: &str) -> bool {
        self.rules.iter().any(|r| r.tool == tool)
    }

    /// The index of a rule equal to `rule`, if the set already holds one.
    pub fn position(&self, rule: &Rule) -> Option<usize> {
        self.rules.iter().position(|r| r == rule)
    }

    /// The strictest rule matching a call of `tool` touching `subject`.
    pub fn evaluate(&self, tool: &str, subject: &Subject) -> Option<Verdict> {
        let mut best: Option<(usize, RuleDecision)> = None;
        // Each path is prepared for glob matching once, not once per rule.
        let mut candidates: Option<Vec<Candidate<'_>>> = None;
        for (i, (rule, matcher)) in self.rules.iter().zip(&self.compiled).enumerate() {
            if rule.tool != tool || !matches(matcher, subject, &mut candidates) {
                continue;
            }
            let decision = rule.effective();
            if best.is_none_or(|(_, d)| decision > d) {
                best = Some((i, decision));
            }
        }
        best.map(|(index, decision)| Verdict {
            index,
            decision,
            rule: self.rules[index].clone(),
        })
    }
}

fn matches<'a>(matcher: &Matcher, subject: &'a Subject, candidates: &mut Option<Vec<Candidate<'a>>>) -> bool {
    match matcher {
        Matcher::Any => true,
        Matcher::Command(words) => subject
            .argv
            .as_ref()
            .is_some_and(|argv| argv.len() >= words.len() && words.iter().zip(argv).all(|(w, a)| w == a)),
        Matcher::Path(glob) => {
            if subject.unresolved || subject.paths.is_empty() {
                return false;
            }
            candidates
                .get_or_insert_with(|| subject.paths.iter().map(Candidate::new).collect())
                .iter()
                .all(|c| glob.is_match_candidate(c))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(tool: &str, command: Option<&str>, path: Option<&str>, decision: RuleDecision) -> Rule {
        Rule {
            tool: tool.into(),
            command: command.map(Into::into),
            path: path.map(Into::into),
            decision,
            reason: None,
            network: None,
            sandbox: None,
        }
    }

    fn argv(cmd: &str) -> Subject {
        Subject::argv(cmd.split(' ').map(String::from).collect())
    }

    fn paths(p: &[&str]) -> Subject {
        Subject::paths(Ok::<_, ()>(p.iter().map(|s| s.to_string()).collect()))
    }

    #[test]
    fn rule_commands_are_split_as_commands_are() {
        use RuleDecision::*;
        // Quoted words are one word, as shell_exec splits them.
        let set = RuleSet::new(vec![rule("shell_exec", Some("python3 -c 'print(1)'"), None, Allow)]).unwrap();
        let argv = crate::command::split("python3 -c 'print(1)'").unwrap();
        assert_eq!(
            set.evaluate("shell_exec", &Subject::argv(argv)).unwrap().decision,
            Allow
        );
        // A prefix no command could ever start with is refused when the policy loads.
        let err = RuleSet::new(vec![rule("shell_exec", Some("git log | head"), None, Forbid)]).unwrap_err();
        assert!(err.contains("rules[0].command") && err.contains("`|`"), "{err}");
    }

    #[test]
    fn commands_match_whole_words_and_the_strictest_rule_wins() {
        use RuleDecision::*;
        let set = RuleSet::new(vec![
            rule("shell_exec", Some("git"), None, Allow),
            rule("shell_exec", Some("git push"), None, Forbid),
            rule("shell_exec", Some("git status"), None, Ask),
        ])
        .unwrap();
        assert_eq!(set.evaluate("shell_exec", &argv("git log -1")).unwrap().index, 0);
        assert_eq!(
            set.evaluate("shell_exec", &argv("git push origin")).unwrap().decision,
            Forbid
        );
        assert_eq!(
            set.evaluate("shell_exec", &argv("git status -s")).unwrap().decision,
            Ask
        );
        assert!(set.evaluate("shell_exec", &argv("gitx status")).is_none());
        assert!(set.evaluate("shell_exec", &argv("ls")).is_none());
        assert!(set.evaluate("filesystem_write", &paths(&["git"])).is_none());
    }

    #[test]
    fn a_path_rule_matches_only_when_every_path_matches() {
        let set = RuleSet::new(vec![rule("apply_patch", None, Some("docs/**"), RuleDecision::Allow)]).unwrap();
        assert!(
            set.evaluate("apply_patch", &paths(&["docs/a.md", "docs/x/y.md"]))
                .is_some()
        );
        assert!(
            set.evaluate("apply_patch", &paths(&["docs/a.md", "src/x.rs"]))
                .is_none()
        );
        assert!(set.evaluate("apply_patch", &paths(&[])).is_none());
        let star = RuleSet::new(vec![rule("apply_patch", None, Some("docs/*.md"), RuleDecision::Allow)]).unwrap();
        assert!(
            star.evaluate("apply_patch", &paths(&["docs/x/y.md"])).is_none(),
            "* stays in one folder"
        );
    }

    #[test]
    fn exact_globs_match_only_their_paths() {
        let paths_list = vec!["src/a,b.rs".to_owned(), "src/[x].rs".to_owned()];
        let glob = exact_paths_glob(&paths_list);
        let set = RuleSet::new(vec![rule("apply_patch", None, Some(&glob), RuleDecision::Allow)]).unwrap();
        assert!(
            set.evaluate("apply_patch", &paths(&["src/a,b.rs", "src/[x].rs"]))
                .is_some()
        );
        assert!(set.evaluate("apply_patch", &paths(&["src/x.rs"])).is_none());
        assert!(set.evaluate("apply_patch", &paths(&["src/a"])).is_none());
    }

    #[test]
    fn unsandboxed_commands_always_ask() {
        let mut r = rule("shell_exec", Some("cargo build"), None, RuleDecision::Allow);
        r.sandbox = Some(false);
        r.network = Some(true);
        let set = RuleSet::new(vec![r]).unwrap();
        let v = set.evaluate("shell_exec", &argv("cargo build")).unwrap();
        assert_eq!(v.decision, RuleDecision::Ask);
        assert_eq!(
            v.rule.grant(),
            Some(RuleGrant {
                network: true,
                sandbox: false
            })
        );
    }

    #[test]
    fn errors_name_the_rule_and_the_field() {
        let err = RuleSet::new(vec![
            rule("shell_exec", Some("ls"), None, RuleDecision::Allow),
            rule("filesystem_write", Some("ls"), None, RuleDecision::Allow),
        ])
        .unwrap_err();
        assert!(err.contains("rules[1].command"), "{err}");
        let err = RuleSet::new(vec![rule("apply_patch", None, Some("../x"), RuleDecision::Allow)]).unwrap_err();
        assert!(err.contains("rules[0].path"), "{err}");
        let err = RuleSet::new(vec![rule("apply_patch", None, Some("a[b"), RuleDecision::Allow)]).unwrap_err();
        assert!(err.contains("rules[0].path"), "{err}");
        let mut net = rule("apply_patch", None, Some("x"), RuleDecision::Allow);
        net.network = Some(true);
        assert!(RuleSet::new(vec![net]).unwrap_err().contains("rules[0].network"));
        let set = RuleSet::new(vec![rule("rm_rf", None, None, RuleDecision::Allow)]).unwrap();
        assert!(
            set.validate_tools(&["shell_exec"])
                .unwrap_err()
                .contains("rules[0].tool")
        );
    }
}
