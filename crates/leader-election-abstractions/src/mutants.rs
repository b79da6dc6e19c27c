//! Deliberately broken behaviours ("mutants") for the deterministic
//! simulation's self-check: each one re-creates a bug the simulation must
//! catch, in the engine or in a provider's store.
//!
//! Without the `sim-mutants` feature (enabled only by the simulation crate's
//! `mutants` feature, never by a normal build) [`is_active`] is a constant
//! `false`, nothing can switch a mutant on, and the checks compile away.

/// One deliberately broken behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mutant {
    /// Engine: a term's local deadline reaches a whole lease past the term
    /// limit.
    DeadlinePastLease,
    /// Store: `release` frees the lease whoever holds it now.
    ReleaseWithoutCas,
    /// Store: a new acquisition reuses the previous acquisition's token.
    TokensNotIncremented,
    /// Store: an expired lease may be taken without waiting the grace period.
    GraceIgnored,
    /// Engine and store as before the twins fix: a lease held under my id
    /// is mine (the follower retries at once, the store takes it back).
    SameIdTakeBack,
    /// Kubernetes store: the term limit is the whole lease, not the shorter client-go-safe term
    /// (as before the client-go second-granularity fix).
    KubernetesFullLeaseTerm,
    /// Consul store: the term limit is the whole lease even when Consul's
    /// 60 s cap makes the lock-delay shorter than `lease + grace` (an
    /// early-invalidated session then frees the lock while the term runs).
    ConsulIgnoreLockDelay,
    /// Consul store as before the early-invalidation fix: the lock-delay is
    /// the grace period and the term the whole lease.
    ConsulLockDelayGrace,
    /// Consul store as before the conditional release: `?release=<session>`
    /// frees the key whichever term of the session holds it, so a release
    /// that arrives late frees the session's next term.
    ConsulReleaseWithoutIndex,
    /// etcd store: the etcd lease's TTL is the lease duration alone, with
    /// no grace period, while the term still lasts the whole lease: etcd
    /// may free the key while a cut-off leader's term, counted on its own
    /// (slower) clock, still runs.
    EtcdTtlWithoutGrace,
}

impl Mutant {
    /// Every mutant the `--mutants` self-check runs, in a fixed order.
    pub const ALL: [Mutant; 10] = [
        Mutant::DeadlinePastLease,
        Mutant::ReleaseWithoutCas,
        Mutant::TokensNotIncremented,
        Mutant::GraceIgnored,
        Mutant::SameIdTakeBack,
        Mutant::KubernetesFullLeaseTerm,
        Mutant::ConsulIgnoreLockDelay,
        Mutant::ConsulLockDelayGrace,
        Mutant::EtcdTtlWithoutGrace,
        Mutant::ConsulReleaseWithoutIndex,
    ];

    /// The mutant's command-line name (`--mutant NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Mutant::DeadlinePastLease => "deadline-past-lease",
            Mutant::ReleaseWithoutCas => "release-without-cas",
            Mutant::TokensNotIncremented => "tokens-not-incremented",
            Mutant::GraceIgnored => "grace-ignored",
            Mutant::SameIdTakeBack => "same-id-take-back",
            Mutant::KubernetesFullLeaseTerm => "kubernetes-full-lease-term",
            Mutant::ConsulIgnoreLockDelay => "consul-ignore-lock-delay",
            Mutant::ConsulLockDelayGrace => "consul-lock-delay-grace",
            Mutant::ConsulReleaseWithoutIndex => "consul-release-without-index",
            Mutant::EtcdTtlWithoutGrace => "etcd-ttl-without-grace",
        }
    }

    /// The mutant called `name`, if any.
    pub fn from_name(name: &str) -> Option<Mutant> {
        Mutant::ALL.into_iter().find(|m| m.name() == name)
    }
}

#[cfg(feature = "sim-mutants")]
static ACTIVE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

#[cfg(feature = "sim-mutants")]
fn code(mutant: Option<Mutant>) -> u8 {
    mutant.map_or(0, |m| {
        Mutant::ALL
            .iter()
            .position(|&x| x == m)
            .map_or(0, |i| i as u8 + 1)
    })
}

/// Whether `mutant` is switched on (always `false` without `sim-mutants`).
#[inline(always)]
pub fn is_active(mutant: Mutant) -> bool {
    #[cfg(feature = "sim-mutants")]
    {
        ACTIVE.load(std::sync::atomic::Ordering::Relaxed) == code(Some(mutant))
    }
    #[cfg(not(feature = "sim-mutants"))]
    {
        let _ = mutant;
        false
    }
}

/// Switches `mutant` on for the whole process (`None`: all off). Feature
/// `sim-mutants`.
#[cfg(feature = "sim-mutants")]
pub fn set_active(mutant: Option<Mutant>) {
    ACTIVE.store(code(mutant), std::sync::atomic::Ordering::Relaxed);
}
