//! The exported rules in a real Prometheus (Debian's `prometheus`, path in
//! BULWARK_PROMETHEUS_BIN) scraping a real `bulwark serve`: the same scenario fires the same
//! alert (name and labels, less the scrape's `job` and `instance`) in both engines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn labels_of(alert: &Value) -> BTreeMap<String, String> {
    alert["labels"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "job" | "instance"))
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn prometheus_on_the_exported_rules_fires_the_same_alert_as_the_embedded_engine() {
    let Some(prometheus) = common::required_env("BULWARK_PROMETHEUS_BIN") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("bulwark.toml");
    std::fs::write(
        &config_path,
        format!(
            r#"
[server]
data_dir = "{data}"
[demo]
failure_rate = 1.0
latency = "0s"
[breakers]
failure_threshold = 2
timeout = "10m"
[alerting]
interval = "1s"
log = false
[[alerting.rules]]
name = "ToolBreakerOpen"
condition = "breaker_state"
breaker = "*_api"
labels = {{ severity = "page" }}
annotations = {{ summary = "breaker {{{{ $labels.name }}}} is open" }}
"#,
            data = dir.path().join("data").display()
        ),
    )
    .unwrap();
    let rules_path = dir.path().join("rules.yml");
    let config_arg = config_path.to_str().unwrap();
    let out = common::bulwark(
        &[
            "alerts",
            "export-rules",
            "--config",
            config_arg,
            "--output",
            rules_path.to_str().unwrap(),
        ],
        &[],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let server = common::serve(&["--config", config_arg], &[("BULWARK_LOG", "error")]);
    let prom_port = common::free_port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: bulwark\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            rules_path.display(),
            server.port
        ),
    )
    .unwrap();
    let _prom = Killed(
        Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("Prometheus to load the rules", 30, || {
        let r = common::http(prom_port, "GET", "/api/v1/rules", "").ok()?;
        common::json_of(&r)["data"]["groups"][0]["rules"][0]["name"]
            .as_str()
            .map(|n| assert_eq!(n, "ToolBreakerOpen"))
    });

    let run = common::http(server.port, "POST", "/api/workflows/doomed/execute", "").unwrap();
    // The demo step whose pipeline gave up leaves the run waiting for another execute.
    assert!(run.contains("\"status\":\"waiting\""), "{run}");

    let embedded = wait_for("the embedded alert", 30, || {
        let r = common::http(
            server.port,
            "GET",
            "/api/observability/alerts?state=firing",
            "",
        )
        .ok()?;
        let body = common::json_of(&r);
        body["alerts"].as_array()?.first().cloned()
    });
    let scraped = wait_for("the Prometheus alert", 60, || {
        let r = common::http(prom_port, "GET", "/api/v1/alerts", "").ok()?;
        let body = common::json_of(&r);
        body["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["state"] == "firing")
            .cloned()
    });
    assert_eq!(
        labels_of(&scraped),
        labels_of(&embedded),
        "{scraped:#}\n{embedded:#}"
    );
    assert_eq!(labels_of(&embedded)["name"], "search_api");
    assert_eq!(
        scraped["annotations"]["summary"],
        embedded["annotations"]["summary"]
    );
    assert_eq!(
        embedded["annotations"]["summary"],
        "breaker search_api is open"
    );
}
