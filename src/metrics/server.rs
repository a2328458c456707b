//! The `/metrics` endpoint: a tokio listener answering HTTP/1.1 GET (or
//! HEAD) `/metrics` with the scrape, 404 for any other path, 405 for any
//! other method; one request per connection. Small enough that no HTTP
//! crate is needed, and a slow or silent client is dropped after a few
//! seconds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::collector::{registry, render};
use super::probes::Probes;
use crate::error::{Error, Result};

/// Longest request head read; a longer one is answered 431 and closed.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request head: a scraper sends
/// it at once, and a client that trickles it (slowloris) must not keep a
/// slot from the real scraper for long.
const HEAD_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a client may take to send its request and read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Clients served at once; more wait in the listen backlog. Many, so that
/// idle connections cannot hold every slot: each costs a descriptor and a
/// small task, for at most [`HEAD_TIMEOUT`] unless it is answered.
const MAX_CLIENTS: usize = 256;

/// The metrics listener, serving until dropped.
pub struct MetricsServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// The address bound (the port chosen when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `--metrics` address, bound before anything else starts (a taken
/// port fails the run before any output is opened), not yet served.
pub struct MetricsListener(TcpListener);

impl MetricsListener {
    /// Binds `addr`.
    pub async fn bind(addr: &str) -> Result<MetricsListener> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind {
                addr: format!("{addr} (--metrics)"),
                source,
            })?;
        Ok(MetricsListener(listener))
    }

    /// Serves `probes` until the returned server is dropped.
    pub fn serve(self, probes: Probes) -> Result<MetricsServer> {
        let addr = self.0.local_addr().map_err(|source| Error::Bind {
            addr: "the --metrics address".into(),
            source,
        })?;
        tracing::info!("metrics at http://{addr}/metrics");
        let registry = Arc::new(registry(probes));
        let task = tokio::spawn(accept(self.0, registry));
        Ok(MetricsServer { addr, task })
    }
}

async fn accept(listener: TcpListener, registry: Arc<Registry>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, _)) => {
                let registry = registry.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(CLIENT_TIMEOUT, answer(stream, &registry)).await;
                    drop(slot);
                });
            }
            Err(error) => {
                crate::warn_limited!("--metrics: accepting a connection failed: {error}");
                // A lasting error (out of descriptors) must not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one request head and answers it.
async fn answer(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let Ok(head) = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await else {
        return Ok(());
    };
    let Some(head) = head? else {
        return reply(
            &mut stream,
            "431 Request Header Fields Too Large",
            "",
            false,
        )
        .await;
    };
    if !head.windows(4).any(|w| w == b"\r\n\r\n") {
        return Ok(()); // closed before its request was whole
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            let body = render(registry);
            reply(&mut stream, "200 OK", &body, method == "HEAD").await
        }
        ("GET" | "HEAD", _) => {
            reply(
                &mut stream,
                "404 Not Found",
                "not found: try /metrics\n",
                false,
            )
            .await
        }
        _ => {
            reply(
                &mut stream,
                "405 Method Not Allowed",
                "only GET /metrics\n",
                false,
            )
            .await
        }
    }
}

/// The request head, up to its blank line; `None` when it is longer than
/// [`MAX_HEAD`], empty when the client closed first.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(Some(head))
}

async fn reply(
    stream: &mut TcpStream,
    status: &str,
    body: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes()).await?;
    if !head_only {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}
