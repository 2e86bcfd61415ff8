//! The API through `oneshot`, and the `bulwark serve` binary through a real socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::StatusCode;

mod common;

#[tokio::test]
async fn health_reports_each_component_and_is_healthy_on_a_writable_dir() {
    let app = common::app("health").await;
    let reply = app.call("GET", "/api/observability/health").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["status"], "healthy");
    assert_eq!(reply.body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        reply.body["components"]["checkpoint_store"]["status"],
        "healthy"
    );
    assert_eq!(
        reply.body["components"]["rate_limiters"]["status"],
        "healthy"
    );
    assert!(reply.body.get("error").is_none());
}

#[tokio::test]
async fn health_is_503_in_the_error_shape_when_the_checkpoint_dir_is_gone() {
    let app = common::app("health-gone").await;
    std::fs::remove_dir_all(app.state.checkpoint_dir()).unwrap();
    let reply = app.call("GET", "/api/observability/health").await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text
    );
    assert_eq!(reply.body["status"], "unhealthy");
    assert_eq!(
        reply.body["components"]["checkpoint_store"]["status"],
        "unhealthy"
    );
    assert_eq!(common::error_code(&reply), "unhealthy");
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_in_the_error_shape() {
    let app = common::app("fallbacks").await;
    for uri in ["/api/observability/nope", "/nope", "/api/workflows/x"] {
        let reply = app.call("GET", uri).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(common::error_code(&reply), "not_found");
    }
    for (method, uri) in [
        ("DELETE", "/api/observability/health"),
        ("POST", "/api/observability/rate-limiters"),
        ("GET", "/api/workflows/run-1/execute"),
    ] {
        let reply = app.call(method, uri).await;
        assert_eq!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}"
        );
        assert_eq!(common::error_code(&reply), "method_not_allowed");
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

#[test]
fn bulwark_serve_answers_health_on_a_real_socket_and_creates_its_data_dir() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data_dir = std::env::temp_dir().join(format!("bulwark-serve-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(&data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let response = loop {
        match http_get(port, "/api/observability/health") {
            Ok(response) => break response,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(error) => panic!("server never answered: {error}"),
        }
    };
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""status":"healthy""#), "{response}");
    assert!(data_dir.join("checkpoints").is_dir());
    assert!(data_dir.is_dir());
    let _ = std::fs::remove_dir_all(&data_dir);
}
