//! An application that installs aws-lc-rs as rustls's process-wide crypto
//! provider (its own choice, for example for FIPS) while the providers are
//! built with their default `rustls-ring` feature: rustls then has two
//! providers compiled in, where anything building a TLS configuration without
//! naming a provider panics unless one is installed. With aws-lc-rs
//! installed, every provider builds its TLS client on it, without a panic.
//! (Its own process: the process default cannot be uninstalled.)

use leader_election_abstractions::LeaderElectionOptions;
use leader_election_consul::{ConsulConfig, ConsulLeaderElectionFactory};
use leader_election_etcd::{EtcdConfig, EtcdLeaderElectionFactory};
use leader_election_kubernetes::{KubernetesConfig, KubernetesLeaderElectionFactory};

#[tokio::test]
async fn every_provider_builds_its_tls_client_on_an_installed_aws_lc_rs() {
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .expect("nothing installed a process default before");
    let options = LeaderElectionOptions::default();

    ConsulLeaderElectionFactory::new(
        ConsulConfig {
            address: "https://127.0.0.1:8501".to_owned(),
            ..ConsulConfig::default()
        },
        options.clone(),
    )
    .expect("Consul factory with an https agent address");

    EtcdLeaderElectionFactory::new(
        EtcdConfig {
            endpoints: vec!["https://127.0.0.1:2379".to_owned()],
            ..EtcdConfig::default()
        },
        options.clone(),
    )
    .expect("etcd factory with an https endpoint");

    // kube builds its rustls configuration with the process default here;
    // without one installed, this is where it would panic.
    let config = kube::Config::new("https://127.0.0.1:6443".parse().expect("url"));
    let client = kube::Client::try_from(config).expect("kube client with an https server");
    KubernetesLeaderElectionFactory::new(client, KubernetesConfig::default(), options)
        .expect("Kubernetes factory");
}
