//! The subcommands' front-ends: each parses its arguments, does its one job and returns an exit
//! status. Only `run` starts the daemon (crate::daemon); the others read files, talk to a running
//! daemon's control server (`reload` signals it too), build a lab, or (`release`) clean up after
//! a daemon that died; `man` and `completions` describe the command line itself.

pub mod check;
pub mod ctl;
pub mod import;
#[cfg(feature = "lab")]
pub mod lab;
pub mod logging;
pub mod manual;
pub mod release;
pub mod reload;
pub mod run;
pub mod status;
#[cfg(not(feature = "lab"))]
pub mod without_lab;
