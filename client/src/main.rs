//! harbour: parse the command line, run the command, map the outcome to an
//! exit status (0 success, 2 usage, 1 anything else) and one `error:` line.

mod bench;
mod cli;
mod commands;
mod docs;
mod error;
mod mount;
mod naming_client;
mod output;
mod progress;

use std::process::ExitCode;

fn main() -> ExitCode {
    let outcome = cli::parse(pico_args::Arguments::from_env()).and_then(commands::run);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
