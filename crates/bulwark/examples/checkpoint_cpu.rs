//! CPU cost of the steps of a checkpoint save on the 1 MB bench state, in wall time and in
//! process CPU time (which a busy machine inflates less), to choose the zstd level.
//!
//! Run after the checkpoint bench has written its states:
//! `cargo run --release -p bulwark --example checkpoint_cpu`
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use sha2::Digest;

/// User + system CPU time of this process in milliseconds (Linux, 10 ms ticks).
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) * 10.0
}

fn main() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/checkpoint-bench/state-1m.json"
    );
    let json = std::fs::read(path).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let iterations = 100;
    let run = |name: &str, f: &dyn Fn()| {
        let (cpu, wall) = (cpu_ms(), Instant::now());
        for _ in 0..iterations {
            f();
        }
        println!(
            "{name:<24} wall {:>6.2} ms   cpu {:>6.2} ms",
            wall.elapsed().as_secs_f64() * 1000.0 / f64::from(iterations),
            (cpu_ms() - cpu) / f64::from(iterations)
        );
    };
    run("serialize (serde_json)", &|| {
        std::hint::black_box(serde_json::to_vec(&value).unwrap());
    });
    run("sha256", &|| {
        std::hint::black_box(sha2::Sha256::digest(&json));
    });
    for level in [-1, 1, 3, 6] {
        let ratio = zstd::bulk::compress(&json, level).unwrap().len() as f64 / json.len() as f64;
        run(&format!("zstd {level} ({:.1}%)", ratio * 100.0), &|| {
            std::hint::black_box(zstd::bulk::compress(&json, level).unwrap());
        });
    }
}
