//! keepalived.conf (2.2.x syntax): a tokenizer, a statement tree, and the translation.
//!
//! keepalived's grammar is line-oriented: a line is a keyword and its arguments, `{` opens a
//! block (at the end of the line or alone on the next), `}` closes it, `#` and `!` start a
//! comment, `"..."` keeps spaces in one argument, and `include GLOB` splices files in place.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use super::draft::{Draft, Garp, Instance, Notify, Script, TrackTarget, Tracker, Vip};
use super::words::{self, Syntax};
use super::{
    ImportError, ImportWarning, Location, is_interface_name, read_source, unique_name, vipd_name,
    warn,
};

/// keepalived refuses deeper `include` chains; so does the importer (a file including itself
/// must not recurse forever).
const MAX_INCLUDE_DEPTH: usize = 8;
/// Files read through `include` in all: a glob matching thousands of files is a mistake.
const MAX_INCLUDED_FILES: usize = 256;
/// Nested blocks; real files nest three deep (`vrrp_instance { authentication { } }`).
const MAX_BLOCK_DEPTH: usize = 16;

/// One keyword line, with its block when it opens one.
#[derive(Debug)]
pub struct Statement {
    pub at: Location,
    pub words: Vec<String>,
    pub block: Option<Vec<Statement>>,
}

impl Statement {
    fn keyword(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }

    fn args(&self) -> &[String] {
        self.words.get(1..).unwrap_or_default()
    }

    fn children(&self) -> &[Statement] {
        self.block.as_deref().unwrap_or_default()
    }

    /// Every word of the block's lines: `unicast_peer { a b }` and one address per line alike.
    fn block_words(&self) -> impl Iterator<Item = (&Location, &String)> {
        self.children()
            .iter()
            .flat_map(|child| child.words.iter().map(move |word| (&child.at, word)))
    }
}

#[derive(Debug, PartialEq)]
enum TokenKind {
    Word(String),
    Open,
    Close,
    EndOfLine,
}

#[derive(Debug)]
struct Token {
    kind: TokenKind,
    at: Location,
}

/// Tokenizes `text` (and what it includes) and builds the statement tree.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Statement>, ImportError> {
    let mut tokens = Vec::new();
    let mut included = 0;
    tokenize(path, text, 0, &mut included, &mut tokens)?;
    let mut position = 0;
    let end = Location {
        file: path.display().to_string().into(),
        line: text.lines().count().max(1),
    };
    let statements = statements(&tokens, &mut position, 0, &end)?;
    // Another file passed by mistake (haproxy.cfg first, a YAML file) parses as keepalived's
    // loose grammar; without one keepalived keyword it is refused rather than read as nothing.
    let is_keepalived = |statement: &Statement| {
        statement.keyword().starts_with("vrrp_")
            || matches!(
                statement.keyword(),
                "global_defs"
                    | "virtual_server"
                    | "virtual_server_group"
                    | "static_ipaddress"
                    | "static_routes"
                    | "static_rules"
                    | "track_file"
                    | "linkbeat_interfaces"
            )
    };
    if let Some(first) = statements.first()
        && !statements.iter().any(is_keepalived)
    {
        return Err(ImportError::Syntax {
            at: first.at.clone(),
            message: format!(
                "`{}`: no global_defs, vrrp_instance or other keepalived block in the file: is \
                 this a keepalived.conf?",
                first.keyword().escape_debug()
            ),
        });
    }
    Ok(statements)
}

fn tokenize(
    path: &Path,
    text: &str,
    depth: usize,
    included: &mut usize,
    tokens: &mut Vec<Token>,
) -> Result<(), ImportError> {
    let file: Arc<str> = path.display().to_string().into();
    for (index, line) in text.lines().enumerate() {
        let at = Location {
            file: Arc::clone(&file),
            line: index + 1,
        };
        let line_tokens = tokenize_line(line, &at)?;
        if let Some(TokenKind::Word(first)) = line_tokens.first().map(|token| &token.kind)
            && first == "include"
        {
            for token in &line_tokens[1..] {
                if let TokenKind::Word(pattern) = &token.kind {
                    include(path, pattern, &at, depth, included, tokens)?;
                }
            }
            continue;
        }
        tokens.extend(line_tokens);
        tokens.push(Token {
            kind: TokenKind::EndOfLine,
            at,
        });
    }
    Ok(())
}

/// keepalived's words: `"` quotes (with no escapes inside), `#` and `!` start a comment where a
/// word could start, and braces are tokens of their own.
const KEEPALIVED: Syntax = Syntax {
    quotes: &['"'],
    comments: &['#', '!'],
    comment_inside_word: false,
    braces: true,
    backslash_escapes: false,
};

/// How keepalived splits a `script` / `notify` string into an argv: '...' and "..." keep
/// spaces; nothing else is special, and an unterminated quote runs to the end.
const COMMAND: Syntax = Syntax {
    quotes: &['\'', '"'],
    comments: &[],
    comment_inside_word: false,
    braces: false,
    backslash_escapes: false,
};

fn tokenize_line(line: &str, at: &Location) -> Result<Vec<Token>, ImportError> {
    let tokens = words::split(line, &KEEPALIVED).map_err(|_| ImportError::Syntax {
        at: at.clone(),
        message: "unterminated quoted string".to_owned(),
    })?;
    Ok(tokens
        .into_iter()
        .map(|token| Token {
            kind: match token {
                words::Token::Word(word) => TokenKind::Word(word),
                words::Token::Open => TokenKind::Open,
                words::Token::Close => TokenKind::Close,
            },
            at: at.clone(),
        })
        .collect())
}

/// Splices in the files `pattern` matches, relative to the including file's directory, sorted.
fn include(
    including: &Path,
    pattern: &str,
    at: &Location,
    depth: usize,
    included: &mut usize,
    tokens: &mut Vec<Token>,
) -> Result<(), ImportError> {
    if depth >= MAX_INCLUDE_DEPTH {
        return Err(ImportError::Syntax {
            at: at.clone(),
            message: format!(
                "include nested more than {MAX_INCLUDE_DEPTH} deep (a file including itself?)"
            ),
        });
    }
    let pattern_path = Path::new(pattern);
    let pattern_path = if pattern_path.is_absolute() {
        pattern_path.to_owned()
    } else {
        including
            .parent()
            .unwrap_or_else(|| Path::new(""))
            .join(pattern_path)
    };
    // keepalived uses glob(3) and ignores a pattern that matches nothing (with a log line).
    for file in glob(&pattern_path) {
        *included += 1;
        if *included > MAX_INCLUDED_FILES {
            return Err(ImportError::Syntax {
                at: at.clone(),
                message: format!("more than {MAX_INCLUDED_FILES} files included"),
            });
        }
        let text = read_source(&file)?;
        tokenize(&file, &text, depth + 1, included, tokens)?;
    }
    Ok(())
}

