//! `vipd ctl`: the admin API from the command line, so that an operator needs no curl.
//!
//! ```text
//! vipd ctl server drain|disable|enable BACKEND SERVER
//! vipd ctl server weight BACKEND SERVER N|reset
//! vipd ctl maintenance on|off [NAME...]            (instances or announce groups; all of the node's when none is named)
//! vipd ctl sessions list BACKEND [SERVER]
//! vipd ctl sessions kill BACKEND SERVER --all | --client ADDRESS[:PORT] | --id N
//! ```
//!
//! The daemon is found as `vipd status` finds it (`--control`, else `control.listen` of `-c FILE`
//! or the default file), and so is the token (`--token-file`, else `control.token_file`), read as
//! the daemon reads it. `--json` prints the API's JSON answer as it came. Exit status: 0 done, 1
//! refused by the daemon (its message is printed), 2 the daemon cannot be reached, its answer is
//! not the API's, or the command line is wrong (clap's own usage errors exit 2 too).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use vipd_lab::http::{Client, HttpError, Response};

use crate::cli::status::{TextTable, control_from_config, duration_text};
use crate::control::{NodeStatus, SessionList};

/// Connect, send and receive must all finish within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Args)]
pub struct CtlArgs {
    /// The control server's address, `HOST:PORT` (default: control.listen of the configuration).
    #[arg(long, value_name = "ADDR", global = true)]
    control: Option<String>,
    /// The file holding the bearer token (default: control.token_file of the configuration).
    #[arg(long, value_name = "FILE", global = true)]
    token_file: Option<PathBuf>,
    /// Print the API's JSON answer as it came (for scripts).
    #[arg(long, global = true)]
    json: bool,
    /// The configuration file to read control.listen and control.token_file from.
    #[arg(short = 'c', long = "config", value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Subcommand)]
enum CtlCommand {
    /// Drain, disable or enable a server of a backend, or set its weight.
    #[command(subcommand)]
    Server(ServerCommand),
    /// Put instances of this node in maintenance (they release the VIPs and stay backup) or
    /// announce groups (withdrawn whatever their trackers say), or take them out; every instance
    /// and group of the node when none is named.
    Maintenance {
        state: OnOff,
        instances: Vec<String>,
    },
    /// List or kill the sessions forwarding to a server.
    #[command(subcommand)]
    Sessions(SessionsCommand),
}

#[derive(Clone, Copy, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Subcommand)]
enum ServerCommand {
    /// No new sessions; established sessions continue.
    Drain { backend: String, server: String },
    /// Out of service (maintenance); established sessions continue.
    Disable { backend: String, server: String },
    /// Back into service after a drain or disable.
    Enable { backend: String, server: String },
    /// Set the weight (0..=256), or `reset` to the configuration's.
    Weight {
        backend: String,
        server: String,
        #[arg(value_parser = parse_weight)]
        weight: Weight,
    },
}

#[derive(Clone, Copy)]
enum Weight {
    Set(u32),
    Reset,
}

fn parse_weight(text: &str) -> Result<Weight, String> {
    if text == "reset" {
        return Ok(Weight::Reset);
    }
    text.parse()
        .map(Weight::Set)
        .map_err(|_| format!("{text:?} is neither a weight (0..=256) nor `reset`"))
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// The sessions of one server, or of every server of the backend.
    List {
        backend: String,
        server: Option<String>,
    },
    /// Close sessions of one server at once (both sides see their connection end).
    #[command(group(ArgGroup::new("which").required(true).args(["all", "client", "id"])))]
    Kill {
        backend: String,
        server: String,
        /// Every session of the server.
        #[arg(long)]
        all: bool,
        /// The sessions of this client: `ADDRESS` (all of them) or `ADDRESS:PORT` (one).
        #[arg(long, value_name = "ADDRESS[:PORT]")]
        client: Option<String>,
        /// The session with this id (`sessions list` shows it).
        #[arg(long)]
        id: Option<u64>,
    },
}

/// How a command ended, mapped to the exit status.
enum Failure {
    /// The daemon answered with an error status.
    Refused,
    /// No usable answer: not reachable, timed out, or not the API's JSON.
    Unreachable,
}

impl Failure {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self::Refused => ExitCode::from(1),
            Self::Unreachable => ExitCode::from(2),
        }
    }
}

/// One conversation with the daemon.
struct Session {
    client: Client,
    address: String,
    json: bool,
    runtime: tokio::runtime::Runtime,
}

