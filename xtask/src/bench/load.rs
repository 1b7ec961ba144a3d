//! Running benchkit's `load` driver and reading its JSON report.
//!
//! The driver prints one JSON object (benchkit's `drive::Report`); this
//! keeps it as JSON and reads fields by pointer, so the xtask needs no copy
//! of the driver's types.

use std::process::Command;

use anyhow::{Context, Result, bail};

use super::process::relative;
use super::servers::release_bin;
use crate::cmd::root;

/// A finished `load` run.
#[derive(Debug)]
pub(crate) struct Load {
    json: serde_json::Value,
    /// The command line, as typed.
    pub(crate) shown: String,
}

impl Load {
    /// Runs `load ARGS...` from the workspace root.
    pub(crate) fn run(args: &[String]) -> Result<Self> {
        let program = release_bin("load");
        let shown = format!("{} {}", relative(&program), args.join(" "));
        eprintln!("==> {shown}");
        let out = Command::new(&program)
            .args(args)
            .current_dir(root())
            .output()
            .with_context(|| format!("could not run `{shown}`"))?;
        if !out.status.success() {
            bail!("`{shown}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
        }
        let json = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("`{shown}` printed no JSON: {}", String::from_utf8_lossy(&out.stdout)))?;
        Ok(Self { json, shown })
    }

    /// The number at `pointer`, such as `/latency_ms/all/p95_ms`.
    pub(crate) fn number(&self, pointer: &str) -> Result<f64> {
        self.json
            .pointer(pointer)
            .and_then(serde_json::Value::as_f64)
            .with_context(|| format!("no number at {pointer} in the output of `{}`: {}", self.shown, self.json))
    }

    /// Answers with status `code`.
    pub(crate) fn status(&self, code: u16) -> u64 {
        self.json["statuses"][code.to_string()].as_u64().unwrap_or(0)
    }

    /// Requests sent.
    pub(crate) fn requests(&self) -> u64 {
        self.json["requests"].as_u64().unwrap_or(0)
    }

    /// Requests that were not answered 200: other statuses and errors.
    pub(crate) fn failed(&self) -> u64 {
        self.requests().saturating_sub(self.status(200))
    }

    /// What the failures were, for a note in the report: `503 ×12, no
    /// answer ×3 (first: ...)`; empty if there were none.
    pub(crate) fn failures(&self) -> String {
        let mut parts: Vec<String> = self.json["statuses"]
            .as_object()
            .map(|statuses| {
                statuses
                    .iter()
                    .filter(|(code, _)| *code != "200")
                    .map(|(code, n)| format!("{code} ×{}", n.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        let errors = self.json["errors"].as_u64().unwrap_or(0);
        if errors > 0 {
            let first = self.json["first_error"].as_str().unwrap_or("?");
            parts.push(format!("no answer ×{errors} (first: {first})"));
        }
        parts.join(", ")
    }
}