/// The regular files matching `pattern`, whose components may hold `*`, `?` and `[...]`.
fn glob(pattern: &Path) -> Vec<PathBuf> {
    let mut candidates = vec![PathBuf::new()];
    for component in pattern.components() {
        let part = component.as_os_str().to_string_lossy();
        let is_pattern = part.contains(['*', '?', '[']);
        let mut next = Vec::new();
        for base in &candidates {
            if !is_pattern {
                next.push(base.join(component));
                continue;
            }
            let directory = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base.as_path()
            };
            let Ok(entries) = std::fs::read_dir(directory) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| !name.starts_with('.') && wildcard_match(&part, name))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|name| base.join(name)));
        }
        candidates = next;
    }
    candidates.retain(|path| path.is_file());
    candidates
}

/// glob(3) matching of one path component: `*`, `?`, `[abc]`, `[a-z]`, `[!a]`.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    // Classic iterative matching with one backtrack point for the last `*`: linear in practice.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => class_match(&pattern[p..], name[n]),
            Some(&c) if c == name[n] => Some(1),
            _ => None,
        };
        match step {
            Some(length) => {
                p += length;
                n += 1;
            }
            None => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Whether `c` matches the `[...]` class at the start of `pattern`: `Some(class length)` or None.
fn class_match(pattern: &[char], c: char) -> Option<usize> {
    let end = pattern.iter().skip(2).position(|&x| x == ']')? + 2;
    let body = &pattern[1..end];
    let (negated, body) = match body.first() {
        Some('!' | '^') => (true, &body[1..]),
        _ => (false, body),
    };
    let mut matched = false;
    let mut i = 0;
    while i < body.len() {
        if i + 2 < body.len() && body[i + 1] == '-' {
            matched |= body[i] <= c && c <= body[i + 2];
            i += 3;
        } else {
            matched |= body[i] == c;
            i += 1;
        }
    }
    (matched != negated).then_some(end + 1)
}

fn statements(
    tokens: &[Token],
    position: &mut usize,
    depth: usize,
    opened_at: &Location,
) -> Result<Vec<Statement>, ImportError> {
    let mut list = Vec::new();
    loop {
        let Some(token) = tokens.get(*position) else {
            if depth > 0 {
                return Err(ImportError::Syntax {
                    at: opened_at.clone(),
                    message: "this `{` is never closed".to_owned(),
                });
            }
            return Ok(list);
        };
        match &token.kind {
            TokenKind::EndOfLine => *position += 1,
            TokenKind::Close => {
                if depth == 0 {
                    return Err(ImportError::Syntax {
                        at: token.at.clone(),
                        message: "`}` closes no block".to_owned(),
                    });
                }
                *position += 1;
                return Ok(list);
            }
            TokenKind::Open => {
                return Err(ImportError::Syntax {
                    at: token.at.clone(),
                    message: "`{` opens a block without a keyword before it".to_owned(),
                });
            }
            TokenKind::Word(_) => {
                let at = token.at.clone();
                let mut words = Vec::new();
                while let Some(Token {
                    kind: TokenKind::Word(word),
                    ..
                }) = tokens.get(*position)
                {
                    words.push(word.clone());
                    *position += 1;
                }
                // The block may open on this line or alone on a following one.
                let mut lookahead = *position;
                while tokens
                    .get(lookahead)
                    .is_some_and(|token| token.kind == TokenKind::EndOfLine)
                {
                    lookahead += 1;
                }
                let block = if tokens
                    .get(lookahead)
                    .is_some_and(|token| token.kind == TokenKind::Open)
                {
                    if depth + 1 > MAX_BLOCK_DEPTH {
                        return Err(ImportError::Syntax {
                            at: tokens[lookahead].at.clone(),
                            message: format!("blocks nested more than {MAX_BLOCK_DEPTH} deep"),
                        });
                    }
                    *position = lookahead + 1;
                    let open_at = tokens[lookahead].at.clone();
                    Some(statements(tokens, position, depth + 1, &open_at)?)
                } else {
                    None
                };
                list.push(Statement { at, words, block });
            }
        }
    }
}

/// The keywords each block translates; any other one has no vipd equivalent.
const GLOBAL_DEFS: &[&str] = &[
    "router_id",
    "vrrp_mcast_group4",
    "vrrp_mcast_group6",
    "vrrp_version",
    "script_user",
    "enable_script_security",
    "vrrp_garp_master_repeat",
    "vrrp_garp_master_delay",
    "vrrp_garp_master_refresh",
];
const VRRP_SCRIPT: &[&str] = &[
    "script", "interval", "timeout", "rise", "fall", "weight", "user",
];
const VRRP_INSTANCE: &[&str] = &[
    "interface",
    "virtual_router_id",
    "priority",
    "version",
    "advert_int",
    "state",
    "preempt_delay",
    "unicast_src_ip",
    "notify_master",
    "notify_backup",
    "notify_fault",
    "notify",
    "garp_master_repeat",
    "garp_master_delay",
    "garp_master_refresh",
];

/// The warning for a directive not translated: a keyword vipd has no equivalent for, or a
/// known keyword whose value is missing or not one vipd accepts.
fn unsupported(
    directive: &Statement,
    block: &str,
    translated: &[&str],
    warnings: &mut Vec<ImportWarning>,
) {
    let keyword = directive.keyword();
    let message = if !translated.contains(&keyword) {
        format!("{block} {keyword} has no vipd equivalent: skipped")
    } else if directive.args().is_empty() {
        format!("{block} {keyword} without a value: skipped")
    } else {
        format!(
            "{block} {keyword} `{}`: not a value vipd accepts: skipped",
            directive.args().join(" ").escape_debug()
        )
    };
    warn(warnings, &directive.at, message);
}

/// keepalived's defaults that global_defs can change for every instance.
struct Globals {
    version: Option<(u8, Location)>,
    script_user: Option<String>,
    garp: Garp,
}

/// Everything a `vrrp_script` says, kept until the instances show how it is tracked.
struct ScriptSource {
    script: Script,
    /// The `weight` a `track_script` inherits.
    weight: i16,
    /// `killall -0 haproxy` and friends: HAProxy's liveness, replaced by frontend trackers.
    checks_haproxy: bool,
    tracked: bool,
}

pub fn translate(statements: &[Statement], draft: &mut Draft, warnings: &mut Vec<ImportWarning>) {
    let mut globals = Globals {
        version: None,
        script_user: None,
        garp: Garp::default(),
    };
    for statement in statements.iter().filter(|s| s.keyword() == "global_defs") {
        global_defs(statement, &mut globals, draft, warnings);
    }
    let mut scripts: BTreeMap<String, ScriptSource> = BTreeMap::new();
    let mut track_files: BTreeMap<String, (String, i16)> = BTreeMap::new();
    for statement in statements {
        match statement.keyword() {
            "global_defs" | "vrrp_instance" | "vrrp_sync_group" => {}
            "vrrp_script" => {
                if let Some((name, mut source)) = vrrp_script(statement, &globals, warnings) {
                    let taken: Vec<&str> = scripts
                        .iter()
                        .filter(|(other, _)| **other != name)
                        .map(|(_, other)| other.script.name.as_str())
                        .collect();
                    source.script.name = unique_name(source.script.name, &taken);
                    scripts.insert(name, source);
                }
            }
            "vrrp_track_file" => {
                if let Some((name, file)) = vrrp_track_file(statement, warnings) {
                    track_files.insert(name, file);
                }
            }
            "virtual_server" | "virtual_server_group" => warn(
                warnings,
                &statement.at,
                format!(
                    "lvs {} is not supported by vipd (an L4 proxy replaces IPVS): skipped",
                    statement.keyword()
                ),
            ),
            other => warn(
                warnings,
                &statement.at,
                format!("`{other}` has no vipd equivalent: skipped"),
            ),
        }
    }
    let context = Context {
        globals: &globals,
        track_files: &track_files,
    };
    for statement in statements {
        match statement.keyword() {
            "vrrp_instance" => {
                if let Some(mut instance) =
                    vrrp_instance(statement, &context, &mut scripts, draft, warnings)
                    && fits_beside(&mut instance, &draft.instances, warnings)
                {
                    draft.instances.push(instance);
                }
            }
            "vrrp_sync_group" => warn(
                warnings,
                &statement.at,
                "vrrp_sync_group is not supported by vipd (each instance fails over on its own; \
                 give the instances the same trackers to keep them together): skipped",
            ),
            _ => {}
        }
    }
    for (_, source) in scripts {
        if source.checks_haproxy {
            if !source.tracked {
                warn(
                    warnings,
                    &source.script.from,
                    format!(
                        "vrrp_script {} follows HAProxy, which vipd replaces, and no instance \
                         tracks it: skipped",
                        source.script.name
                    ),
                );
            }
            continue;
        }
        if !source.tracked {
            warn(
                warnings,
                &source.script.from,
                format!(
                    "vrrp_script {} is tracked by no instance: kept in `scripts` unused",
                    source.script.name
                ),
            );
        }
        draft.scripts.push(source.script);
    }
}

struct Context<'a> {
    globals: &'a Globals,
    track_files: &'a BTreeMap<String, (String, i16)>,
}

