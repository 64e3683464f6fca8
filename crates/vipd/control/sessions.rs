//! The sessions of a server as `GET /api/v1/.../sessions` lists them and `vipd ctl sessions list`
//! reads them back, and the body of `POST /api/v1/servers/{backend}/{server}/sessions/kill`.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use vipd_proxy::{SessionFilter, SessionInfo};

/// One session forwarding to a server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStatus {
    /// Unique among the server's live sessions; `{"id": N}` kills this one.
    pub id: u64,
    pub backend: String,
    pub server: String,
    pub frontend: String,
    /// The real client: the TCP peer, or the source of its PROXY header.
    pub client: String,
    pub age_seconds: f64,
    /// Client → server bytes so far (counted in batches while the session is busy).
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl From<&SessionInfo> for SessionStatus {
    fn from(info: &SessionInfo) -> Self {
        Self {
            id: info.id,
            backend: info.backend.clone(),
            server: info.server.clone(),
            frontend: info.frontend.clone(),
            client: info.client.to_string(),
            age_seconds: info.age.as_secs_f64(),
            bytes_in: info.bytes_in,
            bytes_out: info.bytes_out,
        }
    }
}

/// The answer of a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionList {
    pub sessions: Vec<SessionStatus>,
}

/// Which sessions to kill: exactly one of the fields, so that an empty body kills nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillRequest {
    #[serde(default)]
    pub all: bool,
    /// `ADDRESS` (every session of that client) or `ADDRESS:PORT` (one).
    #[serde(default)]
    pub client: Option<String>,
    #[serde(default)]
    pub id: Option<u64>,
}

impl KillRequest {
    /// The filter this request names, or why it names none.
    pub fn filter(&self) -> Result<SessionFilter, String> {
        match (self.all, &self.client, self.id) {
            (true, None, None) => Ok(SessionFilter::All),
            (false, Some(client), None) => parse_client(client),
            (false, None, Some(id)) => Ok(SessionFilter::Id(id)),
            _ => Err(
                "name exactly one of \"all\": true, \"client\": \"ADDRESS[:PORT]\" or \"id\": N"
                    .to_owned(),
            ),
        }
    }
}

fn parse_client(client: &str) -> Result<SessionFilter, String> {
    if let Ok(address) = client.parse::<SocketAddr>() {
        return Ok(SessionFilter::Client(address));
    }
    let bare = client.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>()
        .map(SessionFilter::ClientIp)
        .map_err(|_| format!("client {client:?} is not an address or address:port"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(json: &str) -> Result<SessionFilter, String> {
        serde_json::from_str::<KillRequest>(json)
            .map_err(|error| error.to_string())?
            .filter()
    }

    #[test]
    fn kill_requests_name_exactly_one_filter() {
        assert_eq!(filter(r#"{"all": true}"#), Ok(SessionFilter::All));
        assert_eq!(
            filter(r#"{"client": "198.51.100.7"}"#),
            Ok(SessionFilter::ClientIp("198.51.100.7".parse().unwrap()))
        );
        assert_eq!(
            filter(r#"{"client": "[2001:db8::7]:4000"}"#),
            Ok(SessionFilter::Client("[2001:db8::7]:4000".parse().unwrap()))
        );
        assert_eq!(
            filter(r#"{"client": "[2001:db8::7]"}"#),
            Ok(SessionFilter::ClientIp("2001:db8::7".parse().unwrap()))
        );
        assert_eq!(filter(r#"{"id": 9}"#), Ok(SessionFilter::Id(9)));
        for refused in [
            "{}",
            r#"{"all": false}"#,
            r#"{"all": true, "id": 1}"#,
            r#"{"client": "somewhere"}"#,
            r#"{"everything": true}"#,
        ] {
            assert!(filter(refused).is_err(), "{refused}");
        }
    }
}
