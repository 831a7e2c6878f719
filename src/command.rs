//! The command grammar, in one place: how a command line becomes an argv, which
//! characters a shell would have acted on, how an argv matches the
//! `SHELL_ALLOWLIST`, and which git options are refused.
//!
//! No shell ever runs a command. The line is split into words the way a POSIX
//! shell splits them (spaces separate words; `'…'` keeps everything literally;
//! `"…"` keeps everything except that `\` escapes `"`, `\`, `$` and a backquote;
//! an unquoted `\` escapes the next character) but nothing is expanded: text
//! inside quotes, `$` and backquotes included, reaches the program literally.
//! An unquoted character that a shell would have acted on (`;`, `|`, `&`, `>`,
//! `<`, `$`, a backquote, `(`, `)`, globs, braces, a newline, a leading `~` or
//! `#`) is refused with what a shell would have done, because running the words
//! without a shell would silently do something else than the model meant.
//!
//! Used by settings (validating `SHELL_ALLOWLIST`), `shell_exec`, and anything
//! that must decide about a command before it runs (rules, the approval question).

use thiserror::Error;

/// Why a command line was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandError {
    /// An unquoted character a shell would have acted on.
    #[error(
        "unquoted `{operator}` at character {column}: a shell would {meaning}, but shell_exec runs one program with its arguments and no shell. Run one command per call; to pass `{operator}` as an ordinary character, put it inside quotes (e.g. '{operator}'){later}"
    )]
    Operator {
        /// The operator as written (`;`, `&&`, `$(`, `*`, …).
        operator: String,
        /// 1-based position of its first character in the command line.
        column: usize,
        /// What a shell would have done with it.
        meaning: &'static str,
        /// The unquoted operators after it, so that one retry can fix them
        /// all (`. Also unquoted: `|` at character 12`), or empty.
        later: String,
    },
    #[error("the {kind} quote opened at character {column} is never closed; close it or escape it with `\\`")]
    UnclosedQuote { kind: &'static str, column: usize },
    #[error("the command ends with a lone `\\`; remove it or quote it ('\\')")]
    TrailingBackslash,
    #[error("the command holds a NUL character; a program's arguments cannot hold one")]
    Nul,
    #[error("command is empty; give a program and its arguments, e.g. `git status`")]
    Empty,
    #[error(
        "command `{command}` is not allowed; it must start with one of: {allowed} (the operator's SHELL_ALLOWLIST setting; no other spelling or wrapper gets around it){hint}"
    )]
    NotAllowed {
        command: String,
        allowed: String,
        hint: String,
    },
    #[error("{0}")]
    GitOption(String),
}

/// A command line that passed every check: the argv to run and the
/// allowlist entry it matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub argv: Vec<String>,
    /// The longest allowlist entry that is a word-by-word prefix of `argv`.
    pub entry: Vec<String>,
}

/// Splits `command` into words, honouring quotes and expanding nothing;
/// refuses unquoted shell operators.
pub fn split(command: &str) -> Result<Vec<String>, CommandError> {
    let cs: Vec<char> = command.chars().collect();
    let mut refused = Refused::default();
    let scanned = scan(&cs, &mut refused);
    match refused.first {
        // The first unquoted operator refuses the line, whatever comes after
        // it; the scan went on only to name the other operators.
        Some((operator, column, meaning)) => Err(CommandError::Operator {
            operator,
            column,
            meaning,
            later: if refused.later.is_empty() {
                String::new()
            } else {
                format!(". Also unquoted: {}.", refused.later.join(", "))
            },
        }),
        None => scanned,
    }
}

