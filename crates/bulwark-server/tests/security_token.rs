//! The bearer token (issue 12 defect 10): blank and short tokens are refused with a config
//! error, a token file keeps it out of the process list, `--token` warns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TempDir, bulwark, free_port, http};

fn fails_with(args: &[&str], env: &[(&str, &str)], needle: &str) {
    let output = bulwark(args, env).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{args:?} started");
    assert!(stderr.contains(needle), "{args:?}: {stderr}");
}

#[test]
fn blank_and_short_tokens_are_refused_wherever_they_come_from() {
    let dir = TempDir::new("token-refused");
    let data = dir.path().display().to_string();
    let file = dir.path().join("token");
    for token in [" ", "\t\t", "short-token", "fifteen-bytes!!"] {
        fails_with(
            &["serve", "--data-dir", &data, "--token", token],
            &[],
            "invalid config value `server.token`",
        );
        fails_with(
            &["serve", "--data-dir", &data],
            &[("BULWARK_TOKEN", token)],
            "invalid config value `server.token`",
        );
        std::fs::write(&file, format!("{token}\n")).unwrap();
        fails_with(
            &[
                "serve",
                "--data-dir",
                &data,
                "--token-file",
                &file.display().to_string(),
            ],
            &[],
            "invalid config value `server.token`",
        );
    }
    fails_with(
        &[
            "serve",
            "--data-dir",
            &data,
            "--token-file",
            "/nonexistent/bulwark-token",
        ],
        &[],
        "server.token_file",
    );
}

#[test]
fn a_token_file_protects_writes_and_its_trailing_newline_is_not_part_of_it() {
    let dir = TempDir::new("token-file");
    let file = dir.path().join("token");
    std::fs::write(&file, "a-token-from-a-file-0123\n").unwrap();
    let data = dir.path().join("data").display().to_string();
    let server = common::serve(
        &[
            "--data-dir",
            &data,
            "--token-file",
            &file.display().to_string(),
        ],
        &[],
    );
    let refused = http(server.port, "POST", "/api/observability/metrics/reset", "").unwrap();
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let allowed = raw_with_token(server.port, "a-token-from-a-file-0123");
    assert!(allowed.starts_with("HTTP/1.1 200"), "{allowed}");
    let newline = raw_with_token(server.port, "a-token-from-a-file-0123\\n");
    assert!(newline.starts_with("HTTP/1.1 401"), "{newline}");
}

fn raw_with_token(port: u16, token: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST /api/observability/metrics/reset HTTP/1.1\r\nHost: localhost\r\n\
         Connection: close\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn a_token_on_the_command_line_works_but_warns_and_the_variable_does_not() {
    let dir = TempDir::new("token-warn");
    let data = dir.path().display().to_string();
    let token = "a-command-line-token-0123";
    for (args, env, warns) in [
        (vec!["--token", token], vec![], true),
        (vec![], vec![("BULWARK_TOKEN", token)], false),
    ] {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut all = vec!["serve", "--listen", &listen, "--data-dir", &data];
        all.extend(args.iter().copied());
        let mut child = bulwark(&all, &env).spawn().unwrap();
        common::wait_ready(port);
        child.kill().unwrap();
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr.contains("visible to every user in the process list"),
            warns,
            "{all:?}: {stderr}"
        );
    }
}
