//! `leader-election run`: wait for a term, run the child during it, stop the
//! child before the term's local deadline, release when the child exits.

use std::time::Duration;

use futures_util::StreamExt;
use leader_election_abstractions::{
    Election, EventStream, LeaderElection, LeaderElectionEvent, LeadershipGuard, LeaseStore,
    StoreFactory,
};
use rustix::process::Signal;
use tokio::signal::unix::{signal, SignalKind};

use crate::backend::{CliError, OnFactory};
use crate::child::{self, Term, KILL_MARGIN};
use crate::cli::{RunArgs, EXIT_COULD_NOT_LEAD, EXIT_LOST_LEADERSHIP};

/// SIGINT and SIGTERM, received by this process.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self, CliError> {
        let listen = |kind| {
            signal(kind).map_err(|e| CliError::failure(format!("cannot handle signals: {e}")))
        };
        Ok(Self {
            interrupt: listen(SignalKind::interrupt())?,
            terminate: listen(SignalKind::terminate())?,
        })
    }

    /// The next signal.
    async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.interrupt.recv() => Signal::INT,
            _ = self.terminate.recv() => Signal::TERM,
        }
    }
}

/// The shell's exit status for "ended by `signal`".
fn signal_exit(signal: Signal) -> u8 {
    u8::try_from(128 + signal.as_raw()).unwrap_or(crate::cli::EXIT_FAILURE)
}

/// Checks that the child can be stopped before the deadline without
/// stopping it on every renewal: the renewal that starts `renew` after the
/// last one, and may take up to `renew`, must land before the child is
/// signalled.
fn check_shutdown_grace(
    shutdown_grace: Duration,
    renew: Duration,
    term_limit: Duration,
) -> Result<(), CliError> {
    let needed = renew * 2 + shutdown_grace + KILL_MARGIN;
    if shutdown_grace.is_zero() || needed > term_limit {
        return Err(CliError::usage(format!(
            "invalid --shutdown-grace: the child is signalled early enough to be dead by the \
             lease's local deadline, so it must be greater than zero and \
             2 × --renew + --shutdown-grace + {KILL_MARGIN:?} must not exceed the term this \
             backend guarantees ({term_limit:?} here); got --shutdown-grace {shutdown_grace:?} \
             and --renew {renew:?}. Shorten them or lengthen --lease"
        )));
    }
    Ok(())
}

/// How waiting for a term ended.
enum Waited {
    Leading(LeadershipGuard),
    /// `--once`: this candidate saw another one lead.
    OtherLeads(String),
    Signalled(Signal),
}

/// How one term's child ended.
enum ChildEnd {
    /// It exited by itself (or after a forwarded signal) with this status.
    Exited(u8),
    /// The term was ending and we stopped it.
    StoppedForLoss,
}

impl OnFactory for RunArgs {
    type Output = u8;

    async fn on<F: StoreFactory + 'static>(self, factory: F) -> Result<u8, CliError> {
        let election = factory
            .election(&self.target.resource)
            .maybe_candidate_id(self.id.as_deref())
            .build()?;
        check_shutdown_grace(
            self.shutdown_grace,
            self.timing.renew,
            election.term_limit(),
        )?;
        let mut signals = Signals::new()?;
        // Subscribed before start, so `--once` cannot miss the first holder.
        let mut events = election.subscribe();
        election.start().await?;
        let result = self.supervise(&election, &mut events, &mut signals).await;
        // Releases the lease if still held; nothing worth reporting can fail here.
        let _ = election.stop().await;
        result
    }
}

