//! Table definitions, one file each: the schema next to the rows.

pub mod beacons;
pub mod crypto_imports;
pub mod destinations;
pub mod dns;
pub mod egress;
pub mod fallbacks;
pub mod launchd;
pub mod payloads;
pub mod process_cpu;
pub mod signing;
pub mod sockets;
pub mod status;

use crate::framework::Table;

/// Every table this build registers, in documentation order.
pub fn all() -> Vec<Box<dyn Table>> {
    vec![
        Box::new(launchd::Launchd),
        Box::new(process_cpu::ProcessCpu),
        Box::new(sockets::Sockets),
        Box::new(signing::Signing),
        Box::new(crypto_imports::CryptoImports),
        Box::new(beacons::Beacons),
        Box::new(destinations::Destinations),
        Box::new(fallbacks::Fallbacks),
        Box::new(egress::Egress),
        Box::new(payloads::Payloads),
        Box::new(dns::Dns),
        Box::new(status::Status),
    ]
}
