//! `--max-connections-per-ip`: how many connections each client address
//! holds, so that one address cannot take every `--max-connections` slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

type Table = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Connections open per client address; entries go when they reach 0, so
/// the table holds at most `--max-connections` addresses.
#[derive(Debug)]
pub(super) struct PerIp {
    /// `None`: no limit, and no table kept.
    limit: Option<usize>,
    open: Table,
}

/// One connection's place in the table, given back when dropped (however
/// its task ends).
pub(super) struct Held {
    place: Option<(IpAddr, Table)>,
}

impl PerIp {
    /// At most `limit` connections per address (`None`: no limit).
    pub(super) fn new(limit: Option<usize>) -> Self {
        PerIp {
            limit,
            open: Table::default(),
        }
    }

    /// A place for one more connection from `ip`, or `None` when it holds
    /// the limit already. IPv4 clients of a dual-stack listener count as
    /// their IPv4 address.
    pub(super) fn enter(&self, ip: IpAddr) -> Option<Held> {
        let Some(limit) = self.limit else {
            return Some(Held { place: None });
        };
        let ip = ip.to_canonical();
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let count = open.entry(ip).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Held {
            place: Some((ip, self.open.clone())),
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some((ip, table)) = &self.place else {
            return;
        };
        let mut open = table.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(count) = open.get_mut(ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_the_limit_and_gets_places_back() {
        let table = PerIp::new(Some(2));
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "::1".parse().unwrap();
        let first = table.enter(a).unwrap();
        let _second = table.enter(a).unwrap();
        assert!(table.enter(a).is_none());
        // The same client through a dual-stack listener.
        assert!(table.enter("::ffff:127.0.0.2".parse().unwrap()).is_none());
        let other = table.enter(b).unwrap();
        drop(first);
        assert!(table.enter(a).is_some());
        drop(other);
        assert_eq!(table.open.lock().unwrap().len(), 1);
    }

    #[test]
    fn without_a_limit_everyone_enters_and_nothing_is_kept() {
        let table = PerIp::new(None);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let held: Vec<Held> = (0..5).map(|_| table.enter(ip).unwrap()).collect();
        assert_eq!(held.len(), 5);
        assert!(table.open.lock().unwrap().is_empty());
    }
}
