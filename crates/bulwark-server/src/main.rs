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
            bulwark_server::serve::run(config, &telemetry).await
        }
        Command::Checkpoints(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    EnvFilter::try_from_env("BULWARK_LOG")
                        .unwrap_or_else(|_| EnvFilter::new("info")),
                )
                .init();
            bulwark_server::cli::checkpoints::run(args).await
        }
    }
}
