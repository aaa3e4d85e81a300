//! The load generator: `connections` keep-alive HTTP/1.1 connections, each sending its next
//! request as soon as the previous answer is read, for a fixed duration.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::cpu::CpuSample;

/// Builds the n-th request of a run (so scenarios can vary what they send).
pub type RequestFactory = Arc<dyn Fn(u64) -> http::Request<Full<Bytes>> + Send + Sync>;

#[derive(Debug, Clone)]
pub struct Measurement {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Sorted latencies of successful requests, in microseconds.
    pub latencies_us: Vec<u32>,
    /// CPU time spent outside the load generator while measuring (see [`crate::cpu`]).
    pub server_cpu: Option<Duration>,
}

impl Measurement {
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile_ms(&self, quantile: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies_us.len() as f64 - 1.0) * quantile).round() as usize;
        f64::from(self.latencies_us[index]) / 1000.0
    }

    /// Microseconds of CPU outside the load generator per request (errors included).
    pub fn server_cpu_us_per_request(&self) -> Option<f64> {
        let cpu = self.server_cpu?;
        (self.requests > 0).then(|| cpu.as_secs_f64() * 1e6 / self.requests as f64)
    }
}

struct ConnectionResult {
    requests: u64,
    errors: u64,
    latencies_us: Vec<u32>,
}

async fn connect(
    authority: &str,
    nodelay: bool,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(authority)
        .await
        .with_context(|| format!("cannot connect to {authority}"))?;
    stream.set_nodelay(nodelay)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

async fn drive(
    authority: String,
    factory: RequestFactory,
    counter: Arc<std::sync::atomic::AtomicU64>,
    deadline: Instant,
    record: bool,
    nodelay: bool,
) -> ConnectionResult {
    let mut result = ConnectionResult {
        requests: 0,
        errors: 0,
        latencies_us: Vec::new(),
    };
    let mut sender = None;
    while Instant::now() < deadline {
        if sender.is_none() {
            match connect(&authority, nodelay).await {
                Ok(connected) => sender = Some(connected),
                Err(_) => {
                    result.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let request = factory(n);
        let started = Instant::now();
        let outcome = async {
            let connection = sender.as_mut().expect("connected above");
            connection.ready().await?;
            let response = connection.send_request(request).await?;
            let status = response.status();
            response.into_body().collect().await?;
            anyhow::Ok(status)
        }
        .await;
        let latency = started.elapsed();
        result.requests += 1;
        match outcome {
            Ok(status) if status.is_success() || status.is_redirection() => {
                if record {
                    result
                        .latencies_us
                        .push(latency.as_micros().min(u32::MAX as u128) as u32);
                }
            }
            Ok(_) => result.errors += 1,
            Err(_) => {
                result.errors += 1;
                sender = None;
            }
        }
    }
    result
}

/// Runs the load: `warmup` first (not counted), then `duration` measured. Under load the
/// connections set TCP_NODELAY, as load generators do; a single connection leaves Nagle on, as
/// most clients do, which is what exposes a response that leaves in two writes.
pub async fn run(
    base_url: &str,
    factory: RequestFactory,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<Measurement> {
    let nodelay = connections > 1;
    let authority = base_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for (phase_duration, record) in [(warmup, false), (duration, true)] {
        if phase_duration.is_zero() {
            continue;
        }
        let started = Instant::now();
        let cpu_at_start = CpuSample::now();
        let deadline = started + phase_duration;
        let tasks: Vec<_> = (0..connections)
            .map(|_| {
                tokio::spawn(drive(
                    authority.clone(),
                    factory.clone(),
                    counter.clone(),
                    deadline,
                    record,
                    nodelay,
                ))
            })
            .collect();
        let mut total = ConnectionResult {
            requests: 0,
            errors: 0,
            latencies_us: Vec::new(),
        };
        for task in tasks {
            let result = task.await?;
            total.requests += result.requests;
            total.errors += result.errors;
            total.latencies_us.extend(result.latencies_us);
        }
        if record {
            let elapsed = started.elapsed();
            let server_cpu = cpu_at_start
                .zip(CpuSample::now())
                .map(|(start, end)| end.others_since(&start));
            total.latencies_us.sort_unstable();
            return Ok(Measurement {
                requests: total.requests,
                errors: total.errors,
                elapsed,
                latencies_us: total.latencies_us,
                server_cpu,
            });
        }
    }
    anyhow::bail!("the measured phase has no duration")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_sorted_latencies() {
        let measurement = Measurement {
            requests: 100,
            errors: 0,
            elapsed: Duration::from_secs(1),
            latencies_us: (1..=100).map(|ms| ms * 1000).collect(),
            server_cpu: Some(Duration::from_millis(25)),
        };
        assert_eq!(measurement.percentile_ms(0.5), 51.0);
        assert_eq!(measurement.percentile_ms(0.99), 99.0);
        assert_eq!(measurement.requests_per_second(), 100.0);
        assert_eq!(measurement.server_cpu_us_per_request(), Some(250.0));
    }
}
