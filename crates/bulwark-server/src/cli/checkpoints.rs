//! `bulwark checkpoints ls | show | verify | rm | cleanup`: inspect and maintain a checkpoint
//! folder without a running server.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use bulwark::checkpoint::{
    CheckpointId, CheckpointMetadata, ListFilter, RetentionPolicy, StateCheckpointManager,
};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

/// The default checkpoint folder: the `checkpoints` subfolder of the default data dir, the same
/// place `bulwark serve` uses.
pub const DEFAULT_DIR: &str = "./bulwark-data/checkpoints";

/// `bulwark checkpoints ...`
#[derive(Debug, Args)]
pub struct CheckpointsArgs {
    /// The checkpoint folder.
    #[arg(long, global = true, env = "BULWARK_CHECKPOINT_DIR", default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: CheckpointsCommand,
}

/// The checkpoint subcommands.
#[derive(Debug, Subcommand)]
pub enum CheckpointsCommand {
    /// List checkpoints, newest first.
    Ls {
        /// Only this agent's.
        #[arg(long)]
        agent: Option<String>,
        /// Only this workflow's.
        #[arg(long)]
        workflow: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Show one checkpoint's metadata (and, with --state, its state).
    Show {
        /// The checkpoint id.
        id: String,
        /// Also print the (verified) state.
        #[arg(long)]
        state: bool,
    },
    /// Verify one checkpoint, or all of them; exits non-zero when any is corrupt.
    Verify {
        /// The checkpoint id; all checkpoints when left out.
        id: Option<String>,
    },
    /// Delete one checkpoint.
    Rm {
        /// The checkpoint id.
        id: String,
    },
    /// Remove old checkpoints; a workflow's newest valid checkpoint is always kept.
    Cleanup {
        /// Keep the newest N checkpoints of each (agent, workflow).
        #[arg(long)]
        keep: usize,
        /// Also remove checkpoints older than this (e.g. "7d", "12h").
        #[arg(long, value_parser = humantime::parse_duration)]
        max_age: Option<Duration>,
        /// Also keep the total stored size under this many bytes.
        #[arg(long)]
        max_total_bytes: Option<u64>,
        /// Only report what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

fn parse_id(text: &str) -> anyhow::Result<CheckpointId> {
    text.parse::<CheckpointId>().map_err(anyhow::Error::from)
}

fn progress_bar(len: usize, what: &str) -> ProgressBar {
    // Drawn on stderr, and only when stderr is a terminal.
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// A progress callback (`done` of `total`) that moves `bar`.
fn advance(bar: &ProgressBar) -> impl Fn(usize, usize) + '_ {
    |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    }
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn created(meta: &CheckpointMetadata) -> String {
    humantime::format_rfc3339_seconds(meta.created_at).to_string()
}

/// Runs a checkpoints subcommand, printing to stdout.
pub async fn run(args: CheckpointsArgs) -> anyhow::Result<()> {
    if !args.dir.is_dir() {
        bail!("no checkpoint folder at {}", args.dir.display());
    }
    let manager = StateCheckpointManager::open(&args.dir)
        .await
        .with_context(|| format!("cannot open checkpoints in {}", args.dir.display()))?;
    let mut out = std::io::stdout().lock();
    match args.command {
        CheckpointsCommand::Ls {
            agent,
            workflow,
            limit,
        } => {
            let mut filter = ListFilter::all().newest_first();
            filter.agent_id = agent;
            filter.workflow_id = workflow;
            filter.limit = limit;
            let items = manager.list(&filter).await?.items;
            if args.json {
                serde_json::to_writer_pretty(&mut out, &items)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{:<36}  {:<16}  {:<16}  {:>5}  {:<20}  {:>10}  {:>10}  CODEC",
                    "ID", "AGENT", "WORKFLOW", "SEQ", "CREATED", "STORED", "STATE"
                )?;
                for m in &items {
                    writeln!(
                        out,
                        "{:<36}  {:<16}  {:<16}  {:>5}  {:<20}  {:>10}  {:>10}  {}",
                        m.id,
                        m.agent_id,
                        m.workflow_id,
                        m.sequence,
                        created(m),
                        human_bytes(m.stored_size),
                        human_bytes(m.uncompressed_size),
                        m.codec
                    )?;
                }
            }
        }
        CheckpointsCommand::Show { id, state } => {
            let id = parse_id(&id)?;
            if state {
                let (metadata, state) = manager.load_json(&id).await?;
                let shown = serde_json::json!({ "metadata": metadata, "state": state });
                serde_json::to_writer_pretty(&mut out, &shown)?;
            } else {
                serde_json::to_writer_pretty(&mut out, &manager.metadata(&id).await?)?;
            }
            writeln!(out)?;
        }
        CheckpointsCommand::Verify { id: Some(id) } => {
            let id = parse_id(&id)?;
            let meta = manager.verify(&id).await?;
            if args.json {
                serde_json::to_writer_pretty(&mut out, &meta)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "ok {id} ({}, sha256 {})",
                    human_bytes(meta.uncompressed_size),
                    meta.sha256
                )?;
            }
        }
        CheckpointsCommand::Verify { id: None } => {
            let bar = progress_bar(0, "verifying");
            let report = manager.verify_all_with_progress(advance(&bar)).await?;
            bar.finish_and_clear();
            if args.json {
                serde_json::to_writer_pretty(&mut out, &report)?;
                writeln!(out)?;
            } else {
                for corrupt in &report.corrupt {
                    writeln!(out, "CORRUPT {}: {}", corrupt.name, corrupt.reason)?;
                }
                writeln!(
                    out,
                    "checked {}, valid {}, corrupt {}",
                    report.checked,
                    report.valid,
                    report.corrupt.len()
                )?;
            }
            if !report.is_clean() {
                bail!("{} corrupt checkpoint(s)", report.corrupt.len());
            }
        }
        CheckpointsCommand::Rm { id } => {
            let id = parse_id(&id)?;
            if !manager.delete(&id).await? {
                bail!("checkpoint {id} not found");
            }
            writeln!(out, "removed {id}")?;
        }
        CheckpointsCommand::Cleanup {
            keep,
            max_age,
            max_total_bytes,
            dry_run,
        } => {
            let mut policy = RetentionPolicy::keep_last(keep);
            policy.max_age = max_age;
            policy.max_total_bytes = max_total_bytes;
            policy.dry_run = dry_run;
            let bar = progress_bar(0, if dry_run { "planning" } else { "removing" });
            let report = manager
                .cleanup_at(&policy, SystemTime::now(), advance(&bar))
                .await?;
            bar.finish_and_clear();
            if args.json {
                serde_json::to_writer_pretty(&mut out, &report)?;
                writeln!(out)?;
            } else {
                let verb = if dry_run { "would remove" } else { "removed" };
                for item in &report.removed {
                    let m = &item.metadata;
                    writeln!(
                        out,
                        "{verb} {} {}/{} seq {} ({:?})",
                        m.id, m.agent_id, m.workflow_id, m.sequence, item.reason
                    )?;
                }
                for (id, reason) in &report.failed {
                    writeln!(out, "FAILED {id}: {reason}")?;
                }
                writeln!(
                    out,
                    "{verb} {} of {} checkpoint(s), {}",
                    report.removed.len(),
                    report.examined,
                    human_bytes(report.freed_bytes)
                )?;
            }
            if !report.failed.is_empty() {
                bail!("{} removal(s) failed", report.failed.len());
            }
        }
    }
    Ok(())
}