fn global_defs(
    statement: &Statement,
    globals: &mut Globals,
    draft: &mut Draft,
    warnings: &mut Vec<ImportWarning>,
) {
    for directive in statement.children() {
        let args = directive.args();
        let first = args.first().map(String::as_str);
        match (directive.keyword(), first) {
            ("router_id", Some(id)) => {
                draft.node = Some(vipd_name(id, &directive.at, "router_id", warnings));
            }
            ("vrrp_mcast_group4", Some("224.0.0.18")) | ("vrrp_mcast_group6", Some("ff02::12")) => {
            }
            ("vrrp_mcast_group4" | "vrrp_mcast_group6", Some(group)) => warn(
                warnings,
                &directive.at,
                format!(
                    "{} {group}: vipd sends adverts to the RFC groups 224.0.0.18 and ff02::12 \
                     only (or unicast): skipped",
                    directive.keyword()
                ),
            ),
            ("vrrp_version", Some(version @ ("2" | "3"))) => {
                globals.version = Some((if version == "2" { 2 } else { 3 }, directive.at.clone()));
            }
            ("script_user", Some(user)) => {
                globals.script_user = user_name(user, &directive.at, warnings);
                if args.len() > 1 {
                    warn(
                        warnings,
                        &directive.at,
                        "script_user's group: vipd runs scripts with the user's own groups: \
                         skipped",
                    );
                }
                draft.header.push(format!(
                    "{}: script_user {user} is written as each script's `user`; notify hooks \
                     run as vipd's own user.",
                    directive.at
                ));
            }
            ("enable_script_security", _) => draft.header.push(format!(
                "{}: enable_script_security: vipd always refuses scripts a non-root user could \
                 replace (and `vipd check` warns about them).",
                directive.at
            )),
            ("vrrp_garp_master_repeat", Some(value)) => {
                globals.garp.repeat = count(value, &directive.at, warnings);
            }
            ("vrrp_garp_master_delay", Some(value)) => {
                globals.garp.delay = seconds(value, &directive.at, warnings);
            }
            ("vrrp_garp_master_refresh", Some(value)) => {
                globals.garp.refresh = seconds(value, &directive.at, warnings);
            }
            _ => unsupported(directive, "global_defs", GLOBAL_DEFS, warnings),
        }
    }
}

fn vrrp_track_file(
    statement: &Statement,
    warnings: &mut Vec<ImportWarning>,
) -> Option<(String, (String, i16))> {
    let Some(name) = statement.args().first() else {
        warn(
            warnings,
            &statement.at,
            "vrrp_track_file without a name: skipped",
        );
        return None;
    };
    let mut file = None;
    let mut weight = 1;
    for directive in statement.children() {
        match (directive.keyword(), directive.args().first()) {
            ("file", Some(path)) if path.starts_with('/') => file = Some(path.clone()),
            ("weight", Some(value)) => {
                weight = tracker_weight(value, &directive.at, warnings).unwrap_or(1);
                if directive.args().len() > 1 {
                    warn(
                        warnings,
                        &directive.at,
                        "weight's `reverse`: vipd has no reversed trackers: skipped",
                    );
                }
            }
            _ => unsupported(directive, "vrrp_track_file", &["file", "weight"], warnings),
        }
    }
    let Some(file) = file else {
        warn(
            warnings,
            &statement.at,
            format!("vrrp_track_file {name} has no absolute `file`: skipped"),
        );
        return None;
    };
    Some((name.clone(), (file, weight)))
}

