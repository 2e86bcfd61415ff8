//! The README's "Durable workflows" example, run: keep the two in step.

use bulwark::checkpoint::StateCheckpointManager;
use bulwark::durable::{
    BranchOutcome, Executor, FanOut, RetryPolicy, RunRecord, StepError, StepPolicy, Workflow,
};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Serialize, Deserialize)]
struct Ticket {
    text: String,
    context: Vec<String>,
    reply: Option<String>,
}

async fn support(manager: StateCheckpointManager) -> Result<RunRecord, Box<dyn std::error::Error>> {
    let gather = FanOut::new(|mut t: Ticket, found: Vec<BranchOutcome<String>>| {
        t.context
            .extend(found.into_iter().filter_map(|f| f.result.ok()));
        Ok(t)
    })
    .branch("kb", "kb-agent", |ctx, t: Ticket| async move {
        ctx.effect("search", |_key| search_kb(t.text)).await
    })
    .branch("crm", "crm-agent", |ctx, _t: Ticket| async move {
        ctx.effect("lookup", |_key| lookup_customer()).await
    });
    let llm = StepPolicy::new()
        .retry(RetryPolicy::attempts(5))
        .attempt_timeout(Duration::from_secs(30));
    let workflow = Workflow::new("support-ticket")
        .fan_out("gather", "triage-agent", gather)
        .step_with(
            "draft",
            "writer-agent",
            llm,
            |ctx, mut t: Ticket| async move {
                // Recorded once: a crash or a retry replays the draft instead of paying for it again.
                let draft = ctx
                    .effect("llm", |key| call_llm(key, t.context.join("\n")))
                    .await?;
                let approved: bool = ctx.interrupt("approve-reply", &draft).await?;
                t.reply = approved.then_some(draft);
                Ok(t)
            },
        );
    let executor = Executor::builder(manager).workflow(workflow).build()?;
    let ticket = Ticket {
        text: "refund?".into(),
        context: vec![],
        reply: None,
    };
    let run = executor
        .start_with_id("support-ticket", "ticket-42", &ticket)
        .await?; // waiting
    // Later, in any process on the same store:
    Ok(executor
        .resume(&run.run_id, serde_json::json!(true))
        .await?)
}

async fn search_kb(text: String) -> Result<String, StepError> {
    Ok(format!("kb article about {text}"))
}

async fn lookup_customer() -> Result<String, StepError> {
    Ok("gold customer".into())
}

async fn call_llm(key: String, context: String) -> Result<String, StepError> {
    Ok(format!("reply ({key}) from: {context}"))
}

#[tokio::test]
async fn the_readme_workflow_waits_for_approval_then_replies() {
    let dir = tempfile::tempdir().unwrap();
    let manager = StateCheckpointManager::open(dir.path()).await.unwrap();
    let run = support(manager).await.unwrap();
    assert_eq!(run.status, bulwark::durable::RunStatus::Completed);
    let ticket: Ticket = run.state_as().unwrap();
    assert_eq!(
        ticket.context,
        ["kb article about refund?", "gold customer"]
    );
    assert_eq!(
        ticket.reply.as_deref(),
        Some("reply (ticket-42/draft/llm) from: kb article about refund?\ngold customer")
    );
}
