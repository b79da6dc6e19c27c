//! The election metrics scraped over HTTP from the Prometheus exporter during
//! a handover (the `prometheus_metrics` example's code): the leader gauge
//! moves from 1 to 0 for the old leader and from 0 to 1 for the new one, and
//! the counters, histograms and contact time are there.

use std::net::{SocketAddr, TcpListener};

use examples::prometheus::{candidate, handover, install_exporter, sample, NEW_LEADER, OLD_LEADER};
use leader_election_abstractions::telemetry::{
    ACQUIRE_DURATION, LAST_BACKEND_CONTACT, LEADERSHIP_ACQUIRED, LEADERSHIP_LOST, MASTER_STATUS,
};

/// A loopback port free a moment ago (the exporter binds its own listener).
fn free_port() -> SocketAddr {
    let probe = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    probe.local_addr().expect("the probe's address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_gauge_moves_on_the_scraped_endpoint_during_a_handover() {
    let address = free_port();
    install_exporter(address).expect("install the Prometheus exporter");
    let (before, after) = handover(address).await.expect("the handover");

    let status = |scrape: &str, id: &str| sample(scrape, MASTER_STATUS, &candidate(id));
    assert_eq!(status(&before, OLD_LEADER), Some(1.0), "before:\n{before}");
    assert_eq!(status(&before, NEW_LEADER), Some(0.0), "before:\n{before}");
    assert_eq!(status(&after, OLD_LEADER), Some(0.0), "after:\n{after}");
    assert_eq!(status(&after, NEW_LEADER), Some(1.0), "after:\n{after}");

    let [name, old_candidate] = candidate(OLD_LEADER);
    let resigned = [name, old_candidate, ("reason", "resigned")];
    assert_eq!(
        sample(&after, LEADERSHIP_LOST, &resigned),
        Some(1.0),
        "{after}"
    );
    for id in [OLD_LEADER, NEW_LEADER] {
        assert_eq!(
            sample(&after, LEADERSHIP_ACQUIRED, &candidate(id)),
            Some(1.0),
            "{after}"
        );
        let contact = sample(&after, LAST_BACKEND_CONTACT, &candidate(id));
        assert!(
            contact.is_some_and(|t| t > 1.0e9),
            "{id}: {contact:?}\n{after}"
        );
    }
    let [name, new_candidate] = candidate(NEW_LEADER);
    let acquired = [name, new_candidate, ("outcome", "acquired")];
    let count = format!("{ACQUIRE_DURATION}_count");
    assert_eq!(sample(&after, &count, &acquired), Some(1.0), "{after}");
}
