//! Finding or building the server binaries.
//!
//! Order: the explicit environment variable (`LE_ETCD_BIN`,
//! `LE_KUBE_APISERVER_BIN`, `LE_CONSUL_BIN`), then `PATH`, then the
//! version-keyed cache (`$LE_CACHE_DIR/bin/<name>-<version>`, default
//! `${XDG_CACHE_HOME:-$HOME/.cache}/leader-election-rs`), else a build from
//! the wrapper Go module in `xtask/go/<name>` into that cache. Every step is
//! printed with its duration.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::versions::{self, Pin};

/// The cache root for binaries and Go's module and build caches.
pub(crate) fn cache_dir() -> PathBuf {
    if let Some(dir) = env::var_os("LE_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(env::temp_dir);
    base.join("leader-election-rs")
}

/// The workspace root (the parent of `xtask/`).
pub(crate) fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// Where a pinned binary lives in the cache.
pub(crate) fn cached_path(pin: &Pin) -> PathBuf {
    cache_dir()
        .join("bin")
        .join(format!("{}-{}", pin.name, pin.version))
}

/// Finds `name` on `PATH`.
fn which(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Returns a usable binary for `pin`, building it if nothing else is found.
pub(crate) fn ensure(pin: &Pin) -> Result<PathBuf, String> {
    let started = Instant::now();
    let name = pin.name;
    if let Some(value) = env::var_os(pin.env_var) {
        let path = PathBuf::from(value);
        if is_executable(&path) {
            println!(
                "xtask: {name}: using {} from {}",
                path.display(),
                pin.env_var
            );
            return Ok(path);
        }
        return Err(format!(
            "{} points at {}, which is not an executable file",
            pin.env_var,
            path.display()
        ));
    }
    println!("xtask: {name}: {} not set", pin.env_var);
    if let Some(path) = which(name) {
        println!(
            "xtask: {name}: using {} from PATH (not checked against the pinned {}; \
             set {} to choose another)",
            path.display(),
            pin.version,
            pin.env_var
        );
        return Ok(path);
    }
    println!("xtask: {name}: not on PATH");
    let cached = cached_path(pin);
    if is_executable(&cached) {
        println!(
            "xtask: {name}: using cached {} (lookup {:.1}s)",
            cached.display(),
            started.elapsed().as_secs_f64()
        );
        return Ok(cached);
    }
    println!("xtask: {name}: no cached {}", cached.display());
    build(pin, &cached)?;
    Ok(cached)
}

/// Checks that the wrapper `go.mod` requires exactly the pinned version.
fn check_wrapper(pin: &Pin, wrapper: &Path) -> Result<(), String> {
    let go_mod = wrapper.join("go.mod");
    let text = fs::read_to_string(&go_mod)
        .map_err(|e| format!("cannot read {}: {e}", go_mod.display()))?;
    let wanted = format!("{} {}", pin.module, pin.version);
    let found = text.lines().any(|line| {
        let line = line.trim();
        line == wanted
            || line.starts_with(&format!("{wanted} "))
            || line.ends_with(&format!("require {wanted}"))
    });
    if found {
        Ok(())
    } else {
        Err(format!(
            "{} does not require `{wanted}`; the pin in xtask/src/versions.rs and the wrapper \
             module disagree (see the comment at the top of versions.rs)",
            go_mod.display()
        ))
    }
}

/// Builds `pin` from its wrapper module into `dest`.
fn build(pin: &Pin, dest: &Path) -> Result<(), String> {
    let wrapper = workspace_root().join("xtask/go").join(pin.wrapper_dir);
    check_wrapper(pin, &wrapper)?;
    let what = format!("{} {}", pin.module, pin.version);
    let help = format!("Install Go >= 1.26, or point {} at a binary.", pin.env_var);
    println!(
        "xtask: {}: building {what} (cold: {}; later runs reuse the cache)",
        pin.name, pin.cold_build_hint
    );
    let build = GoBuild {
        name: pin.name,
        dir: &wrapper,
        package: pin.package,
        tags: pin.tags,
        ldflags: &versions::ldflags(pin),
    };
    build.run(dest, &help)
}

/// One `go build` of a main package inside a module directory.
pub(crate) struct GoBuild<'a> {
    /// Name for messages and the temporary file.
    pub(crate) name: &'a str,
    /// Module directory (holds `go.mod` and `go.sum`).
    pub(crate) dir: &'a Path,
    /// Package path (or `.`).
    pub(crate) package: &'a str,
    /// Build tags, empty for none.
    pub(crate) tags: &'a str,
    /// `-ldflags` value, empty for none.
    pub(crate) ldflags: &'a str,
}

impl GoBuild<'_> {
    /// Builds into `dest` (atomically, through a temporary file), at the
    /// lowest CPU priority, with `GOMODCACHE`/`GOCACHE` in our cache unless
    /// already set. `help` says what to do when Go is missing.
    pub(crate) fn run(&self, dest: &Path, help: &str) -> Result<(), String> {
        let name = self.name;
        let go_version = Command::new("go")
            .arg("version")
            .output()
            .map_err(|e| format!("cannot build {name}: `go` not found ({e}). {help}"))?;
        let cache = cache_dir();
        let bin_dir = cache.join("bin");
        fs::create_dir_all(&bin_dir)
            .map_err(|e| format!("cannot create {}: {e}", bin_dir.display()))?;
        let tmp = bin_dir.join(format!(".{name}.partial"));
        let mut args: Vec<String> = ["-n", "19", "go", "build", "-mod=readonly", "-trimpath"]
            .into_iter()
            .chain(["-buildvcs=false"])
            .map(String::from)
            .collect();
        if !self.tags.is_empty() {
            args.push(format!("-tags={}", self.tags));
        }
        if !self.ldflags.is_empty() {
            args.push(format!("-ldflags={}", self.ldflags));
        }
        args.extend(["-o".into(), tmp.display().to_string(), self.package.into()]);
        let mut command = Command::new("nice");
        command
            .args(&args)
            .current_dir(self.dir)
            .env("CGO_ENABLED", "0");
        for (var, sub) in [("GOMODCACHE", "gomod"), ("GOCACHE", "gocache")] {
            if env::var_os(var).is_none() {
                command.env(var, cache.join(sub));
            }
        }
        println!(
            "xtask: {name}: $ (cd {}) nice {}   [{}]",
            self.dir.display(),
            args[2..].join(" "),
            String::from_utf8_lossy(&go_version.stdout).trim()
        );
        let started = Instant::now();
        let status = command
            .status()
            .map_err(|e| format!("cannot run `nice go build`: {e}"))?;
        let secs = started.elapsed().as_secs_f64();
        if !status.success() {
            let _ = fs::remove_file(&tmp);
            return Err(format!(
                "building {name} failed with {status} after {secs:.0}s (output above)"
            ));
        }
        fs::rename(&tmp, dest)
            .map_err(|e| format!("cannot move the build to {}: {e}", dest.display()))?;
        println!("xtask: {name}: built {} in {secs:.1}s", dest.display());
        Ok(())
    }
}

