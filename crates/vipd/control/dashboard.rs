//! `GET /`: one self-contained HTML page (no external assets, so it works on an isolated
//! management network) that polls `/status` every two seconds and renders it.

pub const PAGE: &str = include_str!("dashboard.html");
