//! `--metrics ADDR`: the run's figures in Prometheus' text format at
//! `http://ADDR/metrics`, and the [`Probes`] they (and the progress line)
//! are read from.

mod collector;
mod probes;
mod server;

pub use self::probes::Probes;
pub use self::server::{MetricsListener, MetricsServer};
