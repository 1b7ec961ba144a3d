//! A process the benchmarks started, stopped when its guard is dropped.
//!
//! Every server a section starts is a [`Process`]: its output goes to a log
//! file (never a pipe, which a chatty server could fill and block on), it
//! can be pinned to a core with `taskset`, and dropping it stops it, with
//! SIGTERM and then SIGKILL, whether the section finished or failed half
//! way. Nothing here knows which program it runs; `servers.rs` and
//! `nginx.rs` do.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cmd::root;

/// How long a server gets to start before the bench gives up on it.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long a server gets to exit after SIGTERM before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(5);
/// How often to look again while waiting.
const POLL: Duration = Duration::from_millis(20);

/// How to start a program.
#[derive(Debug, Clone, Default)]
pub(crate) struct Launch {
    /// The program: a path, or a name found on `PATH`.
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    /// The environment, on top of `PATH` alone: the bench's servers do not
    /// inherit the caller's settings, so a stray `POSITION_CACHE_TTL_SEC`
    /// in the shell cannot change what is measured.
    pub(crate) env: Vec<(String, String)>,
    /// The core to pin it to with `taskset`, if any.
    pub(crate) cpu: Option<u32>,
}

impl Launch {
    pub(crate) fn new(program: impl Into<PathBuf>) -> Self {
        Self { program: program.into(), ..Self::default() }
    }

    pub(crate) fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub(crate) fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        // A later setting of the same variable replaces the earlier one.
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.into()));
        self
    }

    pub(crate) fn pin(mut self, cpu: Option<u32>) -> Self {
        self.cpu = cpu;
        self
    }

    /// The `Command` to run, from the workspace root.
    pub(crate) fn command(&self) -> Command {
        let mut cmd = match self.cpu {
            Some(cpu) => {
                let mut cmd = Command::new("taskset");
                cmd.arg("-c").arg(cpu.to_string()).arg(&self.program);
                cmd
            }
            None => Command::new(&self.program),
        };
        cmd.args(&self.args).current_dir(root()).env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// The command line as a user would type it from the workspace root.
    pub(crate) fn shown(&self) -> String {
        let mut parts: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if let Some(cpu) = self.cpu {
            parts.push(format!("taskset -c {cpu}"));
        }
        parts.push(relative(&self.program));
        parts.extend(self.args.iter().map(|a| if a.is_empty() { "\"\"".to_owned() } else { relative(Path::new(a)) }));
        parts.join(" ")
    }
}

/// A running process, stopped on drop.
#[derive(Debug)]
pub(crate) struct Process {
    name: String,
    child: Child,
    log: PathBuf,
    shown: String,
}

impl Process {
    /// Starts `launch` with its output appended to `log`.
    pub(crate) fn start(name: &str, launch: &Launch, log: &Path) -> Result<Self> {
        let shown = launch.shown();
        eprintln!("==> {shown} (log: {})", relative(log));
        let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let child = launch
            .command()
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("could not start {name} (`{shown}`)"))?;
        Ok(Self { name: name.to_owned(), child, log: log.to_owned(), shown })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The command line it was started with.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// An error, with the end of its log, if it has exited.
    pub(crate) fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}); the end of {}:\n{}", self.name, self.log.display(), self.log_tail());
        }
        Ok(())
    }

    /// Waits until a line of its log gives `found` something, and returns
    /// it: how a server says where it listens.
    pub(crate) fn wait_for_line<T>(&mut self, what: &str, found: impl Fn(&str) -> Option<T>) -> Result<T> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(value) = text.lines().find_map(&found) {
                return Ok(value);
            }
            self.check_running()?;
            if Instant::now() > deadline {
                bail!("{} did not log {what} within {START_DEADLINE:?}; its log:\n{}", self.name, self.log_tail());
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until `addr` accepts connections.
    pub(crate) fn wait_for_port(&mut self, addr: SocketAddr) -> Result<()> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            self.check_running()?;
            if Instant::now() > deadline {
                bail!(
                    "{} did not listen on {addr} within {START_DEADLINE:?}; its log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SIGTERM first, so that the service drains and nginx's master
        // takes its workers down with it; std offers only SIGKILL.
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + STOP_DEADLINE;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(POLL);
        }
        eprintln!("{} did not stop within {STOP_DEADLINE:?} of SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port on 127.0.0.1 that was free a moment ago, for programs that must
/// be told their port (nginx). Another process could take it in between;
/// on a bench machine that does not happen in practice, and the start
/// fails loudly if it does.
pub(crate) fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a port on 127.0.0.1")?;
    Ok(listener.local_addr()?)
}

/// `path` relative to the workspace root when it is inside it.
pub(crate) fn relative(path: &Path) -> String {
    let root = root();
    path.strip_prefix(&root).unwrap_or(path).to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_show_as_typed() {
        let launch = Launch::new(root().join("target/release/ceiling"))
            .arg("--body")
            .arg(root().join("target/x/body.json").to_string_lossy())
            .env("TOKIO_WORKER_THREADS", "2")
            .env("TOKIO_WORKER_THREADS", "1")
            .pin(Some(0));
        assert_eq!(
            launch.shown(),
            "TOKIO_WORKER_THREADS=1 taskset -c 0 target/release/ceiling --body target/x/body.json"
        );
        let cmd = launch.command();
        assert_eq!(cmd.get_program(), "taskset");
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args[..2], ["-c", "0"]);
    }

    #[test]
    fn dropping_the_guard_stops_the_process() {
        let log = std::env::temp_dir().join(format!("xtask-process-test-{}.log", std::process::id()));
        let mut process = Process::start("sleep", &Launch::new("sleep").arg("60"), &log).expect("starts");
        process.check_running().expect("running");
        let proc_dir = Path::new("/proc").join(process.pid().to_string());
        assert!(proc_dir.exists());
        drop(process);
        assert!(!proc_dir.exists(), "stopped and reaped");
        let _ = std::fs::remove_file(log);
    }
}
