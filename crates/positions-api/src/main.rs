//! The `positions-api` binary: read the configuration, set up logging,
//! bind, serve until SIGINT or SIGTERM.

use std::process::ExitCode;

use positions_api::config::{Config, ConfigError, LogFormat, SourceSpec};
use positions_api::{Listeners, ServerOptions, connection_cap, startup};
use tracing_subscriber::EnvFilter;

/// jemalloc rather than the system allocator: after a burst of connections
/// closes, glibc's malloc keeps the memory they used for good, while
/// jemalloc's background threads return it to the system within seconds
/// (docs/performance.md has the figures).
#[cfg(all(unix, not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let config = match Config::from_args(std::env::args_os()) {
        Ok(config) => config,
        Err(ConfigError::Info(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(ConfigError::Invalid(line)) => {
            eprintln!("positions-api: {line}");
            return ExitCode::from(2);
        }
    };
    if let Err(line) = init_logging(config.log_format) {
        eprintln!("positions-api: {line}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("positions-api: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        // Built inside the runtime: the Redis tier starts its prober task.
        let app = match startup::build(&config) {
            Ok(app) => app,
            Err(e) => {
                eprintln!("positions-api: {e}");
                return ExitCode::from(2);
            }
        };
        // A listener that cannot be bound is a setting that cannot be used:
        // exit 2 naming it, as for any bad setting.
        let public = match tokio::net::TcpListener::bind(config.bind).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("positions-api: cannot listen on {} (POSITIONS_BIND): {e}", config.bind);
                return ExitCode::from(2);
            }
        };
        let mut listeners = Listeners::new(public);
        let mut admin_addr = None;
        if let Some(admin_bind) = config.admin_bind {
            match tokio::net::TcpListener::bind(admin_bind).await {
                Ok(admin) => {
                    admin_addr = Some(admin.local_addr().map_or_else(|_| admin_bind.to_string(), |a| a.to_string()));
                    listeners = listeners.with_admin(admin);
                }
                Err(e) => {
                    eprintln!("positions-api: cannot listen on {admin_bind} (ADMIN_BIND): {e}");
                    return ExitCode::from(2);
                }
            }
        }
        let addr = listeners.public_addr().map_or_else(|_| config.bind.to_string(), |a| a.to_string());
        let options = ServerOptions {
            header_timeout: config.header_timeout(),
            idle_timeout: config.idle_timeout(),
            shutdown_delay: config.shutdown_delay(),
            drain: config.shutdown_grace(),
            max_connections: connection_cap(config.max_connections()),
            ..ServerOptions::default()
        };
        tracing::info!(
            %addr,
            admin_addr = admin_addr.as_deref(),
            max_connections = options.max_connections,
            source = source_kind(&config.source),
            cache_enabled = config.cache_enabled,
            "listening"
        );
        startup::run(app, listeners, options, startup::shutdown_signal()).await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// The kind of source, for the "listening" line; where it is was logged
/// when it was set up (without credentials).
fn source_kind(source: &SourceSpec) -> &'static str {
    match source {
        SourceSpec::Sample => "sample",
        SourceSpec::Ledger(_) => "ledger",
        SourceSpec::Http(_) => "http",
    }
}

/// Sets up logging at the level `RUST_LOG` names (`info` when it is unset
/// or empty). An invalid `RUST_LOG` is a bad setting like any other: the
/// error is one line naming it, and the binary exits 2, rather than
/// silently logging at another level than the operator asked for.
fn init_logging(format: LogFormat) -> Result<(), String> {
    let filter = match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::builder()
            .parse(&directives)
            .map_err(|e| format!("invalid {:?} for RUST_LOG: {e}", directives.trim()))?,
        Err(std::env::VarError::NotUnicode(_)) => return Err("invalid RUST_LOG: not UTF-8".into()),
        _ => EnvFilter::new("info"),
    };
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}
