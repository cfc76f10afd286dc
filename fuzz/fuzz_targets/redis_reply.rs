//! The gateway's Redis client reading what a server sends (a compromised or broken Redis is
//! input like any other): replies, a Redis Cluster's redirections, and keys' slots. Nothing
//! here may panic, and a reply must read the same from exactly its own bytes.
#![no_main]

use hangar_gateway::redis;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((reply, used))) = redis::read_reply(data) {
        assert!(used > 0 && used <= data.len());
        let Ok(Some((again, used_again))) = redis::read_reply(&data[..used]) else {
            panic!("a reply that does not read from its own bytes");
        };
        assert_eq!((again, used_again), (reply, used));
        // One byte fewer is never a whole reply.
        assert!(!matches!(redis::read_reply(&data[..used - 1]), Ok(Some(_))));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(address) = redis::redirected_to(text, "10.0.0.1:7000") {
            let (host, port) = address.rsplit_once(':').expect("an address with a port");
            assert!(!host.is_empty() && port.parse::<u16>().is_ok(), "{address}");
        }
        assert!(redis::slot(text) < 16384);
    }
});
