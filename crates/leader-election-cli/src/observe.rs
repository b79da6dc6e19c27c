//! `leader-election status` and `watch`: read the lease through the
//! provider's own watch ([`LeaseStore::watch`]), without taking part.

use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use leader_election_abstractions::store::LeaseView;
use leader_election_abstractions::{LeaderElection, LeaseStore, StoreFactory};
use serde::Serialize;

use crate::backend::{error_chain, CliError, OnFactory};
use crate::cli::{Output, StatusArgs, WatchArgs};

/// How long `status` waits for the backend's first answer.
const STATUS_TIMEOUT: Duration = Duration::from_secs(30);

/// One observation of the lease, as printed.
#[derive(Debug, PartialEq, Serialize)]
struct Observation {
    resource: String,
    /// The holder's candidate id (`consul-session:<id>` for a foreign
    /// Consul holder), or none.
    holder: Option<String>,
    /// The holder's fencing token or, without a holder, the last one.
    fencing_token: Option<u64>,
    /// How long until an observer may take the lease over (expiry plus
    /// grace, by the backend's rules, counted from this observation).
    takeover_in_ms: Option<u64>,
    /// The backend object's identity (a Kubernetes Lease's uid).
    incarnation: Option<String>,
    /// When this was observed (RFC 3339, UTC).
    observed_at: String,
}

impl Observation {
    fn of(resource: &str, view: LeaseView) -> Self {
        Self {
            resource: resource.to_owned(),
            holder: view.holder,
            fencing_token: view.fencing_token.map(|t| t.0),
            takeover_in_ms: view
                .acquirable_in
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            incarnation: view.incarnation,
            observed_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        }
    }

    /// Whether `other` says something different (the times aside).
    fn same_state(&self, other: &Self) -> bool {
        (&self.holder, self.fencing_token, &self.incarnation)
            == (&other.holder, other.fencing_token, &other.incarnation)
    }

    fn print(&self, output: Output) {
        match output {
            Output::Json => match serde_json::to_string(self) {
                Ok(line) => println!("{line}"),
                Err(e) => eprintln!("leader-election: cannot encode the status: {e}"),
            },
            Output::Text => {
                let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
                println!(
                    "{}  resource={} holder={} fencing_token={} takeover_in={}",
                    self.observed_at,
                    self.resource,
                    opt(self.holder.clone()),
                    opt(self.fencing_token.map(|t| t.to_string())),
                    opt(self
                        .takeover_in_ms
                        .map(
                            |ms| humantime::format_duration(Duration::from_millis(ms)).to_string()
                        )),
                );
            }
        }
    }
}

/// The store an observer reads through: made like an election's (the same
/// checks of names and options), but never started, so it takes no part.
fn observer_store<F: StoreFactory>(factory: &F, resource: &str) -> Result<F::Store, CliError> {
    let election = factory.election(resource).build()?;
    let id = election.candidate_id().to_owned();
    drop(election);
    Ok(factory.store(resource, &id, factory.options())?)
}

impl OnFactory for StatusArgs {
    type Output = u8;

    async fn on<F: StoreFactory + 'static>(self, factory: F) -> Result<u8, CliError> {
        let store = observer_store(&factory, &self.target.resource)?;
        let first = tokio::time::timeout(STATUS_TIMEOUT, store.watch().next()).await;
        let view = match first {
            Ok(Some(Ok(view))) => view,
            Ok(Some(Err(e))) => return Err(CliError::failure(error_chain(&e))),
            Ok(None) => {
                return Err(CliError::failure(
                    "the backend's watch ended without an answer",
                ))
            }
            Err(_) => {
                return Err(CliError::failure(format!(
                    "no answer from the backend within {STATUS_TIMEOUT:?}"
                )))
            }
        };
        Observation::of(&self.target.resource, view).print(self.output);
        Ok(0)
    }
}

impl OnFactory for WatchArgs {
    type Output = u8;

    async fn on<F: StoreFactory + 'static>(self, factory: F) -> Result<u8, CliError> {
        let args = self.status;
        let store = observer_store(&factory, &args.target.resource)?;
        let mut last: Option<Observation> = None;
        loop {
            let mut views = store.watch();
            while let Some(item) = views.next().await {
                match item {
                    Ok(view) => {
                        let seen = Observation::of(&args.target.resource, view);
                        if !last.as_ref().is_some_and(|l| l.same_state(&seen)) {
                            seen.print(args.output);
                            last = Some(seen);
                        }
                    }
                    Err(e) => {
                        eprintln!("leader-election: watch: {}", error_chain(&e));
                        break;
                    }
                }
            }
            // The watch broke or ended: start a new one after a pause.
            tokio::time::sleep(args.timing.retry).await;
        }
    }
}
