//! The `bulwark` command: `bulwark serve` runs the API; `bulwark checkpoints` works on a
//! checkpoint folder offline.

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "bulwark",
    version,
    about = "Hardening for multi-agent LLM backends"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the observability API and the workflow endpoint.
    Serve(bulwark_server::serve::ServeArgs),
    /// Inspect and maintain a checkpoint folder offline.
    Checkpoints(bulwark_server::cli::checkpoints::CheckpointsArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => {
            let config = args.config()?;
            let telemetry = bulwark_server::serve::init_telemetry(&config)?;
            if args.token_on_command_line() {
                tracing::warn!(
                    "--token is visible to every user in the process list; \
                     use --token-file or BULWARK_TOKEN instead"
                );
            }
            bulwark_server::serve::run(config, &telemetry).await
        }
        Command::Checkpoints(args) => {
            // Logs go to stderr so that stdout (`--json`) stays parseable.
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_env_filter(
                    EnvFilter::try_from_env("BULWARK_LOG")
                        .unwrap_or_else(|_| EnvFilter::new("info")),
                )
                .init();
            bulwark_server::cli::checkpoints::run(args).await
        }
    }
}
