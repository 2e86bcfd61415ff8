//! The `bulwark` command: `bulwark serve` runs the API.

use clap::{Parser, Subcommand};

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => {
            let config = args.config()?;
            bulwark_server::serve::init_logging(&config)?;
            bulwark_server::serve::run(config).await
        }
    }
}
