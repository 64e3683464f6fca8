//! The fd limit (RLIMIT_NOFILE) against what the proxy's connection limits need.
//!
//! A session holds two sockets, and up to two pipes while it splices
//! (`vipd_proxy::resources::fds_needed`). At start the daemon raises its soft limit to what the
//! configuration wants, as far as the hard limit allows (further with CAP_SYS_RESOURCE), and
//! warns when the limit cannot hold `max_connections`: past it, accepts and connects fail with
//! EMFILE while the connection limits still admit clients. `vipd check` gives the same warning
//! for the hard limit of the shell or unit it runs in.

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use vipd_config::Config;

use super::mapping;

/// What the limit means for `config`: a warning when `limit` cannot hold every session the
/// connection limits admit.
pub fn shortfall(config: &Config, limit: u64) -> Option<String> {
    let proxy = mapping::proxy_config(config);
    if proxy.frontends.is_empty() {
        return None;
    }
    let (required, _) = vipd_proxy::resources::fds_needed(&proxy);
    (limit < required).then(|| {
        let sessions = (required - vipd_proxy::resources::FD_RESERVE) / 2;
        format!(
            "the fd limit (RLIMIT_NOFILE) is {limit}: too low for {sessions} sessions \
             (max_connections), which need {required}; past it, new clients are refused with \
             EMFILE. Raise LimitNOFILE= in the unit (or ulimit -n), or lower max_connections"
        )
    })
}

/// Raises the soft fd limit towards what `config` wants; returns the limit now in force and the
/// warning of [`shortfall`], if any.
pub fn raise(config: &Config) -> (u64, Option<String>) {
    let (_, wanted) = vipd_proxy::resources::fds_needed(&mapping::proxy_config(config));
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return (0, None);
    };
    let limit = if soft >= wanted {
        soft
    } else if hard >= wanted {
        setrlimit(Resource::RLIMIT_NOFILE, wanted, hard).map_or(soft, |()| wanted)
    } else {
        // Beyond the hard limit only with CAP_SYS_RESOURCE; else up to the hard limit.
        setrlimit(Resource::RLIMIT_NOFILE, wanted, wanted)
            .map(|()| wanted)
            .or_else(|_| setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map(|()| hard))
            .unwrap_or(soft)
    };
    (limit, shortfall(config, limit))
}

/// The hard fd limit of this process: what `vipd run`, started the same way, could raise to.
pub fn hard_limit() -> Option<u64> {
    getrlimit(Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(_, hard)| hard)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_connections: u32) -> Config {
        let text = format!(
            "max_connections: {max_connections}\nfrontends:\n  - {{ name: f, bind: [\"127.0.0.1:8080\"], backend: b }}\n\
             backends:\n  - {{ name: b, servers: [{{ name: s, address: \"127.0.0.2:80\" }}] }}\n"
        );
        Config::from_yaml_str(&text).unwrap().0
    }

    #[test]
    fn a_limit_below_two_fds_per_session_is_a_warning() {
        // 1000 sessions: 2000 sockets and the reserve.
        assert!(shortfall(&config(1000), 3024).is_none());
        let warning = shortfall(&config(1000), 3023).unwrap();
        assert!(warning.contains("1000 sessions"), "{warning}");
        assert!(warning.contains("(RLIMIT_NOFILE) is 3023"), "{warning}");
    }

    #[test]
    fn start_raises_the_soft_limit_to_what_the_config_wants() {
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        // A config that wants no more than the hard limit: the soft limit goes up to it.
        let sessions = u32::try_from((hard.min(60_000) - 1024) / 6).unwrap();
        let (limit, warning) = raise(&config(sessions));
        assert!(warning.is_none(), "{warning:?}");
        assert!(limit >= soft.max(u64::from(sessions) * 6 + 1024), "{limit}");
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap().0, limit);
    }
}
