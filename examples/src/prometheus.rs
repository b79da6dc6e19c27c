//! The election metrics on a Prometheus endpoint (the `prometheus_metrics`
//! example and `tests/prometheus_metrics.rs`): the exporter's HTTP listener,
//! a plain HTTP scrape, and a handover between two in-memory candidates.

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use leader_election_abstractions::telemetry::{LABEL_CANDIDATE, LABEL_NAME};
use leader_election_abstractions::LeaderElectionFactory;
use leader_election_inmemory::{InMemoryLeaderElectionFactory, InMemoryStore};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::demo_options;

/// The resource the handover contests.
pub const RESOURCE: &str = "metrics-demo";
/// The first leader, which resigns.
pub const OLD_LEADER: &str = "node-1";
/// The candidate that takes over.
pub const NEW_LEADER: &str = "node-2";

type BoxResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Installs the Prometheus recorder globally and serves it over HTTP on
/// `listen` (the exporter's own listener; the engine's latency histograms
/// get buckets from 1 ms to 10 s). Call it inside the Tokio runtime, before
/// the elections start.
pub fn install_exporter(listen: SocketAddr) -> BoxResult<()> {
    let buckets = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), &buckets)?
        .install()?;
    Ok(())
}

/// `GET /metrics` over plain HTTP/1.1; the body of a 200 answer.
pub async fn scrape(address: SocketAddr) -> BoxResult<String> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or("the answer has no header end")?;
    let status = head.lines().next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("scrape answered {status:?}").into());
    }
    Ok(body.to_owned())
}

/// The value of the sample of `metric` whose labels include all of `labels`
/// in a Prometheus text exposition, if there is exactly one such sample.
pub fn sample(exposition: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = exposition.lines().filter_map(|line| {
        if line.starts_with('#') {
            return None;
        }
        let (series, value) = line.rsplit_once(' ')?;
        let (name, rest) = series.split_once('{').unwrap_or((series, "}"));
        if name != metric {
            return None;
        }
        let present = rest.strip_suffix('}')?;
        let all = labels.iter().all(|(key, wanted)| {
            present
                .split(',')
                .any(|pair| pair == format!("{key}=\"{wanted}\""))
        });
        all.then(|| value.parse::<f64>().ok()).flatten()
    });
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// The labels of one candidate of the demo's resource.
pub fn candidate(id: &str) -> [(&'static str, &str); 2] {
    [(LABEL_NAME, RESOURCE), (LABEL_CANDIDATE, id)]
}

/// Two in-memory candidates on [`RESOURCE`]: [`OLD_LEADER`] leads,
/// [`NEW_LEADER`] follows; the endpoint at `address` is scraped; the leader
/// resigns and the other takes over; the endpoint is scraped again. Returns
/// both scrapes (before, after). Both elections are stopped at the end.
pub async fn handover(address: SocketAddr) -> BoxResult<(String, String)> {
    let factory = InMemoryLeaderElectionFactory::new(InMemoryStore::new(), demo_options()?)?;
    let old = factory.create_election(RESOURCE, Some(OLD_LEADER))?;
    let new = factory.create_election(RESOURCE, Some(NEW_LEADER))?;
    // Bounded waits only guard against a hang; the demo takes about a second.
    let bound = Duration::from_secs(20);
    old.start().await?;
    tokio::time::timeout(bound, old.wait_for_leadership()).await??;
    new.start().await?;
    // The follower has run (and set its gauge) once it has seen the leader.
    tokio::time::timeout(bound, async {
        while new.current_leader_id().as_deref() != Some(OLD_LEADER) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await?;
    let before = scrape(address).await?;
    old.resign().await?;
    tokio::time::timeout(bound, new.wait_for_leadership()).await??;
    let after = scrape(address).await?;
    new.stop().await?;
    old.stop().await?;
    Ok((before, after))
}

#[cfg(test)]
mod tests {
    use super::sample;

    #[test]
    fn sample_matches_every_given_label_and_refuses_ambiguity() {
        let text = "# TYPE m gauge\nm{name=\"r\",candidate=\"a\"} 1\nm{name=\"r\",candidate=\"b\"} 0\nn 3\n";
        assert_eq!(sample(text, "m", &[("candidate", "a")]), Some(1.0));
        assert_eq!(
            sample(text, "m", &[("name", "r"), ("candidate", "b")]),
            Some(0.0)
        );
        assert_eq!(sample(text, "m", &[("name", "r")]), None);
        assert_eq!(sample(text, "m", &[("candidate", "c")]), None);
        assert_eq!(sample(text, "n", &[]), Some(3.0));
    }
}
