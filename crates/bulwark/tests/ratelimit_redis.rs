//! The Redis limiter against real servers: two OS processes sharing one limit, and a Redis
//! that dies and comes back mid-run.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bulwark::ratelimit::redis::{FailurePolicy, RedisRateLimiter};
use bulwark::ratelimit::{RateLimitConfig, RateLimitError};

const SHARED: RateLimitConfig = RateLimitConfig::new(1_000, Duration::from_secs(1), 100);
const RUN: Duration = Duration::from_millis(1_500);

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Entry point of the child processes of `two_processes_share_one_limit`; not a test itself.
#[tokio::test]
#[ignore = "runs only as a child process of two_processes_share_one_limit"]
async fn child_hammer() {
    let prefix = std::env::var("BULWARK_CHILD_PREFIX").unwrap();
    let start: u128 = std::env::var("BULWARK_CHILD_START")
        .unwrap()
        .parse()
        .unwrap();
    let limiter = RedisRateLimiter::builder(SHARED)
        .prefix(prefix)
        .timeout(Duration::from_secs(2))
        .connect(&support::redis_url())
        .await
        .unwrap();
    let end = start + RUN.as_nanos();
    while unix_nanos() < start {
        std::hint::spin_loop();
    }
    let mut admitted = 0u64;
    while unix_nanos() < end {
        match limiter.check("shared", 1).await {
            Ok(_) => admitted += 1,
            Err(RateLimitError::Limited(_)) => {}
            Err(other) => panic!("unexpected {other}"),
        }
    }
    println!("ADMITTED={admitted}");
}

#[tokio::test]
async fn two_processes_share_one_limit() {
    // Fail (in CI) or skip early when Redis is not there.
    if RedisRateLimiter::builder(SHARED)
        .connect(&support::redis_url())
        .await
        .map_err(|e| support::unavailable::<()>("redis", e))
        .is_err()
    {
        return;
    }
    let prefix = support::unique_prefix("two_processes");
    let start = unix_nanos() + 700_000_000; // leaves time for both processes to start
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["child_hammer", "--exact", "--ignored", "--nocapture"])
                .env("BULWARK_CHILD_PREFIX", &prefix)
                .env("BULWARK_CHILD_START", start.to_string())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut total = 0u64;
    let mut each = Vec::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        let stdout = String::from_utf8_lossy(&output.stdout);
        let admitted: u64 = stdout
            .lines()
            .find_map(|line| line.strip_prefix("ADMITTED="))
            .expect("child printed its count")
            .parse()
            .unwrap();
        each.push(admitted);
        total += admitted;
    }
    let rate = f64::from(SHARED.max_requests) / SHARED.time_window.as_secs_f64();
    let allowance = SHARED.capacity() as f64 + rate * RUN.as_secs_f64();
    // The last request of each process may start just before the end and finish after it.
    let upper = allowance + rate * 0.005;
    assert!(
        total as f64 <= upper,
        "{each:?} admitted, allowance {allowance}"
    );
    assert!(
        total as f64 >= 0.99 * allowance,
        "{each:?} admitted, allowance {allowance}"
    );
    assert!(
        each.iter().all(|n| *n > 0),
        "both processes were admitted: {each:?}"
    );
    eprintln!("{each:?} admitted of an allowance of {allowance}");
}

/// A Redis of the test's own, on its own port, that the test can kill and restart.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start() -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Self { port, child: None };
        redis.restart()?;
        Some(redis)
    }

    fn restart(&mut self) -> Option<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(error) => return support::unavailable("redis-server binary", error),
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn limiter(redis: &OwnRedis, policy: FailurePolicy) -> RedisRateLimiter {
    RedisRateLimiter::builder(RateLimitConfig::per_minute(10))
        .timeout(Duration::from_millis(200))
        .on_failure(policy)
        .connect(&redis.url())
        .await
        .unwrap()
}

/// Retries until Redis decides again (the connection manager reconnects on demand).
async fn until_recovered(limiter: &RedisRateLimiter) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while limiter.stats().degraded || limiter.stats().recoveries == 0 {
        assert!(
            Instant::now() < deadline,
            "never recovered: {:?}",
            limiter.stats()
        );
        let _ = limiter.check("probe", 1).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn fallback_holds_a_share_of_the_quota_while_redis_is_down_then_redis_resumes() {
    let Some(mut redis) = OwnRedis::start() else {
        return;
    };
    let limiter = limiter(&redis, FailurePolicy::Fallback { share: 0.5 }).await;
    for _ in 0..10 {
        limiter.check("k", 1).await.unwrap();
    }
    assert!(matches!(
        limiter.check("k", 1).await,
        Err(RateLimitError::Limited(_))
    ));

    redis.kill();
    // The local fallback holds 5 of the 10 per minute.
    let mut admitted = 0;
    for _ in 0..20 {
        if limiter.check("k", 1).await.is_ok() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 5);
    let stats = limiter.stats();
    assert!(stats.degraded);
    assert_eq!(stats.policy_decisions, 20);

    redis.restart().unwrap();
    until_recovered(&limiter).await;
    // The new server starts empty (no persistence here), so "k" has a full bucket again.
    let mut admitted = 0;
    for _ in 0..20 {
        if limiter.check("k", 1).await.is_ok() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 10);
    assert_eq!(limiter.stats().recoveries, 1);
}

#[tokio::test]
async fn fail_closed_refuses_and_fail_open_admits_while_redis_is_down() {
    let Some(mut redis) = OwnRedis::start() else {
        return;
    };
    let closed = limiter(&redis, FailurePolicy::FailClosed).await;
    let open = limiter(&redis, FailurePolicy::FailOpen).await;
    closed.check("k", 1).await.unwrap();
    open.check("k", 1).await.unwrap();

    redis.kill();
    for _ in 0..3 {
        assert!(matches!(
            closed.check("k", 1).await,
            Err(RateLimitError::Unavailable(_))
        ));
    }
    for _ in 0..30 {
        open.check("k", 1).await.unwrap();
    }

    redis.restart().unwrap();
    until_recovered(&closed).await;
    until_recovered(&open).await;
    assert!(closed.check("k", 1).await.is_ok());
    assert!(!closed.stats().degraded);
}

#[tokio::test]
async fn an_idle_bucket_expires_when_it_would_be_full_again() {
    let url = support::redis_url();
    let prefix = support::unique_prefix("expiry");
    let Ok(limiter) = RedisRateLimiter::builder(RateLimitConfig::per_minute(6))
        .prefix(&prefix)
        .connect(&url)
        .await
        .map_err(|e| support::unavailable::<()>("redis", e))
    else {
        return;
    };
    limiter.check("k", 2).await.unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(limiter.redis_key("k"))
        .query_async(&mut connection)
        .await
        .unwrap();
    // Two tokens of 10 s each refill in 20 s.
    assert!((19_000..=20_001).contains(&ttl), "pttl {ttl}");
}
