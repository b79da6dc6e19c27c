//! The election metrics (feature `metrics` of the abstractions crate) on a
//! Prometheus endpoint, served by `metrics-exporter-prometheus`'s own HTTP
//! listener.
//!
//! Two in-memory candidates contest one resource; node-1 leads, then resigns
//! and node-2 takes over. The endpoint is scraped before and after, and the
//! leader gauge of each candidate is printed: 1 then 0 for node-1, 0 then 1
//! for node-2. The endpoint stays up for `LE_METRICS_LINGER_SECS` seconds
//! (default 0) afterwards, for `curl`:
//!
//! ```text
//! LE_METRICS_LINGER_SECS=30 cargo run -p examples --example prometheus_metrics
//! curl -s http://127.0.0.1:9464/metrics | grep leader_election
//! ```
//!
//! The listen address is `LE_METRICS_ADDR` (default `127.0.0.1:9464`).
//! `tests/prometheus_metrics.rs` runs the same handover and checks the
//! scrapes.

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use examples::prometheus::{candidate, handover, install_exporter, sample, NEW_LEADER, OLD_LEADER};
use examples::{init_tracing, stamp};
use leader_election_abstractions::telemetry::MASTER_STATUS;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    init_tracing();
    let text = std::env::var("LE_METRICS_ADDR").unwrap_or_else(|_| "127.0.0.1:9464".to_owned());
    let address: SocketAddr = text
        .parse()
        .map_err(|e| format!("LE_METRICS_ADDR={text:?}: not an IP:port ({e})"))?;
    if address.port() == 0 {
        // The exporter does not say which port it would pick.
        return Err(format!("LE_METRICS_ADDR={text:?}: must name a port other than 0").into());
    }
    install_exporter(address)?;
    println!("{} metrics on http://{address}/metrics", stamp());
    let (before, after) = handover(address).await?;
    for (when, scrape) in [("before", &before), ("after", &after)] {
        for id in [OLD_LEADER, NEW_LEADER] {
            let value = sample(scrape, MASTER_STATUS, &candidate(id));
            println!(
                "{} {when} the handover: {MASTER_STATUS}{{candidate={id:?}}} = {value:?}",
                stamp()
            );
        }
    }
    println!("\nthe last scrape, election metrics only:");
    for line in after.lines().filter(|l| l.contains("leader_election_")) {
        println!("  {line}");
    }
    let linger: u64 = std::env::var("LE_METRICS_LINGER_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(linger)).await;
    Ok(())
}
