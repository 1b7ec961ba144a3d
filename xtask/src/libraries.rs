//! The workspace's published libraries, and `cargo publish --dry-run` of
//! them, a step of `cargo xtask ci`.
//!
//! Every command that works on the libraries (`ci`'s publish check,
//! `semver`, `msrv`) takes them from [`LIBRARIES`], and skips one whose
//! directory is not there, with a note, so a name can be listed before its
//! crate lands. The other crates stay `publish = false`.

use anyhow::{Result, bail};

use crate::cmd::{cargo, root};

/// The published library crates, by package name, each in `crates/<name>`;
/// dependencies before the crates that use them.
pub(crate) const LIBRARIES: [&str; 3] = ["cache-core", "refresh", "cache-swr"];

/// The libraries of [`LIBRARIES`] that exist in this checkout; a note on
/// standard error names each one skipped.
pub(crate) fn present() -> Vec<&'static str> {
    let root = root();
    let (present, missing) =
        split_present(&LIBRARIES, |name| root.join("crates").join(name).join("Cargo.toml").is_file());
    for name in missing {
        eprintln!("note: library `{name}` is not in this checkout (no crates/{name}/Cargo.toml); skipping it");
    }
    present
}

/// `names` split into those for which `exists` holds and those for which it
/// does not, each in the order given.
fn split_present(names: &[&'static str], exists: impl Fn(&str) -> bool) -> (Vec<&'static str>, Vec<&'static str>) {
    names.iter().partition(|name| exists(name))
}

/// `-p NAME` for each name, to select the packages in one cargo command.
pub(crate) fn package_args(names: &[&str]) -> Vec<String> {
    names.iter().flat_map(|name| ["-p".to_owned(), (*name).to_owned()]).collect()
}

/// `cargo publish --dry-run` of every library at once: cargo packages each
/// one, builds it from its package alone against a local registry that
/// holds the others (so the libraries that depend on each other verify
/// before any is on crates.io), and stops before uploading. It needs the
/// crates.io index (cargo asks it about the packages even in a dry run).
///
/// `--allow-dirty`: this checks what would be published, not that the tree
/// is committed, so it runs on work in progress like the rest of `ci`.
pub(crate) fn run_publish_check(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        bail!("`publish-check` takes no arguments, got {arg:?}");
    }
    let libraries = present();
    if libraries.is_empty() {
        eprintln!("note: no library to package");
        return Ok(());
    }
    crate::cmd::run(cargo().args(["publish", "--dry-run", "--locked", "--allow-dirty"]).args(package_args(&libraries)))
}

/// The libraries' examples that `ci` runs, with their arguments: each
/// prints what it shows and exits by itself (the HTTP service example
/// serves, asks itself over real HTTP, and checks the answers).
const EXAMPLES: [(&str, &str, &[&str]); 4] = [
    ("cache-core", "basic", &[]),
    ("refresh", "single_flight", &[]),
    ("cache-swr", "swr", &[]),
    ("cache-swr", "http_service", &["--self-test"]),
];

/// Runs every example of [`EXAMPLES`] whose library is in this checkout:
/// the examples a crate's README quotes must run, not only build.
pub(crate) fn run_examples() -> Result<()> {
    let libraries = present();
    for (package, example, args) in EXAMPLES.iter().filter(|(package, ..)| libraries.contains(package)) {
        crate::cmd::run(
            cargo().args(["run", "--locked", "-q", "-p", package, "--example", example, "--"]).args(*args),
        )?;
    }
    Ok(())
}

/// The example files a README quotes "verbatim" (a line naming
/// ``[`examples/NAME.rs`]``), each with the first `rust` code block after
/// that line.
#[cfg(test)]
fn quoted_examples(readme: &str) -> Vec<(String, String)> {
    let mut quoted = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(start) = line.find("[`examples/") else { continue };
        if !line.contains("verbatim") {
            continue;
        }
        let rest = &line[start + 2..];
        let Some(end) = rest.find('`') else { continue };
        let file = rest[..end].to_owned();
        let block: Vec<&str> =
            lines.by_ref().skip_while(|l| l.trim() != "```rust").skip(1).take_while(|l| l.trim() != "```").collect();
        quoted.push((file, block.join("\n") + "\n"));
    }
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A README's example is the example file that `ci` runs, not a copy
    /// that drifts from it.
    #[test]
    fn every_readme_quotes_its_example_files_as_they_are() {
        let root = root();
        let mut checked = 0;
        for name in LIBRARIES {
            let dir = root.join("crates").join(name);
            let Ok(readme) = std::fs::read_to_string(dir.join("README.md")) else { continue };
            for (file, block) in quoted_examples(&readme) {
                let source = std::fs::read_to_string(dir.join(&file)).expect("the quoted example exists");
                assert!(source == block, "crates/{name}/README.md quotes {file}, but not as it is: copy it again");
                checked += 1;
            }
        }
        assert!(checked >= LIBRARIES.len(), "each library's README quotes an example; found {checked}");
    }

    #[test]
    fn a_quoted_example_is_the_rust_block_after_its_line() {
        let readme = "intro\nThis is [`examples/a.rs`](examples/a.rs), verbatim.\n\n```rust\nfn main() {}\n```\n";
        assert_eq!(quoted_examples(readme), [("examples/a.rs".to_owned(), "fn main() {}\n".to_owned())]);
        assert!(quoted_examples("see [`examples/a.rs`](examples/a.rs)\n```rust\nx\n```\n").is_empty());
    }

    #[test]
    fn a_library_whose_directory_is_missing_is_skipped_in_order() {
        let (present, missing) = split_present(&["cache-core", "refresh", "cache-swr"], |name| name != "refresh");
        assert_eq!(present, ["cache-core", "cache-swr"]);
        assert_eq!(missing, ["refresh"]);
    }

    #[test]
    fn every_library_present_skips_none() {
        let (present, missing) = split_present(&LIBRARIES, |_| true);
        assert_eq!(present, LIBRARIES);
        assert!(missing.is_empty());
    }

    #[test]
    fn each_package_gets_its_own_flag() {
        assert_eq!(package_args(&["cache-core", "refresh"]), ["-p", "cache-core", "-p", "refresh"]);
        assert!(package_args(&[]).is_empty());
    }

    #[test]
    fn the_libraries_exist_in_this_workspace_except_those_not_yet_landed() {
        // A misspelt name would be skipped forever with only a note; the
        // crates that are here must be found.
        let found = present();
        assert!(found.contains(&"cache-core") && found.contains(&"refresh"), "found {found:?}");
    }
}
