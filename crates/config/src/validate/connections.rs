//! Connection settings of frontends and backends: TCP keepalive, the PROXY header timeout.

use std::time::Duration;

use super::Checker;
use crate::defaults::PROXY_HEADER_TIMEOUT;
use crate::model::TcpKeepalive;
use crate::raw;

impl Checker<'_> {
    /// `tcp_keepalive`: on with the defaults when absent; `None` with `enabled: false`.
    pub(super) fn tcp_keepalive(
        &mut self,
        raw: Option<raw::TcpKeepalive>,
        path: &str,
    ) -> Option<TcpKeepalive> {
        let raw = raw.unwrap_or_default();
        let defaults = TcpKeepalive::default();
        // The kernel takes whole seconds, 1 to 32767 (TCP_KEEPIDLE, TCP_KEEPINTVL).
        let seconds = Duration::from_secs(1)..=Duration::from_secs(32_767);
        let keepalive = TcpKeepalive {
            idle: self.duration(
                raw.idle.as_deref(),
                &format!("{path}.idle"),
                defaults.idle,
                seconds.clone(),
            ),
            interval: self.duration(
                raw.interval.as_deref(),
                &format!("{path}.interval"),
                defaults.interval,
                seconds,
            ),
            count: self.integer(raw.count, &format!("{path}.count"), 1..=127, defaults.count),
            user_timeout: raw.user_timeout.as_deref().map(|text| {
                self.duration(
                    Some(text),
                    &format!("{path}.user_timeout"),
                    Duration::ZERO,
                    Duration::from_millis(1)..=Duration::from_secs(86_400),
                )
            }),
        };
        raw.enabled.unwrap_or(true).then_some(keepalive)
    }

    pub(super) fn proxy_header_timeout(&mut self, text: Option<&str>, path: &str) -> Duration {
        self.duration(
            text,
            path,
            PROXY_HEADER_TIMEOUT,
            Duration::from_millis(1)..=Duration::from_secs(3600),
        )
    }
}