fn vrrp_script(
    statement: &Statement,
    globals: &Globals,
    warnings: &mut Vec<ImportWarning>,
) -> Option<(String, ScriptSource)> {
    let Some(source_name) = statement.args().first() else {
        warn(
            warnings,
            &statement.at,
            "vrrp_script without a name: skipped",
        );
        return None;
    };
    let name = vipd_name(source_name, &statement.at, "vrrp_script", warnings);
    let mut script = Script {
        from: statement.at.clone(),
        notes: Vec::new(),
        name,
        command: Vec::new(),
        // keepalived's defaults, written out because vipd's differ (2s, rise 2, fall 3).
        interval: Some(Duration::from_secs(1)),
        timeout: None,
        rise: Some(1),
        fall: Some(1),
        user: globals.script_user.clone(),
    };
    let mut weight = 0;
    let mut command_at = None;
    let mut words = Vec::new();
    for directive in statement.children() {
        let at = &directive.at;
        let value = directive.args().first();
        match (directive.keyword(), value) {
            ("script", Some(_)) => {
                words = command_words(directive.args());
                command_at = Some(at.clone());
            }
            ("interval", Some(value)) => script.interval = seconds(value, at, warnings),
            ("timeout", Some(value)) => script.timeout = seconds(value, at, warnings),
            ("rise", Some(value)) => script.rise = count(value, at, warnings),
            ("fall", Some(value)) => script.fall = count(value, at, warnings),
            ("weight", Some(value)) => {
                weight = tracker_weight(value, at, warnings).unwrap_or(0);
                if directive.args().len() > 1 {
                    warn(
                        warnings,
                        at,
                        "weight's `reverse`: vipd has no reversed trackers: skipped",
                    );
                }
            }
            ("user", Some(user)) => {
                script.user = user_name(user, at, warnings).or(script.user.take());
                if directive.args().len() > 1 {
                    warn(
                        warnings,
                        at,
                        "user's group: vipd runs scripts with the user's own groups: skipped",
                    );
                }
            }
            _ => unsupported(directive, "vrrp_script", VRRP_SCRIPT, warnings),
        }
    }
    let Some(command_at) = command_at else {
        warn(
            warnings,
            &statement.at,
            format!("vrrp_script {source_name} has no `script`: skipped"),
        );
        return None;
    };
    let checks_haproxy = is_haproxy_liveness(&words);
    if !checks_haproxy {
        script.command = absolute_command(words, &command_at, warnings)?;
    }
    if let (Some(interval), Some(timeout)) = (script.interval, script.timeout)
        && timeout > interval
    {
        warn(
            warnings,
            &statement.at,
            format!(
                "vrrp_script {source_name}: timeout longer than interval; vipd needs it no \
                 longer: timeout set to the interval"
            ),
        );
        script.timeout = Some(interval);
    }
    if script
        .interval
        .is_some_and(|interval| interval > Duration::from_secs(3600))
    {
        warn(
            warnings,
            &statement.at,
            "vrrp_script interval over vipd's 1h: set to 1h",
        );
        script.interval = Some(Duration::from_secs(3600));
        script.timeout = script
            .timeout
            .map(|timeout| timeout.min(Duration::from_secs(3600)));
    }
    if script.interval.is_some_and(|interval| interval.is_zero()) {
        script.interval = None;
    }
    // vipd's smallest interval; a zero timeout means nothing in either program.
    script.interval = script
        .interval
        .map(|interval| interval.max(Duration::from_millis(10)));
    script.timeout = script.timeout.filter(|timeout| !timeout.is_zero());
    Some((
        source_name.clone(),
        ScriptSource {
            script,
            weight,
            checks_haproxy,
            tracked: false,
        },
    ))
}

/// An argv from keepalived's `script` / `notify_*` arguments: one quoted string is split at
/// spaces (with '...' keeping spaces, as keepalived's own splitting does); several words are
/// already the argv.
fn command_words(args: &[String]) -> Vec<String> {
    if args.len() != 1 {
        return args.to_vec();
    }
    let tokens = words::split(&args[0], &COMMAND).unwrap_or_else(|unterminated| unterminated.0);
    words::words_only(tokens)
}

/// `killall -0 haproxy`, `pidof haproxy`, `pgrep haproxy`, `systemctl is-active haproxy`: what
/// keepalived setups run to follow HAProxy, which vipd replaces with frontend trackers.
fn is_haproxy_liveness(words: &[String]) -> bool {
    let Some(program) = words.first() else {
        return false;
    };
    let program = program.rsplit('/').next().unwrap_or(program);
    matches!(program, "killall" | "pidof" | "pgrep" | "systemctl")
        && words[1..]
            .iter()
            .any(|word| word == "haproxy" || word == "haproxy.service")
}

/// vipd runs commands without a shell and needs an absolute program path; keepalived searches
/// PATH. The importer does not guess where a relative program lives on the node (it may run
/// elsewhere, and vipd-config reads nothing but the files it is given): such a command is skipped
/// with a warning that says what to write.
fn absolute_command(
    words: Vec<String>,
    at: &Location,
    warnings: &mut Vec<ImportWarning>,
) -> Option<Vec<String>> {
    let program = words.first()?;
    if program.starts_with('/') {
        return Some(words);
    }
    warn(
        warnings,
        at,
        format!(
            "`{program}` is not an absolute path (keepalived searched PATH; vipd runs exactly \
             the path written): skipped; write it as `[/full/path/to/{program}, ...]`"
        ),
    );
    None
}

