//! `vipd man DIR` and `vipd completions SHELL`: the man pages and the shell completions, generated
//! from the command line's own definition (clap_mangen, clap_complete), so they cannot drift from
//! it. Packagers call them at build time (the .deb does).
//!
//! `vipd man DIR` writes `vipd.8` and one page per subcommand, `vipd-run.8`, `vipd-check.8`, ...
//! (section 8, system daemons, as keepalived(8)), creates DIR when missing and prints each path
//! written, one per line. The top page adds what an operator looks for in a daemon's page and
//! clap cannot know: the files, the environment, the signals, the exit status; its text follows
//! docs/operations.md and docs/configuration.md, which hold the details.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

/// The manual section of every page: system administration commands and daemons.
const SECTION: &str = "8";
const MANUAL: &str = "System Manager's Manual";
/// Where the package puts the documentation: the configuration reference, the operations guide,
/// the metrics and the example configurations.
const DOC_DIRECTORY: &str = "/usr/share/doc/vipd/";

#[derive(Args)]
pub struct ManArgs {
    /// The directory to write the pages into; created when missing.
    #[arg(value_name = "DIR")]
    directory: PathBuf,
}

#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    shell: Shell,
}

/// The shells whose completion scripts vipd prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// One man page: its file name (`vipd-run.8`) and its roff source.
pub struct Page {
    pub file_name: String,
    pub source: String,
}

pub fn write_pages(args: &ManArgs, command: clap::Command) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.directory)
        .with_context(|| format!("creating {}", args.directory.display()))?;
    let mut stdout = std::io::stdout().lock();
    for page in pages(command) {
        let path = args.directory.join(&page.file_name);
        write_page(&path, &page.source)?;
        writeln!(stdout, "{}", path.display()).context("writing to standard output")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn write_page(path: &Path, source: &str) -> anyhow::Result<()> {
    std::fs::write(path, source).with_context(|| format!("writing {}", path.display()))
}

pub fn print_completions(
    args: &CompletionsArgs,
    mut command: clap::Command,
) -> anyhow::Result<ExitCode> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let name = command.get_name().to_owned();
    // Into memory first: clap_complete panics on a failed write, and stdout may be a closed pipe.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut script);
    std::io::stdout()
        .write_all(&script)
        .context("writing the completion script")?;
    Ok(ExitCode::SUCCESS)
}

/// vipd(8) first, then one page per subcommand that `--help` lists.
pub fn pages(command: clap::Command) -> Vec<Page> {
    // `vipd help` is clap's own: `--help` covers it, and it gets no page.
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let subcommands: Vec<clap::Command> = command
        .get_subcommands()
        .filter(|subcommand| !subcommand.is_hide_set())
        .cloned()
        .collect();
    let mut page_names: Vec<String> = subcommands
        .iter()
        .map(|subcommand| display_name(subcommand).to_owned())
        .collect();
    page_names.insert(0, command.get_name().to_owned());

    let mut pages = vec![Page {
        file_name: format!("{}.{SECTION}", command.get_name()),
        source: top_page(command, &page_names[1..]),
    }];
    for subcommand in subcommands {
        let name = display_name(&subcommand).to_owned();
        let see_also: Vec<&str> = page_names
            .iter()
            .map(String::as_str)
            .filter(|other| *other != name)
            .collect();
        pages.push(Page {
            file_name: format!("{name}.{SECTION}"),
            source: subcommand_page(subcommand, &see_also),
        });
    }
    pages
}

/// `vipd-run` for `run`: clap names a built subcommand after its parent.
fn display_name(command: &clap::Command) -> &str {
    command
        .get_display_name()
        .unwrap_or_else(|| command.get_name())
}

fn man(command: clap::Command) -> Man {
    Man::new(command)
        .section(SECTION)
        .date(env!("VIPD_BUILD_DATE"))
        .source(format!("vipd {}", env!("CARGO_PKG_VERSION")))
        .manual(MANUAL)
}

