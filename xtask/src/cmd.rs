//! Running commands: echo them, run them from the workspace root, fail with
//! the command named.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// The workspace root (the parent of this crate's directory).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `cargo`, the same one that runs this xtask.
pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Runs `cmd` with inherited output, printing it first; an unsuccessful
/// exit is an error naming the command and how long it ran. Nothing is
/// printed after a success, so a run's output ends with the last
/// command's own.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let shown = show(cmd);
    eprintln!("==> {shown}");
    let started = Instant::now();
    let status = cmd.status().with_context(|| format!("could not start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed after {:.1}s ({status})", started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// Installs the cargo subcommand `cargo SUBCOMMAND` from the crate
/// `package` on crates.io (`cargo install --locked`, a build from source)
/// when `cargo SUBCOMMAND --version` does not run.
pub(crate) fn ensure_cargo_subcommand(subcommand: &str, package: &str) -> Result<()> {
    let installed = cargo()
        .args([subcommand, "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        eprintln!("{package} is not installed; installing it from crates.io");
        run(cargo().args(["install", package, "--locked"]))?;
    }
    Ok(())
}

/// Whether `program` can be found on `PATH`.
pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn show(cmd: &Command) -> String {
    // Show `cargo`, not the absolute path cargo gave us in `$CARGO`.
    let program = Path::new(cmd.get_program());
    let program = match program.file_stem() {
        Some(stem) if stem == "cargo" => "cargo".into(),
        _ => program.to_string_lossy(),
    };
    let mut parts = vec![program.into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}
