//! keepalived.conf's grammar: lines of words become a tree of statements.
//!
//! A line is a keyword and its arguments, `{` opens a block (at the end of the line or alone on
//! the next), `}` closes it; words, quotes and comments are [`crate::words`]'s. `include GLOB`
//! lines are spliced in place while tokenizing ([`super::include`]).

use std::path::Path;
use std::sync::Arc;

use super::include::include;
use crate::words::{self, Syntax};
use crate::{ImportError, Location};

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
    pub(super) fn keyword(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }

    pub(super) fn args(&self) -> &[String] {
        self.words.get(1..).unwrap_or_default()
    }

    pub(super) fn children(&self) -> &[Statement] {
        self.block.as_deref().unwrap_or_default()
    }

    /// Every word of the block's lines: `unicast_peer { a b }` and one address per line alike.
    pub(super) fn block_words(&self) -> impl Iterator<Item = (&Location, &String)> {
        self.children()
            .iter()
            .flat_map(|child| child.words.iter().map(move |word| (&child.at, word)))
    }
}

#[derive(Debug, PartialEq)]
pub(super) enum TokenKind {
    Word(String),
    Open,
    Close,
    EndOfLine,
}

#[derive(Debug)]
pub(super) struct Token {
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

pub(super) fn tokenize(
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
