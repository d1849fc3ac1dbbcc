//! Address classification shared by tables and analytics.

use std::net::IpAddr;

/// A CIDR block from the config (`networks.internal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
        let net: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP network"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} has a bad prefix length"))?
        };
        if prefix > max {
            return Err(format!("{s:?}: prefix longer than {max}"));
        }
        Ok(Cidr { net, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(n) & mask == u32::from(*a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(n) & mask == u128::from(*a) & mask
            }
            _ => false,
        }
    }
}

/// `remote_scope`: loopback, link_local, private (RFC 1918, 100.64/10 shared, fc00::/7 and the
/// configured internal networks) or external. Unparseable addresses are external: unknown is
/// not trusted.
pub fn scope(addr: &str, internal: &[Cidr]) -> &'static str {
    let Ok(ip) = addr.parse::<IpAddr>() else {
        return "external";
    };
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    if ip.is_loopback() || ip.is_unspecified() {
        return "loopback";
    }
    // Group traffic (SSDP, mDNS, LLMNR, DHCP) never leaves the site: never external.
    if ip.is_multicast() {
        return "multicast";
    }
    if ip == IpAddr::V4(std::net::Ipv4Addr::BROADCAST) {
        return "broadcast";
    }
    let private = match ip {
        IpAddr::V4(v4) => {
            if v4.is_link_local() {
                return "link_local";
            }
            v4.is_private() || (v4.octets()[0] == 100 && v4.octets()[1] & 0xc0 == 64)
        }
        IpAddr::V6(v6) => {
            if v6.segments()[0] & 0xffc0 == 0xfe80 {
                return "link_local";
            }
            v6.segments()[0] & 0xfe00 == 0xfc00
        }
    };
    if private || internal.iter().any(|c| c.contains(&ip)) {
        "private"
    } else {
        "external"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        let internal: Vec<Cidr> = vec![
            "198.51.100.0/24".parse().unwrap(),
            "2001:db8:1::/48".parse().unwrap(),
        ];
        for (a, want) in [
            ("239.255.255.250", "multicast"),
            ("224.0.0.251", "multicast"),
            ("ff02::fb", "multicast"),
            ("ff05::c", "multicast"),
            ("::ffff:239.255.255.250", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("127.0.0.1", "loopback"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("169.254.1.1", "link_local"),
            ("fe80::1", "link_local"),
            ("10.1.2.3", "private"),
            ("172.31.0.1", "private"),
            ("172.32.0.1", "external"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "private"),
            ("100.128.0.1", "external"),
            ("fd00::1", "private"),
            ("198.51.100.7", "private"),
            ("198.51.101.7", "external"),
            ("2001:db8:1::5", "private"),
            ("2001:db8:2::5", "external"),
            ("203.0.113.9", "external"),
            ("not an ip", "external"),
        ] {
            assert_eq!(scope(a, &internal), want, "{a}");
        }
    }

    #[test]
    fn cidr_parsing() {
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("banana/8".parse::<Cidr>().is_err());
        assert!("0.0.0.0/0"
            .parse::<Cidr>()
            .unwrap()
            .contains(&"8.8.8.8".parse().unwrap()));
        assert!("192.0.2.1"
            .parse::<Cidr>()
            .unwrap()
            .contains(&"192.0.2.1".parse().unwrap()));
    }
}
