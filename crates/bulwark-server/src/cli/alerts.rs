//! `bulwark alerts export-rules`: the config's alert rules as a Prometheus rule file.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::config::Config;

/// `bulwark alerts ...`
#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AlertsCommand,
}

/// The alerts subcommands.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Write the `[alerting]` rules as a Prometheus rule file (YAML) whose expressions
    /// compute the same conditions over the `/metrics` series.
    ExportRules {
        /// The config file holding `[[alerting.rules]]`.
        #[arg(long, env = "BULWARK_CONFIG")]
        config: PathBuf,
        /// Write here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// The rule group's name.
        #[arg(long, default_value = "bulwark")]
        group: String,
    },
}

/// Runs an alerts subcommand.
pub fn run(args: AlertsArgs) -> anyhow::Result<()> {
    match args.command {
        AlertsCommand::ExportRules {
            config,
            output,
            group,
        } => {
            let config = Config::from_file(&config)?;
            let rules = config.alerting.rules()?;
            let text = bulwark::alerting::export::prometheus_rules(
                &rules,
                &group,
                config.alerting.interval()?,
            );
            match output {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => std::io::stdout().lock().write_all(text.as_bytes())?,
            }
            Ok(())
        }
    }
}
