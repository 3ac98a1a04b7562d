//! `maph-server`: serves a directory of maph stores over HTTP as their single writer.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use maph_server::{init_logging, run_until_signal, ServeArgs};

/// Serve a directory of maph stores over HTTP. The server is the single writer
/// of every store it serves; local programs read the same files directly.
#[derive(Parser, Debug)]
#[command(name = "maph-server", version)]
struct Args {
    /// Directory of stores (`<name>.maph`), created if missing.
    #[arg(long, env = "MAPH_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    #[command(flatten)]
    serve: ServeArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    let result = args
        .serve
        .into_config(args.data_dir)
        .map_err(|e| e.to_string())
        .and_then(|config| run_until_signal(config).map_err(|e| e.to_string()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("maph-server: {message}");
            ExitCode::FAILURE
        }
    }
}