fn vrrp_instance(
    statement: &Statement,
    context: &Context,
    scripts: &mut BTreeMap<String, ScriptSource>,
    draft: &Draft,
    warnings: &mut Vec<ImportWarning>,
) -> Option<Instance> {
    let Some(source_name) = statement.args().first() else {
        warn(
            warnings,
            &statement.at,
            "vrrp_instance without a name: skipped",
        );
        return None;
    };
    let name = vipd_name(source_name, &statement.at, "vrrp_instance", warnings);
    let taken: Vec<&str> = draft.instances.iter().map(|i| i.name.as_str()).collect();
    let name = unique_name(name, &taken);
    let mut notes = Vec::new();
    let mut interface = None;
    let mut vrid = None;
    let mut priority = 100;
    let mut version = context
        .globals
        .version
        .as_ref()
        .map(|(version, _)| *version);
    let mut advert_interval = None;
    let mut preempt = None;
    let mut preempt_delay = None;
    let mut auth_password = None;
    let mut state_master = None;
    let mut unicast_source = None;
    let mut unicast_peers: Vec<IpAddr> = Vec::new();
    let mut virtual_mac = false;
    let mut virtual_mac_interface = None;
    let mut vips: Vec<Vip> = Vec::new();
    let mut excluded: Vec<(Vip, Location)> = Vec::new();
    let mut track = Vec::new();
    let mut notify = Notify::default();
    let mut garp = context.globals.garp.clone();
    let mut native_ipv6 = false;
    let mut track_scripts = Vec::new();
    for directive in statement.children() {
        let at = &directive.at;
        let args = directive.args();
        let value = args.first().map(String::as_str);
        match (directive.keyword(), value) {
            ("interface", Some(name)) if is_interface_name(name) => {
                interface = Some(name.to_owned());
            }
            ("virtual_router_id", Some(value)) => match value.parse::<u8>() {
                Ok(id) if id >= 1 => vrid = Some(id),
                _ => warn(
                    warnings,
                    at,
                    format!("virtual_router_id `{value}` is not 1..=255"),
                ),
            },
            ("priority", Some(value)) => match value.parse::<u8>() {
                Ok(value) if value >= 1 => priority = value,
                _ => warn(
                    warnings,
                    at,
                    format!("priority `{value}` is not 1..=255: vipd's default 100 is used"),
                ),
            },
            ("version", Some("2")) => version = Some(2),
            ("version", Some("3")) => version = Some(3),
            ("advert_int", Some(value)) => advert_interval = seconds(value, at, warnings),
            ("state", Some(state)) => {
                state_master = Some((state.eq_ignore_ascii_case("MASTER"), at.clone()));
                notes.push(format!(
                    "{at}: state {state}: only keepalived's initial state; vipd elects by \
                     priority from the start."
                ));
            }
            ("nopreempt", _) => preempt = Some(false),
            ("preempt", _) => preempt = Some(true),
            ("preempt_delay", Some(value)) => {
                preempt_delay =
                    seconds(value, at, warnings).map(|delay| delay.min(Duration::from_secs(3600)));
            }
            ("authentication", _) => {
                auth_password = authentication(directive, warnings);
            }
            ("unicast_src_ip", Some(value)) => match value.parse::<IpAddr>() {
                Ok(address) => unicast_source = Some(address),
                Err(_) => warn(
                    warnings,
                    at,
                    format!("unicast_src_ip `{value}` is not an address: skipped"),
                ),
            },
            ("unicast_peer", _) => unicast_peer(directive, &mut unicast_peers, warnings),
            ("use_vmac", name) => {
                virtual_mac = true;
                if let Some(name) = name {
                    if is_interface_name(name) {
                        virtual_mac_interface = Some(name.to_owned());
                    } else {
                        warn(
                            warnings,
                            at,
                            format!(
                                "use_vmac `{name}` is not an interface name: vipd's default vrrp.{{vrid}} is used"
                            ),
                        );
                    }
                }
            }
            ("vmac_xmit_base", _) => warn(
                warnings,
                at,
                "vmac_xmit_base: vipd always sends adverts from the macvlan (the virtual MAC): \
                 skipped",
            ),
            ("native_ipv6", _) => native_ipv6 = true,
            ("virtual_ipaddress", _) => {
                for child in directive.children() {
                    if let Some(vip) = vip(child, warnings) {
                        vips.push(vip);
                    }
                }
            }
            ("virtual_ipaddress_excluded", _) => {
                for child in directive.children() {
                    if let Some(vip) = vip(child, warnings) {
                        excluded.push((vip, child.at.clone()));
                    }
                }
            }
            // Resolved once the VIPs are known: a HAProxy check maps to the frontends on them.
            ("track_script", _) => track_scripts.push((directive, track.len())),
            ("track_interface", _) => {
                for child in directive.children() {
                    let (name, weight) = name_and_weight(child, 0, warnings);
                    if let Some(name) = name.filter(|name| is_interface_name(name)) {
                        track.push(Tracker {
                            target: TrackTarget::Interface(name),
                            weight,
                            note: None,
                        });
                    }
                }
            }
            ("track_file", _) => {
                for child in directive.children() {
                    let (name, weight) = name_and_weight(child, i16::MIN, warnings);
                    let Some(name) = name else { continue };
                    match context.track_files.get(&name) {
                        Some((path, file_weight)) => track.push(Tracker {
                            target: TrackTarget::File(path.clone()),
                            weight: if weight == i16::MIN {
                                *file_weight
                            } else {
                                weight
                            },
                            note: None,
                        }),
                        None => warn(
                            warnings,
                            &child.at,
                            format!("track_file {name}: no vrrp_track_file of that name: skipped"),
                        ),
                    }
                }
            }
            (
                keyword @ ("notify_master" | "notify_backup" | "notify_fault" | "notify"),
                Some(_),
            ) => {
                let Some(command) = absolute_command(command_words(args), at, warnings) else {
                    continue;
                };
                match keyword {
                    "notify_master" => notify.master = Some(command),
                    "notify_backup" => notify.backup = Some(command),
                    "notify_fault" => notify.fault = Some(command),
                    _ => {
                        warn(
                            warnings,
                            at,
                            "notify: keepalived passes INSTANCE, the name, the state and the \
                             priority; vipd's `state` hook gets the name, the state and the \
                             priority (no INSTANCE word): check the script's argument positions",
                        );
                        notify.state = Some(command);
                    }
                }
            }
            ("notify_stop", _) => warn(
                warnings,
                at,
                "notify_stop: vipd has no stop hook (at shutdown it hands over with priority 0 \
                 and runs notify `backup`... only if the state changes): skipped",
            ),
            ("garp_master_repeat", Some(value)) => garp.repeat = count(value, at, warnings),
            ("garp_master_delay", Some(value)) => garp.delay = seconds(value, at, warnings),
            ("garp_master_refresh", Some(value)) => garp.refresh = seconds(value, at, warnings),
            _ => unsupported(directive, "vrrp_instance", VRRP_INSTANCE, warnings),
        }
    }
    let Some(interface) = interface else {
        warn(
            warnings,
            &statement.at,
            format!("vrrp_instance {source_name} has no valid `interface`: skipped"),
        );
        return None;
    };
    let Some(vrid) = vrid else {
        warn(
            warnings,
            &statement.at,
            format!("vrrp_instance {source_name} has no valid `virtual_router_id`: skipped"),
        );
        return None;
    };
    // Back to front, so that each lands where it was written among the other trackers.
    for (directive, position) in track_scripts.into_iter().rev() {
        let mut resolved = Vec::new();
        track_script(directive, scripts, &mut resolved, draft, &vips, warnings);
        track.splice(position..position, resolved);
    }
    if native_ipv6 {
        // The family vipd advertises is the first VIP's: put the IPv6 ones first.
        vips.sort_by_key(|vip| !vip.address.addr().is_ipv6());
    }
    dedup_vips(&mut vips);
    let Some(first) = vips.first() else {
        warn(
            warnings,
            &statement.at,
            format!("vrrp_instance {source_name} has no usable virtual_ipaddress: skipped"),
        );
        return None;
    };
    let ipv6 = first.address.addr().is_ipv6();
    if vips.iter().any(|vip| vip.address.addr().is_ipv6() != ipv6) {
        warn(
            warnings,
            &statement.at,
            "virtual_ipaddress mixes IPv4 and IPv6: vipd advertises the first VIP's family and \
             moves the others with it unadvertised (keepalived puts them in separate adverts)",
        );
    }
    let version = match (version, ipv6) {
        (Some(2), true) => {
            warn(
                warnings,
                &statement.at,
                "VRRP v2 carries IPv4 only: an IPv6 instance is written as version 3",
            );
            3
        }
        (Some(version), _) => version,
        // keepalived itself uses v3 for IPv6 instances.
        (None, true) => 3,
        (None, false) => {
            notes.push(
                "version 2: keepalived's default (no vrrp_version / version written).".to_owned(),
            );
            2
        }
    };
    if version == 2 && vips.iter().any(|vip| vip.address.addr().is_ipv6()) {
        warn(
            warnings,
            &statement.at,
            "IPv6 virtual_ipaddress in a VRRP v2 instance: vipd's v2 carries IPv4 only (use version 3 on both nodes, or another instance): the IPv6 addresses are skipped",
        );
        vips.retain(|vip| vip.address.addr().is_ipv4());
    }
    for (vip, at) in excluded {
        if version == 2 && vip.address.addr().is_ipv6() {
            warn(
                warnings,
                &at,
                format!(
                    "virtual_ipaddress_excluded {}: a VRRP v2 instance of vipd carries IPv4 only (use version 3 on both nodes, or another instance): skipped",
                    vip.address
                ),
            );
            continue;
        }
        if vip.address.addr().is_ipv6() == ipv6 {
            warn(
                warnings,
                &at,
                format!(
                    "virtual_ipaddress_excluded {}: vipd advertises every VIP of the instance's family; it is moved with the instance and listed in adverts",
                    vip.address
                ),
            );
        }
        vips.push(vip);
    }
    dedup_vips(&mut vips);
    vips.truncate(255);
    let macvlan = virtual_mac.then(|| {
        virtual_mac_interface
            .clone()
            .unwrap_or_else(|| format!("vrrp.{vrid}"))
    });
    for vip in &mut vips {
        let ipv4 = vip.address.addr().is_ipv4();
        if let (Some(macvlan), false, None) = (&macvlan, ipv4, &vip.interface)
            && !ipv6
        {
            // vipd's IPv4 macvlan carries IPv4 only.
            warn(
                warnings,
                &statement.at,
                format!(
                    "{} would land on the IPv4 macvlan {macvlan}, which carries IPv4 only: written with `interface: {interface}`",
                    vip.address
                ),
            );
            vip.interface = Some(interface.clone());
        }
        let on = vip
            .interface
            .as_ref()
            .or(macvlan.as_ref())
            .unwrap_or(&interface);
        if let Some(label) = &vip.label
            && (!label.starts_with(on.as_str()) || label.len() > 15)
        {
            warn(
                warnings,
                &statement.at,
                format!(
                    "label `{label}` of {} does not start with `{on}` or is over 15 bytes (the kernel refuses it): skipped",
                    vip.address
                ),
            );
            vip.label = None;
        }
    }
    if let Some(interval) = advert_interval {
        let interval = if version == 2 {
            let whole = interval.as_secs().clamp(1, 255);
            if interval != Duration::from_secs(whole) {
                warn(
                    warnings,
                    &statement.at,
                    format!(
                        "advert_int {}: VRRP v2 counts whole seconds: {whole}s written",
                        super::emit::duration(interval)
                    ),
                );
            }
            Duration::from_secs(whole)
        } else {
            let centis = (interval.as_millis() / 10).clamp(1, 4095);
            Duration::from_millis(u64::try_from(centis).unwrap_or(100) * 10)
        };
        advert_interval = Some(interval);
    }
    if version == 3 && auth_password.take().is_some() {
        warn(
            warnings,
            &statement.at,
            "authentication: VRRP v3 has none (keepalived ignores it too): skipped",
        );
    }
    if let (Some(false), Some((true, at))) = (preempt, &state_master) {
        warn(
            warnings,
            at,
            "nopreempt with state MASTER: keepalived ignores nopreempt unless the state is BACKUP; vipd applies `preempt: false` anyway",
        );
    }
    if !unicast_peers.is_empty() {
        unicast_peers.retain(|peer| peer.is_ipv6() == ipv6 && Some(*peer) != unicast_source);
        unicast_peers.dedup();
        if unicast_source.is_some_and(|source| source.is_ipv6() != ipv6) {
            warn(
                warnings,
                &statement.at,
                "unicast_src_ip is not of the VIPs' family: skipped (vipd uses the interface's address)",
            );
            unicast_source = None;
        }
        if unicast_peers.is_empty() {
            warn(
                warnings,
                &statement.at,
                "no unicast_peer of the VIPs' family: the instance is written as multicast",
            );
        }
    }
    if garp
        .delay
        .is_some_and(|delay| delay > Duration::from_secs(3600))
    {
        garp.delay = Some(Duration::from_secs(3600));
    }
    if garp
        .refresh
        .is_some_and(|refresh| refresh > Duration::from_secs(86400))
    {
        garp.refresh = Some(Duration::from_secs(86400));
    }
    garp.repeat = garp.repeat.map(|repeat| repeat.clamp(1, 100));
    if priority == 255 && track.iter().any(|tracker: &Tracker| tracker.weight != 0) {
        warn(
            warnings,
            &statement.at,
            "priority 255 (address owner) takes only weight-0 trackers in vipd: the weights are written as 0",
        );
        for tracker in &mut track {
            tracker.weight = 0;
        }
    }
    Some(Instance {
        from: statement.at.clone(),
        notes,
        name,
        interface,
        vrid,
        priority,
        version,
        advert_interval,
        preempt,
        preempt_delay,
        auth_password,
        unicast_source: unicast_source.filter(|_| !unicast_peers.is_empty()),
        unicast_peers,
        virtual_mac,
        virtual_mac_interface,
        vips,
        track,
        notify,
        garp,
    })
}

