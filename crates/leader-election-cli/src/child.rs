//! The child: started in a process group of its own, signalled as a group,
//! stopped with SIGTERM then SIGKILL, and its exit status as ours.

use std::io;
use std::process::ExitStatus;
use std::time::Duration;

use leader_election_abstractions::LeadershipGuard;
use rustix::process::{kill_process_group, Pid, Signal};
use tokio::process::{Child, Command};

use crate::backend::CliError;

/// Time kept between SIGKILL and the lease's local deadline: for the signal
/// to be delivered and the process to be reaped on a loaded machine.
pub(crate) const KILL_MARGIN: Duration = Duration::from_millis(250);

/// What the term gives the child to know.
pub(crate) struct Term<'a> {
    /// `LEADER_ELECTION_RESOURCE`.
    pub(crate) resource: &'a str,
    /// `LEADER_ELECTION_ID`.
    pub(crate) candidate_id: &'a str,
    /// `LEADER_ELECTION_FENCING_TOKEN`.
    pub(crate) fencing_token: u64,
}

/// A running child and its process group.
pub(crate) struct Supervised {
    child: Child,
    group: Option<Pid>,
}

/// Starts `command` for `term` in a new process group. The exit status for
/// a command that cannot be started follows the shells: 127 when it does
/// not exist, 126 when it cannot be executed.
pub(crate) fn spawn(command: &[String], term: &Term<'_>) -> Result<Supervised, CliError> {
    let Some((program, args)) = command.split_first() else {
        return Err(CliError::usage("COMMAND is missing (give it after `--`)"));
    };
    let child = Command::new(program)
        .args(args)
        .env(
            "LEADER_ELECTION_FENCING_TOKEN",
            term.fencing_token.to_string(),
        )
        .env("LEADER_ELECTION_RESOURCE", term.resource)
        .env("LEADER_ELECTION_ID", term.candidate_id)
        // Its own group, so SIGKILL reaches everything it started too.
        .process_group(0)
        .spawn()
        .map_err(|e| {
            let code = match e.kind() {
                io::ErrorKind::NotFound => 127,
                io::ErrorKind::PermissionDenied => 126,
                _ => crate::cli::EXIT_FAILURE,
            };
            CliError {
                code,
                message: format!("cannot start {program:?}: {e}"),
            }
        })?;
    let group = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw);
    Ok(Supervised { child, group })
}

impl Supervised {
    /// Sends `signal` to the child's process group. A group that is gone
    /// already is not an error.
    pub(crate) fn signal(&self, signal: Signal) {
        if let Some(group) = self.group {
            match kill_process_group(group, signal) {
                Ok(()) | Err(rustix::io::Errno::SRCH) => {}
                Err(e) => {
                    tracing::warn!(error = %e, ?signal, "cannot signal the child's process group")
                }
            }
        }
    }

    /// Waits for the child to exit, then kills whatever it left running in
    /// its process group: nothing of it may outlive the term.
    pub(crate) async fn wait(&mut self) -> Result<ExitStatus, CliError> {
        let status = self
            .child
            .wait()
            .await
            .map_err(|e| CliError::failure(format!("waiting for the child: {e}")))?;
        self.signal(Signal::KILL);
        Ok(status)
    }

    /// Stops the child because the term is ending: SIGTERM now, SIGKILL
    /// after `shutdown_grace`, or earlier if only [`KILL_MARGIN`] is left
    /// before the term's deadline; returns once it has been reaped.
    pub(crate) async fn terminate(
        &mut self,
        guard: &LeadershipGuard,
        shutdown_grace: Duration,
    ) -> Result<ExitStatus, CliError> {
        self.signal(Signal::TERM);
        let term_holds = guard.is_valid();
        let kill_time = async {
            if term_holds {
                tokio::select! {
                    () = tokio::time::sleep(shutdown_grace) => {}
                    () = guard.ending_within(KILL_MARGIN) => {}
                }
            } else {
                // The term has already ended (the backend said so): the
                // child still gets its grace, as for any other stop.
                tokio::time::sleep(shutdown_grace).await;
            }
        };
        tokio::select! {
            status = self.wait() => return status,
            () = kill_time => {}
        }
        tracing::warn!("the child outlived its shutdown grace; sending SIGKILL");
        self.signal(Signal::KILL);
        self.wait().await
    }
}

/// Our exit status for the child's: its code, or 128 + the signal that ended it.
pub(crate) fn exit_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(crate::cli::EXIT_FAILURE),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(crate::cli::EXIT_FAILURE),
        (None, None) => crate::cli::EXIT_FAILURE,
    }
}
