//! A newcomer's tour: the README's "A tour of every endpoint" walked against the real binary,
//! each answer checked against what the README says. The test also reads the tour from the
//! README and fails when the README's requests and the walk below differ, so the two cannot
//! drift apart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

mod common;

/// `(method, path template)` of every `curl` in the README's tour, `$ID` and `$TRACE_ID` as
/// `{id}` and `{trace_id}`, queries cut off.
fn readme_tour() -> BTreeSet<(String, String)> {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("A tour of every endpoint")
        .expect("the README has its tour");
    let block = &readme[start..];
    let block = &block[block.find("```sh").expect("the tour is a sh block") + 5..];
    let block = &block[..block.find("```").unwrap()];
    let mut requests = BTreeSet::new();
    for line in block.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("curl ") else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let method = words
            .iter()
            .position(|w| *w == "-X")
            .map_or("GET", |i| words[i + 1]);
        let url = words
            .iter()
            .find(|w| w.contains("$B"))
            .expect("every tour request names $B");
        let path = url.trim_matches('"').trim_start_matches("$B");
        let path = path.split('?').next().unwrap();
        let path = path
            .replace("$TRACE_ID", "{trace_id}")
            .replace("$ID", "{id}");
        requests.insert((method.to_owned(), path));
    }
    requests
}

struct Tour {
    base: String,
    client: reqwest::blocking::Client,
    walked: BTreeSet<(String, String)>,
}

struct Answer {
    status: u16,
    content_type: String,
    text: String,
    json: Value,
}

impl Tour {
    /// One request of the tour; `template` is the path as the README writes it.
    fn send(&mut self, method: &str, template: &str, path: &str, body: Option<&str>) -> Answer {
        self.walked.insert((method.to_owned(), template.to_owned()));
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = response.text().unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            content_type,
            text,
            json,
        }
    }

    fn get(&mut self, template: &str, path: &str) -> Answer {
        let answer = self.send("GET", template, path, None);
        assert_eq!(answer.status, 200, "GET {path}: {}", answer.text);
        answer
    }

    fn post(&mut self, template: &str, body: Option<&str>) -> Answer {
        let answer = self.send("POST", template, template, body);
        assert_eq!(answer.status, 200, "POST {template}: {}", answer.text);
        answer
    }
}

