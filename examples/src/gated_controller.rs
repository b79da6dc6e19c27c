//! A kube-runtime [`Controller`] gated on leadership: it runs while this
//! candidate leads, is dropped (stopped) when the term ends, and starts
//! again at the next term, with each term's fencing token passed in.
//!
//! The controller reconciles the ConfigMaps matching a label selector by
//! writing the annotation `gated-controller.example/<candidate id>` = the
//! term's fencing token, and leaves alone a ConfigMap already reconciled
//! under a newer token (the fencing check a real controller would do on
//! what it writes). Used by `examples/kube_controller.rs` and by
//! `tests/gated_controller.rs` against the real apiserver.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use kube_runtime::controller::{Action, Controller};
use kube_runtime::watcher;
use leader_election_abstractions::{Error, FencingToken, LeaderElection, LeaderElectionExt};

/// The prefix of the annotation each candidate writes.
pub const ANNOTATION_PREFIX: &str = "gated-controller.example";

/// Runs the controller over `api`'s ConfigMaps matching `labels` whenever
/// `election` leads, until the election stops (then returns `Ok`).
pub async fn run(
    election: Arc<dyn LeaderElection>,
    api: Api<ConfigMap>,
    labels: String,
) -> leader_election_abstractions::Result<()> {
    let id = election.candidate_id().to_owned();
    loop {
        // The gating: wait for a term, run the controller with its token,
        // drop it when the term ends (no later than its local deadline).
        let term = election.run_while_leader(|guard| {
            controller(
                api.clone(),
                labels.clone(),
                id.clone(),
                guard.fencing_token(),
            )
        });
        match term.await {
            Ok(_) => {} // the term ended: wait for the next one
            Err(Error::Stopped) => return Ok(()),
            Err(error) => return Err(error),
        }
    }
}

/// What each reconciliation needs.
struct Context {
    api: Api<ConfigMap>,
    candidate_id: String,
    fencing_token: FencingToken,
}

/// The controller of one term; runs until dropped.
async fn controller(
    api: Api<ConfigMap>,
    labels: String,
    candidate_id: String,
    token: FencingToken,
) {
    tracing::info!(fencing_token = token.get(), "leading: controller starts");
    let context = Arc::new(Context {
        api: api.clone(),
        candidate_id,
        fencing_token: token,
    });
    Controller::new(api, watcher::Config::default().labels(&labels))
        .run(reconcile, error_policy, context)
        .for_each(|_| async {})
        .await;
}

async fn reconcile(
    config_map: Arc<ConfigMap>,
    context: Arc<Context>,
) -> Result<Action, kube::Error> {
    let annotations = config_map.metadata.annotations.clone().unwrap_or_default();
    // Fencing: never write under a token older than one already written.
    let newest = annotations
        .iter()
        .filter(|(key, _)| key.starts_with(ANNOTATION_PREFIX))
        .filter_map(|(_, value)| value.parse::<u64>().ok())
        .max();
    if newest.is_some_and(|newest| newest >= context.fencing_token.get()) {
        return Ok(Action::await_change());
    }
    let key = format!("{ANNOTATION_PREFIX}/{}", context.candidate_id);
    let patch = serde_json::json!({
        "metadata": { "annotations": { key: context.fencing_token.to_string() } }
    });
    let name = config_map.metadata.name.clone().unwrap_or_default();
    context
        .api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(Action::await_change())
}

fn error_policy(_: Arc<ConfigMap>, error: &kube::Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(1))
}
