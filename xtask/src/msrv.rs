//! `cargo xtask msrv`: the libraries built by the oldest Rust they declare
//! (`rust-version`), so the declaration is a fact and not a hope.
//!
//! It checks the library targets only, with every feature: that is what a
//! user of the published crate compiles. The tests and benches use
//! dev-dependencies that may need a newer Rust, and a user never builds
//! them. The toolchain is installed with rustup where missing (the minimal
//! profile), and the check builds in its own target
//! directory (`target/msrv`), so an older cargo never reads the main one.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cmd::{cargo, on_path, root, run};
use crate::libraries;

pub(crate) fn run_msrv(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        bail!("`msrv` takes no arguments, got {arg:?}");
    }
    let names = libraries::present();
    if names.is_empty() {
        eprintln!("note: no library to check");
        return Ok(());
    }
    let out = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps", "--locked"])
        .output()
        .context("could not run cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let metadata: Value = serde_json::from_slice(&out.stdout).context("cargo metadata printed no JSON")?;
    let by_version = declared_versions(&metadata, &names)?;
    let target_dir = metadata["target_directory"].as_str().context("cargo metadata names no target directory")?;
    let target_dir = format!("{target_dir}/msrv");
    if !on_path("rustup") {
        bail!("`msrv` installs and runs Rust {} with rustup, which is not on PATH", versions(&by_version));
    }
    for (version, packages) in &by_version {
        if !toolchain_installed(version)? {
            run(Command::new("rustup").args(["toolchain", "install", version, "--profile", "minimal"]))?;
        }
        eprintln!("msrv: Rust {version}, as declared by {}", packages.join(", "));
        run(Command::new("rustup")
            .args([
                "run",
                version,
                "cargo",
                "check",
                "--locked",
                "--lib",
                "--all-features",
                "--target-dir",
                &target_dir,
            ])
            .args(libraries::package_args(packages))
            .current_dir(root())
            // The running cargo's choices of compiler would override the
            // toolchain's own.
            .env_remove("RUSTC")
            .env_remove("RUSTDOC")
            .env_remove("RUSTC_WRAPPER"))?;
    }
    Ok(())
}

/// The `rust-version` each of `names` declares, grouping the packages by
/// it; a library without one is an error, since nothing would be checked.
fn declared_versions<'a>(metadata: &Value, names: &[&'a str]) -> Result<BTreeMap<String, Vec<&'a str>>> {
    let packages = metadata["packages"].as_array().context("cargo metadata lists no packages")?;
    let mut by_version: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for &name in names {
        let package = packages
            .iter()
            .find(|p| p["name"] == name)
            .with_context(|| format!("library `{name}` is not a workspace package"))?;
        let Some(version) = package["rust_version"].as_str() else {
            bail!("library `{name}` declares no rust-version");
        };
        by_version.entry(version.to_owned()).or_default().push(name);
    }
    Ok(by_version)
}

fn versions(by_version: &BTreeMap<String, Vec<&str>>) -> String {
    by_version.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
}

/// Whether rustup has a toolchain that `rustup run VERSION` selects: one
/// named exactly `VERSION-<host>` (a `1.88.0` toolchain does not answer to
/// `1.88`).
fn toolchain_installed(version: &str) -> Result<bool> {
    let out = Command::new("rustup").args(["toolchain", "list"]).output().context("could not run rustup")?;
    if !out.status.success() {
        bail!("`rustup toolchain list` failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(lists_toolchain(&String::from_utf8_lossy(&out.stdout), version))
}

/// Whether `rustup toolchain list` output `list` has `version` for some
/// host.
fn lists_toolchain(list: &str, version: &str) -> bool {
    list.lines().filter_map(|line| line.split_whitespace().next()).any(|toolchain| {
        toolchain.strip_prefix(version).and_then(|rest| rest.strip_prefix('-')).is_some_and(|host| !host.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const LIST: &str = "stable-x86_64-unknown-linux-gnu (active, default)\n\
                        nightly-x86_64-unknown-linux-gnu\n\
                        1.88.0-x86_64-unknown-linux-gnu\n\
                        1.90-x86_64-unknown-linux-gnu\n";

    #[test]
    fn a_toolchain_is_found_only_by_its_exact_name() {
        assert!(lists_toolchain(LIST, "1.90"));
        assert!(lists_toolchain(LIST, "1.88.0"));
        // Installed as 1.88.0, which `rustup run 1.88` does not select.
        assert!(!lists_toolchain(LIST, "1.88"));
        assert!(!lists_toolchain(LIST, "1.9"));
        assert!(!lists_toolchain("", "1.88"));
    }

    #[test]
    fn libraries_are_grouped_by_their_declared_version() {
        let metadata = json!({"packages": [
            {"name": "cache-core", "rust_version": "1.88"},
            {"name": "refresh", "rust_version": "1.88"},
            {"name": "cache-swr", "rust_version": "1.90"},
            {"name": "positions-api", "rust_version": "1.95"},
        ]});
        let by_version = declared_versions(&metadata, &["cache-core", "refresh", "cache-swr"]).unwrap();
        assert_eq!(by_version.len(), 2);
        assert_eq!(by_version["1.88"], ["cache-core", "refresh"]);
        assert_eq!(by_version["1.90"], ["cache-swr"]);
    }

    #[test]
    fn a_library_without_a_rust_version_is_an_error() {
        let metadata = json!({"packages": [{"name": "refresh", "rust_version": null}]});
        let err = declared_versions(&metadata, &["refresh"]).unwrap_err();
        assert!(err.to_string().contains("declares no rust-version"), "{err}");
        let err = declared_versions(&metadata, &["cache-core"]).unwrap_err();
        assert!(err.to_string().contains("not a workspace package"), "{err}");
    }
}
