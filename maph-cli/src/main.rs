//! `maph`: the command line for maph stores.

mod cli;
mod commands;
mod error;
mod output;
mod race;
mod strategy;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use error::{CliError, CliResult};
use output::Output;
use strategy::WriterOptions;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print as usual.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            eprintln!("maph: {}", one_line(&e.render().to_string()));
            return ExitCode::from(error::EXIT_ERROR);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("maph: {e}");
            ExitCode::from(e.code)
        }
    }
}

fn run(cli: Cli) -> CliResult {
    let out = Output { json: cli.json };
    let options = WriterOptions { redis_url: cli.redis_url, single_host_network_fs: cli.single_host_network_fs };
    match cli.command {
        Command::Create { path, slots, slot_size, max_probes, strategy, sparse } => {
            commands::create(out, &path, slots, slot_size, max_probes, strategy, sparse)
        }
        Command::NewId { path } => commands::new_id(out, &path),
        Command::Migrate { old, new } => commands::migrate(out, &old, &new),
        Command::Get { path, key } => commands::get(out, &path, &key),
        Command::Set { path, key, value } => commands::set(out, &options, &path, &key, value),
        Command::Del { path, key } => commands::del(out, &options, &path, &key),
        Command::Stats { path } => commands::stats(out, &path),
        Command::Scan { path, limit } => commands::scan(out, &path, limit),
        Command::Verify { path, repair } => commands::verify(out, &options, &path, repair),
        Command::Serve { dir, args } => {
            let config = args.into_config(dir).map_err(CliError::new)?;
            maph_server::init_logging();
            maph_server::run_until_signal(config).map_err(|e| CliError::new(e.to_string()))
        }
        Command::Race { strategy, procs, increments, key, path } => {
            race::race(out, &options, strategy, procs, increments, &key, &path)
        }
        Command::RaceWorker { increments, key, path } => race::worker(&options, increments, &key, &path),
    }
}

/// clap's usage errors span several lines; errors here are one line.
fn one_line(text: &str) -> String {
    let joined = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
    joined.strip_prefix("error: ").unwrap_or(&joined).to_string()
}
