//! vipd-proxy's integration tests on 127.0.0.0/8, linked as one executable: each former test file
//! is a module, so a test reads as `forwarding::half_close_from_the_client_keeps_the_reply_path_open`.
//! `accept_limits` stays a binary of its own: it lowers the process's fd limit, which would starve
//! the tests running beside it; so does `health` (its file says why).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod test_servers;

mod check_options;
mod connections;
mod dead_servers;
mod forwarding;
mod proxy_protocol;
mod queue_order;
mod reload_state;
mod runtime;
mod session_log;
