//! Connections open per client address, for `limits.maxConnectionsPerClient`: without a limit
//! one client could open every place among `maxConnections` and leave none to the others.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// How many connections each address has open.
#[derive(Debug, Default)]
pub(crate) struct ClientConnections {
    open: Mutex<HashMap<IpAddr, u32>>,
}

impl ClientConnections {
    /// A place for one more connection from `address`, held until the place is dropped, or
    /// `None` when the address has `most` open already.
    pub(crate) fn admit(self: &Arc<Self>, address: IpAddr, most: u32) -> Option<ClientPlace> {
        let address = client_of(address);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(address).or_default();
        if *count >= most {
            return None;
        }
        *count += 1;
        Some(ClientPlace {
            clients: Arc::clone(self),
            address,
        })
    }

    #[cfg(test)]
    fn open(&self, address: IpAddr) -> u32 {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&address).copied().unwrap_or(0)
    }
}

/// The client an address belongs to: an IPv4 address reached over an IPv6 socket is that
/// IPv4 client, and an IPv6 address is its /64, which one host or site holds whole (a client
/// could otherwise open each connection from another of its addresses).
fn client_of(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

/// A client's connection refused: it has its share open.
#[derive(Debug)]
pub(crate) struct TooManyConnections;

/// One connection's place among its address's.
#[derive(Debug)]
pub(crate) struct ClientPlace {
    clients: Arc<ClientConnections>,
    address: IpAddr,
}

impl Drop for ClientPlace {
    fn drop(&mut self) {
        let mut open = (self.clients.open.lock()).unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            // Addresses with nothing open are forgotten, so the map holds only what is open.
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_places_back_as_its_connections_close() {
        let clients = Arc::new(ClientConnections::default());
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let first = clients.admit(one, 2);
        let second = clients.admit(mapped, 2);
        assert!(first.is_some() && second.is_some());
        assert!(
            clients.admit(one, 2).is_none(),
            "a third from the same client"
        );
        assert!(
            clients.admit(other, 2).is_some(),
            "another client is not limited"
        );
        // Two addresses of one IPv6 /64 are one client.
        let (v6, same_64): (IpAddr, IpAddr) = (
            "2001:db8:1:2::1".parse().unwrap(),
            "2001:db8:1:2:ffff::9".parse().unwrap(),
        );
        {
            let _held = clients.admit(v6, 1);
            assert!(clients.admit(same_64, 1).is_none());
            assert!(
                clients
                    .admit("2001:db8:1:3::1".parse().unwrap(), 1)
                    .is_some()
            );
        }
        drop(first);
        assert_eq!(clients.open(one), 1);
        assert!(clients.admit(one, 2).is_some());
        drop(second);
        // What is dropped at once is not kept: the map holds only addresses with something open.
        assert_eq!(clients.open(one), 0);
        assert!(clients.open.lock().unwrap().is_empty());
    }
}
