//! A regression test for the delayed-ACK stall: Spin does not set TCP_NODELAY, so a response
//! whose last bytes leave in a write of their own waits about 40 ms for the client's delayed ACK
//! on a keep-alive connection. Responses declare their length and leave whole, so sequential
//! requests on one connection take a few milliseconds. The stall is a floor of 40 ms under most
//! requests (before the fix, /health's median was 44 ms), while a busy machine (CI runs several
//! suites at once) delays a few requests by anything up to tens of milliseconds. So the test
//! reads the median and the share of requests at the stall's height, not single requests; the
//! figures themselves are measured by `bench`.

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Sends `count` GETs for `path` one after another on one keep-alive connection (a plain
/// socket, Nagle on, as most clients leave it) and returns each one's time.
async fn sequential_gets(base_url: &str, path: &str, token: &str, count: usize) -> Vec<Duration> {
    let stream = TcpStream::connect(base_url.trim_start_matches("http://"))
        .await
        .unwrap();
    let mut stream = BufReader::new(stream);
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let request = format!(
            "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {token}\r\n\r\n"
        );
        let started = Instant::now();
        stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        let mut length = None;
        loop {
            let mut line = String::new();
            stream.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            assert!(
                !line.to_ascii_lowercase().starts_with("transfer-encoding"),
                "{path} was sent chunked"
            );
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = Some(value.trim().parse::<usize>().unwrap());
            }
        }
        let mut body = vec![0; length.expect("every response declares its length")];
        stream.read_exact(&mut body).await.unwrap();
        times.push(started.elapsed());
    }
    times
}

#[tokio::test]
async fn sequential_requests_on_one_connection_do_not_wait_for_delayed_acks() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in_user("patient").await;
    for path in [
        "/health",
        "/auth/authenticate",
        "/catalog/categories",
        "/messages/unread",
        "/openapi.json",
    ] {
        let mut times = sequential_gets(&app.spin.base_url, path, &token, 60).await;
        times.sort();
        let median = times[times.len() / 2];
        let stalled = times
            .iter()
            .filter(|time| **time >= Duration::from_millis(38))
            .count();
        assert!(
            median < Duration::from_millis(20) && stalled <= times.len() / 4,
            "{path}: median {median:?}, {stalled} of 60 requests took 38 ms or more: {times:?}"
        );
    }
}
