//! What a shard lets clients hold: connections in all and per client
//! address (Kafka's `max.connections` and `max.connections.per.ip`, per
//! shard because every shard is a broker to clients), descriptors, and how
//! long a connection may stay silent (`connections.max.idle.ms`).
//!
//! Descriptors are shared by the whole process: segments (two each), the
//! partition directories, index writes and splice pipes need them as much as
//! connections do, and a segment roll that cannot open its file fails a
//! produce. So a connection is refused when its descriptor lies in the top
//! quarter of the open-file limit: the kernel hands out the lowest free
//! number, so descriptor N means N are open. That check is exact, costs
//! nothing, and works across shards without sharing a counter.
//!
//! A slot is taken before a connection is served and given back by `Drop`,
//! so a connection task that ends any way, a panic included, cannot leak
//! its count and shrink the shard's capacity for good.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;

/// Why a connection was refused, for the (rate-limited) log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the shard holds max.connections ({0}) connections")]
    Total(usize),
    #[error("this address holds max.connections.per.ip ({0}) connections to the shard")]
    PerIp(usize),
    #[error("descriptor {0} is in the quarter of the open-file limit kept for storage ({1} open files at most)")]
    Descriptors(u64, u64),
}

/// The counts of one shard's connections.
pub struct ConnectionLimits {
    total_max: usize,
    per_ip_max: usize,
    /// The process's open-file limit, and the first descriptor number a
    /// connection may not have (three quarters of it).
    open_files_max: u64,
    descriptor_max: u64,
    total: Cell<usize>,
    per_ip: RefCell<HashMap<IpAddr, usize>>,
}

impl ConnectionLimits {
    pub fn new(total_max: usize, per_ip_max: usize, open_files_max: u64) -> Rc<ConnectionLimits> {
        assert!(total_max > 0 && per_ip_max > 0, "limits of zero would refuse every client");
        Rc::new(ConnectionLimits {
            total_max,
            per_ip_max,
            open_files_max,
            descriptor_max: open_files_max.saturating_mul(3) / 4,
            total: Cell::new(0),
            per_ip: RefCell::default(),
        })
    }

    /// A slot for a new connection from `ip` on descriptor `fd`, or why there is none.
    pub fn admit(self: &Rc<Self>, ip: IpAddr, fd: i32) -> Result<ConnectionSlot, Refused> {
        if fd as u64 >= self.descriptor_max {
            return Err(Refused::Descriptors(fd as u64, self.open_files_max));
        }
        if self.total.get() >= self.total_max {
            return Err(Refused::Total(self.total_max));
        }
        let mut per_ip = self.per_ip.borrow_mut();
        let held = per_ip.entry(ip).or_insert(0);
        if *held >= self.per_ip_max {
            return Err(Refused::PerIp(self.per_ip_max));
        }
        *held += 1;
        self.total.set(self.total.get() + 1);
        Ok(ConnectionSlot { limits: self.clone(), ip })
    }

    /// Connections being served now.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.total.get()
    }
}

/// One admitted connection; its counts go back when it is dropped.
pub struct ConnectionSlot {
    limits: Rc<ConnectionLimits>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let limits = &self.limits;
        limits.total.set(limits.total.get() - 1);
        let mut per_ip = limits.per_ip.borrow_mut();
        if let Some(held) = per_ip.get_mut(&self.ip) {
            *held -= 1;
            if *held == 0 {
                // Only addresses with connections stay: the map is bounded by them.
                per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn slots_are_counted_in_all_and_per_address_and_given_back_on_drop() {
        let limits = ConnectionLimits::new(3, 2, 1024);
        let a1 = limits.admit(ip(1), 10).unwrap();
        let _a2 = limits.admit(ip(1), 11).unwrap();
        assert_eq!(limits.admit(ip(1), 12).err(), Some(Refused::PerIp(2)));
        let _b1 = limits.admit(ip(2), 12).unwrap();
        assert_eq!(limits.admit(ip(3), 13).err(), Some(Refused::Total(3)));
        assert_eq!(limits.open(), 3);
        drop(a1);
        assert_eq!(limits.open(), 2);
        let _a3 = limits.admit(ip(1), 10).expect("a slot came back");
    }

    #[test]
    fn a_panicking_connection_gives_its_slot_back() {
        let limits = ConnectionLimits::new(1, 1, 1024);
        let slot = limits.admit(ip(1), 10).unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _held = slot;
            panic!("a connection task fails");
        }));
        assert!(panicked.is_err());
        assert_eq!(limits.open(), 0);
        assert!(limits.per_ip.borrow().is_empty(), "no address is remembered without connections");
        assert!(limits.admit(ip(1), 10).is_ok());
    }

    #[test]
    fn the_top_quarter_of_the_descriptors_is_left_for_storage() {
        let limits = ConnectionLimits::new(100, 100, 256);
        let _held = limits.admit(ip(1), 191).expect("below the quarter kept for storage");
        assert_eq!(limits.admit(ip(1), 192).err(), Some(Refused::Descriptors(192, 256)));
        assert_eq!(limits.open(), 1, "a refusal takes no slot");
    }
}
