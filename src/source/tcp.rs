//! The TCP source: listens on an address, serves every client as its own
//! task, and feeds every frame a client sends (see
//! [`crate::codec::framing`]) into the pipeline as one record. Records of
//! one connection keep their order; connections interleave.
//!
//! Bounds against bad or hostile clients: a frame over
//! [`TcpOptions::max_frame_bytes`] is rejected and skipped (the frames
//! after it are read as usual); at
//! most [`TcpOptions::max_connections`] clients are served at once (the
//! next ones wait, unread, in the kernel's listen backlog); unfinished
//! frames together hold at most [`TcpOptions::max_buffered_bytes`] beyond
//! one read's worth per connection (see `budget`), and one that holds a
//! share of it must end its frame within [`TcpOptions::frame_timeout`]; a
//! connection silent for [`TcpOptions::idle_timeout`] is closed. A bad connection is logged
//! (warnings a client can trigger at will are rate-limited) and closed;
//! the others go on.
//!
//! The accept path, in order: a peer in no [`TcpOptions::allow`] network,
//! or whose address holds [`TcpOptions::max_connections_per_ip`] already,
//! is closed at once, before any byte is read (`allow`, `per_ip`); then,
//! with [`TcpOptions::tls`], the connection's task runs the TLS handshake
//! within its timeout (`tls`); then frames are read, and a connection that
//! sends less than [`TcpOptions::min_rate`] is closed (`rate`).
//!
//! Backpressure: a connection whose batch cannot be sent waits and does
//! not read its socket meanwhile, so the kernel's receive window fills and
//! TCP flow control slows that client down. Memory per connection is one
//! read buffer and one batch, plus its share of the buffer budget.
//!
//! Shutdown: once [`SourceContext::shutdown`] is cancelled, the listener
//! closes; the open connections are read until their clients finish, the
//! pipeline stops taking records, or [`TcpOptions::drain_timeout`] passes.

mod allow;
mod budget;
mod connection;
mod counters;
mod csv_rows;
mod fd_limit;
mod per_ip;
mod rate;
mod socket;
mod tls;

pub use self::allow::Cidr;
pub use self::budget::check as check_tcp_budget;
pub use self::counters::TcpCounters;
pub use self::rate::MinRate;
pub use self::tls::TlsOptions;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use self::budget::Budget;
use self::connection::Connection;
use self::counters::{CloseReason, Refusal};
use self::per_ip::{Held, PerIp};
use self::socket::Socket;
use crate::codec::{Format, Framing};
use crate::error::{Error, Result};
use crate::parts::{Source, SourceContext};

/// Serves one accepted client ([`serve`]), then writes out the dead
/// letter of the record it may have ended inside of: the decode stage
/// writes dead letters out only before a batch it forwards, and none may
/// come after this one (the server idle, or every client gone), so
/// without this it would wait, unwritten, until one does or the run ends.
async fn open(stream: TcpStream, peer: SocketAddr, conn: u64, shared: Arc<Shared>) -> Result<()> {
    let rejects = shared.ctx.rejects.clone();
    let served = serve(stream, peer, conn, shared).await;
    // Nothing to do, and no task, when no line waits.
    let written = rejects.write_out().await;
    served.and(written)
}

/// Serves one accepted client: the TLS handshake first, when the source
/// has TLS (a failed one ends the connection, counted and logged), then
/// its frames.
async fn serve(stream: TcpStream, peer: SocketAddr, conn: u64, shared: Arc<Shared>) -> Result<()> {
    let Some(tls) = shared.options.tls.clone() else {
        return Connection::new(Socket::Plain(stream), peer, conn, None, shared)
            .run()
            .await;
    };
    let handshake = tokio::select! {
        biased;
        _ = shared.stop_reading.cancelled() => {
            shared.counters.closed(CloseReason::Stopped);
            return Ok(());
        }
        handshake = tls::handshake(&tls, stream) => handshake,
    };
    match handshake {
        Ok((stream, subject)) => {
            let socket = Socket::Tls(Box::new(stream));
            Connection::new(socket, peer, conn, subject, shared)
                .run()
                .await
        }
        Err(refused) => {
            tls::refused(&shared, peer, refused);
            Ok(())
        }
    }
}

/// Connections the kernel completes and queues for us before refusing
/// more (capped by the system's `net.core.somaxconn`). Larger than the
/// usual 128 so that hundreds of clients connecting at once, or waiting
/// for a slot, are queued rather than made to retry.
const BACKLOG: u32 = 1024;