/// Whether `instance` can join `others` in one vipd.yaml: a VRID once per interface and family
/// (RFC 5798 section 5.2.3 gives each family its own VRID space), a VIP in one instance only,
/// one macvlan per instance. VIPs held elsewhere are dropped; a repeated VRID drops the instance.
fn fits_beside(
    instance: &mut Instance,
    others: &[Instance],
    warnings: &mut Vec<ImportWarning>,
) -> bool {
    let at = instance.from.clone();
    let family = |i: &Instance| {
        i.vips
            .first()
            .is_some_and(|vip| vip.address.addr().is_ipv6())
    };
    if let Some(other) = others.iter().find(|other| {
        other.vrid == instance.vrid
            && other.interface == instance.interface
            && family(other) == family(instance)
    }) {
        warn(
            warnings,
            &at,
            format!(
                "vrrp_instance {}: virtual_router_id {} on {} is already instance {}'s: skipped",
                instance.name, instance.vrid, instance.interface, other.name
            ),
        );
        return false;
    }
    let macvlan = |i: &Instance| {
        i.virtual_mac.then(|| {
            i.virtual_mac_interface
                .clone()
                .unwrap_or_else(|| format!("vrrp.{}", i.vrid))
        })
    };
    if let Some(name) = macvlan(instance)
        && others
            .iter()
            .any(|other| macvlan(other).as_ref() == Some(&name) || other.interface == name)
    {
        warn(
            warnings,
            &at,
            format!(
                "vrrp_instance {}: use_vmac's interface {name} is already used by another instance: the virtual MAC is skipped",
                instance.name
            ),
        );
        instance.virtual_mac = false;
        instance.virtual_mac_interface = None;
    }
    instance.vips.retain(|vip| {
        let held = others
            .iter()
            .any(|other| other.vips.iter().any(|o| o.address.addr() == vip.address.addr()));
        if held {
            warn(warnings, &at, format!("{} is already a VIP of another instance (vipd moves an address with one instance): skipped here", vip.address));
        }
        !held
    });
    if instance.vips.is_empty() {
        warn(
            warnings,
            &at,
            format!(
                "vrrp_instance {} has no VIP of its own left: skipped",
                instance.name
            ),
        );
        return false;
    }
    true
}

