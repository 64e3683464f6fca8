//! haproxy.cfg (2.x): its lines split into words, the sections read in order ([`section`], one
//! line at a time by [`directives`]), then translated to vipd frontends ([`frontends`]) and
//! backends ([`backends`]).
//!
//! A section keyword (`defaults`, `frontend`, `backend`, `listen`, `global`) starts a section
//! that runs to the next one.

mod backends;
mod bind;
mod check;
mod directives;
mod frontends;
mod keepalive;
mod section;
mod server;
#[cfg(test)]
mod tests;
mod timeout;
mod values;

use std::path::Path;
use std::sync::Arc;

use self::directives::directive;
use self::section::{Kind, Section};
use self::values::connections;
use crate::draft::Draft;
use crate::words::{self, Syntax};
use crate::{ImportError, ImportWarning, Location, warn};

/// HAProxy's words: `"..."` and `'...'` quote, a backslash escapes the next character (not
/// inside `'...'`), and `#` ends the line anywhere outside quotes.
const HAPROXY: Syntax = Syntax {
    quotes: &['"', '\''],
    comments: &['#'],
    comment_inside_word: true,
    braces: false,
    backslash_escapes: true,
};

/// Splits one line into words; `Err` for an unterminated quote.
fn words(line: &str) -> Result<Vec<String>, String> {
    words::split(line, &HAPROXY)
        .map(words::words_only)
        .map_err(|_| "unterminated quoted string".to_owned())
}

pub fn translate(
    path: &Path,
    text: &str,
    draft: &mut Draft,
    warnings: &mut Vec<ImportWarning>,
) -> Result<(), ImportError> {
    let file: Arc<str> = path.display().to_string().into();
    let mut reader = Reader::new(Location {
        file: Arc::clone(&file),
        line: 1,
    });
    for (index, line) in text.lines().enumerate() {
        let at = Location {
            file: Arc::clone(&file),
            line: index + 1,
        };
        let words = words(line).map_err(|message| ImportError::Syntax {
            at: at.clone(),
            message,
        })?;
        reader.line(&words, at, draft, warnings)?;
    }
    finish(
        &mut reader.current,
        &mut reader.defaults,
        &mut reader.sections,
    );
    // A keepalived.conf (or anything else) passed as haproxy.cfg is refused, not read as nothing.
    if let Some(at) = reader.first_line.clone()
        && reader.sections_seen == 0
    {
        return Err(ImportError::Syntax {
            at,
            message: "no global, defaults, frontend, backend or listen section: is this a \
                      haproxy.cfg?"
                .to_owned(),
        });
    }
    frontends::build(&reader.sections, draft, warnings);
    if draft.frontends.is_empty() {
        return Err(no_frontend(&reader, &file, warnings));
    }
    if let Some(percent) = reader.spread_checks {
        for backend in &mut draft.backends {
            backend.health.jitter_percent = Some(percent);
        }
    }
    Ok(())
}

/// The error of a haproxy.cfg that gave no frontend, with the warnings that say why.
fn no_frontend(reader: &Reader, file: &Arc<str>, warnings: &mut Vec<ImportWarning>) -> ImportError {
    let proxies = reader
        .sections
        .iter()
        .filter(|section| section.is_frontend())
        .count();
    let message = if proxies == 0 {
        "no frontend or listen section: vipd would import nothing to serve".to_owned()
    } else {
        format!(
            "none of its {proxies} frontend and listen sections could be imported (see why \
             above): vipd would serve nothing; a copy from a web page may have lost its line \
             breaks"
        )
    };
    ImportError::NothingImported {
        at: reader.first_line.clone().unwrap_or(Location {
            file: Arc::clone(file),
            line: 1,
        }),
        message,
        warnings: std::mem::take(warnings),
    }
}

/// Where the lines of the file go, section after section.
struct Reader {
    defaults: Section,
    sections: Vec<Section>,
    /// The section lines go to: `None` before any section or inside one vipd ignores whole.
    current: Option<Section>,
    in_global: bool,
    skipping: bool,
    first_line: Option<Location>,
    sections_seen: usize,
    /// The global `spread-checks`: every backend's `health.jitter_percent`.
    spread_checks: Option<u8>,
}

impl Reader {
    fn new(start: Location) -> Self {
        Self {
            defaults: Section::new(Kind::Defaults, String::new(), start),
            sections: Vec::new(),
            current: None,
            in_global: false,
            skipping: false,
            first_line: None,
            sections_seen: 0,
            spread_checks: None,
        }
    }