/// How the TCP source listens and reads. No `Default`: the defaults are
/// those of `streamer tcp`'s flags ([`crate::cli::TcpArgs`]), stated once.
#[derive(Debug, Clone)]
pub struct TcpOptions {
    /// The address to listen on (`host:port`; port 0 picks a free port).
    pub bind: String,
    /// How each connection's byte stream is cut into frames.
    pub framing: Framing,
    /// What each frame holds: a line of text, a JSON object, a CSV row.
    pub format: Format,
    /// CSV cell separator.
    pub delimiter: u8,
    /// CSV: the first frame of each connection names the columns.
    pub header: bool,
    /// A longer frame is rejected, and skipped.
    pub max_frame_bytes: usize,
    /// Most bytes all connections together may hold in unfinished frames
    /// beyond one read's worth each (see `budget`).
    pub max_buffered_bytes: usize,
    /// Most connections served at once.
    pub max_connections: usize,
    /// A connection silent this long is closed (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// A frame holding a share of the buffer budget must end within this
    /// (`None`: no limit), else it is rejected and its connection closed.
    pub frame_timeout: Option<Duration>,
    /// After shutdown, how long open connections may still send.
    pub drain_timeout: Duration,
    /// Only peers in these networks are served (empty: everyone).
    pub allow: Vec<Cidr>,
    /// Most connections open at once from one address (`None`: no limit).
    pub max_connections_per_ip: Option<usize>,
    /// A connection sending less than this is closed (`None`: never).
    pub min_rate: Option<MinRate>,
    /// TLS on every connection (`None`: plaintext).
    pub tls: Option<TlsOptions>,
}

/// A bound listener, ready to serve.
pub struct TcpSource {
    listener: TcpListener,
    local_addr: SocketAddr,
    options: TcpOptions,
    budget: Budget,
    counters: Arc<TcpCounters>,
}

impl TcpSource {
    /// Binds `options.bind` now, so that a taken port or a bad address
    /// fails the run before anything else starts (and so does a frame
    /// limit over the buffer budget).
    pub async fn bind(options: TcpOptions) -> Result<Self> {
        let budget = Budget::new(options.max_buffered_bytes, options.max_frame_bytes)?;
        fd_limit::fit(options.max_connections);
        let bind_error = |source| Error::Bind {
            addr: options.bind.clone(),
            source,
        };
        let listener = listen(&options.bind).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(TcpSource {
            listener,
            local_addr,
            options,
            budget,
            counters: Arc::default(),
        })
    }

    /// The address actually bound (the port chosen when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The connection counters, readable while the source runs.
    pub fn counters(&self) -> Arc<TcpCounters> {
        self.counters.clone()
    }
}

/// Listens on the first address `addr` resolves to that can be bound.
async fn listen(addr: &str) -> io::Result<TcpListener> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host(addr).await? {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // As the standard library does: rebind at once after a restart,
        // while the last run's connections linger in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "resolves to no address")))
}

impl Source for TcpSource {
    fn run(self: Box<Self>, ctx: SourceContext) -> BoxFuture<'static, Result<()>> {
        Box::pin(self.serve(ctx))
    }
}

/// Why open connections were told to stop reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    /// Shutdown, and the drain timeout passed with the connection open.
    DrainTimeout,
    /// The pipeline takes no more records (`--limit` reached, the sink failed).
    PipelineClosed,
    /// A connection failed the run (a rejection under `--on-error stop`).
    RunFailed,
}

/// What the server and every connection task share.
struct Shared {
    ctx: SourceContext,
    options: TcpOptions,
    /// What unfinished frames may hold, across all connections.
    budget: Budget,
    /// Cancelled when open connections must stop reading now (rather than
    /// at their client's end); `stop_reason` says why.
    stop_reading: CancellationToken,
    stop_reason: OnceLock<StopReason>,
    /// Connections open, accepted, refused, closed.
    counters: Arc<TcpCounters>,
    /// Connections per address, for `--max-connections-per-ip`.
    per_ip: PerIp,
    /// Peers warned about speaking plaintext to the TLS port.
    warned_plaintext: tls::Warned,
}

impl Shared {
    fn stop_reading(&self, reason: StopReason) {
        let _ = self.stop_reason.set(reason);
        self.stop_reading.cancel();
    }

    fn stop_reason(&self) -> Option<StopReason> {
        self.stop_reason.get().copied()
    }
}

/// The accept loop's state.
struct Server {
    shared: Arc<Shared>,
    /// One task per open connection, each holding a connection slot; a
    /// task's error (only ever a rejection under `--on-error stop`) ends the run.
    tasks: JoinSet<Result<()>>,
    /// Connections accepted so far: the last connection number.
    accepted: u64,
    /// The first error of a connection task.
    failure: Option<Error>,
}

