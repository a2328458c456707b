//! `--allow CIDR`: the networks whose clients are served. A peer outside
//! every listed network is closed at accept, before any byte is read.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One network: an address and how many leading bits of it must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this network. An IPv4 client of a dual-stack
    /// (`[::]`) listener shows as `::ffff:a.b.c.d`: it is matched as the
    /// IPv4 address it is.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                same_prefix(u32::from(net).into(), u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `prefix` of `width` bits of `a` and `b` agree.
fn same_prefix(a: u128, b: u128, width: u8, prefix: u8) -> bool {
    let shift = width - prefix;
    // A shift of the whole width would overflow: /0 matches everything.
    shift == width || (a >> shift) == (b >> shift)
}

impl FromStr for Cidr {
    type Err = String;

    /// `10.0.0.0/8`, `fd00::/8`, or a bare address (`/32`, `/128`). Bits
    /// set past the prefix are refused: `10.1.2.3/8` is likely a mistake
    /// for `/32`, and would silently serve all of 10/8.
    fn from_str(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        // `::ffff:a.b.c.d` is how an IPv4 client of a `[::]` listener
        // shows: matched as the IPv4 address it is (see `contains`).
        let written: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an IPv4 or IPv6 address or network (CIDR, as 10.0.0.0/8 or fd00::/8)"))?;
        let addr = written.to_canonical();
        let written_width = if written.is_ipv4() { 32 } else { 128 };
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|&prefix| prefix <= written_width)
                .and_then(|prefix| prefix.checked_sub(written_width - width))
                .ok_or_else(|| {
                    format!(
                        "`{text}`: the prefix length must be {} to {written_width}",
                        written_width - width
                    )
                })?,
        };
        let cidr = Cidr { addr, prefix };
        let bits = match addr {
            IpAddr::V4(v4) => u32::from(v4).into(),
            IpAddr::V6(v6) => u128::from(v6),
        };
        // The bits past the prefix; a /0 has them all (a shift of 128
        // would overflow).
        let host_mask = 1u128
            .checked_shl(u32::from(width - prefix))
            .map_or(u128::MAX, |bit| bit - 1);
        let host_bits = bits & host_mask;
        if host_bits != 0 {
            return Err(format!(
                "`{text}` has bits set past its /{prefix} prefix: write the network's first address, or /{width} for this one address"
            ));
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Whether `ip` may be served under `allow` (empty: everyone).
pub fn allowed(allow: &[Cidr], ip: IpAddr) -> bool {
    allow.is_empty() || allow.iter().any(|cidr| cidr.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_hold_their_addresses_only() {
        assert!(cidr("10.0.0.0/8").contains(ip("10.255.0.1")));
        assert!(!cidr("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(!cidr("10.0.0.0/8").contains(ip("127.0.0.1")));
        assert!(cidr("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(!cidr("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(!cidr("0.0.0.0/0").contains(ip("::1")));
        assert!(cidr("::1").contains(ip("::1")));
        assert!(cidr("fd00::/8").contains(ip("fd12::5")));
        assert!(!cidr("fd00::/8").contains(ip("fe80::1")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
        // An IPv4 client of a dual-stack listener.
        assert!(cidr("127.0.0.0/8").contains(ip("::ffff:127.0.0.1")));
        assert!(!cidr("::1").contains(ip("127.0.0.1")));
        // A mapped address names the IPv4 one, with or without a prefix.
        assert!(cidr("::ffff:127.0.0.1").contains(ip("::ffff:127.0.0.1")));
        assert!(cidr("::ffff:127.0.0.1").contains(ip("127.0.0.1")));
        assert!(cidr("::ffff:10.0.0.0/104").contains(ip("10.9.9.9")));
        assert!("::ffff:10.0.0.0/8".parse::<Cidr>().is_err());
    }

    #[test]
    fn bad_networks_are_refused_with_the_reason() {
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().unwrap_err(),
            "`10.1.2.3/8` has bits set past its /8 prefix: write the network's first address, or /32 for this one address"
        );
        assert_eq!(
            "10.0.0.0/33".parse::<Cidr>().unwrap_err(),
            "`10.0.0.0/33`: the prefix length must be 0 to 32"
        );
        assert_eq!(
            "fd00::/129".parse::<Cidr>().unwrap_err(),
            "`fd00::/129`: the prefix length must be 0 to 128"
        );
        assert!("localhost"
            .parse::<Cidr>()
            .unwrap_err()
            .contains("not an IPv4 or IPv6"));
        assert_eq!(cidr("::1").to_string(), "::1/128");
        assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
    }

    #[test]
    fn an_empty_list_serves_everyone() {
        assert!(allowed(&[], ip("203.0.113.9")));
        let list = [cidr("10.0.0.0/8"), cidr("::1")];
        assert!(allowed(&list, ip("::1")));
        assert!(!allowed(&list, ip("127.0.0.1")));
    }
}
