//! From flags to a provider's factory: the options, the connection from the
//! ecosystem's usual sources, and the one `match` over backends. A new
//! backend is one arm in [`with_factory`] (plus its flags in `cli.rs`).

use std::future::Future;

use leader_election_abstractions::{Error, LeaderElectionOptions, StoreFactory};
use leader_election_consul::{ConsulConfig, ConsulLeaderElectionFactory};
use leader_election_etcd::{EtcdConfig, EtcdLeaderElectionFactory};
use leader_election_kubernetes::{KubernetesConfig, KubernetesLeaderElectionFactory};

use crate::cli::{Backend, Target, Timing, EXIT_FAILURE, EXIT_USAGE};

/// An error that ends the command, with its exit status.
#[derive(Debug)]
pub(crate) struct CliError {
    /// The exit status.
    pub(crate) code: u8,
    /// What to print after `leader-election: `.
    pub(crate) message: String,
}

impl CliError {
    /// A usage error: bad flags or options.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// A backend or system error.
    pub(crate) fn failure(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_FAILURE,
            message: message.into(),
        }
    }
}

/// The flag (or variable) that sets an option field of the library or of
/// `backend`'s provider (any backend's when `None`), so errors name what the
/// user typed.
fn flag_of(backend: Option<Backend>, field: &str) -> &str {
    match (backend, field) {
        (_, "lease_duration") => "--lease",
        (_, "renew_interval") => "--renew",
        (_, "retry_interval") => "--retry",
        (_, "grace_period") => "--grace",
        (_, "instance_id" | "candidate_id" | "candidate id") => "--id",
        (_, "resource name") => "--resource",
        (_, "namespace") => "--namespace",
        (Some(Backend::Etcd), "key_prefix") => "--etcd-prefix",
        (Some(Backend::Etcd), "endpoints") => "ETCDCTL_ENDPOINTS",
        (Some(Backend::Etcd), "user" | "user.name") => "ETCDCTL_USER",
        (Some(Backend::Etcd), "tls.client_cert") => "ETCDCTL_CERT and ETCDCTL_KEY",
        (_, "key_prefix") => "--consul-prefix",
        (_, "datacenter") => "--consul-datacenter",
        (_, "session_ttl_min") => "--consul-session-ttl-min",
        (_, "address") => "CONSUL_HTTP_ADDR",
        (_, "tls.client_cert") => "CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY",
        (_, other) => other,
    }
}

impl CliError {
    /// `error`, with the flag or variable of `backend` that caused it named.
    fn of(backend: Option<Backend>, error: Error) -> Self {
        match &error {
            Error::InvalidOption { field, rule } => CliError::usage(format!(
                "invalid {} (`{field}`): {rule}",
                flag_of(backend, field)
            )),
            Error::InvalidName { what, value, rule } => CliError::usage(format!(
                "invalid {} {value:?}: {rule}",
                flag_of(backend, what)
            )),
            _ => CliError::failure(error_chain(&error)),
        }
    }
}

impl From<Error> for CliError {
    fn from(error: Error) -> Self {
        CliError::of(None, error)
    }
}

/// An error and its sources, `: `-separated.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let shown = cause.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        source = cause.source();
    }
    text
}

/// The library's options from the timing flags, validated (errors name the flag).
pub(crate) fn options(timing: &Timing) -> Result<LeaderElectionOptions, CliError> {
    Ok(LeaderElectionOptions::builder()
        .lease_duration(timing.lease)
        .renew_interval(timing.renew)
        .retry_interval(timing.retry)
        .grace_period(timing.grace)
        .build()?)
}

/// A command that runs over any provider's factory.
pub(crate) trait OnFactory {
    /// What the command returns (an exit status, usually).
    type Output;

    /// Runs the command with `factory`.
    fn on<F: StoreFactory + 'static>(
        self,
        factory: F,
    ) -> impl Future<Output = Result<Self::Output, CliError>>;
}

/// Connects to `target`'s backend and runs `command` over its factory.
pub(crate) async fn with_factory<C: OnFactory>(
    target: &Target,
    options: LeaderElectionOptions,
    command: C,
) -> Result<C::Output, CliError> {
    match target.backend {
        Backend::Kubernetes => command.on(kubernetes(target, options).await?).await,
        Backend::Consul => command.on(consul(target, options)?).await,
        Backend::Etcd => command.on(etcd(target, options)?).await,
    }
}

/// In-cluster configuration or the kubeconfig (`KUBECONFIG`, `~/.kube/config`);
/// with `--context`, that context of the kubeconfig.
async fn kubernetes(
    target: &Target,
    options: LeaderElectionOptions,
) -> Result<KubernetesLeaderElectionFactory, CliError> {
    let config = KubernetesConfig {
        namespace: target.namespace.clone(),
        ..KubernetesConfig::default()
    };
    // Bad flags first: they are the user's to fix, whatever the cluster says.
    config.validate()?;
    let Some(context) = &target.context else {
        return Ok(KubernetesLeaderElectionFactory::infer(config, options).await?);
    };
    let chosen = kube::config::KubeConfigOptions {
        context: Some(context.clone()),
        ..Default::default()
    };
    let client_config = kube::Config::from_kubeconfig(&chosen)
        .await
        .map_err(|e| CliError::usage(format!("--context {context:?}: {e}")))?;
    let client = kube::Client::try_from(client_config)
        .map_err(|e| CliError::failure(format!("--context {context:?}: {e}")))?;
    Ok(KubernetesLeaderElectionFactory::new(
        client, config, options,
    )?)
}

/// `CONSUL_HTTP_*` and `CONSUL_*` TLS variables, plus the Consul flags.
fn consul(
    target: &Target,
    options: LeaderElectionOptions,
) -> Result<ConsulLeaderElectionFactory, CliError> {
    let config = ConsulConfig {
        key_prefix: target.consul_prefix.clone(),
        datacenter: target.consul_datacenter.clone(),
        session_ttl_min: target.consul_session_ttl_min,
        ..ConsulConfig::from_env()
    };
    config.validate()?;
    Ok(ConsulLeaderElectionFactory::new(config, options)?)
}

/// etcdctl's `ETCDCTL_*` variables, plus `--etcd-prefix`.
fn etcd(
    target: &Target,
    options: LeaderElectionOptions,
) -> Result<EtcdLeaderElectionFactory, CliError> {
    let named = |error| CliError::of(Some(Backend::Etcd), error);
    let config = EtcdConfig {
        key_prefix: target.etcd_prefix.clone(),
        ..EtcdConfig::from_env().map_err(named)?
    };
    config.validate().map_err(named)?;
    EtcdLeaderElectionFactory::new(config, options).map_err(named)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_errors_name_the_etcd_flag_or_variable() {
        let error = |field: &'static str| {
            CliError::of(Some(Backend::Etcd), Error::invalid_option(field, "a rule")).message
        };
        assert!(error("key_prefix").contains("--etcd-prefix"));
        assert!(error("endpoints").contains("ETCDCTL_ENDPOINTS"));
        assert!(error("user").contains("ETCDCTL_USER"));
        assert!(error("lease_duration").contains("--lease"));
        let consul = CliError::from(Error::invalid_option("key_prefix", "a rule"));
        assert!(
            consul.message.contains("--consul-prefix"),
            "{}",
            consul.message
        );
        assert_eq!(consul.code, EXIT_USAGE);
    }
}