impl TcpSource {
    /// Accepts until shutdown (or a connection fails the run), then drains.
    async fn serve(self: Box<Self>, ctx: SourceContext) -> Result<()> {
        let TcpSource {
            listener,
            options,
            budget,
            counters,
            ..
        } = *self;
        // A slot per connection: accepting waits for a free one, so extra
        // clients queue, unread, in the kernel's listen backlog.
        let slots = Arc::new(Semaphore::new(options.max_connections));
        let per_ip = PerIp::new(options.max_connections_per_ip);
        let shared = Arc::new(Shared {
            ctx,
            options,
            budget,
            stop_reading: CancellationToken::new(),
            stop_reason: OnceLock::new(),
            counters,
            per_ip,
            warned_plaintext: tls::Warned::default(),
        });
        let mut server = Server {
            shared: shared.clone(),
            tasks: JoinSet::new(),
            accepted: 0,
            failure: None,
        };
        let mut slot: Option<OwnedSemaphorePermit> = None;
        let mut said_full = false;
        while server.failure.is_none() {
            if slot.is_none() {
                match slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        slot = Some(permit);
                        said_full = false;
                    }
                    Err(_) if !said_full => {
                        said_full = true;
                        crate::warn_limited!(
                            "all {} connection slots in use (--max-connections): new clients wait until one closes",
                            shared.options.max_connections
                        );
                    }
                    Err(_) => {}
                }
            }
            tokio::select! {
                biased;
                _ = shared.ctx.shutdown.cancelled() => break,
                Some(joined) = server.tasks.join_next() => server.joined(joined),
                permit = slots.clone().acquire_owned(), if slot.is_none() => {
                    slot = Some(permit.expect("the semaphore is never closed"));
                    said_full = false;
                }
                accepted = listener.accept(), if slot.is_some() => match accepted {
                    Ok((stream, peer)) => {
                        // A refused peer is closed here, unread, and
                        // leaves the slot to the next client.
                        if let Some(held) = shared.admit(peer) {
                            let slot = slot.take().expect("checked by the guard");
                            server.spawn(stream, peer, slot, held);
                        }
                    }
                    Err(error) => {
                        // Out of file descriptors, or a client that left
                        // before we took it: the listener itself is fine.
                        // Pause so a lasting error does not spin.
                        shared.counters.refused(Refusal::AcceptFailed);
                        crate::warn_limited!("accepting a connection failed: {error}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        // Closing the listener refuses new clients, including those still
        // waiting in its backlog.
        drop(listener);
        server.drain().await
    }
}

impl Shared {
    /// Whether `peer` is served: in an `--allow` network, and under
    /// `--max-connections-per-ip` (its place in the table is `Held`). A
    /// refusal is counted and logged.
    fn admit(&self, peer: SocketAddr) -> Option<Held> {
        if !allow::allowed(&self.options.allow, peer.ip()) {
            self.counters.refused(Refusal::NotAllowed);
            crate::warn_limited!("refused a connection from {peer}: not in any --allow network");
            return None;
        }
        let held = self.per_ip.enter(peer.ip());
        if held.is_none() {
            self.counters.refused(Refusal::PerIpLimit);
            crate::warn_limited!(
                "refused a connection from {peer}: its address has {} connections open \
                 already (--max-connections-per-ip)",
                self.options.max_connections_per_ip.unwrap_or_default()
            );
            return None;
        }
        held
    }
}

impl Server {
    /// Starts serving one accepted client; its slot (and its place in the
    /// per-address table) is freed when it ends.
    fn spawn(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        slot: OwnedSemaphorePermit,
        held: Held,
    ) {
        self.accepted += 1;
        let conn = self.accepted;
        let shared = self.shared.clone();
        let counters = self.shared.counters.clone();
        counters.opened();
        // Every log line about the connection says which it is. At error
        // level, so that the default filter (warnings) keeps it.
        let span = tracing::error_span!("tcp_conn", peer = %peer, conn);
        self.tasks.spawn(
            async move {
                let result = open(stream, peer, conn, shared).await;
                counters.left();
                drop((slot, held));
                result
            }
            .instrument(span),
        );
    }

    /// Takes note of a finished connection task.
    fn joined(&mut self, joined: Result<Result<()>, JoinError>) {
        let error = match joined {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error,
            Err(join_error) => Error::panicked("a TCP connection", join_error),
        };
        if self.failure.is_none() {
            self.failure = Some(error);
            self.shared.stop_reading(StopReason::RunFailed);
        }
    }

    /// Waits for the open connections: until their clients finish, the
    /// pipeline closes, or the drain timeout passes.
    async fn drain(mut self) -> Result<()> {
        let shared = self.shared.clone();
        let drain_timeout = shared.options.drain_timeout;
        if self.failure.is_some() || shared.ctx.out.is_closed() {
            tracing::info!("stopped accepting connections");
        } else {
            tracing::info!(
                "stopped accepting connections ({} open; waiting up to {drain_timeout:?} for them to finish)",
                self.tasks.len()
            );
        }
        let deadline = tokio::time::sleep(drain_timeout);
        tokio::pin!(deadline);
        loop {
            let stopped = shared.stop_reading.is_cancelled();
            tokio::select! {
                joined = self.tasks.join_next() => match joined {
                    Some(joined) => self.joined(joined),
                    None => break,
                },
                _ = &mut deadline, if !stopped => {
                    tracing::warn!(
                        "--drain-timeout {drain_timeout:?} passed: closing {} connection(s) still open",
                        self.tasks.len()
                    );
                    shared.stop_reading(StopReason::DrainTimeout);
                }
                _ = shared.ctx.out.closed(), if !stopped => {
                    shared.stop_reading(StopReason::PipelineClosed);
                }
            }
        }
        match self.failure {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}
