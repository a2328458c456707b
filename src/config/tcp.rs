//! `streamer tcp`'s flags into [`TcpOptions`]: 0 meaning "never" or "no
//! limit" made `None`, and the TLS files read and checked now, so that a
//! missing or unusable certificate fails the run before it listens.

use crate::cli::TcpArgs;
use crate::source::tcp::{MinRate, TlsOptions};
use crate::source::TcpOptions;

use super::ConfigError;

/// The TCP source's options from its flags.
pub(super) fn options(args: TcpArgs) -> Result<TcpOptions, ConfigError> {
    let security = args.security;
    if security.handshake_timeout.is_zero() {
        return Err(ConfigError::Usage(
            "--handshake-timeout 0: a silent client would hold its slot for ever; give a duration"
                .into(),
        ));
    }
    if security.min_rate.is_some() && security.min_rate_window.is_zero() {
        return Err(ConfigError::Usage(
            "--min-rate-window 0: the rate needs a window to be measured over".into(),
        ));
    }
    let tls = match (&security.server_cert, &security.server_key) {
        (Some(cert), Some(key)) => Some(
            TlsOptions::load(
                cert,
                key,
                security.client_ca.as_deref(),
                security.handshake_timeout,
            )
            .map_err(ConfigError::Unusable)?,
        ),
        // clap requires both or neither.
        _ => None,
    };
    Ok(TcpOptions {
        bind: args.bind,
        framing: args.framing,
        format: args.format,
        delimiter: args.csv.delimiter,
        header: !args.csv.no_header,
        max_frame_bytes: args.max_frame_bytes,
        max_buffered_bytes: args.max_buffered_bytes,
        max_connections: args.max_connections as usize,
        // 0 is "never" on the command line.
        idle_timeout: (!args.idle_timeout.is_zero()).then_some(args.idle_timeout),
        frame_timeout: (!args.frame_timeout.is_zero()).then_some(args.frame_timeout),
        drain_timeout: args.drain_timeout,
        allow: security.allow,
        max_connections_per_ip: (security.max_connections_per_ip > 0)
            .then_some(security.max_connections_per_ip as usize),
        min_rate: security.min_rate.map(|rate| MinRate {
            bytes_per_second: rate as u64,
            window: security.min_rate_window,
        }),
        tls,
    })
}
