//! This process's resident memory and CPU time, read from `/proc` (Linux).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Every allocation of the bench goes through the system allocator (Rust's
/// default) with two counters on top, so that the heap an election holds
/// can be told apart from what the allocator keeps around it.
#[global_allocator]
static HEAP: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

/// Bytes allocated on the heap and not freed yet, by the whole process.
pub(crate) fn heap_bytes() -> u64 {
    let stats = HEAP.stats();
    stats
        .bytes_allocated
        .saturating_sub(stats.bytes_deallocated) as u64
}

/// Resident set size in bytes (`/proc/self/statm`, pages of 4 KiB).
pub(crate) fn rss_bytes() -> Result<u64, String> {
    let statm = std::fs::read_to_string("/proc/self/statm")
        .map_err(|e| format!("cannot read /proc/self/statm: {e}"))?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .ok_or("unexpected /proc/self/statm")?;
    Ok(pages * 4096)
}

/// User plus system CPU time used by this process so far.
pub(crate) fn cpu_time() -> Result<Duration, String> {
    cpu_time_of("self")
}

/// User plus system CPU time used by process `pid` (or `self`) so far
/// (`/proc/<pid>/stat`, clock ticks of 10 ms).
pub(crate) fn cpu_time_of(pid: &str) -> Result<Duration, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("cannot read /proc/{pid}/stat: {e}"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("unexpected /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; `rest` starts at field 3.
    let ticks = |i: usize| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| "unexpected /proc/<pid>/stat".to_owned())
    };
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

/// The sockets this process holds open (its file descriptors that are
/// sockets): an upper bound of its connections, cheap enough to sample
/// every few milliseconds (`/proc/self/net/tcp` lists every socket of the
/// host and takes tens of milliseconds to read).
pub(crate) fn open_sockets() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

/// The most sockets this process held at once, sampled every 20 ms on a
/// thread of its own from [`SocketSampler::start`] to [`SocketSampler::most`].
pub(crate) struct SocketSampler {
    most: Arc<AtomicUsize>,
    sampling: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl SocketSampler {
    /// Starts sampling.
    pub(crate) fn start() -> Self {
        let most = Arc::new(AtomicUsize::new(0));
        let sampling = Arc::new(AtomicBool::new(true));
        let thread = {
            let (most, sampling) = (Arc::clone(&most), Arc::clone(&sampling));
            std::thread::spawn(move || {
                while sampling.load(Ordering::Relaxed) {
                    most.fetch_max(open_sockets(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        Self {
            most,
            sampling,
            thread,
        }
    }

    /// Stops sampling: the most sockets seen at once.
    pub(crate) fn most(self) -> usize {
        self.sampling.store(false, Ordering::Relaxed);
        let _ = self.thread.join();
        self.most.load(Ordering::Relaxed)
    }
}
