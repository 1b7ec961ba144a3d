//! nginx as a caching reverse proxy: the peer the service's cached HTTP
//! path is measured against.
//!
//! It runs in the foreground (`daemon off`), as its own master with one
//! worker per core (or one, when pinned), from a configuration written into
//! the run's scratch directory, which also holds its cache, temporary
//! files, pid file and error log: nothing outside `target/` is touched.
//! Every answer carries `X-Cache-Status`, so the bench can check that what
//! it measured were cache hits.
//!
//! With `gzip on`, nginx compresses a cached answer on every request that
//! accepts gzip, as it does in front of any upstream that answers identity:
//! it asks the service for identity (it sends no `Accept-Encoding`
//! upstream) and keeps one copy per wallet (it ignores the service's
//! `Vary`), so identity and gzip requests are hits on the same entry.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};

use super::process::{Launch, Process, free_port};
use super::servers::Server;

/// Starts nginx on a free port of 127.0.0.1, caching what `upstream`
/// answers, pinned to `cpu` with one worker if given.
pub(crate) fn start(dir: &Path, upstream: SocketAddr, cpu: Option<u32>) -> Result<Server> {
    let listen = free_port()?;
    let workers = if cpu.is_some() { "1" } else { "auto" };
    let config_file = dir.join("nginx.conf");
    std::fs::write(&config_file, config(dir, listen, upstream, workers))
        .with_context(|| format!("cannot write {}", config_file.display()))?;
    let launch = Launch::new("nginx")
        .arg("-p")
        .arg(dir.to_string_lossy())
        // Errors before the configuration is read go here too, instead of
        // the system's /var/log/nginx.
        .arg("-e")
        .arg(dir.join("error.log").to_string_lossy())
        .arg("-c")
        .arg(config_file.to_string_lossy())
        .pin(cpu);
    let mut process = Process::start("nginx", &launch, &dir.join("nginx.log"))?;
    process.wait_for_port(listen)?;
    Ok(Server { process, addr: listen })
}

/// The configuration: `proxy_cache` in front of `upstream`, keeping every
/// 200 for an hour whatever the upstream's own `Cache-Control` says (the
/// service's `max-age` would otherwise decide), with keep-alive on both
/// sides and no access log; JSON answers gzipped per request for clients
/// that accept it, at nginx's default level (1, its cheapest).
fn config(dir: &Path, listen: SocketAddr, upstream: SocketAddr, workers: &str) -> String {
    let dir = dir.display();
    format!(
        "\
# Written by `cargo xtask bench`; see xtask/src/bench/nginx.rs.
daemon off;
master_process on;
# The machine runs the bench as root; nginx's default user could not read
# this directory.
user root;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    # wrk keeps its connections for the whole run; nginx's default of 1,000
    # requests per connection would make it reconnect, which the other
    # servers are not asked to do.
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    gzip on;
    gzip_types application/json;
    # wrk sends no Via header, but nginx must not hold back for one.
    gzip_proxied any;
    gzip_min_length 256;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy_temp;
    fastcgi_temp_path {dir}/fastcgi_temp;
    uwsgi_temp_path {dir}/uwsgi_temp;
    scgi_temp_path {dir}/scgi_temp;
    proxy_cache_path {dir}/cache levels=1:2 keys_zone=positions:10m max_size=100m inactive=1h use_temp_path=off;

    upstream positions_api {{
        server {upstream};
        keepalive 32;
    }}

    server {{
        listen {listen};
        location / {{
            proxy_pass http://positions_api;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            # Identity from the service; nginx compresses.
            proxy_set_header Accept-Encoding \"\";
            proxy_cache positions;
            proxy_cache_valid 200 1h;
            proxy_ignore_headers Cache-Control Expires Vary;
            add_header X-Cache-Status $upstream_cache_status;
        }}
    }}
}}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_caches_in_its_own_directory() {
        let dir = Path::new("/tmp/bench/nginx");
        let listen: SocketAddr = "127.0.0.1:18080".parse().expect("address");
        let upstream: SocketAddr = "127.0.0.1:18081".parse().expect("address");
        let text = config(dir, listen, upstream, "1");
        for expected in [
            "daemon off;",
            "worker_processes 1;",
            "pid /tmp/bench/nginx/nginx.pid;",
            "proxy_cache_path /tmp/bench/nginx/cache ",
            "proxy_cache_valid 200 1h;",
            "access_log off;",
            "add_header X-Cache-Status $upstream_cache_status;",
            "gzip on;",
            "gzip_types application/json;",
            "gzip_proxied any;",
            "proxy_set_header Accept-Encoding \"\";",
            "proxy_ignore_headers Cache-Control Expires Vary;",
            "server 127.0.0.1:18081;",
            "listen 127.0.0.1:18080;",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        assert_eq!(text.matches('{').count(), text.matches('}').count());
    }
}
