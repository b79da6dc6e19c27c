//! Shared by the Consul integration tests: the agent address from the
//! environment (set by `cargo xtask integration consul`) and a provider that
//! gives each candidate its own fault proxy.
#![allow(dead_code, unreachable_pub, clippy::new_without_default)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use leader_election_abstractions::{Election, LeaderElectionOptions, Result};
use leader_election_consul::{ConsulConfig, ConsulLeaderElectionFactory, ConsulLeaseStore};
use leader_election_testkit::{
    Candidate, CandidateControl, Fault, FaultHandle, FaultProxy, NetworkFault, Provider,
};

/// The agent's HTTP address; integration tests fail loudly without it.
pub fn agent_address() -> SocketAddr {
    let raw = std::env::var("CONSUL_HTTP_ADDR").unwrap_or_else(|_| {
        panic!("CONSUL_HTTP_ADDR is not set: run these tests with `cargo xtask integration consul`, which starts a Consul agent")
    });
    let hostport = raw.trim_start_matches("http://").trim_end_matches('/');
    hostport
        .parse()
        .unwrap_or_else(|e| panic!("CONSUL_HTTP_ADDR={raw:?} is not host:port: {e}"))
}

/// Config for an agent (or a proxy in front of it) on loopback; the test
/// agent runs with `session_ttl_min = 1s`.
pub fn config_for(address: SocketAddr) -> ConsulConfig {
    ConsulConfig {
        address: format!("http://{address}"),
        session_ttl_min: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        watch_wait: Duration::from_secs(10),
        ..ConsulConfig::default()
    }
}

/// Short leases so the suite runs in minutes: TTL 2 s, lock-delay 1 s.
pub fn test_options() -> LeaderElectionOptions {
    LeaderElectionOptions::builder()
        .lease_duration(Duration::from_secs(2))
        .renew_interval(Duration::from_millis(500))
        .retry_interval(Duration::from_millis(500))
        .grace_period(Duration::from_secs(1))
        .instance_id("consul-test")
        .build()
        .expect("valid test options")
}

/// Candidates against the real agent, each behind its own fault proxy.
pub struct ConsulProvider {
    agent: SocketAddr,
    /// Proxies live as long as the provider, so a dropped election can still
    /// release its lease through its proxy.
    proxies: Mutex<Vec<FaultProxy>>,
}

impl ConsulProvider {
    /// A provider for the agent at `CONSUL_HTTP_ADDR`.
    pub fn new() -> Self {
        Self {
            agent: agent_address(),
            proxies: Mutex::new(Vec::new()),
        }
    }

    /// A candidate and its concrete election, for tests beyond the suite.
    pub async fn concrete(
        &self,
        resource: &str,
        candidate_id: &str,
        options: LeaderElectionOptions,
    ) -> Result<(Election<ConsulLeaseStore>, FaultHandle)> {
        let proxy = FaultProxy::start(self.agent)
            .await
            .unwrap_or_else(|e| panic!("starting a fault proxy: {e}"));
        let handle = proxy.handle();
        let factory =
            ConsulLeaderElectionFactory::new(config_for(proxy.local_addr()), options.clone())?;
        self.proxies.lock().expect("proxies").push(proxy);
        let election = factory.election_with(resource, Some(candidate_id), options, true)?;
        Ok((election, handle))
    }
}

struct Control {
    election: Election<ConsulLeaseStore>,
    proxy: FaultHandle,
}

impl CandidateControl for Control {
    fn crash(&self) {
        // A dead process sends nothing: no release, no session destroy.
        self.proxy.set_fault(Fault::BlackHole);
        self.election.abort_without_release();
    }

    fn set_network_fault(&self, fault: Option<NetworkFault>) {
        self.proxy.set_fault(match fault {
            None => Fault::PassThrough,
            Some(NetworkFault::BlackHole) => Fault::BlackHole,
            Some(_) => Fault::Reset,
        });
    }
}

#[async_trait]
impl Provider for ConsulProvider {
    fn name(&self) -> &str {
        "consul"
    }

    fn options(&self) -> LeaderElectionOptions {
        test_options()
    }

    fn virtual_time(&self) -> bool {
        false
    }

    fn round_trip(&self) -> Duration {
        Duration::from_millis(50)
    }

    async fn candidate(
        &self,
        resource: &str,
        candidate_id: &str,
        options: LeaderElectionOptions,
    ) -> Result<Candidate> {
        let (election, proxy) = self.concrete(resource, candidate_id, options).await?;
        Ok(Candidate {
            election: Arc::new(election.clone()),
            control: Arc::new(Control { election, proxy }),
        })
    }
}
