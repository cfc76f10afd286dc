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
        // An IPv4 client reached over an IPv6 socket is the same client.
        let address = address.to_canonical();
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
        drop(first);
        assert_eq!(clients.open(one), 1);
        assert!(clients.admit(one, 2).is_some());
        drop(second);
        // What is dropped at once is not kept: the map holds only addresses with something open.
        assert_eq!(clients.open(one), 0);
        assert!(clients.open.lock().unwrap().is_empty());
    }
}
