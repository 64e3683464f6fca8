//! The one word splitter of both formats: a line becomes words separated by white space, with
//! comments and quotes. Where keepalived and HAProxy truly differ, a [`Syntax`] says so rather
//! than a second copy of the loop:
//!
//! - keepalived has braces, which are tokens of their own even inside a word (`vrrp {`), and
//!   quotes only with `"`; a comment starts only where a word could (`a#b` is one word);
//! - HAProxy quotes with `"` and `'` and has backslash escapes (not inside `'...'`); its `#`
//!   ends the line anywhere outside quotes.
//!
//! keepalived's `include` is not a matter of words: its reader handles it per line.

/// How one format splits a line.
pub struct Syntax {
    /// The characters that open a quote; only the same character closes it.
    pub quotes: &'static [char],
    /// The characters that start a comment running to the end of the line.
    pub comments: &'static [char],
    /// Whether a comment character inside a word starts a comment (HAProxy) or is part of the
    /// word (keepalived).
    pub comment_inside_word: bool,
    /// keepalived: `{` and `}` are tokens of their own.
    pub braces: bool,
    /// HAProxy: `\` escapes the next character (`\n`, `\r` and `\t` as control characters),
    /// except inside `'...'`.
    pub backslash_escapes: bool,
}

/// A piece of a line.
#[derive(Debug, PartialEq, Eq)]
pub enum Token {
    Word(String),
    /// `{` (with [`Syntax::braces`]).
    Open,
    /// `}` (with [`Syntax::braces`]).
    Close,
}

/// A quote was still open at the end of the line; holds the tokens read up to there, the last
/// one the unterminated word.
#[derive(Debug)]
pub struct UnterminatedQuote(pub Vec<Token>);

/// The tokens of `line` as `syntax` reads it.
pub fn split(line: &str, syntax: &Syntax) -> Result<Vec<Token>, UnterminatedQuote> {
    let mut tokens = Vec::new();
    // `Some` while inside a word; a quoted empty string (`""`) is still a word.
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        let raw_quote = quote.is_some_and(|q| q == '\'');
        if c == '\\' && syntax.backslash_escapes && !raw_quote {
            let word = word.get_or_insert_with(String::new);
            match chars.next() {
                Some('n') => word.push('\n'),
                Some('r') => word.push('\r'),
                Some('t') => word.push('\t'),
                Some(c) => word.push(c),
                None => {}
            }
            continue;
        }
        if let Some(open) = quote {
            if c == open {
                quote = None;
            } else {
                word.get_or_insert_with(String::new).push(c);
            }
            continue;
        }
        if syntax.quotes.contains(&c) {
            quote = Some(c);
            word.get_or_insert_with(String::new);
        } else if syntax.comments.contains(&c) && (word.is_none() || syntax.comment_inside_word) {
            break;
        } else if syntax.braces && (c == '{' || c == '}') {
            tokens.extend(word.take().map(Token::Word));
            tokens.push(if c == '{' { Token::Open } else { Token::Close });
        } else if c.is_whitespace() {
            tokens.extend(word.take().map(Token::Word));
        } else {
            word.get_or_insert_with(String::new).push(c);
        }
    }
    tokens.extend(word.map(Token::Word));
    if quote.is_some() {
        return Err(UnterminatedQuote(tokens));
    }
    Ok(tokens)
}

/// Only the words of `tokens` (a syntax without braces has nothing else).
pub fn words_only(tokens: Vec<Token>) -> Vec<String> {
    tokens
        .into_iter()
        .filter_map(|token| match token {
            Token::Word(word) => Some(word),
            Token::Open | Token::Close => None,
        })
        .collect()
}