    /// One line's words: a section keyword, or a line of the current section.
    fn line(
        &mut self,
        words: &[String],
        at: Location,
        draft: &mut Draft,
        warnings: &mut Vec<ImportWarning>,
    ) -> Result<(), ImportError> {
        let Some(keyword) = words.first() else {
            return Ok(());
        };
        self.first_line.get_or_insert_with(|| at.clone());
        let section_kind = match keyword.as_str() {
            "global" => Some(None),
            "defaults" => Some(Some(Kind::Defaults)),
            "frontend" => Some(Some(Kind::Frontend)),
            "backend" => Some(Some(Kind::Backend)),
            "listen" => Some(Some(Kind::Listen)),
            "userlist" | "peers" | "resolvers" | "mailers" | "program" | "http-errors"
            | "cache" | "ring" | "log-forward" | "traces" | "crt-store" => {
                self.skip_section(keyword, &at, warnings);
                return Ok(());
            }
            _ => None,
        };
        if let Some(kind) = section_kind {
            return self.open_section(kind, words, at, warnings);
        }
        if self.skipping {
            return Ok(());
        }
        if self.in_global {
            global(words, &at, draft, &mut self.spread_checks, warnings);
            return Ok(());
        }
        let Some(section) = self.current.as_mut() else {
            warn(warnings, &at, "a line outside any section: skipped");
            return Ok(());
        };
        directive(section, words, &at, warnings);
        Ok(())
    }

    /// A section vipd has nothing for: its lines are skipped with one warning.
    fn skip_section(&mut self, keyword: &str, at: &Location, warnings: &mut Vec<ImportWarning>) {
        finish(&mut self.current, &mut self.defaults, &mut self.sections);
        self.sections_seen += 1;
        self.in_global = false;
        self.skipping = true;
        warn(
            warnings,
            at,
            format!("`{keyword}` section has no vipd equivalent: skipped whole"),
        );
    }

    /// `global` (`kind` None), `defaults`, `frontend`, `backend` or `listen`.
    fn open_section(
        &mut self,
        kind: Option<Kind>,
        words: &[String],
        at: Location,
        warnings: &mut Vec<ImportWarning>,
    ) -> Result<(), ImportError> {
        self.sections_seen += 1;
        finish(&mut self.current, &mut self.defaults, &mut self.sections);
        self.skipping = false;
        self.in_global = kind.is_none();
        let Some(kind) = kind else {
            return Ok(());
        };
        let name = words.get(1).cloned().unwrap_or_default();
        if kind == Kind::Defaults {
            if words.len() > 2 {
                warn(
                    warnings,
                    &at,
                    "named defaults with `from`: vipd reads them as plain defaults",
                );
            }
            self.current = Some(Section::inherit(&self.defaults, kind, name, at));
            return Ok(());
        }
        if name.is_empty() {
            return Err(ImportError::Syntax {
                at,
                message: format!("`{}` needs a name", words[0]),
            });
        }
        let mut section = Section::inherit(&self.defaults, kind, name, at.clone());
        if kind == Kind::Listen && words.len() > 2 {
            // `listen NAME ADDR:PORT` is the old form of `bind` (`words[1..]`
            // reads as `bind ADDR:PORT`).
            bind::bind(&mut section, &words[1..], &at, warnings);
        } else if words.len() > 2 {
            warn(
                warnings,
                &at,
                format!("`{}` after the section name: skipped", words[2..].join(" ")),
            );
        }
        self.current = Some(section);
        Ok(())
    }
}

/// Closes the current section: `defaults` become the new defaults, proxies are kept.
fn finish(current: &mut Option<Section>, defaults: &mut Section, sections: &mut Vec<Section>) {
    match current.take() {
        Some(section) if section.kind == Kind::Defaults => *defaults = section,
        Some(section) => sections.push(section),
        None => {}
    }
}

fn global(
    words: &[String],
    at: &Location,
    draft: &mut Draft,
    spread_checks: &mut Option<u8>,
    warnings: &mut Vec<ImportWarning>,
) {
    match (words[0].as_str(), words.get(1)) {
        ("maxconn", Some(value)) => draft.max_connections = connections(value, at, warnings),
        ("spread-checks", Some(value)) => match value.parse::<u8>() {
            Ok(percent) if percent <= 50 => *spread_checks = Some(percent),
            _ => warn(
                warnings,
                at,
                format!("spread-checks `{value}` is not 0..=50: skipped"),
            ),
        },
        ("nbthread", _) => draft.header.push(format!(
            "{at}: nbthread: vipd runs one proxy thread per core by itself."
        )),
        (keyword, _) => warn(
            warnings,
            at,
            format!("global {keyword} has no vipd equivalent: skipped"),
        ),
    }
}
