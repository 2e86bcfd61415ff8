//! `bulwark serve` as a user runs it: config file, `BULWARK_*` variables and flags in order
//! of precedence, refusals with clear messages, graceful shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

mod common;

use common::{TempDir, bulwark, free_port, http, json_of};

fn write_config(dir: &TempDir, text: &str) -> String {
    let path = dir.path().join("bulwark.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn answers(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if http(port, "GET", "/api/observability/health", "").is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

#[test]
fn the_flag_wins_over_the_variable_which_wins_over_the_file() {
    let dir = TempDir::new("precedence");
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let data = dir.path().join("data");
    let config = write_config(
        &dir,
        &format!(
            "[server]\nlisten = \"127.0.0.1:{file_port}\"\ndata_dir = \"{}\"\n[ratelimit]\nworkflow_max_requests = 3\n",
            data.display()
        ),
    );
    let env_listen = format!("127.0.0.1:{env_port}");
    let flag_listen = format!("127.0.0.1:{flag_port}");

    // File only.
    let mut child = bulwark(&["serve", "--config", &config], &[])
        .spawn()
        .unwrap();
    assert!(answers(file_port));
    let limiters =
        json_of(&http(file_port, "GET", "/api/observability/rate-limiters", "").unwrap());
    assert_eq!(
        limiters["rate_limiters"][0]["capacity"], 3,
        "the file's limit applies"
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // The variable over the file (BULWARK_CONFIG names the file).
    let mut child = bulwark(
        &["serve"],
        &[("BULWARK_CONFIG", &config), ("BULWARK_LISTEN", &env_listen)],
    )
    .spawn()
    .unwrap();
    assert!(answers(env_port));
    child.kill().unwrap();
    child.wait().unwrap();

    // The flag over both.
    let mut child = bulwark(
        &[
            "serve",
            "--config",
            &config,
            "--listen",
            &flag_listen,
            "--workflow-rate-limit",
            "7",
        ],
        &[("BULWARK_LISTEN", &env_listen)],
    )
    .spawn()
    .unwrap();
    assert!(answers(flag_port));
    let limiters =
        json_of(&http(flag_port, "GET", "/api/observability/rate-limiters", "").unwrap());
    assert_eq!(limiters["rate_limiters"][0]["capacity"], 7);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        data.join("checkpoints").is_dir(),
        "data_dir came from the file"
    );
}

fn fails_with(args: &[&str], env: &[(&str, &str)], needle: &str) {
    let output = bulwark(args, env).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{args:?} should fail");
    assert!(stderr.contains(needle), "{args:?}: stderr was {stderr}");
}

#[test]
fn serve_refuses_a_public_address_without_a_token_and_bad_config_with_a_clear_message() {
    let dir = TempDir::new("refusals");
    let data = dir.path().join("data").display().to_string();
    fails_with(
        &["serve", "--listen", "0.0.0.0:0", "--data-dir", &data],
        &[],
        "refusing to listen on non-loopback address 0.0.0.0:0 without a token",
    );
    let config = write_config(&dir, "[server]\nlisten = 8000\n");
    fails_with(&["serve", "--config", &config], &[], "bulwark.toml");
    let config = write_config(&dir, "[ratelimit]\nbackend = \"redis\"\n");
    fails_with(&["serve", "--config", &config], &[], "ratelimit.url");
    fails_with(
        &["serve", "--config", "/nonexistent/bulwark.toml"],
        &[],
        "cannot read config file",
    );
    fails_with(
        &["serve", "--data-dir", &data],
        &[("BULWARK_BODY_LIMIT", "lots")],
        "lots",
    );
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let dir = TempDir::new("sigterm");
    let data = dir.path().display().to_string();
    let mut server = common::serve(&["--data-dir", &data], &[]);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "server did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(25));
    };
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn sigterm_lets_an_in_flight_workflow_run_finish_and_checkpoint() {
    let dir = TempDir::new("sigterm-inflight");
    let config = write_config(
        &dir,
        &format!(
            "[server]\ndata_dir = \"{}\"\n[demo]\nfailure_rate = 0.0\nlatency = \"200ms\"\n",
            dir.path().join("data").display()
        ),
    );
    let mut server = common::serve(&["--config", &config], &[]);
    let port = server.port;
    let request =
        std::thread::spawn(move || http(port, "POST", "/api/workflows/draining/execute", ""));
    // Signal once the run has started (its first checkpoint is on disk).
    common::wait_for_checkpoints(port, "draining", 1, "the run never started");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let response = request.join().unwrap().unwrap();
    let body = json_of(&response);
    assert_eq!(body["status"], "completed", "{response}");
    assert_eq!(body["steps_executed"], 4, "{response}");
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn requests_and_runs_are_traced_even_with_a_quiet_log_filter() {
    let dir = TempDir::new("quiet");
    let config = write_config(
        &dir,
        &format!(
            "[server]\ndata_dir = \"{}\"\n[demo]\nfailure_rate = 0.0\n",
            dir.path().join("data").display()
        ),
    );
    let server = common::serve(&["--config", &config, "--log", "warn"], &[]);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        write!(
            stream,
            "POST /api/workflows/quiet/execute HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             traceparent: 00-{trace}-00f067aa0ba902b7-01\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).unwrap();
        out
    };
    assert!(
        response
            .to_ascii_lowercase()
            .contains(&format!("traceparent: 00-{trace}-")),
        "{response}"
    );
    assert_eq!(json_of(&response)["trace_id"], trace, "{response}");
    let tree = json_of(
        &http(
            server.port,
            "GET",
            &format!("/api/observability/traces/{trace}"),
            "",
        )
        .unwrap(),
    );
    // The request, the run, and per step its span and its one attempt's.
    assert_eq!(tree["summary"]["span_count"], 10, "{tree}");
}