impl RunArgs {
    async fn supervise<S: LeaseStore>(
        &self,
        election: &Election<S>,
        events: &mut EventStream,
        signals: &mut Signals,
    ) -> Result<u8, CliError> {
        loop {
            let guard = match self.wait_for_term(election, events, signals).await? {
                Waited::Leading(guard) => guard,
                Waited::OtherLeads(holder) => {
                    tracing::info!(%holder, "another candidate leads (--once)");
                    return Ok(EXIT_COULD_NOT_LEAD);
                }
                Waited::Signalled(signal) => return Ok(signal_exit(signal)),
            };
            let (end, signalled) = self.run_child(election, &guard, signals).await?;
            match end {
                ChildEnd::Exited(code) if !self.restart || signalled => return Ok(code),
                ChildEnd::StoppedForLoss if !self.restart => return Ok(EXIT_LOST_LEADERSHIP),
                ChildEnd::StoppedForLoss if signalled => return Ok(EXIT_LOST_LEADERSHIP),
                _ => {
                    // --restart: hand the lease over, contend again later.
                    if guard.is_valid() {
                        election.resign().await?;
                    }
                }
            }
        }
    }

    async fn wait_for_term<S: LeaseStore>(
        &self,
        election: &Election<S>,
        events: &mut EventStream,
        signals: &mut Signals,
    ) -> Result<Waited, CliError> {
        let me = election.candidate_id().to_owned();
        let other_leads = async {
            if !self.once {
                return std::future::pending().await;
            }
            while let Some(event) = events.next().await {
                if let LeaderElectionEvent::LeaderChanged {
                    new_leader_id: Some(holder),
                    ..
                } = event
                {
                    if holder != me {
                        return holder;
                    }
                }
            }
            std::future::pending().await
        };
        tokio::select! {
            guard = election.wait_for_leadership() => Ok(Waited::Leading(guard?)),
            holder = other_leads => Ok(Waited::OtherLeads(holder)),
            signal = signals.recv() => Ok(Waited::Signalled(signal)),
        }
    }

    /// Runs the child for one term. Also says whether a signal was
    /// forwarded to it (then we exit when it does, whatever `--restart` says).
    async fn run_child<S: LeaseStore>(
        &self,
        election: &Election<S>,
        guard: &LeadershipGuard,
        signals: &mut Signals,
    ) -> Result<(ChildEnd, bool), CliError> {
        let term = Term {
            resource: election.resource(),
            candidate_id: election.candidate_id(),
            fencing_token: guard.fencing_token().0,
        };
        tracing::info!(
            fencing_token = term.fencing_token,
            "leading; starting the command"
        );
        let mut child = child::spawn(&self.command, &term)?;
        let mut signalled = false;
        loop {
            tokio::select! {
                status = child.wait() => {
                    let code = child::exit_code(status?);
                    tracing::info!(code, "the command exited");
                    return Ok((ChildEnd::Exited(code), signalled));
                }
                () = guard.ending_within(self.shutdown_grace + KILL_MARGIN) => {
                    tracing::warn!(
                        still_leading = guard.is_valid(),
                        "leadership is ending; stopping the command"
                    );
                    child.terminate(guard, self.shutdown_grace).await?;
                    return Ok((ChildEnd::StoppedForLoss, signalled));
                }
                signal = signals.recv() => {
                    tracing::info!(?signal, "forwarding the signal to the command");
                    signalled = true;
                    child.signal(signal);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_grace_must_fit_between_the_renewals_and_the_deadline() {
        let s = Duration::from_secs;
        check_shutdown_grace(s(3), s(3), Duration::from_millis(10_500))
            .expect("defaults fit Kubernetes");
        let error = check_shutdown_grace(s(10), s(5), s(15)).expect_err("does not fit");
        assert_eq!(error.code, crate::cli::EXIT_USAGE);
        assert!(
            error.message.contains("--shutdown-grace") && error.message.contains("--renew"),
            "{}",
            error.message
        );
        assert!(check_shutdown_grace(Duration::ZERO, s(1), s(15)).is_err());
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            child::exit_code(std::process::ExitStatus::from_raw(3 << 8)),
            3
        );
        assert_eq!(
            child::exit_code(std::process::ExitStatus::from_raw(15)),
            143
        );
        assert_eq!(signal_exit(Signal::INT), 130);
    }
}
