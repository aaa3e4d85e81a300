//! Client addresses, and the key a client is counted under by throttles: an IPv4 address as
//! it is, an IPv6 address by its /64 network (one subscriber usually holds a whole /64, so
//! counting single IPv6 addresses would let one client rotate through 2^64 of them).

use std::net::{IpAddr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress {
    /// The address as reported (port removed), for logs.
    pub address: String,
    /// What throttles count: the IPv4 address, the IPv6 /64 network, or the raw text when it is
    /// not an address at all (a proxy header naming something else), cut to a bounded length.
    pub key: String,
}

/// Raw text longer than this is cut, so a header cannot make a throttle row large.
const MAX_RAW_KEY: usize = 64;

impl ClientAddress {
    /// `203.0.113.9:5123`, `[2001:db8::1]:443`, `2001:db8::1` or a bare IPv4 address.
    pub fn parse(text: &str) -> Self {
        let address = strip_port(text.trim()).to_owned();
        let key = match address.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => v4.to_string(),
            Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => format!("{}/64", network_64(v6)),
            },
            Err(_) => address.chars().take(MAX_RAW_KEY).collect(),
        };
        Self { address, key }
    }
}

fn network_64(address: Ipv6Addr) -> Ipv6Addr {
    let mut segments = address.segments();
    segments[4..].fill(0);
    Ipv6Addr::from(segments)
}

/// `203.0.113.9:5123` -> `203.0.113.9`, `[2001:db8::1]:443` -> `2001:db8::1`.
fn strip_port(peer: &str) -> &str {
    if let Some(rest) = peer.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match peer.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => peer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses_lose_their_port() {
        assert_eq!(
            ClientAddress::parse("203.0.113.9:5123").address,
            "203.0.113.9"
        );
        assert_eq!(
            ClientAddress::parse("[2001:db8::1]:443").address,
            "2001:db8::1"
        );
        assert_eq!(ClientAddress::parse("2001:db8::1").address, "2001:db8::1");
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_network() {
        let a = ClientAddress::parse("[2001:db8:1:2:aaaa::1]:1");
        let b = ClientAddress::parse("2001:db8:1:2:ffff:ffff:ffff:ffff");
        let other = ClientAddress::parse("2001:db8:1:3::1");
        assert_eq!(a.key, "2001:db8:1:2::/64");
        assert_eq!(a.key, b.key);
        assert_ne!(a.key, other.key);
        assert_eq!(
            ClientAddress::parse("::ffff:203.0.113.9").key,
            "203.0.113.9"
        );
        assert_eq!(ClientAddress::parse("203.0.113.9").key, "203.0.113.9");
    }

    #[test]
    fn anything_else_is_counted_as_bounded_text() {
        let long = "x".repeat(1000);
        assert_eq!(ClientAddress::parse(&long).key.len(), MAX_RAW_KEY);
    }
}
