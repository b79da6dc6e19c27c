//! The one place where the test-server versions are pinned.
//!
//! Each server is built from a wrapper Go module under `xtask/go/<name>/`
//! whose `go.mod`/`go.sum` act as the lock file. The constants here are the
//! authority: `provision` refuses to build when a wrapper's `go.mod` does not
//! require exactly the pinned version. To bump one, change it here, then
//! regenerate the wrapper (`go get -tool <module>@<version> && go mod tidy`
//! inside `xtask/go/<name>`, with `GOFLAGS=-mod=mod`; for kube-apiserver also
//! rewrite the `k8s.io/*` staging `replace` lines to `v0.<minor>.<patch>`).

/// How to obtain and build one server binary.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pin {
    /// Binary name, also the cache file prefix (`<name>-<version>`).
    pub(crate) name: &'static str,
    /// Exact upstream version, with a leading `v`.
    pub(crate) version: &'static str,
    /// Environment variable that may point at an existing binary.
    pub(crate) env_var: &'static str,
    /// Wrapper module directory under `xtask/go/`.
    pub(crate) wrapper_dir: &'static str,
    /// Go module whose version must match `version` in the wrapper `go.mod`.
    pub(crate) module: &'static str,
    /// Main package to build.
    pub(crate) package: &'static str,
    /// Build tags (`-tags`), empty for none.
    pub(crate) tags: &'static str,
    /// Rough cold build time on 2 cores, printed before a build starts.
    pub(crate) cold_build_hint: &'static str,
}

/// etcd 3.6.x: the line kubeadm pairs with current Kubernetes minors
/// (Kubernetes needs etcd >= 3.5.11). Apache-2.0. The server main package is
/// the `go.etcd.io/etcd/server/v3` module root; its sibling modules are
/// published at the same tag, so the wrapper needs no `replace` lines.
pub(crate) const ETCD: Pin = Pin {
    name: "etcd",
    version: "v3.6.16",
    env_var: "LE_ETCD_BIN",
    wrapper_dir: "etcd",
    module: "go.etcd.io/etcd/server/v3",
    package: "go.etcd.io/etcd/server/v3",
    tags: "",
    cold_build_hint: "about 2 minutes",
};

/// etcdctl at etcd's version: the `leader-election` command's interop test
/// runs `etcdctl lock`, whose `concurrency.Mutex` uses the key layout of our
/// etcd elections. Its own wrapper module (`xtask/go/etcdctl`), whose shared
/// dependencies resolve to the etcd server's versions. Apache-2.0.
pub(crate) const ETCDCTL: Pin = Pin {
    name: "etcdctl",
    version: "v3.6.16",
    env_var: "LE_ETCDCTL_BIN",
    wrapper_dir: "etcdctl",
    module: "go.etcd.io/etcd/etcdctl/v3",
    package: "go.etcd.io/etcd/etcdctl/v3",
    tags: "",
    cold_build_hint: "about 1 minute",
};

/// kube-apiserver 1.36: `k8s-openapi` 0.29 supports v1_33..=v1_37, and 1.36.x
/// is the newest minor already known to build with Go 1.26. Apache-2.0.
/// `k8s.io/kubernetes` requires its staging modules at `v0.0.0`, so the
/// wrapper replaces each of them with the published `v0.36.3` (31 lines,
/// generated from the tag's own `go.mod`) and copies its
/// `godebug default=go1.26` line. The provider crate must enable the
/// `k8s-openapi` feature `v1_36` to match.
pub(crate) const KUBE_APISERVER: Pin = Pin {
    name: "kube-apiserver",
    version: "v1.36.3",
    env_var: "LE_KUBE_APISERVER_BIN",
    wrapper_dir: "kube-apiserver",
    module: "k8s.io/kubernetes",
    package: "k8s.io/kubernetes/cmd/kube-apiserver",
    tags: "selinux,notest,grpcnotrace",
    cold_build_hint: "about 20-25 minutes",
};

/// Consul 1.14.11: the newest release that is open source *and* buildable
/// under our rules.
/// - 1.16.5 / 1.15.9 / 1.17.0 and later are BUSL-1.1 (not open source).
/// - Every 1.15.x and 1.16.x release (MPL-2.0) requires the modules
///   `github.com/hashicorp/consul/troubleshoot` and `.../envoyextensions`,
///   which we must not use.
/// - 1.14.11 (2023-10-31) has an MPL-2.0 `LICENSE`, no BUSL file, no
///   troubleshoot/envoyextensions anywhere in `go mod graph`, no `exclude`
///   lines to copy, and the UI under `agent/uiserver/dist` is committed.
///   Its `api v1.18.1`, `sdk v0.13.0` and `proto-public v0.2.1` requirements
///   (all MPL-2.0) resolve from the module proxy unchanged.
/// - Built with go1.26.8 as pinned by the tag: no dependency raised, no
///   `-checklinkname=0` needed (measured 2026-11: ~12 min wall, 8.8 CPU-min,
///   while kube-apiserver built beside it).
/// - The module proxy used here also refuses (403) some versions
///   (1.14.9, 1.14.10, 1.15.5, 1.15.8, 1.16.4), so pick pins it serves.
pub(crate) const CONSUL: Pin = Pin {
    name: "consul",
    version: "v1.14.11",
    env_var: "LE_CONSUL_BIN",
    wrapper_dir: "consul",
    module: "github.com/hashicorp/consul",
    package: "github.com/hashicorp/consul",
    tags: "",
    cold_build_hint: "about 5-10 minutes",
};

/// `-ldflags` for a pinned build: version stamps where the program reads them.
pub(crate) fn ldflags(pin: &Pin) -> String {
    match pin.name {
        "etcd" | "etcdctl" => {
            format!("-X go.etcd.io/etcd/api/v3/version.GitSHA={}", pin.version)
        }
        "kube-apiserver" => {
            let minor = pin.version.split('.').nth(1).unwrap_or("0");
            let mut flags = String::from("-s -w");
            for pkg in [
                "k8s.io/component-base/version",
                "k8s.io/client-go/pkg/version",
            ] {
                flags.push_str(&format!(
                    " -X {pkg}.gitVersion={v} -X {pkg}.gitMajor=1 -X {pkg}.gitMinor={minor} \
                     -X {pkg}.gitTreeState=clean",
                    v = pin.version
                ));
            }
            flags
        }
        "consul" => format!(
            "-s -w -X github.com/hashicorp/consul/version.GitCommit={}",
            pin.version
        ),
        _ => String::new(),
    }
}
