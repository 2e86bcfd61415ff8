//! Helpers shared by the server's integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use bulwark_server::config::Config;
use bulwark_server::{AppState, router};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A folder removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "bulwark-server-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A config rooted in `dir` with a fast, reliable demo tool.
pub fn config(dir: &Path) -> Config {
    let mut config = Config::default();
    config.server.data_dir = dir.to_owned();
    config.demo.failure_rate = 0.0;
    config.demo.latency = std::time::Duration::ZERO;
    // In-process server tests compare the data folder before and after requests; the fs
    // store's background compactor would rewrite it in between. Compaction itself is tested
    // in crates/bulwark/tests/checkpoint_*.rs, and the binary tests run with the default.
    config.checkpoints.compress_before_ack = true;
    config
}

pub struct App {
    pub state: AppState,
    pub router: Router,
    pub dir: TempDir,
}

pub async fn app_with(label: &str, edit: impl FnOnce(&mut Config)) -> App {
    let dir = TempDir::new(label);
    let mut config = config(dir.path());
    edit(&mut config);
    let state = AppState::from_config(&config).await.unwrap();
    App {
        router: router(state.clone()),
        state,
        dir,
    }
}

pub async fn app(label: &str) -> App {
    app_with(label, |_| {}).await
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
    pub text: String,
}

impl App {
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn call(&self, method: &str, uri: &str) -> Reply {
        self.send(
            Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub async fn post_json(&self, uri: &str, body: &str) -> Reply {
        self.send(
            Request::builder()
                .method("POST")
                .uri(uri)
                .header("content-type", "application/json")
                .body(Body::from(body.to_owned()))
                .unwrap(),
        )
        .await
    }
}

/// Asserts the API's error shape and returns its code.
pub fn error_code(reply: &Reply) -> String {
    let code = reply.body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not the error shape ({}): {}", reply.status, reply.text));
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        reply.text
    );
    code.to_owned()
}

/// Every file under `dir`, relative, with its size, sorted.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            }
            out.push((
                entry.path().strip_prefix(dir).unwrap().to_owned(),
                if meta.is_dir() { 0 } else { meta.len() },
            ));
        }
    }
    out.sort();
    out
}

/// A `bulwark serve` child process, killed (SIGKILL) when dropped.
pub struct Server {
    pub child: std::process::Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `bulwark <args>` with a clean `BULWARK_*` environment plus `env`.
pub fn bulwark(args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_bulwark"));
    command.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("BULWARK_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    command
}

/// One HTTP/1.1 exchange over a fresh connection; the raw response.
pub fn http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// The JSON body of a raw response.
pub fn json_of(response: &str) -> serde_json::Value {
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

/// Waits (up to 20 s) until `port` answers `GET /api/observability/health`.
pub fn wait_ready(port: u16) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match http(port, "GET", "/api/observability/health", "") {
            Ok(response) => return response,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(25))
            }
            Err(error) => panic!("server never answered on {port}: {error}"),
        }
    }
}

/// Starts `bulwark serve --listen 127.0.0.1:<free port> <args>` and waits until it answers.
pub fn serve(args: &[&str], env: &[(&str, &str)]) -> Server {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut all = vec!["serve", "--listen", &listen];
    all.extend_from_slice(args);
    let child = bulwark(&all, env).spawn().unwrap();
    let server = Server { child, port };
    wait_ready(port);
    server
}

/// Routes this thread's spans into the app's trace store (tokio tests run on one thread).
pub fn traced(app: &App) -> tracing::subscriber::DefaultGuard {
    use tracing_subscriber::layer::SubscriberExt;
    let layer = bulwark::telemetry::TelemetryLayer::new(app.state.trace_store().clone());
    tracing::subscriber::set_default(tracing_subscriber::registry().with(layer))
}

/// Polls the running server until run `workflow_id` has at least `count` checkpoints, for up
/// to 20 s; panics with `what` otherwise.
pub fn wait_for_checkpoints(port: u16, workflow_id: &str, count: usize, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let path = format!("/api/observability/checkpoints?workflow_id={workflow_id}");
    loop {
        let list = json_of(&http(port, "GET", &path, "").unwrap());
        if list["items"].as_array().map_or(0, Vec::len) >= count {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// An environment variable `scripts/test.sh` sets (a tool's path): `None` with a message when
/// unset, a panic when `CI=true`.
pub fn required_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{name} is not set but CI=true: scripts/test.sh must provide it")
        }
        _ => {
            eprintln!(
                "SKIPPED: {name} is not set (run through scripts/test.sh to enable this test)"
            );
            None
        }
    }
}
