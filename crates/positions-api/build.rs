//! Sets `POSITIONS_API_REVISION`, the source revision `/metrics` reports
//! in `positions_api_build_info`: the variable of that name if the build
//! sets one (a container build without `.git` can pass it in), else `git
//! rev-parse --short HEAD`, else `unknown` (a source tarball, no git). It
//! never fails the build.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=POSITIONS_API_REVISION");
    let given = std::env::var("POSITIONS_API_REVISION").ok().filter(|r| is_revision(r));
    let revision = given.or_else(git_revision).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=POSITIONS_API_REVISION={revision}");
}

/// The short hash of `HEAD`, and the files to watch so that a new commit
/// or a checkout runs this script again.
fn git_revision() -> Option<String> {
    let revision = git(&["rev-parse", "--short", "HEAD"]).filter(|r| is_revision(r))?;
    // Watch only files that exist: cargo reruns a script every build
    // when a watched path is missing.
    let mut watched = Vec::new();
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]) {
        watched.push(PathBuf::from(&git_dir).join("HEAD"));
    }
    if let (Some(common), Some(head_ref)) =
        (git(&["rev-parse", "--git-common-dir"]), git(&["rev-parse", "--symbolic-full-name", "HEAD"]))
    {
        watched.push(PathBuf::from(&common).join(head_ref));
        watched.push(PathBuf::from(&common).join("packed-refs"));
    }
    for path in watched.into_iter().filter(|p| p.is_file()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    Some(revision)
}

/// `git ARGS` in this crate's directory, its output trimmed, if it ran and
/// succeeded.
fn git(args: &[&str]) -> Option<String> {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")?;
    let out = Command::new("git").args(args).current_dir(&dir).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    if text.is_empty() {
        return None;
    }
    // Relative paths are relative to the directory git ran in.
    Some(if args.contains(&"--git-dir") || args.contains(&"--git-common-dir") {
        PathBuf::from(dir).join(&text).display().to_string()
    } else {
        text
    })
}

/// Hex digits, a few to a full hash: safe as a label value.
fn is_revision(text: &str) -> bool {
    (4..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit())
}
