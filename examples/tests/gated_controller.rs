//! The gated kube-runtime controller (`examples/src/gated_controller.rs`)
//! against the real apiserver: two instances contend for one Lease; only the
//! leader's controller reconciles ConfigMaps, it stops when the term ends
//! (resign), the other instance's starts with a newer fencing token, and the
//! first starts again when it leads again. Asserted from what lands on the
//! ConfigMaps (each instance writes its own annotation).
//!
//! `#[ignore]`d: run by `cargo xtask integration kubernetes`, which sets
//! `KUBECONFIG`; without it the test fails.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use examples::gated_controller::{run, ANNOTATION_PREFIX};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use leader_election_abstractions::{
    FencingToken, LeaderElection, LeaderElectionFactory, LeaderElectionOptions,
};
use leader_election_kubernetes::{KubernetesConfig, KubernetesLeaderElectionFactory};

/// Generous: only guards against a hang.
const PATIENCE: Duration = Duration::from_secs(60);

/// The annotations each instance wrote on `name`: candidate id -> token.
async fn written(api: &Api<ConfigMap>, name: &str) -> BTreeMap<String, u64> {
    let config_map = api.get(name).await.expect("get ConfigMap");
    config_map
        .metadata
        .annotations
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(key, value)| {
            let id = key
                .strip_prefix(&format!("{ANNOTATION_PREFIX}/"))?
                .to_owned();
            Some((id, value.parse().ok()?))
        })
        .collect()
}

/// Waits until `name` carries `id`'s annotation with `token`.
async fn wait_written(api: &Api<ConfigMap>, name: &str, id: &str, token: FencingToken) {
    let started = tokio::time::Instant::now();
    loop {
        let seen = written(api, name).await;
        if seen.get(id) == Some(&token.get()) {
            return;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{name} was not reconciled by {id} under token {token}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn create(api: &Api<ConfigMap>, name: &str, labels: &BTreeMap<String, String>) {
    let mut config_map = ConfigMap::default();
    config_map.metadata.name = Some(name.to_owned());
    config_map.metadata.labels = Some(labels.clone());
    api.create(&PostParams::default(), &config_map)
        .await
        .expect("create ConfigMap");
}

async fn leads(election: &dyn LeaderElection) -> FencingToken {
    tokio::time::timeout(PATIENCE, election.wait_for_leadership())
        .await
        .expect("leads within the patience")
        .expect("leads")
        .fencing_token()
}

#[tokio::test]
#[ignore = "needs the apiserver: cargo xtask integration kubernetes"]
async fn the_controller_reconciles_only_while_its_instance_leads() {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: run with `cargo xtask integration kubernetes`"
    );
    let options = LeaderElectionOptions::builder()
        .lease_duration(Duration::from_secs(4))
        .renew_interval(Duration::from_secs(1))
        .retry_interval(Duration::from_millis(500))
        .grace_period(Duration::from_secs(1))
        .build()
        .expect("options");
    let factory = KubernetesLeaderElectionFactory::infer(KubernetesConfig::default(), options)
        .await
        .expect("factory");
    let client = kube::Client::try_default().await.expect("client");
    let api: Api<ConfigMap> = Api::namespaced(client, factory.namespace());
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let resource = format!("gated-controller-{nonce}");
    let selector = format!("gated-controller-test={nonce}");
    let labels = BTreeMap::from([("gated-controller-test".to_owned(), nonce.to_string())]);
    let name = |n: u32| format!("gated-{nonce}-{n}");

    let a = factory
        .create_election(&resource, Some("instance-a"))
        .expect("a");
    let b = factory
        .create_election(&resource, Some("instance-b"))
        .expect("b");
    a.start().await.expect("start a");
    let token_a = leads(a.as_ref()).await;
    b.start().await.expect("start b");
    let run_a = tokio::spawn(run(Arc::clone(&a), api.clone(), selector.clone()));
    let run_b = tokio::spawn(run(Arc::clone(&b), api.clone(), selector.clone()));

    // a leads: its controller reconciles; b's does not run.
    create(&api, &name(1), &labels).await;
    wait_written(&api, &name(1), "instance-a", token_a).await;
    create(&api, &name(2), &labels).await;
    wait_written(&api, &name(2), "instance-a", token_a).await;
    // b's controller, were it running, would have reconciled both by now
    // (it lists everything when it starts); give it two more seconds.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for n in [1, 2] {
        let seen = written(&api, &name(n)).await;
        assert!(
            !seen.contains_key("instance-b"),
            "b reconciled while a led: {seen:?}"
        );
    }

    // a resigns: its controller stops, b's starts under a newer token and
    // reconciles what exists and what comes.
    a.resign().await.expect("resign");
    let token_b = leads(b.as_ref()).await;
    assert!(token_b > token_a);
    wait_written(&api, &name(1), "instance-b", token_b).await;
    create(&api, &name(3), &labels).await;
    wait_written(&api, &name(3), "instance-b", token_b).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = written(&api, &name(3)).await;
    assert!(
        !seen.contains_key("instance-a"),
        "a reconciled after it resigned: {seen:?}"
    );

    // b stops; a leads again and its controller starts again with its new token.
    b.stop().await.expect("stop b");
    let token_a2 = leads(a.as_ref()).await;
    assert!(token_a2 > token_b);
    wait_written(&api, &name(3), "instance-a", token_a2).await;

    a.stop().await.expect("stop a");
    for handle in [run_a, run_b] {
        tokio::time::timeout(PATIENCE, handle)
            .await
            .expect("the gated loop ends when its election stops")
            .expect("join")
            .expect("the gated loop ends without error");
    }
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels(&selector),
    )
    .await
    .expect("clean up the ConfigMaps");
}