pub fn run(args: &CtlArgs) -> ExitCode {
    let session = match Session::open(args) {
        Ok(session) => session,
        Err(error) => {
            eprintln!("vipd ctl: {error:#}");
            return ExitCode::from(2);
        }
    };
    let outcome = match &args.command {
        CtlCommand::Server(command) => session.server(command),
        CtlCommand::Maintenance { state, instances } => {
            session.maintenance(matches!(state, OnOff::On), instances)
        }
        CtlCommand::Sessions(command) => session.sessions(command),
    };
    outcome.map_or_else(|failure| failure.exit_code(), |()| ExitCode::SUCCESS)
}

impl Session {
    fn open(args: &CtlArgs) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let settings = control_from_config(args.config.as_deref(), "vipd ctl");
        let address = args.control.as_deref().map_or_else(
            || settings.address.to_string(),
            super::status::control_option,
        );
        let mut client = Client::new()
            .header("Accept", "application/json")
            .header("Content-Type", "application/json")
            .timeout(REQUEST_TIMEOUT);
        if let Some(path) = args.token_file.as_ref().or(settings.token_file.as_ref()) {
            client = client.bearer(&crate::cli::run::read_token_file(path)?);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        Ok(Self {
            client,
            address,
            json: args.json,
            runtime,
        })
    }

