//! The `streamer` binary: parse and check the flags, set up logging and
//! the runtime, run, exit with the run's status.

use std::io::IsTerminal;
use std::process::ExitCode;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use streamer::cli::{Command, LogFormat};
use streamer::config::RunConfig;
use streamer::say;

fn main() -> ExitCode {
    keep_freed_buffers();
    // Refused before anything starts: a bad command line exits with
    // status 2, as clap's own errors do.
    let cli = streamer::cli::parse();
    if let Command::Tool(tool) = &cli.command {
        return match tool.print(&mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            // `streamer man | head`: the reader had what it wanted.
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(error) => {
                say!("streamer: error: cannot write the {}: {error}", tool.name());
                ExitCode::from(streamer::run::EXIT_FAILED)
            }
        };
    }
    // Known before the flags are checked, so that a refusal is JSON too.
    if cli.global.log_format == LogFormat::Json {
        streamer::stderr::use_json();
    }
    let config = match RunConfig::from_cli(cli) {
        Ok(config) => config,
        Err(error) => return streamer::run::refuse(error),
    };
    init_logging(config.quiet, config.verbose, config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            say!("streamer: error: cannot start the runtime: {error}");
            return ExitCode::from(streamer::run::EXIT_FAILED);
        }
    };
    let status = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        // The handlers are installed here, before the run can say it is
        // listening: a task spawned to install them may run later, and a
        // SIGTERM meanwhile would kill the process (status 143).
        let signals = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        );
        tokio::spawn(watch_signals(signals, shutdown.clone()));
        streamer::run::run(config, shutdown).await
    });
    // A read of stdin may still be parked on a blocking thread: do not wait for it.
    runtime.shutdown_background();
    status
}

/// Keeps freed buffers in the heap for reuse. glibc hands a freed block
/// over 128 KiB (a batch's buffers, librdkafka's fetch buffers) back to the
/// kernel at once, so every new batch faulted its pages in afresh: 30,000
/// page faults in the 2M-row CSV benchmark, 3,500 with this, and 12% less
/// time (Kafka: 20% less). The cost: after a peak, freed memory is kept
/// for reuse rather than returned (up to 64 MiB per allocator arena), so
/// RSS stays near its peak, which the pipeline's bounds limit.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_buffers() {
    // SAFETY: mallopt only tunes the allocator, and is called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_buffers() {}

/// Logs go to stderr: warnings by default, errors only with `-q`, more with
/// each `-v`; `RUST_LOG` overrides all of it. As text, or one JSON object
/// a line (`{"level":"WARN","message":...}`, fields beside the message).
fn init_logging(quiet: bool, verbose: u8, format: LogFormat) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    // rustls warns once a connection about what its client sent (an IP
    // address as SNI, which socat sends by default): a client could fill
    // the log at will, so below -vv only its errors show. The refusals
    // that matter are logged by the TCP source, at most once a second.
    let directives = if verbose >= 2 {
        level.to_string()
    } else {
        format!("{level},rustls=error")
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directives));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Around the progress line, if one is drawn.
        .with_writer(|| streamer::stderr::Writer)
        // Colour only for a person who wants it: a log file or a test
        // reading stderr gets plain text, and so do NO_COLOR and TERM=dumb.
        .with_ansi(
            std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
                && std::env::var_os("TERM").is_none_or(|term| term != "dumb"),
        )
        .without_time()
        .with_target(false)
        // A failed write of a log line is ignored, not reported with
        // `eprintln!` (which panics when stderr is what failed).
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

/// How long a second signal's exit waits for the output write in progress.
const EXIT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The first Ctrl-C or SIGTERM stops the sources (records already read are
/// still written); the second exits at once, between two writes.
async fn watch_signals(
    signals: (std::io::Result<Signal>, std::io::Result<Signal>),
    shutdown: CancellationToken,
) {
    let (Ok(mut interrupt), Ok(mut terminate)) = signals else {
        tracing::warn!("cannot watch for signals; Ctrl-C will exit at once");
        return;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("stopping: writing out the records already read (signal again to exit at once)");
    shutdown.cancel();
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    say!("streamer: second signal: exiting at once");
    // Not in the middle of a write: the output ends with a whole record.
    if !streamer::parts::whole_writes::stop_writes(EXIT_WAIT) {
        say!(
            "streamer: a write to the output did not end within {} s: exiting in its middle",
            EXIT_WAIT.as_secs()
        );
    }
    std::process::exit(130);
}
