//! Pure analytics over flow history: keys, the beacon scorer and its RITA baseline, novelty,
//! fallback and egress scoring. Tables gather inputs from the store and call these.

pub mod beacon;
pub mod demo;
pub mod history;
pub mod pack_eval;
pub mod parents;
pub mod payload;
pub mod rita;
pub mod simulate;
pub mod stats;

use std::net::IpAddr;

/// SQL for a flow's name over the flows table aliased `f`. DNS-resolved names come first: the
/// answer capture saw for this connection's address before it started, the flow's own name,
/// the latest answer for the address. Only then what the connection itself claimed (TLS SNI,
/// HTTP Host without its port), because a client can claim any name (domain fronting).
pub const FLOW_NAME_SQL: &str = "coalesce(
    (SELECT p.resolved_name FROM payloads p WHERE p.remote_address = f.remote_address AND p.remote_port = f.remote_port
       AND p.local_port = f.local_port AND p.protocol = f.protocol AND p.resolved_name IS NOT NULL
       AND p.ts BETWEEN f.start - 60 AND coalesce(f.end, f.last_seen) + 60 ORDER BY p.ts DESC LIMIT 1),
    f.remote_name,
    (SELECT d.name FROM dns d WHERE d.address = f.remote_address ORDER BY d.last_seen DESC LIMIT 1),
    (SELECT coalesce(p.sni, CASE WHEN p.http_host LIKE '[%' OR instr(p.http_host, ':') = 0 THEN p.http_host
                                 ELSE substr(p.http_host, 1, instr(p.http_host, ':') - 1) END)
       FROM payloads p WHERE p.remote_address = f.remote_address AND p.remote_port = f.remote_port
       AND p.local_port = f.local_port AND p.protocol = f.protocol AND coalesce(p.sni, p.http_host) IS NOT NULL
       AND p.ts BETWEEN f.start - 60 AND coalesce(f.end, f.last_seen) + 60 ORDER BY p.ts DESC LIMIT 1))";

/// The destination key: the registrable domain (eTLD+1) when a name is known, so CDN IP
/// rotation under one domain stays one key; else the IP.
pub fn destination_key(remote_name: Option<&str>, remote_address: &str) -> String {
    if let Some(name) = remote_name
        .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
        .filter(|n| !n.is_empty())
    {
        if name.parse::<IpAddr>().is_ok() {
            return name;
        }
        return psl::domain_str(&name).map(str::to_string).unwrap_or(name);
    }
    remote_address.to_string()
}

/// What identifies a program across paths and updates (docs/design.md): `team_id:identifier` when a
/// team signed it, the identifier alone for Apple, else the path (`#cdhash` when known).
pub fn program_identity(
    path: &str,
    signer_class: Option<&str>,
    team_id: Option<&str>,
    identifier: Option<&str>,
    cdhash: Option<&str>,
) -> String {
    match (
        signer_class,
        team_id.filter(|t| !t.is_empty()),
        identifier.filter(|i| !i.is_empty()),
    ) {
        (Some("apple"), _, Some(id)) => id.to_string(),
        (_, Some(team), Some(id)) => format!("{team}:{id}"),
        _ => match cdhash.filter(|c| !c.is_empty()) {
            Some(c) => format!("{path}#{c}"),
            None => path.to_string(),
        },
    }
}

/// Context multiplier for a signer class (docs/design.md, "Beacons").
pub fn signer_multiplier(signer_class: &str, notarized: bool) -> f64 {
    match signer_class {
        "apple" => 0.2,
        "app_store" => 0.5,
        "developer_id" if notarized => 0.7,
        "developer_id" => 0.8,
        "adhoc" => 1.0,
        "unsigned" => 1.1,
        "invalid" => 1.2,
        _ => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_keys_fold_cdn_names() {
        assert_eq!(
            destination_key(Some("a1.cdn.example.co.uk."), "203.0.113.9"),
            "example.co.uk"
        );
        assert_eq!(
            destination_key(Some("API.Example.com"), "203.0.113.9"),
            "example.com"
        );
        assert_eq!(destination_key(None, "203.0.113.9"), "203.0.113.9");
        assert_eq!(destination_key(Some(""), "2001:db8::1"), "2001:db8::1");
        assert_eq!(destination_key(Some("localhost"), "127.0.0.1"), "localhost");
    }

    #[test]
    fn identities() {
        assert_eq!(
            program_identity("/x", Some("developer_id"), Some("T1"), Some("com.x"), None),
            "T1:com.x"
        );
        assert_eq!(
            program_identity(
                "/usr/bin/curl",
                Some("apple"),
                None,
                Some("com.apple.curl"),
                None
            ),
            "com.apple.curl"
        );
        assert_eq!(
            program_identity("/tmp/a", Some("adhoc"), None, Some("a"), Some("ab12")),
            "/tmp/a#ab12"
        );
        assert_eq!(program_identity("/tmp/a", None, None, None, None), "/tmp/a");
    }
}