    /// Sends one request; the body of a 200 answer. Anything else is reported here.
    fn call(&self, method: &str, path: &str, body: &str) -> Result<Vec<u8>, Failure> {
        let sent =
            self.runtime.block_on(
                self.client
                    .send(method, &self.address, path, body.as_bytes()),
            );
        match sent {
            Ok(Response {
                status: 200, body, ..
            }) => Ok(body),
            Ok(response) => {
                let message = serde_json::from_slice::<serde_json::Value>(&response.body)
                    .ok()
                    .and_then(|value| value["error"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| response.text());
                if self.json {
                    println!("{}", response.text().trim_end());
                }
                eprintln!(
                    "vipd ctl: {method} {path}: refused ({} {}): {message}",
                    response.status, response.reason
                );
                Err(Failure::Refused)
            }
            Err(HttpError::Connect { address, source }) => {
                eprintln!("vipd ctl: cannot connect to {address} (is vipd running?): {source}");
                Err(Failure::Unreachable)
            }
            Err(error) => {
                eprintln!("vipd ctl: {method} http://{}{path}: {error}", self.address);
                Err(Failure::Unreachable)
            }
        }
    }

    /// Prints an answer: as it came with `--json`, else `human` of it.
    fn print(&self, body: &[u8], human: impl FnOnce(&serde_json::Value) -> String) {
        if self.json {
            println!("{}", String::from_utf8_lossy(body).trim_end());
            return;
        }
        let value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
        print!("{}", human(&value));
    }

    fn server(&self, command: &ServerCommand) -> Result<(), Failure> {
        let (method, backend, server, action, body) = match command {
            ServerCommand::Drain { backend, server } => ("POST", backend, server, "drain", ""),
            ServerCommand::Disable { backend, server } => ("POST", backend, server, "disable", ""),
            ServerCommand::Enable { backend, server } => ("POST", backend, server, "enable", ""),
            ServerCommand::Weight {
                backend,
                server,
                weight: Weight::Reset,
            } => ("DELETE", backend, server, "weight", ""),
            ServerCommand::Weight {
                backend,
                server,
                weight: Weight::Set(weight),
            } => {
                let path = server_path(backend, server, "weight");
                let body = self.call("PUT", &path, &format!("{{\"weight\": {weight}}}"))?;
                self.print(&body, |_| {
                    format!("{backend}/{server}: weight {weight} (until `weight ... reset`)\n")
                });
                return Ok(());
            }
        };
        let body = self.call(method, &server_path(backend, server, action), body)?;
        self.print(&body, |answer| {
            let done = match answer["action"].as_str().unwrap_or(action) {
                "drain" => "draining: no new sessions, established ones continue",
                "disable" => "disabled: no new sessions, established ones continue",
                "enable" => "enabled: back in service",
                "reset_weight" => "weight reset to the configuration's",
                other => other,
            };
            format!("{backend}/{server}: {done}\n")
        });
        Ok(())
    }

    /// Every named instance or announce group, or every one of the node; all are tried, the
    /// first failure decides the exit status. `--json` prints one array of the answers.
    fn maintenance(&self, on: bool, named: &[String]) -> Result<(), Failure> {
        let body = self.call("GET", "/status", "")?;
        let status: NodeStatus = serde_json::from_slice(&body).map_err(|error| {
            eprintln!("vipd ctl: /status is not vipd's status JSON: {error}");
            Failure::Unreachable
        })?;
        let is_group = |name: &str| status.announce.iter().any(|group| group.name == name);
        let targets: Vec<String> = if named.is_empty() {
            let instances = status.instances.iter().map(|instance| &instance.name);
            let groups = status.announce.iter().map(|group| &group.name);
            instances.chain(groups).cloned().collect()
        } else {
            named.to_vec()
        };
        let mut answers = Vec::new();
        let mut failure = None;
        for name in &targets {
            let (kind, collection) = if is_group(name) {
                ("announce group", "announce")
            } else {
                ("instance", "instances")
            };
            let path = format!("/api/v1/{collection}/{}/maintenance", path_segment(name));
            match self.call("POST", &path, &format!("{{\"enabled\": {on}}}")) {
                Ok(body) => {
                    answers.push(serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null));
                    if !self.json {
                        let state = if on { "on" } else { "off" };
                        println!("{kind} {name}: maintenance {state}");
                    }
                }
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        if self.json {
            println!("{}", serde_json::Value::Array(answers));
        } else if targets.is_empty() {
            println!("no vrrp instances or announce groups on this node");
        }
        failure.map_or(Ok(()), Err)
    }

    fn sessions(&self, command: &SessionsCommand) -> Result<(), Failure> {
        match command {
            SessionsCommand::List { backend, server } => {
                let path = match server {
                    Some(server) => server_path(backend, server, "sessions"),
                    None => format!("/api/v1/backends/{}/sessions", path_segment(backend)),
                };
                let body = self.call("GET", &path, "")?;
                if self.json {
                    println!("{}", String::from_utf8_lossy(&body).trim_end());
                    return Ok(());
                }
                let list: SessionList = serde_json::from_slice(&body).map_err(|error| {
                    eprintln!("vipd ctl: the answer is not a session list: {error}");
                    Failure::Unreachable
                })?;
                print!("{}", session_table(&list));
                Ok(())
            }
            SessionsCommand::Kill {
                backend,
                server,
                all,
                client,
                id,
            } => {
                let request = if *all {
                    serde_json::json!({ "all": true })
                } else if let Some(client) = client {
                    serde_json::json!({ "client": client })
                } else {
                    serde_json::json!({ "id": id })
                };
                let path = server_path(backend, server, "sessions/kill");
                let body = self.call("POST", &path, &request.to_string())?;
                self.print(&body, |answer| {
                    format!(
                        "{backend}/{server}: {} session(s) killed\n",
                        answer["killed"].as_u64().unwrap_or(0)
                    )
                });
                Ok(())
            }
        }
    }
}

fn server_path(backend: &str, server: &str, action: &str) -> String {
    format!(
        "/api/v1/servers/{}/{}/{action}",
        path_segment(backend),
        path_segment(server)
    )
}

/// A name as one path segment: configuration names are letters, digits, `-`, `_` and `.`, but a
/// mistyped argument must not turn into another path.
fn path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// `ID  CLIENT  FRONTEND  SERVER  AGE  BYTES IN  BYTES OUT`, or a line saying there are none.
fn session_table(list: &SessionList) -> String {
    if list.sessions.is_empty() {
        return "no sessions\n".to_owned();
    }
    let mut table = TextTable::new(&[
        "ID",
        "CLIENT",
        "FRONTEND",
        "BACKEND",
        "SERVER",
        "AGE",
        "BYTES IN",
        "BYTES OUT",
    ]);
    for session in &list.sessions {
        table.push(vec![
            session.id.to_string(),
            session.client.clone(),
            session.frontend.clone(),
            session.backend.clone(),
            session.server.clone(),
            duration_text(session.age_seconds),
            session.bytes_in.to_string(),
            session.bytes_out.to_string(),
        ]);
    }
    let mut out = String::new();
    table.render(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::tests::fake_session;

    #[test]
    fn names_cannot_escape_their_path_segment() {
        assert_eq!(path_segment("web-1_a.b"), "web-1_a.b");
        assert_eq!(path_segment("../x y"), "..%2Fx%20y");
        assert_eq!(
            server_path("web", "b/1", "drain"),
            "/api/v1/servers/web/b%2F1/drain"
        );
    }

    #[test]
    fn weights_are_numbers_or_reset() {
        assert!(matches!(parse_weight("7"), Ok(Weight::Set(7))));
        assert!(matches!(parse_weight("reset"), Ok(Weight::Reset)));
        assert!(parse_weight("-1").is_err());
        assert!(parse_weight("heavy").is_err());
    }

    #[test]
    fn sessions_print_as_a_table() {
        let list = SessionList {
            sessions: vec![fake_session()],
        };
        assert_eq!(
            session_table(&list),
            "ID  CLIENT              FRONTEND   BACKEND     SERVER  AGE   BYTES IN  BYTES OUT\n\
             17  198.51.100.7:40000  apiserver  apiservers  cp1     2.5s  100       2000\n"
        );
        assert_eq!(
            session_table(&SessionList {
                sessions: Vec::new()
            }),
            "no sessions\n"
        );
    }
}
