//! A pool of local ports for `--udp-ports A-B`: each connection leases one port of the range
//! for its ICE sockets and gives it back when it ends, so a firewall only needs that range open.
//!
//! webrtc-rs 0.21 binds its own sockets per connection (one `std::net::UdpSocket` per local
//! address, no `SO_REUSEPORT`), so two connections cannot share one port; the range is the
//! narrowest way to bound the ports in use (`--udp-port`, in `udp_mux`, shares one port
//! instead). The pool hands out each port to one connection at a time; a port another program
//! holds on every address shows up as a failed build and the caller moves on to the next
//! (held on only some addresses, webrtc-rs skips those addresses and the build succeeds).

use crate::lock::lock;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// An inclusive port range shared by all connections.
#[derive(Debug, Clone)]
pub struct PortPool {
    first: u16,
    last: u16,
    in_use: Arc<Mutex<BTreeSet<u16>>>,
}

/// One leased port; dropping it returns the port to the pool.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    in_use: Arc<Mutex<BTreeSet<u16>>>,
}

impl PortPool {
    /// A pool of the ports `first..=last` (`first <= last`, checked by the flag parser).
    pub fn new(first: u16, last: u16) -> Self {
        Self {
            first: first.min(last),
            last: first.max(last),
            in_use: Arc::default(),
        }
    }

    /// The range as `(first, last)`.
    pub fn range(&self) -> (u16, u16) {
        (self.first, self.last)
    }

    /// Leases the lowest free port that `skip` does not exclude, or `None` when every port of
    /// the range is leased (or skipped).
    pub fn lease(&self, skip: &BTreeSet<u16>) -> Option<PortLease> {
        let mut in_use = lock(&self.in_use);
        let port = (self.first..=self.last).find(|p| !in_use.contains(p) && !skip.contains(p))?;
        in_use.insert(port);
        Some(PortLease {
            port,
            in_use: self.in_use.clone(),
        })
    }

    /// How many ports are leased right now.
    pub fn leased(&self) -> usize {
        lock(&self.in_use).len()
    }
}

impl PortLease {
    /// The leased port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        lock(&self.in_use).remove(&self.port);
    }
}

/// Parses `A-B` (or a single port `A`) into an inclusive range of non-zero ports.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("`{s}` is not a port range; use e.g. 50000-50009 (or one port, 50000)");
    let (a, b) = s.trim().split_once('-').unwrap_or((s.trim(), s.trim()));
    let a: u16 = a.trim().parse().map_err(|_| bad())?;
    let b: u16 = b.trim().parse().map_err(|_| bad())?;
    if a == 0 || b == 0 {
        return Err(format!("`{s}`: ports start at 1"));
    }
    if a > b {
        return Err(format!("`{s}`: the first port must not be above the last"));
    }
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_exclusive_and_returned_on_drop() {
        let pool = PortPool::new(40000, 40001);
        let none = BTreeSet::new();
        let a = pool.lease(&none).expect("first port");
        let b = pool.lease(&none).expect("second port");
        assert_eq!((a.port(), b.port()), (40000, 40001));
        assert!(pool.lease(&none).is_none(), "range exhausted");
        assert_eq!(pool.leased(), 2);
        drop(a);
        let c = pool.lease(&none).expect("freed port again");
        assert_eq!(c.port(), 40000);
        let skip = BTreeSet::from([40000]);
        drop(c);
        assert!(pool.lease(&skip).is_none(), "40000 skipped, 40001 leased");
    }

    #[test]
    fn ranges_parse() {
        assert_eq!(parse_port_range("50000-50009"), Ok((50000, 50009)));
        assert_eq!(parse_port_range("50000"), Ok((50000, 50000)));
        for bad in ["", "0-10", "10-5", "a-b", "70000", "1-2-3"] {
            assert!(parse_port_range(bad).is_err(), "{bad}");
        }
    }
}
