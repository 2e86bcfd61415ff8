//! The `bulwark` command: `bulwark serve` runs the observability API.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
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
    /// Run the observability API.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "BULWARK_LISTEN", default_value = "127.0.0.1:8000")]
        listen: SocketAddr,
        /// Folder for checkpoints and other embedded state.
        #[arg(long, env = "BULWARK_DATA_DIR", default_value = "./bulwark-data")]
        data_dir: PathBuf,
    },
    /// Inspect and maintain a checkpoint folder offline.
    Checkpoints(bulwark_server::cli::checkpoints::CheckpointsArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("BULWARK_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Serve { listen, data_dir } => serve(listen, data_dir).await,
        Command::Checkpoints(args) => bulwark_server::cli::checkpoints::run(args).await,
    }
}

async fn serve(listen: SocketAddr, data_dir: PathBuf) -> anyhow::Result<()> {
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let app = bulwark_server::router(bulwark_server::AppState::new(data_dir));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(address = %listener.local_addr()?, "bulwark serving /api/observability");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server failed")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
