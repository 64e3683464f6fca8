//! `vipd lab` in a build without the lab (`cargo build --no-default-features`): the subcommand
//! is hidden from the help and the man pages, and says what is missing rather than failing as an
//! unknown command.

use std::process::ExitCode;

use clap::Args;

#[derive(Args)]
pub struct LabArgs {
    /// Whatever was given: the lab's options mean nothing here.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _ignored: Vec<String>,
}

pub fn run() -> ExitCode {
    eprintln!(
        "vipd lab: this vipd was built without the lab (cargo feature `lab`); \
         run ./lab from a source checkout, or build vipd with its default features"
    );
    ExitCode::FAILURE
}