/// The unquoted operators of a refused line: the first (as written, its
/// column, what a shell would do), the ones after it, and the brackets the
/// operators opened (a bracket closing one is part of it, not another).
#[derive(Default)]
struct Refused {
    first: Option<(String, usize, &'static str)>,
    later: Vec<String>,
    open: Vec<char>,
}

impl Refused {
    /// Notes the operator at `cs[i]`, unless it closes one opened before.
    fn note(&mut self, operator: String, i: usize, meaning: &'static str) {
        let closer = |c: char| match c {
            '(' => Some(')'),
            '{' => Some('}'),
            '[' => Some(']'),
            '`' => Some('`'),
            _ => None,
        };
        if self.first.is_some() && self.open.last().map(char::to_string) == Some(operator.clone()) {
            self.open.pop();
            return;
        }
        self.open.extend(operator.chars().filter_map(closer));
        if self.first.is_none() {
            self.first = Some((operator, i + 1, meaning));
        } else if self.later.len() < 8 {
            self.later.push(format!("`{operator}` at character {}", i + 1));
        }
    }
}

/// [`split`]'s reading of the line: quotes, backslashes, words; operators
/// are noted in `refused` and the reading goes on past them.
fn scan(cs: &[char], refused: &mut Refused) -> Result<Vec<String>, CommandError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        match c {
            '\0' => return Err(CommandError::Nul),
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                i += 1;
            }
            '\'' => {
                let close = cs[i + 1..]
                    .iter()
                    .position(|&q| q == '\'')
                    .ok_or(CommandError::UnclosedQuote {
                        kind: "single",
                        column: i + 1,
                    })?;
                let body = &cs[i + 1..i + 1 + close];
                if body.contains(&'\0') {
                    return Err(CommandError::Nul);
                }
                word.extend(body);
                in_word = true;
                i += close + 2;
            }
            '"' => {
                let open = i;
                in_word = true;
                i += 1;
                loop {
                    let Some(&d) = cs.get(i) else {
                        return Err(CommandError::UnclosedQuote {
                            kind: "double",
                            column: open + 1,
                        });
                    };
                    match d {
                        '"' => {
                            i += 1;
                            break;
                        }
                        '\0' => return Err(CommandError::Nul),
                        '\\' if matches!(cs.get(i + 1), Some('"' | '\\' | '$' | '`')) => {
                            word.push(cs[i + 1]);
                            i += 2;
                        }
                        '\\' if cs.get(i + 1) == Some(&'\n') => i += 2,
                        _ => {
                            word.push(d);
                            i += 1;
                        }
                    }
                }
            }
            '\\' => match cs.get(i + 1) {
                None => return Err(CommandError::TrailingBackslash),
                Some('\0') => return Err(CommandError::Nul),
                // A line continuation: the shell removes both.
                Some('\n') => i += 2,
                Some(&next) => {
                    word.push(next);
                    in_word = true;
                    i += 2;
                }
            },
            _ => {
                if let Some((operator, meaning)) = operator_at(cs, i, !in_word) {
                    let step = source_len(&operator);
                    refused.note(operator, i, meaning);
                    i += step;
                    continue;
                }
                word.push(c);
                in_word = true;
                i += 1;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// How many characters of the command line to step over after an operator
/// as shown (a line break is shown as `\n`; the quote of `$'` opens quoted
/// text, which is read as such).
fn source_len(operator: &str) -> usize {
    match operator {
        "\\n" | "\\r" | "$'" => 1,
        _ => operator.chars().count(),
    }
}

/// The shell operator starting at `cs[i]` (unquoted), with what a shell would
/// do with it; `word_start` is true when no character of the word precedes it.
fn operator_at(cs: &[char], i: usize, word_start: bool) -> Option<(String, &'static str)> {
    let next = cs.get(i + 1).copied();
    let op = |s: &str, meaning| Some((s.to_owned(), meaning));
    match cs[i] {
        ';' => op(";", "end the command there and run what follows as another command"),
        '&' => match next {
            Some('&') => op("&&", "run what follows as another command when this one succeeds"),
            Some('>') => op("&>", "send the output into a file"),
            _ => op("&", "run the command in the background"),
        },
        '|' => match next {
            Some('|') => op("||", "run what follows as another command when this one fails"),
            _ => op("|", "pipe the output into another program"),
        },
        '>' => match next {
            Some('>') => op(">>", "append the output to a file"),
            Some('&') => op(
                ">&",
                "merge one output stream into another (shell_exec already returns stdout and stderr, separately)",
            ),
            Some('(') => op(">(", "run another command (process substitution)"),
            _ => op(">", "send the output into a file"),
        },
        '<' => match next {
            Some('<') => op("<<", "read a here-document as input"),
            Some('(') => op("<(", "run another command (process substitution)"),
            _ => op("<", "read the input from a file"),
        },
        '$' => match next {
            Some('(') if cs.get(i + 2) == Some(&'(') => op("$((", "evaluate arithmetic"),
            Some('(') => op("$(", "run another command and put its output here"),
            Some('{') => op("${", "put a variable's value here"),
            Some('\'') => op("$'", "interpret backslash escapes in the quoted text"),
            Some(c) if c.is_ascii_alphanumeric() || c == '_' => {
                let name: String = cs[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                    .collect();
                Some((format!("${name}"), "put a variable's value here"))
            }
            _ => op("$", "expand what follows `$`"),
        },
        '`' => op("`", "run another command and put its output here"),
        '(' | ')' => Some((cs[i].to_string(), "group commands in a subshell")),
        '*' | '?' | '[' | ']' => Some((
            cs[i].to_string(),
            "expand a file-name pattern into the matching file names",
        )),
        '{' | '}' => Some((cs[i].to_string(), "expand braces into several words")),
        '\n' | '\r' => Some((
            if cs[i] == '\n' { "\\n" } else { "\\r" }.to_owned(),
            "end the command at the line break and run the next line as another command",
        )),
        '#' if word_start => op("#", "ignore the rest of the line as a comment"),
        '~' if word_start => op(
            "~",
            "replace `~` with a home directory, outside the workspace (give paths relative to the workspace)",
        ),
        _ => None,
    }
}

/// Whether `text` holds a character that would be a shell operator were it
/// unquoted (a quick test; [`split`] decides by position and quoting).
pub fn has_metachar(text: &str) -> bool {
    const METACHARS: &[char] = &[
        ';', '|', '&', '$', '`', '>', '<', '(', ')', '\n', '\r', '*', '?', '[', ']', '{', '}', '\0',
    ];
    text.contains(METACHARS) || text.starts_with('~') || text.starts_with('#')
}

/// Parses one `SHELL_ALLOWLIST` entry (e.g. `cargo test`, `sh ./scripts/build.sh`)
/// with the same grammar as commands. `None` for an empty entry.
pub fn parse_entry(entry: &str) -> Result<Option<Vec<String>>, CommandError> {
    let words = split(entry)?;
    Ok((!words.is_empty()).then_some(words))
}

/// The allowlist entry `argv` starts with, word for word; the longest when
/// several match (`git log` before `git`).
pub fn allowlist_match<'a>(argv: &[String], allowlist: &'a [Vec<String>]) -> Option<&'a [String]> {
    allowlist
        .iter()
        .filter(|entry| !entry.is_empty() && argv.len() >= entry.len() && entry.iter().zip(argv).all(|(e, a)| e == a))
        .max_by_key(|entry| entry.len())
        .map(Vec::as_slice)
}

/// Splits `command`, matches it against `allowlist` and checks git's options.
pub fn check(command: &str, allowlist: &[Vec<String>]) -> Result<Checked, CommandError> {
    let argv = split(command)?;
    if argv.is_empty() {
        return Err(CommandError::Empty);
    }
    let Some(entry) = allowlist_match(&argv, allowlist) else {
        return Err(not_allowed(&argv, allowlist));
    };
    let entry = entry.to_vec();
    if argv[0] == "git" {
        check_git_options(&argv).map_err(CommandError::GitOption)?;
    }
    Ok(Checked { argv, entry })
}

/// [`check`], for callers that only need the argv and a message.
pub fn check_command(command: &str, allowlist: &[Vec<String>]) -> Result<Vec<String>, String> {
    check(command, allowlist).map(|c| c.argv).map_err(|e| e.to_string())
}

/// The allowlist as a model reads it: `` `git status`, `cargo test` ``.
pub fn describe_allowlist(allowlist: &[Vec<String>]) -> String {
    allowlist
        .iter()
        .map(|entry| format!("`{}`", shell_words::join(entry)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn not_allowed(argv: &[String], allowlist: &[Vec<String>]) -> CommandError {
    let same_program: Vec<&Vec<String>> = allowlist.iter().filter(|e| e.first() == argv.first()).collect();
    let hint = if argv[0].contains('=') {
        " (an environment assignment before the program is not supported; start with the program)".to_owned()
    } else if !same_program.is_empty() {
        let forms: Vec<String> = same_program
            .iter()
            .map(|e| format!("`{}`", shell_words::join(e.iter())))
            .collect();
        format!(" (`{}` is allowed only as {})", argv[0], forms.join(", "))
    } else if argv[0].contains('/')
        && let Some(name) = argv[0].rsplit('/').next()
        && allowlist.iter().any(|e| e.first().map(String::as_str) == Some(name))
    {
        format!(" (give the program by its name, `{name}`, as the list does)")
    } else {
        String::new()
    };
    CommandError::NotAllowed {
        command: shell_words::join(argv),
        allowed: describe_allowlist(allowlist),
        hint,
    }
}

/// git options (after the subcommand) that run other programs, write files,
/// or read outside the repository. Options before the subcommand (`-c`, `-C`,
/// `--exec-path`, `--git-dir`, ...) are all refused. git accepts unambiguous
/// abbreviations of long options (`--upload-pa=…`), so a prefix of one of
/// these is refused too.
pub const GIT_REFUSED_OPTIONS: &[&str] = &[
    "--output",
    "--output-directory",
    "--ext-diff",
    "--textconv",
    "--no-index",
    "--upload-pack",
    "--receive-pack",
    "--exec",
    "--open-files-in-pager",
    "-O",
    "--config-env",
    "--exec-path",
    "--git-dir",
    "--work-tree",
    "--show-signature",
];

/// Short options refused for one subcommand: (subcommand, option).
const GIT_REFUSED_SHORT: &[(&str, &str)] = &[("format-patch", "-o"), ("clone", "-u"), ("archive", "-o")];

/// Refuses git options that run programs, write files or read outside the
/// workspace; `argv[0]` is `git`.
pub fn check_git_options(argv: &[String]) -> Result<(), String> {
    if let Some(global) = argv.get(1).filter(|a| a.starts_with('-')) {
        return Err(format!(
            "git option {global:?} before the subcommand is refused: global options can run programs or change the repository; put the subcommand first"
        ));
    }
    let sub = argv.get(1).map(String::as_str).unwrap_or("");
    let refused = |a: &str| {
        if let Some(long) = a.strip_prefix("--").filter(|l| !l.is_empty()) {
            let name = long.split_once('=').map_or(long, |(n, _)| n);
            // An exact name, or an abbreviation git would expand to it.
            GIT_REFUSED_OPTIONS
                .iter()
                .filter_map(|o| o.strip_prefix("--"))
                .any(|o| o.starts_with(name))
        } else {
            a.starts_with("-O") || GIT_REFUSED_SHORT.iter().any(|(s, o)| *s == sub && a.starts_with(o))
        }
    };
    match argv[2..].iter().take_while(|a| a.as_str() != "--").find(|a| refused(a)) {
        Some(bad) => Err(format!(
            "git option {bad:?} is refused: it can run other programs, write files or read outside the workspace"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn allow() -> Vec<Vec<String>> {
        crate::settings::parse_allowlist("git status,git diff,cargo test,ls,echo,python3 -c").unwrap()
    }

    fn words(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn quotes_group_words_and_expand_nothing() {
        let cases: &[(&str, &[&str])] = &[
            ("git status", &["git", "status"]),
            ("  git   status  ", &["git", "status"]),
            ("'git' \"status\"", &["git", "status"]),
            (
                "python3 -c \"import x; print(x.f())\"",
                &["python3", "-c", "import x; print(x.f())"],
            ),
            ("echo 'a|b' \"c&&d\" 'e > f'", &["echo", "a|b", "c&&d", "e > f"]),
            ("echo \"$HOME `id` $(id)\"", &["echo", "$HOME `id` $(id)"]),
            ("echo '$HOME'", &["echo", "$HOME"]),
            (
                "echo \"a\\\"b\" \"c\\\\d\" \"e\\nf\"",
                &["echo", "a\"b", "c\\d", "e\\nf"],
            ),
            ("echo a\\;b \\*", &["echo", "a;b", "*"]),
            ("echo a''b \"\"", &["echo", "ab", ""]),
            ("echo 'two\nlines'", &["echo", "two\nlines"]),
            ("echo a\\\nb", &["echo", "ab"]),
            (
                "git log HEAD~1 a#b x=y !z",
                &["git", "log", "HEAD~1", "a#b", "x=y", "!z"],
            ),
            ("echo '~/x' '#x'", &["echo", "~/x", "#x"]),
            ("", &[]),
        ];
        for (line, want) in cases {
            assert_eq!(split(line).unwrap(), words(want), "{line:?}");
        }
    }

    #[test]
    fn unquoted_operators_are_refused_saying_what_a_shell_would_do() {
        let cases = [
            ("ls; rm -rf x", ";", 3, "another command"),
            ("ls && id", "&&", 4, "succeeds"),
            ("ls || id", "||", 4, "fails"),
            ("ls | cat", "|", 4, "pipe"),
            ("ls &", "&", 4, "background"),
            ("ls > out", ">", 4, "into a file"),
            ("ls >> out", ">>", 4, "append"),
            ("ls 2>&1", ">&", 5, "separately"),
            ("cat < a", "<", 5, "input"),
            ("cat <<EOF", "<<", 5, "here-document"),
            ("cat <(id)", "<(", 5, "process substitution"),
            ("echo $(id)", "$(", 6, "output"),
            ("echo $((1+1))", "$((", 6, "arithmetic"),
            ("echo ${HOME}", "${", 6, "variable"),
            ("echo $HOME/x", "$HOME", 6, "variable"),
            ("echo `id`", "`", 6, "output"),
            ("echo (x)", "(", 6, "subshell"),
            ("ls *.rs", "*", 4, "file-name pattern"),
            ("ls a?", "?", 5, "file-name pattern"),
            ("ls [ab]", "[", 4, "file-name pattern"),
            ("echo {a,b}", "{", 6, "braces"),
            ("ls\nid", "\\n", 3, "line break"),
            ("ls # note", "#", 4, "comment"),
            ("cat ~/.ssh/id_rsa", "~", 5, "home directory"),
        ];
        for (line, op, column, meaning) in cases {
            let err = split(line).unwrap_err();
            match &err {
                CommandError::Operator {
                    operator, column: c, ..
                } => {
                    assert_eq!((operator.as_str(), *c), (op, column), "{line:?}");
                }
                other => panic!("{line:?}: {other:?}"),
            }
            let msg = err.to_string();
            assert!(msg.contains(meaning) && msg.contains("no shell"), "{line:?}: {msg}");
            assert!(!msg.contains("Also unquoted"), "{line:?}: {msg}");
        }
        // Every unquoted operator is named in the one refusal, so that one
        // retry can fix them all; quoted ones are not.
        let later = |line: &str| match split(line) {
            Err(CommandError::Operator { later, .. }) => later,
            other => panic!("{line:?}: {other:?}"),
        };
        assert_eq!(
            later("cargo test 2>&1 | tail -5"),
            ". Also unquoted: `|` at character 17."
        );
        assert_eq!(
            later("echo \"$(x)\"; ls > out '|'"),
            ". Also unquoted: `>` at character 17."
        );
        assert_eq!(later("ls\nid; x"), ". Also unquoted: `;` at character 6.");
        assert_eq!(later("ls | wc 'a;b' \\; \"c|d\""), "");
        assert_eq!(later("echo $'a;b' | x"), ". Also unquoted: `|` at character 13.");
        assert_eq!(
            split("echo 'open"),
            Err(CommandError::UnclosedQuote {
                kind: "single",
                column: 6
            })
        );
        assert_eq!(
            split("echo \"open"),
            Err(CommandError::UnclosedQuote {
                kind: "double",
                column: 6
            })
        );
        assert_eq!(split("echo x\\"), Err(CommandError::TrailingBackslash));
        assert_eq!(split("echo 'a\0b'"), Err(CommandError::Nul));
        assert_eq!(split("echo a\0b"), Err(CommandError::Nul));
    }

    #[test]
    fn the_allowlist_matches_whole_words_and_names_the_entry() {
        let allow = crate::settings::parse_allowlist("git,git log,cargo test").unwrap();
        let m = |line: &str| check(line, &allow).map(|c| c.entry.join(" "));
        assert_eq!(m("git log -p").unwrap(), "git log");
        assert_eq!(m("git status").unwrap(), "git");
        assert_eq!(m("cargo test -p x").unwrap(), "cargo test");
        for bad in [
            "cargo tests",
            "cargo",
            "/usr/bin/git status",
            "FOO=1 git status",
            "gitx",
        ] {
            assert!(
                matches!(check(bad, &allow), Err(CommandError::NotAllowed { .. })),
                "{bad}"
            );
        }
        let msg = check("cargo build", &allow).unwrap_err().to_string();
        assert!(msg.contains("`cargo` is allowed only as `cargo test`"), "{msg}");
        let msg = check("/usr/bin/git status", &allow).unwrap_err().to_string();
        assert!(msg.contains("by its name, `git`"), "{msg}");
        assert_eq!(check("   ", &allow), Err(CommandError::Empty));
        assert_eq!(
            describe_allowlist(&crate::settings::parse_allowlist("git status,python -m pytest").unwrap()),
            "`git status`, `python -m pytest`"
        );
    }

    #[test]
    fn git_options_that_run_write_or_read_outside_are_refused() {
        let git = crate::settings::parse_allowlist("git").unwrap();
        for bad in [
            "git diff --output=/tmp/x",
            "git diff --output /tmp/x",
            "git diff --ext-diff",
            "git diff --no-index /etc/passwd x",
            "git diff -O/etc/passwd",
            "git ls-remote --upload-pa=evil .",
            "git fetch --upload-pack=evil .",
            "git log --outp=x",
            "git format-patch --output-directory=/tmp HEAD~1",
            "git format-patch -o /tmp HEAD~1",
            "git -c alias.x=!sh x",
            "git --exec-path=/tmp status",
            "git -C /etc status",
            "git --git-dir=/x log",
        ] {
            assert!(
                matches!(check(bad, &git), Err(CommandError::GitOption(_))),
                "{bad:?} was allowed"
            );
        }
        for ok in [
            "git log -p -- --output=x",
            "git diff --no-ext-diff --no-textconv --stat",
            "git log --oneline",
            "git status --show-stash",
            "git ls-files -o",
        ] {
            assert!(check(ok, &git).is_ok(), "{ok:?} was refused");
        }
    }

    /// Plain word characters: never operators anywhere.
    const PLAIN: &str = "[a-zA-Z0-9_.,:=+@%/-]{1,8}";
    /// Characters a shell acts on when unquoted.
    const OPERATORS: &[&str] = &[
        ";", "|", "&", ">", "<", "$(", "$x", "`", "(", ")", "*", "?", "[", "]", "{", "}", "\n", "\r",
    ];

    proptest! {
        #[test]
        fn an_accepted_command_starts_with_its_allowlist_entry(line in r#"(git|status|diff|cargo|test|ls|echo|python3|-c|-p|x|'a;b'|"c d"|\\;| |--output=x|-C)*"#) {
            let allow = allow();
            if let Ok(c) = check(&line, &allow) {
                prop_assert!(allow.contains(&c.entry));
                prop_assert!(c.argv.starts_with(&c.entry), "{:?} does not start with {:?}", c.argv, c.entry);
            }
        }

        #[test]
        fn quoted_operators_are_never_refused(
            parts in proptest::collection::vec((PLAIN, proptest::sample::select(OPERATORS), PLAIN, any::<bool>()), 1..4)
        ) {
            let mut line = "echo".to_owned();
            let mut want = vec!["echo".to_owned()];
            for (a, op, b, single) in &parts {
                let word = format!("{a}{op}{b}");
                line.push(' ');
                if *single {
                    line.push_str(&format!("'{word}'"));
                } else {
                    line.push_str(&format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\"")));
                }
                want.push(word);
            }
            prop_assert_eq!(check(&line, &allow()).map(|c| c.argv), Ok(want));
        }

        #[test]
        fn unquoted_operators_are_always_refused(
            before in PLAIN, op in proptest::sample::select(OPERATORS), after in PLAIN, space in any::<bool>()
        ) {
            let sep = if space { " " } else { "" };
            let line = format!("echo {before}{sep}{op}{sep}{after}");
            match split(&line) {
                Err(CommandError::Operator { operator, column, .. }) => {
                    let shown = op.replace('\n', "\\n").replace('\r', "\\r");
                    prop_assert!(operator.starts_with(&shown[..1]), "{operator:?} for {op:?}");
                    prop_assert_eq!(column, "echo ".len() + before.chars().count() + sep.len() + 1);
                }
                other => prop_assert!(false, "{line:?} gave {other:?}"),
            }
        }
    }
}
