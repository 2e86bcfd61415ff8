//! End to end with a real Alertmanager (Debian's `prometheus-alertmanager`, path in
//! BULWARK_ALERTMANAGER_BIN from scripts/alertmanager.sh): the demo workflow with a failing
//! tool opens a breaker, the alert reaches Alertmanager with our labels and its webhook
//! receiver once, and is resolved after the breaker closes; an Alertmanager restarted while
//! the alert fires, and one that is down when it resolves, lose nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;

use axum::Json;
use axum::routing::post;
use bulwark::alerting::RuleSpec;
use serde_json::Value;

/// An Alertmanager on a free port, killed on drop.
struct Alertmanager {
    bin: String,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Alertmanager {
    fn start(bin: &str, dir: &Path, receiver: &str) -> Self {
        let config = format!(
            "route:\n  receiver: test\n  group_by: ['alertname', 'name']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: test\n    webhook_configs:\n      - url: {receiver}\n        send_resolved: true\n"
        );
        std::fs::write(dir.join("alertmanager.yml"), config).unwrap();
        let mut am = Self {
            bin: bin.to_owned(),
            dir: dir.to_owned(),
            port: common::free_port(),
            child: None,
        };
        am.spawn();
        am
    }

    fn spawn(&mut self) {
        let child = Command::new(&self.bin)
            .arg(format!(
                "--config.file={}",
                self.dir.join("alertmanager.yml").display()
            ))
            .arg(format!(
                "--storage.path={}",
                self.dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if common::http(self.port, "GET", "/-/ready", "")
                .is_ok_and(|r| r.starts_with("HTTP/1.1 200"))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("Alertmanager did not become ready");
    }

    /// SIGTERM, so it writes its notification log to its storage before exiting.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn alerts(&self) -> Vec<Value> {
        let Ok(r) = reqwest::get(format!("{}/api/v2/alerts", self.url())).await else {
            return Vec::new();
        };
        r.json::<Vec<Value>>().await.unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

type Received = Arc<Mutex<Vec<Value>>>;

async fn receiver() -> (String, Received) {
    let got: Received = Arc::default();
    let g = Arc::clone(&got);
    let app = axum::Router::new().route(
        "/am",
        post(move |Json(body): Json<Value>| {
            let g = Arc::clone(&g);
            async move {
                g.lock().unwrap().push(body);
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/am"), got)
}

async fn until<T>(what: &str, secs: u64, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn breaker_rule() -> RuleSpec {
    let text = r#"
        name = "ToolBreakerOpen"
        condition = "breaker_state"
        breaker = "*_api"
        states = ["open"]
        labels = { severity = "page", team = "agents" }
        annotations = { summary = "breaker {{ $labels.name }} is open, next trial in {{ $next_trial_in }}" }
    "#;
    toml::from_str(text).unwrap()
}

async fn app_to(am_url: &str, label: &str) -> common::App {
    let am = am_url.to_owned();
    common::app_with(label, move |config| {
        config.demo.failure_rate = 1.0;
        config.workflows.max_attempts = 3;
        config.breakers.failure_threshold = 2;
        config.breakers.timeout = Duration::from_secs(600);
        let alerting: bulwark_server::alerting::AlertingSection = toml::from_str(&format!(
            "interval = \"500ms\"\nresend_interval = \"1s\"\n[[alertmanager]]\nurl = \"{am}\"\ntimeout = \"2s\"\n"
        ))
        .unwrap();
        config.alerting = alerting;
        config.alerting.rules = vec![breaker_rule()];
    })
    .await
}

fn ours(alerts: &[Value]) -> Vec<&Value> {
    alerts
        .iter()
        .filter(|a| a["labels"]["alertname"] == "ToolBreakerOpen")
        .collect()
}

fn notifications(got: &Received, status: &str) -> usize {
    got.lock()
        .unwrap()
        .iter()
        .filter(|n| n["status"] == status)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_opened_by_the_demo_workflow_fires_once_in_alertmanager_and_resolves() {
    let Some(bin) = common::required_env("BULWARK_ALERTMANAGER_BIN") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (hook, got) = receiver().await;
    let am = Alertmanager::start(&bin, dir.path(), &hook);
    let app = app_to(&am.url(), "alerting-am").await;
    let mut alert_events = app
        .state
        .events()
        .subscribe(bulwark::events::EventFilter::all().kind(bulwark::events::EventKind::Alert));

    let run = app.call("POST", "/api/workflows/doomed/execute").await;
    // The demo step whose pipeline gave up leaves the run waiting for another execute.
    assert_eq!(run.body["status"], "waiting", "{}", run.text);
    let breaker = app.state.breakers().get("search_api").unwrap();
    assert!(breaker.state().is_open());

    let alert = until("the alert in Alertmanager", 30, async || {
        ours(&am.alerts().await).first().map(|a| (*a).clone())
    })
    .await;
    assert_eq!(alert["labels"]["name"], "search_api");
    assert_eq!(alert["labels"]["state"], "open");
    assert_eq!(alert["labels"]["severity"], "page");
    assert_eq!(alert["labels"]["team"], "agents");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("breaker search_api is open, next trial in ")
    );
    assert!(
        alert["generatorURL"]
            .as_str()
            .unwrap()
            .ends_with("/api/observability/circuit-breakers/search_api")
    );
    assert_eq!(alert["status"]["state"], "active");

    until("the firing notification", 30, async || {
        (notifications(&got, "firing") > 0).then_some(())
    })
    .await;
    // The event stream saw it go pending, then firing, named by its rule.
    let mut seen = Vec::new();
    while !seen.iter().any(|a: &String| a == "firing") {
        let next = tokio::time::timeout(Duration::from_secs(10), alert_events.next())
            .await
            .expect("an alert event on the stream");
        if let Some(bulwark::events::Delivery::Event(event)) = next {
            assert_eq!(event.data["labels"]["name"], "search_api", "{event:?}");
            seen.push(event.action.clone());
        }
    }
    // Several re-sends (every second) later, the receiver still got it once: Alertmanager
    // deduplicated them.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        notifications(&got, "firing"),
        1,
        "{:#?}",
        got.lock().unwrap()
    );
    let listed = app
        .call("GET", "/api/observability/alerts?state=firing")
        .await;
    assert_eq!(
        listed.body["alerts"].as_array().unwrap().len(),
        1,
        "{}",
        listed.text
    );

    breaker.reset();
    until("the resolve notification", 30, async || {
        (notifications(&got, "resolved") > 0).then_some(())
    })
    .await;
    assert!(
        ours(&am.alerts().await).is_empty(),
        "resolved in Alertmanager"
    );
    let resolved = got
        .lock()
        .unwrap()
        .iter()
        .find(|n| n["status"] == "resolved")
        .cloned()
        .unwrap();
    assert_eq!(resolved["alerts"][0]["labels"]["name"], "search_api");
    assert_eq!(notifications(&got, "resolved"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alertmanager_restarted_while_firing_and_down_at_the_resolve_loses_nothing() {
    let Some(bin) = common::required_env("BULWARK_ALERTMANAGER_BIN") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (hook, got) = receiver().await;
    let mut am = Alertmanager::start(&bin, dir.path(), &hook);
    let app = app_to(&am.url(), "alerting-am-restart").await;
    let run = app.call("POST", "/api/workflows/doomed/execute").await;
    assert_eq!(run.body["status"], "waiting", "{}", run.text);
    until("the firing notification", 30, async || {
        (notifications(&got, "firing") > 0).then_some(())
    })
    .await;

    // Restart while firing: the next re-send puts the alert back.
    am.stop();
    am.spawn();
    until("the alert after the restart", 30, async || {
        (!ours(&am.alerts().await).is_empty()).then_some(())
    })
    .await;
    assert_eq!(
        notifications(&got, "firing"),
        1,
        "no second page after the restart"
    );

    // Down when the breaker closes: the resolve waits in the queue and is delivered later.
    am.stop();
    app.state.breakers().get("search_api").unwrap().reset();
    until("the resolve queued", 10, async || {
        let listed = app
            .call("GET", "/api/observability/alerts?state=resolved")
            .await;
        let failures = listed.body["notifiers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["notifier"] == "alertmanager")
            .map_or(0, |n| n["failures"].as_u64().unwrap_or(0));
        (listed.body["alerts"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
            && failures > 0)
            .then_some(())
    })
    .await;
    am.spawn();
    until("the resolve notification", 60, async || {
        (notifications(&got, "resolved") > 0).then_some(())
    })
    .await;
    assert!(ours(&am.alerts().await).is_empty());
}
