//! Who the client is behind a load balancer: the TCP peer is then the balancer, and only the
//! `X-Forwarded-For` it writes names the client. A client can write that header too, so it is
//! read only from peers the configuration trusts (`trustedProxies`).

use std::net::IpAddr;

use http::HeaderMap;

/// A block of addresses, written `10.0.0.0/8`, `fd00::/8`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr/len` (IPv4 or IPv6), or a single address. Bits past the prefix are ignored.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().map_err(|_| {
            format!("`{text}` is not an address block like 10.0.0.0/8, fd00::/8 or 192.0.2.1")
        })?;
        let most: u8 = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => most,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|&len| len <= most && !prefix.starts_with('+'))
                .ok_or_else(|| {
                    format!("`{text}`: the prefix length must be a number from 0 to {most}")
                })?,
        };
        // `::ffff:10.0.0.0/104` is `10.0.0.0/8`, as the addresses it is matched against are.
        let canonical = network.to_canonical();
        let prefix = match (network, canonical) {
            (IpAddr::V6(_), IpAddr::V4(_)) => prefix.checked_sub(96).ok_or_else(|| {
                format!("`{text}`: an IPv4-mapped block needs a prefix length of 96 or more")
            })?,
            _ => prefix,
        };
        Ok(Cidr {
            network: canonical,
            prefix,
        })
    }

    /// Whether `address` is in the block (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, address: IpAddr) -> bool {
        let shift = |bits: u8| u32::from(bits - self.prefix.min(bits));
        match (self.network, address.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX.checked_shl(shift(32)).unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX.checked_shl(shift(128)).unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

/// The client of a request from `peer`, when `peer` is a trusted proxy and `X-Forwarded-For`
/// names one: walking the header from the right (each proxy appends the address it was reached
/// from), the first address not itself trusted; the left-most when every one is. `None` (the
/// client is the peer) when the peer is not trusted, there is no such header, or an entry met
/// on the way is not an address: what lies left of it cannot be vouched for.
pub fn client(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> Option<IpAddr> {
    let is_trusted = |address: IpAddr| trusted.iter().any(|block| block.contains(address));
    if !is_trusted(peer) {
        return None;
    }
    // Several headers are one list, in order.
    let mut entries = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        entries.extend(value.to_str().ok()?.split(','));
    }
    let mut farthest = None;
    for entry in entries.iter().rev() {
        let address: IpAddr = entry.trim().parse().ok()?;
        farthest = Some(address.to_canonical());
        if !is_trusted(address) {
            break;
        }
    }
    farthest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(texts: &[&str]) -> Vec<Cidr> {
        texts
            .iter()
            .map(|text| Cidr::parse(text).unwrap())
            .collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn blocks_are_parsed_for_ipv4_and_ipv6_and_mistakes_refused() {
        let private = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(private.contains(ip("10.200.3.4")));
        assert!(!private.contains(ip("11.0.0.1")));
        assert!(private.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        let host = Cidr::parse(" 192.0.2.7 ").unwrap();
        assert!(host.contains(ip("192.0.2.7")) && !host.contains(ip("192.0.2.8")));
        let six = Cidr::parse("fd00::/8").unwrap();
        assert!(six.contains(ip("fd12:3456::1")));
        assert!(!six.contains(ip("fe80::1")) && !six.contains(ip("10.0.0.1")));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("203.0.113.9"))
        );
        assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
        assert!(Cidr::parse("10.1.2.3/8").unwrap().contains(ip("10.9.9.9")));
        let mapped = Cidr::parse("::ffff:10.0.0.0/104").unwrap();
        assert!(mapped.contains(ip("10.200.0.1")) && !mapped.contains(ip("11.0.0.1")));
        assert!(Cidr::parse("::ffff:10.0.0.0/90").is_err());
        for wrong in [
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "load-balancer",
            "",
        ] {
            assert!(Cidr::parse(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_address_and_only_behind_a_trusted_peer() {
        let trusted = blocks(&["10.0.0.0/8", "fd00::/8"]);
        let balancer = ip("10.0.0.2");
        // A proxy chain: the client, then a trusted proxy the balancer was reached from.
        let chain = forwarded(&["198.51.100.1, 203.0.113.9, 10.0.0.7"]);
        assert_eq!(client(balancer, &chain, &trusted), Some(ip("203.0.113.9")));
        assert_eq!(
            client(ip("::ffff:10.0.0.2"), &chain, &trusted),
            Some(ip("203.0.113.9"))
        );
        // Several headers are one list.
        let split = forwarded(&["198.51.100.1", "203.0.113.9 , fd00::5"]);
        assert_eq!(client(balancer, &split, &trusted), Some(ip("203.0.113.9")));
        // Every hop trusted: the farthest.
        let inside = forwarded(&["10.1.1.1, 10.0.0.7"]);
        assert_eq!(client(balancer, &inside, &trusted), Some(ip("10.1.1.1")));
        // A peer that is not trusted wrote the header itself.
        assert_eq!(client(ip("203.0.113.50"), &chain, &trusted), None);
        assert_eq!(client(balancer, &HeaderMap::new(), &trusted), None);
        // A malformed entry before any untrusted address: the peer stays the client.
        for bad in [
            "198.51.100.1, unknown",
            "203.0.113.9:4431",
            "",
            "203.0.113.9,,10.0.0.7",
        ] {
            assert_eq!(
                client(balancer, &forwarded(&[bad]), &trusted),
                None,
                "{bad}"
            );
        }
        // One left of the client does not matter.
        let junk_left = forwarded(&["not-an-address, 203.0.113.9"]);
        assert_eq!(
            client(balancer, &junk_left, &trusted),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(client(balancer, &chain, &[]), None);
    }
}
