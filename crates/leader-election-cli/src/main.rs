#![doc = include_str!("../README.md")]

use std::process::ExitCode;

use clap::Parser;

mod backend;
mod child;
mod cli;
mod observe;
mod run;

use backend::{options, with_factory, CliError};
use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LEADER_ELECTION_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("leader-election: cannot start the runtime: {e}");
            return ExitCode::from(cli::EXIT_FAILURE);
        }
    };
    let result: Result<u8, CliError> = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => {
                let options = options(&args.timing)?;
                with_factory(&args.target.clone(), options, args).await
            }
            Command::Status(args) => {
                let options = options(&args.timing)?;
                with_factory(&args.target.clone(), options, args).await
            }
            Command::Watch(args) => {
                let options = options(&args.status.timing)?;
                with_factory(&args.status.target.clone(), options, args).await
            }
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("leader-election: {}", error.message);
            ExitCode::from(error.code)
        }
    }
}
