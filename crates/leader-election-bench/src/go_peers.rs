//! Processes of a Go peer program (client-go's elector, `api.Lock`): their
//! stdout lines, and waiting for one.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Child processes, killed when dropped.
#[derive(Default)]
pub(crate) struct Peers(Vec<Child>);

impl Peers {
    /// Starts `command` with its stdout piped; returns its lines.
    pub(crate) fn spawn(&mut self, mut command: Command) -> Result<mpsc::Receiver<String>, String> {
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", command.get_program().to_string_lossy()))?;
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        self.0.push(child);
        Ok(rx)
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits (60 s at most) for a line of `who` starting with `prefix`.
pub(crate) fn wait_for(
    lines: &mpsc::Receiver<String>,
    who: &str,
    prefix: &str,
) -> Result<(), String> {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.starts_with(prefix) => return Ok(()),
            Ok(_) => {}
            Err(_) => return Err(format!("{who}: no {prefix} within 60 s")),
        }
    }
}