/// Returns the binary of a small Go program of ours in `xtask/go/<dir>`
/// (an interop peer): `env_var` if set, else the cache entry keyed by a hash
/// of the program's sources, else a fresh build.
pub(crate) fn ensure_program(dir: &str, env_var: &str) -> Result<PathBuf, String> {
    if let Some(value) = env::var_os(env_var) {
        println!(
            "xtask: {dir}: using {} from {env_var}",
            PathBuf::from(&value).display()
        );
        return Ok(PathBuf::from(value));
    }
    let src = workspace_root().join("xtask/go").join(dir);
    let mut files: Vec<PathBuf> = fs::read_dir(&src)
        .map_err(|e| format!("cannot read {}: {e}", src.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "go" || x == "mod" || x == "sum")
        })
        .collect();
    files.sort();
    // FNV-1a over names and contents: any edit gives a new cache entry.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for file in &files {
        let name = file.file_name().map(|n| n.as_encoded_bytes().to_vec());
        let body = fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        for byte in name.unwrap_or_default().iter().chain(body.iter()) {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    let dest = cache_dir().join("bin").join(format!("{dir}-{hash:016x}"));
    if is_executable(&dest) {
        println!("xtask: {dir}: using cached {}", dest.display());
        return Ok(dest);
    }
    let build = GoBuild {
        name: dir,
        dir: &src,
        package: ".",
        tags: "",
        ldflags: "-s -w",
    };
    build.run(
        &dest,
        &format!("Install Go, or point {env_var} at a binary."),
    )?;
    Ok(dest)
}

/// `cargo xtask servers build`: provisions every binary (for CI warm-up and
/// for measuring build times).
pub(crate) fn ensure_all() -> Result<(), String> {
    for pin in [
        versions::ETCD,
        versions::ETCDCTL,
        versions::KUBE_APISERVER,
        versions::CONSUL,
    ] {
        let started = Instant::now();
        let path = ensure(&pin)?;
        println!(
            "xtask: {}: ready at {} ({:.1}s)",
            pin.name,
            path.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
