//! The `bulwark` command: `bulwark serve` runs the API; `bulwark checkpoints` works on a
//! checkpoint folder offline; `bulwark alerts export-rules` writes the alert rules for
//! Prometheus.

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
    /// Work with alert rules (`export-rules` writes them for Prometheus).
    Alerts(bulwark_server::cli::alerts::AlertsArgs),
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
        Command::Alerts(args) => bulwark_server::cli::alerts::run(args),
    }
}