/// The same address twice would be an error in vipd; keepalived just adds it once.
fn dedup_vips(vips: &mut Vec<Vip>) {
    let mut seen = Vec::new();
    vips.retain(|vip| {
        let fresh = !seen.contains(&vip.address.addr());
        seen.push(vip.address.addr());
        fresh
    });
}

/// `authentication { auth_type PASS auth_pass SECRET }`. AH (RFC 2338's IPsec header) was
/// dropped from VRRP by RFC 3768 section 5.3.6 and vipd does not speak it.
fn authentication(directive: &Statement, warnings: &mut Vec<ImportWarning>) -> Option<String> {
    let mut kind = None;
    let mut password = None;
    for child in directive.children() {
        match (child.keyword(), child.args().first()) {
            ("auth_type", Some(value)) => {
                kind = Some((value.to_ascii_uppercase(), child.at.clone()));
            }
            ("auth_pass", Some(value)) => password = Some(value.clone()),
            (keyword, _) => warn(
                warnings,
                &child.at,
                format!("authentication {keyword}: not understood: skipped"),
            ),
        }
    }
    match kind {
        Some((kind, at)) if kind == "AH" => {
            warn(
                warnings,
                &at,
                "AUTH TYPE AH IS NOT SUPPORTED by vipd (RFC 3768 removed it): the instance is written WITHOUT authentication, and a keepalived peer still using AH will not accept vipd's adverts (both nodes become master). Remove AH from the keepalived node first",
            );
            None
        }
        Some((kind, _)) if kind == "PASS" => {
            let mut password = password?;
            if password.len() > 8 {
                // keepalived sends the first 8 bytes (RFC 3768 section 5.3.10's field size).
                let mut end = 8;
                while !password.is_char_boundary(end) {
                    end -= 1;
                }
                password.truncate(end);
                warn(
                    warnings,
                    &directive.at,
                    format!(
                        "auth_pass is longer than 8 bytes: keepalived sends only the first 8, written as `{password}`"
                    ),
                );
            }
            Some(password).filter(|password| !password.is_empty())
        }
        Some((kind, at)) => {
            warn(
                warnings,
                &at,
                format!("auth_type {kind} is not PASS: skipped"),
            );
            None
        }
        None => None,
    }
}

fn unicast_peer(directive: &Statement, peers: &mut Vec<IpAddr>, warnings: &mut Vec<ImportWarning>) {
    let mut words = directive.block_words().peekable();
    while let Some((at, word)) = words.next() {
        if let Ok(address) = word.parse::<IpAddr>() {
            if address.is_unspecified() || address.is_multicast() {
                warn(
                    warnings,
                    at,
                    format!("unicast_peer {address} cannot be a peer: skipped"),
                );
            } else {
                peers.push(address);
            }
        } else if matches!(word.as_str(), "min_ttl" | "max_ttl") {
            words.next();
            warn(
                warnings,
                at,
                format!("unicast_peer {word}: vipd checks the TTL as RFC 5798 says (255): skipped"),
            );
        } else {
            warn(
                warnings,
                at,
                format!("unicast_peer `{word}` is not an address: skipped"),
            );
        }
    }
}

/// A `virtual_ipaddress` line: `ADDR[/LEN] [dev IF] [label L] [brd B] [scope S] ...`.
fn vip(line: &Statement, warnings: &mut Vec<ImportWarning>) -> Option<Vip> {
    let at = &line.at;
    let address_text = line.keyword();
    // keepalived's default prefix is the host prefix.
    let parsed = address_text
        .parse::<IpNet>()
        .ok()
        .or_else(|| address_text.parse::<IpAddr>().ok().map(IpNet::from));
    let Some(address) = parsed else {
        warn(
            warnings,
            at,
            format!(
                "virtual_ipaddress `{address_text}` is not an address (ranges are not supported): skipped"
            ),
        );
        return None;
    };
    let ip = address.addr();
    if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() {
        warn(
            warnings,
            at,
            format!("virtual_ipaddress {ip} cannot be a virtual IP in vipd: skipped"),
        );
        return None;
    }
    let mut vip = Vip {
        address,
        interface: None,
        label: None,
    };
    let mut args = line.args().iter();
    while let Some(option) = args.next() {
        let value = args.next();
        match (option.as_str(), value) {
            ("dev", Some(name)) if is_interface_name(name) => vip.interface = Some(name.clone()),
            ("label", Some(label)) if address.addr().is_ipv4() => vip.label = Some(label.clone()),
            ("brd" | "broadcast", Some(_)) => {}
            ("scope", Some(scope)) if scope == "global" => {}
            (option, _) => {
                warn(
                    warnings,
                    at,
                    format!("virtual_ipaddress option `{option}` has no vipd equivalent: skipped"),
                );
            }
        }
    }
    Some(vip)
}

