//! `cargo xtask semver`: cargo-semver-checks on every library against the
//! last released version, the newest `v*` tag in this branch's history.
//!
//! A release-time command, not part of `ci`: installing
//! cargo-semver-checks builds it from source, a long build, and it builds
//! each library's docs twice, as tagged and as now. With no `v*` tag there
//! is nothing to compare, which is a success. A library that did not exist
//! at the tag is skipped with a note: everything in it is new.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd::{cargo, ensure_cargo_subcommand, root, run};
use crate::libraries;

pub(crate) fn run_semver(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        bail!("`semver` takes no arguments, got {arg:?}");
    }
    let tags = git(&["tag", "--list", "v*", "--merged", "HEAD"])?;
    let Some(baseline) = latest_version_tag(&tags) else {
        eprintln!("semver: no tagged version yet (no `v*` tag in this branch's history); nothing to compare");
        return Ok(());
    };
    eprintln!("semver: comparing the libraries with {baseline}");
    let mut compared = Vec::new();
    for name in libraries::present() {
        if exists_at(baseline, &format!("crates/{name}/Cargo.toml")) {
            compared.push(name);
        } else {
            eprintln!("note: library `{name}` did not exist at {baseline}; nothing to compare");
        }
    }
    if compared.is_empty() {
        eprintln!("semver: no library existed at {baseline}; nothing to compare");
        return Ok(());
    }
    ensure_cargo_subcommand("semver-checks", "cargo-semver-checks")?;
    run(cargo().args(["semver-checks", "--baseline-rev", baseline]).args(libraries::package_args(&compared)))
}

/// The newest version among `tags` (one a line, as `git tag --list`
/// prints them): `v` and dot-separated numbers, optionally a `-` pre-release
/// suffix, which sorts before the release itself. Tags that are not
/// versions (`v-next`, `vendor`) are ignored.
fn latest_version_tag(tags: &str) -> Option<&str> {
    tags.lines().map(str::trim).filter_map(|tag| Some((TagVersion::parse(tag)?, tag))).max().map(|(_, tag)| tag)
}

/// A version tag's ordering: its numbers, then a release after any of its
/// pre-releases, then pre-releases by name.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct TagVersion<'a> {
    numbers: Vec<u64>,
    is_release: bool,
    pre_release: &'a str,
}

impl<'a> TagVersion<'a> {
    fn parse(tag: &'a str) -> Option<Self> {
        let version = tag.strip_prefix('v')?;
        let (core, pre_release) = version.split_once('-').unwrap_or((version, ""));
        let numbers = core.split('.').map(|part| part.parse().ok()).collect::<Option<Vec<u64>>>()?;
        Some(Self { numbers, is_release: pre_release.is_empty(), pre_release })
    }
}

/// Whether `path` exists in the tree of `rev`.
fn exists_at(rev: &str, path: &str) -> bool {
    Command::new("git")
        .args(["cat-file", "-e", &format!("{rev}:{path}")])
        .current_dir(root())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `git ARGS` in the workspace root; its standard output.
fn git(args: &[&str]) -> Result<String> {
    let out = Command::new("git").args(args).current_dir(root()).output().context("could not run git")?;
    if !out.status.success() {
        bail!("`git {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    String::from_utf8(out.stdout).context("git printed something other than UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_tag_means_no_baseline() {
        assert_eq!(latest_version_tag(""), None);
        assert_eq!(latest_version_tag("vendor\nv-next\n"), None);
    }

    #[test]
    fn the_highest_version_wins_by_number_not_by_text() {
        assert_eq!(latest_version_tag("v0.9.0\nv0.10.0\nv0.2.1\n"), Some("v0.10.0"));
        assert_eq!(latest_version_tag("v1.2\nv1.2.1\n"), Some("v1.2.1"));
    }

    #[test]
    fn a_release_is_newer_than_its_pre_releases() {
        assert_eq!(latest_version_tag("v0.2.0-rc.2\nv0.2.0\nv0.2.0-rc.10\n"), Some("v0.2.0"));
        assert_eq!(latest_version_tag("v0.1.0\nv0.2.0-rc.1\n"), Some("v0.2.0-rc.1"));
    }

    #[test]
    fn tags_that_are_not_versions_are_ignored() {
        assert_eq!(latest_version_tag("v0.1.0\nvendor-import\nv2.x\n"), Some("v0.1.0"));
    }
}