#[test]
fn the_readme_tour_answers_as_the_readme_says() {
    let dir = common::TempDir::new("tour");
    let config = dir.path().join("bulwark.toml");
    // The tour as written, on a demo tool that does not fail (so that every run completes).
    std::fs::write(&config, "[demo]\nfailure_rate = 0.0\nlatency = \"1ms\"\n").unwrap();
    let data = dir.path().join("data").display().to_string();
    let server = common::serve(
        &[
            "--config",
            &config.display().to_string(),
            "--data-dir",
            &data,
        ],
        &[],
    );
    let mut tour = Tour {
        base: format!("http://127.0.0.1:{}", server.port),
        client: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        walked: BTreeSet::new(),
    };

    // The demo workflow, with no body and with one naming the workflow.
    let run = tour.post("/api/workflows/run-1/execute", None).json;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["workflow_id"], "run-1");
    let trace_id = run["trace_id"].as_str().unwrap().to_owned();
    assert_eq!(trace_id.len(), 32, "{run}");
    assert!(trace_id.bytes().all(|b| b.is_ascii_hexdigit()), "{run}");
    let checkpoint_id = run["checkpoint_id"].as_str().unwrap().to_owned();
    assert_eq!(run["steps_completed"], 4);
    assert_eq!(run["steps_executed"], 4);
    assert!(run["resumed_from"].is_null());
    let named = tour
        .post(
            "/api/workflows/run-2/execute",
            Some(r#"{"workflow":"demo"}"#),
        )
        .json;
    assert_eq!(named["status"], "completed", "{named}");
    assert_eq!(named["workflow"], "demo");

    let health = tour
        .get("/api/observability/health", "/api/observability/health")
        .json;
    assert!(
        ["healthy", "degraded"].contains(&health["status"].as_str().unwrap()),
        "{health}"
    );
    assert!(!health["components"].as_object().unwrap().is_empty());
    let limiters = tour
        .get(
            "/api/observability/rate-limiters",
            "/api/observability/rate-limiters",
        )
        .json;
    assert!(
        limiters["rate_limiters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["name"] == "workflows"),
        "{limiters}"
    );

    let breakers = tour
        .get(
            "/api/observability/circuit-breakers",
            "/api/observability/circuit-breakers",
        )
        .json;
    assert!(
        breakers["circuit_breakers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == "search_api"),
        "{breakers}"
    );
    let breaker = "/api/observability/circuit-breakers/search_api";
    let one = tour.get(breaker, breaker).json;
    assert_eq!(one["name"], "search_api");
    assert_eq!(one["state"], "closed");
    for (action, state) in [
        ("force-open", "forced_open"),
        ("disable", "disabled"),
        ("reset", "closed"),
    ] {
        let after = tour.post(&format!("{breaker}/{action}"), None).json;
        assert_eq!(after["state"], state, "{action}: {after}");
    }

    let checkpoints = "/api/observability/checkpoints";
    let page = tour
        .get(
            checkpoints,
            &format!("{checkpoints}?workflow_id=run-1&limit=2"),
        )
        .json;
    assert_eq!(page["items"].as_array().unwrap().len(), 2, "{page}");
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = tour
        .get(
            checkpoints,
            &format!("{checkpoints}?workflow_id=run-1&limit=2&cursor={cursor}"),
        )
        .json;
    assert!(!rest["items"].as_array().unwrap().is_empty(), "{rest}");
    let one = format!("{checkpoints}/{{id}}");
    let shown = tour
        .get(&one, &format!("{checkpoints}/{checkpoint_id}"))
        .json;
    assert_eq!(shown["metadata"]["id"], checkpoint_id.as_str(), "{shown}");
    assert_eq!(shown["verification"]["valid"], true, "{shown}");
    let doomed = page["items"][0]["id"].as_str().unwrap().to_owned();
    let deleted = tour.send("DELETE", &one, &format!("{checkpoints}/{doomed}"), None);
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(deleted.json["deleted"], doomed.as_str());
    let cleanup = tour
        .post(
            "/api/observability/checkpoints/cleanup",
            Some(r#"{"keep_last": 2, "max_age": "7d", "dry_run": true}"#),
        )
        .json;
    assert_eq!(cleanup["dry_run"], true, "{cleanup}");

    let traces = "/api/observability/traces";
    let listed = tour
        .get(traces, &format!("{traces}?name=execute&limit=10"))
        .json;
    let listed = listed["traces"].as_array().unwrap();
    assert!(
        listed.iter().any(|t| t["trace_id"] == trace_id.as_str()),
        "{listed:?}"
    );
    assert!(
        listed
            .iter()
            .all(|t| t["root_name"].as_str().unwrap().contains("execute")),
        "{listed:?}"
    );
    let tree = tour
        .get(
            &format!("{traces}/{{trace_id}}"),
            &format!("{traces}/{trace_id}"),
        )
        .json;
    assert_eq!(tree["trace_id"], trace_id.as_str());
    assert!(!tree["roots"].as_array().unwrap().is_empty(), "{tree}");

    let metrics = tour
        .get("/api/observability/metrics", "/api/observability/metrics")
        .json;
    assert!(
        metrics["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "bulwark_http_requests_total"),
        "{metrics}"
    );
    let reset = tour.post("/api/observability/metrics/reset", None).json;
    assert_eq!(reset["reset"], true);
    let scrape = tour.get("/metrics", "/metrics");
    assert!(
        scrape.content_type.starts_with("text/plain"),
        "{}",
        scrape.content_type
    );
    assert!(
        scrape
            .text
            .contains("# TYPE bulwark_http_requests_total counter")
    );
    let document = tour.get("/api/openapi.json", "/api/openapi.json").json;
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    assert!(!document["paths"].as_object().unwrap().is_empty());

    let readme = readme_tour();
    let missing: Vec<_> = readme.difference(&tour.walked).collect();
    assert!(
        missing.is_empty(),
        "the README's tour names requests this test does not walk: {missing:?}"
    );
    let unlisted: Vec<_> = tour.walked.difference(&readme).collect();
    assert!(
        unlisted.is_empty(),
        "this test walks requests the README's tour does not show: {unlisted:?}"
    );
}

/// The README's `bulwark.toml` example is a config the server accepts as written.
#[test]
fn the_readmes_config_example_is_a_valid_config() {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("```toml\n# bulwark.toml")
        .expect("the README shows a bulwark.toml");
    let body = &readme[start + "```toml\n".len()..];
    let example = &body[..body.find("```").expect("the block ends")];
    let config = bulwark_server::config::Config::from_toml(example, "README.md".as_ref())
        .unwrap_or_else(|error| panic!("the README's config is refused: {error}"));
    assert_eq!(config.checkpoints.retention.keep_last, Some(50));
}