fn top_page(command: clap::Command, subcommand_pages: &[String]) -> String {
    let man = man(command);
    let mut page = Vec::new();
    let clap_sections = [
        Man::render_title,
        Man::render_name_section,
        Man::render_synopsis_section,
    ];
    for render in clap_sections {
        render(&man, &mut page).expect("writing to a Vec");
    }
    description()
        .to_writer(&mut page)
        .expect("writing to a Vec");
    man.render_options_section(&mut page)
        .expect("writing to a Vec");
    man.render_subcommands_section(&mut page)
        .expect("writing to a Vec");
    let mut extra = Roff::new();
    definitions(&mut extra, "FILES", &FILES);
    definitions(&mut extra, "ENVIRONMENT", &ENVIRONMENT);
    definitions(&mut extra, "SIGNALS", &SIGNALS);
    definitions(&mut extra, "EXIT STATUS", &EXIT_STATUS);
    let mut others: Vec<String> = subcommand_pages
        .iter()
        .map(|name| format!("{name}({SECTION})"))
        .collect();
    others.extend(["keepalived(8)", "haproxy(1)", "systemd.service(5)"].map(str::to_owned));
    see_also(&mut extra, &others);
    extra.to_writer(&mut page).expect("writing to a Vec");
    String::from_utf8(page).expect("roff is written from UTF-8 text")
}

fn subcommand_page(command: clap::Command, others: &[&str]) -> String {
    let mut page = Vec::new();
    man(command).render(&mut page).expect("writing to a Vec");
    let mut extra = Roff::new();
    let others: Vec<String> = others
        .iter()
        .map(|name| format!("{name}({SECTION})"))
        .collect();
    see_also(&mut extra, &others);
    extra.to_writer(&mut page).expect("writing to a Vec");
    String::from_utf8(page).expect("roff is written from UTF-8 text")
}

fn description() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["DESCRIPTION"]);
    for (index, paragraph) in DESCRIPTION.iter().enumerate() {
        if index > 0 {
            roff.control("PP", []);
        }
        roff.text([roman(*paragraph)]);
    }
    roff
}

/// A section of tagged paragraphs: each term in bold, its meaning below.
fn definitions(roff: &mut Roff, heading: &str, entries: &[(&str, &str)]) {
    roff.control("SH", [heading]);
    for (term, meaning) in entries {
        roff.control("TP", []);
        roff.text([bold(*term)]);
        roff.text([roman(*meaning)]);
    }
}

fn see_also(roff: &mut Roff, pages: &[String]) {
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(pages.join(", "))]);
    roff.control("PP", []);
    roff.text([
        roman("The configuration reference, the operations guide and the metrics: "),
        italic(DOC_DIRECTORY),
        roman("."),
    ]);
}

const DESCRIPTION: [&str; 4] = [
    "vipd keeps virtual IP addresses (VIPs) highly available and serves them, in one daemon per \
     load-balancer node: it replaces keepalived and HAProxy on a pair of load balancers. Its VRRP \
     (versions 2 and 3, IPv4 and IPv6, multicast or unicast; on the wire with keepalived) elects \
     one master per virtual router, which holds the VIPs and announces them with gratuitous ARP \
     and unsolicited neighbour advertisements. Its layer-4 proxy accepts TCP connections on the \
     frontends and forwards them to the servers of a backend, with health checks, balancing, \
     the PROXY protocol and a drain on stop.",
    "Trackers (the proxy's own frontends, scripts, interfaces, files) lower a node's priority, \
     or put an instance in Fault, when what the node serves is broken, so that a VIP moves to a \
     node that can serve it. A reload applies the difference: instances and frontends that did \
     not change keep running, with their sessions.",
    "vipd run is the daemon, usually started by systemd as the vipd user with CAP_NET_ADMIN, \
     CAP_NET_RAW and CAP_NET_BIND_SERVICE. The other subcommands check a configuration, reload \
     the daemon, show its status, act on it (drain a server, maintenance), translate a \
     keepalived.conf and haproxy.cfg, and clean up after a daemon that died.",
    "A control server (control.listen, by default 127.0.0.1:9650) serves GET /status (JSON), \
     GET /metrics (Prometheus), a dashboard, and the admin actions under /api/v1, which need the \
     bearer token of control.token_file when it is set.",
];

