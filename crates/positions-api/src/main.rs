//! The `positions-api` binary: read the configuration, set up logging,
//! bind, serve until SIGINT or SIGTERM.

use std::process::ExitCode;

use positions_api::config::{Config, ConfigError, LogFormat};
use positions_api::{ServerOptions, startup};
use tracing_subscriber::EnvFilter;

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
    init_logging(config.log_format);
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
        let listener = match tokio::net::TcpListener::bind(config.bind).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("positions-api: cannot listen on {} (POSITIONS_BIND): {e}", config.bind);
                return ExitCode::FAILURE;
            }
        };
        let addr = listener.local_addr().map_or_else(|_| config.bind.to_string(), |a| a.to_string());
        tracing::info!(%addr, source = ?config.source, cache_enabled = config.cache_enabled, "listening");
        let options = ServerOptions { header_timeout: config.header_timeout(), drain: config.shutdown_grace() };
        startup::run(app, listener, options, startup::shutdown_signal()).await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