/// A `track_interface` / `track_file` line: `NAME [weight N]`.
fn name_and_weight(
    line: &Statement,
    default_weight: i16,
    warnings: &mut Vec<ImportWarning>,
) -> (Option<String>, i16) {
    let name = line.words.first().cloned();
    let mut weight = default_weight;
    let mut words = line.args().iter();
    while let Some(word) = words.next() {
        match (word.as_str(), words.next()) {
            ("weight", Some(value)) => {
                weight = tracker_weight(value, &line.at, warnings).unwrap_or(default_weight);
            }
            (other, _) => warn(
                warnings,
                &line.at,
                format!(
                    "`{other}` after {}: not supported by vipd: skipped",
                    line.keyword()
                ),
            ),
        }
    }
    (name, weight)
}

fn track_script(
    directive: &Statement,
    scripts: &mut BTreeMap<String, ScriptSource>,
    track: &mut Vec<Tracker>,
    draft: &Draft,
    vips: &[Vip],
    warnings: &mut Vec<ImportWarning>,
) {
    for line in directive.children() {
        let (name, weight) = name_and_weight(line, i16::MIN, warnings);
        let Some(name) = name else { continue };
        let Some(source) = scripts.get_mut(&name) else {
            warn(
                warnings,
                &line.at,
                format!("track_script {name}: no usable vrrp_script of that name: skipped"),
            );
            continue;
        };
        source.tracked = true;
        let weight = if weight == i16::MIN {
            source.weight
        } else {
            weight
        };
        if !source.checks_haproxy {
            track.push(Tracker {
                target: TrackTarget::Script(source.script.name.clone()),
                weight,
                note: None,
            });
            continue;
        }
        // The proxy is vipd itself: what matters is whether its frontends reach their backends.
        let frontends: Vec<&str> = draft
            .frontends
            .iter()
            .filter(|frontend| {
                frontend.bind.iter().any(|bind| {
                    bind.ip().is_unspecified()
                        || vips.iter().any(|vip| vip.address.addr() == bind.ip())
                })
            })
            .map(|frontend| frontend.name.as_str())
            .collect();
        if frontends.is_empty() {
            warn(
                warnings,
                &line.at,
                format!(
                    "track_script {name} follows HAProxy, which vipd replaces, and no imported frontend serves this instance's VIPs (pass haproxy.cfg to import them): skipped; track the proxy with `track: [{{ frontend: NAME, weight: {weight} }}]`"
                ),
            );
            continue;
        }
        for frontend in frontends {
            track.push(Tracker {
                target: TrackTarget::Frontend(frontend.to_owned()),
                weight,
                note: Some(format!(
                    "was track_script {name} ({}): vipd tracks its own frontends' backends",
                    line.at
                )),
            });
        }
    }
}

/// A user name vipd accepts (it checks no more than this; the node's passwd decides).
fn user_name(user: &str, at: &Location, warnings: &mut Vec<ImportWarning>) -> Option<String> {
    if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
        warn(
            warnings,
            at,
            format!("user `{}` is not a user name: skipped", user.escape_debug()),
        );
        return None;
    }
    Some(user.to_owned())
}

/// keepalived's weights are -253..=253; vipd takes -254..=254.
fn tracker_weight(value: &str, at: &Location, warnings: &mut Vec<ImportWarning>) -> Option<i16> {
    match value.parse::<i16>() {
        Ok(weight) if (-254..=254).contains(&weight) => Some(weight),
        _ => {
            warn(
                warnings,
                at,
                format!("weight `{value}` is not in -254..=254: skipped"),
            );
            None
        }
    }
}

/// keepalived's times are seconds, possibly fractional (`advert_int 0.5`).
fn seconds(value: &str, at: &Location, warnings: &mut Vec<ImportWarning>) -> Option<Duration> {
    let parsed = value
        .parse::<f64>()
        .ok()
        .filter(|seconds| seconds.is_finite() && (0.0..=31_536_000.0).contains(seconds));
    let Some(seconds) = parsed else {
        warn(
            warnings,
            at,
            format!("`{value}` is not a number of seconds: skipped"),
        );
        return None;
    };
    // At most a year in milliseconds, not negative: well inside u64.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let millis = (seconds * 1000.0).round() as u64;
    Some(Duration::from_millis(millis))
}

fn count(value: &str, at: &Location, warnings: &mut Vec<ImportWarning>) -> Option<u32> {
    match value.parse::<u32>() {
        Ok(count) if (1..=100).contains(&count) => Some(count),
        _ => {
            warn(
                warnings,
                at,
                format!("`{value}` is not a count in 1..=100 (vipd's range): skipped"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_glob3() {
        assert!(wildcard_match("*.conf", "10-vip.conf"));
        assert!(!wildcard_match("*.conf", "10-vip.conf.bak"));
        assert!(wildcard_match("vip?.conf", "vip1.conf"));
        assert!(wildcard_match("[0-9]*", "20-b"));
        assert!(!wildcard_match("[!0-9]*", "20-b"));
        assert!(wildcard_match("*", ""));
        assert!(
            !wildcard_match("[", "["),
            "an unclosed class matches nothing"
        );
    }

    #[test]
    fn commands_split_like_keepalived() {
        let one = |text: &str| command_words(&[text.to_owned()]);
        assert_eq!(one("/bin/check --a 'b c'"), ["/bin/check", "--a", "b c"]);
        assert_eq!(one("  /bin/x  "), ["/bin/x"]);
        let several = command_words(&["/bin/x".to_owned(), "-q".to_owned()]);
        assert_eq!(several, ["/bin/x", "-q"]);
    }

    #[test]
    fn haproxy_liveness_scripts_are_recognised() {
        let words = |text: &str| command_words(&[text.to_owned()]);
        assert!(is_haproxy_liveness(&words("killall -0 haproxy")));
        assert!(is_haproxy_liveness(&words("/usr/bin/pgrep haproxy")));
        assert!(is_haproxy_liveness(&words(
            "systemctl is-active haproxy.service"
        )));
        assert!(!is_haproxy_liveness(&words(
            "/etc/keepalived/check_apiserver.sh"
        )));
        assert!(!is_haproxy_liveness(&words("killall -0 nginx")));
    }
}