const FILES: [(&str, &str); 6] = [
    (
        "/etc/vipd/vipd.yaml",
        "The configuration, read by vipd run, check, reload and release (-c FILE chooses another). \
         vipd check validates a file before it is installed or reloaded.",
    ),
    (
        "/etc/vipd/token",
        "The bearer token of the admin API, where the shipped configurations' control.token_file \
         points; mode 0640, owner root, group vipd. Rewrite it and reload to rotate it.",
    ),
    (
        "$STATE_DIRECTORY/admin-state.json",
        "Drained, disabled and re-weighted servers and instances in maintenance, kept across \
         restarts (/var/lib/vipd/admin-state.json under the unit's StateDirectory=vipd). Without \
         STATE_DIRECTORY the admin state is kept in memory only.",
    ),
    (
        "/run/vipd/maintenance",
        "The maintenance flag of the shipped configurations: a file tracker with weight -100. \
         Write 1 to hand the node's VIPs to its peer, 0 to take them back.",
    ),
    (
        "$RUNTIME_DIRECTORY/vipd.status.json, $RUNTIME_DIRECTORY/vipd.stats",
        "The status (SIGUSR1) and statistics (SIGUSR2) dumps; /run/vipd when RUNTIME_DIRECTORY is \
         unset, as under the shipped unit's RuntimeDirectory=vipd.",
    ),
    (
        DOC_DIRECTORY,
        "The configuration reference, the operations guide, the metrics and example \
         configurations for an active-standby and an active-active pair.",
    ),
];

const ENVIRONMENT: [(&str, &str); 6] = [
    (
        "VIPD_LOG",
        "A log filter in tracing's syntax (info, vipd=debug, ...); an invalid one is ignored with \
         a warning.",
    ),
    (
        "STATE_DIRECTORY",
        "Where admin-state.json is kept (systemd sets it from StateDirectory=).",
    ),
    (
        "RUNTIME_DIRECTORY",
        "Where the SIGUSR1 and SIGUSR2 dumps are written (systemd sets it from RuntimeDirectory=).",
    ),
    (
        "NOTIFY_SOCKET",
        "systemd's notification socket (sd_notify(3)): vipd run reports when it serves, reloads \
         and stops.",
    ),
    (
        "WATCHDOG_USEC",
        "systemd's watchdog period in microseconds (WatchdogSec=): vipd run sends WATCHDOG=1 \
         every quarter of it while every VRRP instance has run within half of it, and withholds \
         it otherwise, so that systemd kills a hung daemon. Unset or 0: no keep-alives.",
    ),
    (
        "WATCHDOG_PID",
        "The process the watchdog is for: when set and not vipd's own PID, WATCHDOG_USEC is \
         ignored (sd_watchdog_enabled(3)).",
    ),
];

const SIGNALS: [(&str, &str); 6] = [
    (
        "SIGHUP",
        "Reload the configuration by difference; a file that vipd check would refuse is rejected \
         and nothing changes. vipd reload sends it and reports the daemon's verdict.",
    ),
    (
        "SIGTERM, SIGINT",
        "Stop: every VIP is released with a priority-0 advertisement, so the peer takes over \
         within its Skew_Time, then proxy sessions drain for up to shutdown_grace. A second \
         SIGTERM or SIGINT during the drain cuts it short.",
    ),
    (
        "SIGUSR1",
        "Write the status, as GET /status, to the log and to $RUNTIME_DIRECTORY/vipd.status.json.",
    ),
    (
        "SIGUSR2",
        "Write the statistics, as GET /metrics, to $RUNTIME_DIRECTORY/vipd.stats.",
    ),
    (
        "other signals",
        "Any other signal that would end or stop the process (SIGQUIT, SIGTSTP, SIGALRM, the \
         real-time signals, ...) is logged and ignored: a stray signal must not take a master \
         down. SIGKILL and a crash cannot be caught; vipd release cleans up after them.",
    ),
    (
        "SIGSTOP",
        "Stops vipd like any process; its peer takes over after Master_Down_Interval.",
    ),
];

const EXIT_STATUS: [(&str, &str); 3] = [
    (
        "0",
        "Success: vipd run stopped by a signal after its release and drain; vipd check found a \
         valid file; vipd reload saw the whole file applied; vipd ctl's action was done.",
    ),
    (
        "1",
        "Failure, said on standard error: vipd run could not start (an invalid configuration, a \
         socket it could not open); vipd check found errors (or warnings, with --strict); the \
         daemon rejected a reload or applied it only in part; vipd status or reload could not \
         reach the daemon; the daemon refused vipd ctl's action.",
    ),
    (
        "2",
        "A usage error (an unknown subcommand, option or value), or vipd ctl could not reach the \
         daemon.",
    ),
];

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;
    use crate::Cli;

    fn page<'a>(pages: &'a [Page], file_name: &str) -> &'a str {
        &pages
            .iter()
            .find(|page| page.file_name == file_name)
            .unwrap_or_else(|| panic!("no page {file_name}"))
            .source
    }

    #[test]
    fn every_listed_subcommand_has_a_page_in_section_8() {
        let pages = pages(Cli::command());
        let command = Cli::command();
        let listed: Vec<&str> = command
            .get_subcommands()
            .filter(|subcommand| !subcommand.is_hide_set())
            .map(clap::Command::get_name)
            .collect();
        assert!(
            listed.contains(&"run") && listed.contains(&"man"),
            "{listed:?}"
        );
        let mut expected: Vec<String> =
            listed.iter().map(|name| format!("vipd-{name}.8")).collect();
        expected.insert(0, "vipd.8".to_owned());
        let written: Vec<&str> = pages.iter().map(|page| page.file_name.as_str()).collect();
        assert_eq!(written, expected);
        for page in &pages {
            assert!(page.source.contains(".TH "), "{}", page.file_name);
            assert!(page.source.contains(" 8 "), "{}: section 8", page.file_name);
        }
    }

    #[test]
    fn the_top_page_has_the_sections_of_a_daemon() {
        let pages = pages(Cli::command());
        let top = page(&pages, "vipd.8");
        for heading in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "SUBCOMMANDS",
            "FILES",
            "ENVIRONMENT",
            "SIGNALS",
            "\"EXIT STATUS\"",
            "\"SEE ALSO\"",
        ] {
            assert!(
                top.contains(&format!(".SH {heading}\n")),
                "no {heading}:\n{top}"
            );
        }
        for named in [
            "/etc/vipd/vipd.yaml",
            "admin\\-state.json",
            "/run/vipd/maintenance",
            "SIGHUP",
            "SIGUSR2",
            "vipd\\-run(8)",
            "/usr/share/doc/vipd/",
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
        ] {
            assert!(top.contains(named), "{named} missing:\n{top}");
        }
    }

    #[test]
    fn a_subcommand_page_has_its_options_and_points_to_the_others() {
        let pages = pages(Cli::command());
        let check = page(&pages, "vipd-check.8");
        assert!(check.contains("\\-\\-strict"), "{check}");
        assert!(check.contains("vipd(8), vipd\\-run(8)"), "{check}");
        assert!(
            !check.contains("vipd\\-check(8)"),
            "a page does not name itself:\n{check}"
        );
    }

    #[test]
    fn the_version_names_the_source_revision() {
        let version = Cli::command().render_version();
        assert!(
            version.starts_with(&format!("vipd {} (", env!("CARGO_PKG_VERSION"))),
            "{version}"
        );
        assert!(version.contains(env!("VIPD_BUILD_REVISION")), "{version}");
    }
}
