//! Background Task Management (macOS 13+): the registry behind System Settings › Login Items,
//! where SMAppService registrations, login items and legacy daemons are recorded with the
//! user's decision (disposition), the team id and the developer's name.
//!
//! The database is an NSKeyedArchiver binary plist at
//! `/private/var/db/com.apple.backgroundtaskmanagement/BackgroundItems-v<N>.btm` (the highest
//! N is current). Reading it needs Full Disk Access for the reading process, even as root.
//! The archive's class layout is private and changes between releases, so this reader does not
//! follow it: it resolves every dictionary in `$objects` and keeps those that carry an item's
//! identifying keys. Key names are those `sfltool dumpbtm` prints and public parsers read;
//! only a Mac can prove them against today's archive.

use std::collections::BTreeSet;

use plist::Value;

/// Where the database lives, relative to the root.
pub const BTM_DIR: &str = "private/var/db/com.apple.backgroundtaskmanagement";

/// One registered background item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BtmItem {
    pub identifier: String,
    pub item_type: Option<String>,
    pub disposition: Option<String>,
    pub team_id: Option<String>,
    pub developer_name: Option<String>,
    pub url: Option<String>,
    pub executable: Option<String>,
    pub bundle_id: Option<String>,
}

/// The current database file under `root`: the highest `BackgroundItems-v<N>.btm`.
pub fn current_db(root: &std::path::Path) -> Option<std::path::PathBuf> {
    let dir = root.join(BTM_DIR);
    let entries = std::fs::read_dir(&dir).ok()?;
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n: u32 = name
                .strip_prefix("BackgroundItems-v")?
                .strip_suffix(".btm")?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .max_by_key(|(n, _)| *n)
        .map(|(_, p)| p)
}

/// `disposition` bits as `sfltool dumpbtm` names them.
pub fn disposition_names(bits: u64) -> String {
    let names: Vec<&str> = [
        (0x1, "enabled"),
        (0x2, "allowed"),
        (0x4, "hidden"),
        (0x8, "notified"),
    ]
    .iter()
    .filter(|(b, _)| bits & b != 0)
    .map(|(_, n)| *n)
    .collect();
    let mut s = names.join(",");
    if bits & 0x1 == 0 {
        s = if s.is_empty() {
            "disabled".into()
        } else {
            format!("disabled,{s}")
        };
    }
    s
}

/// `type` values as `sfltool dumpbtm` names them.
pub fn type_name(t: u64) -> String {
    match t {
        0x1 => "user item".into(),
        0x2 => "app".into(),
        0x4 => "login item".into(),
        0x8 => "agent".into(),
        0x10 => "daemon".into(),
        0x20 => "developer".into(),
        0x800 => "quicklook".into(),
        0x2000 => "background tasks".into(),
        0x10008 => "legacy agent".into(),
        0x10010 => "legacy daemon".into(),
        other => format!("0x{other:x}"),
    }
}

/// Parses the archive's bytes into items. The error says what is wrong, never the content.
pub fn parse(bytes: &[u8]) -> Result<Vec<BtmItem>, String> {
    let root = super::parse_plist(bytes)?;
    let objects = root
        .as_dictionary()
        .and_then(|d| d.get("$objects"))
        .and_then(Value::as_array)
        .ok_or("not a keyed archive (no $objects)")?;
    let resolve = |v: &Value| -> Value {
        let mut v = v.clone();
        // A UID points into $objects; follow a few hops (NSURL → its string).
        for _ in 0..4 {
            match v {
                Value::Uid(u) => {
                    v = objects
                        .get(u.get() as usize)
                        .cloned()
                        .unwrap_or(Value::String(String::new()));
                }
                _ => break,
            }
        }
        v
    };
    let text = |v: &Value| -> Option<String> {
        match resolve(v) {
            Value::String(s) if s != "$null" && !s.is_empty() => Some(s),
            // NSURL: { NS.base, NS.relative }.
            Value::Dictionary(d) => d.get("NS.relative").and_then(|r| match resolve(r) {
                Value::String(s) if s != "$null" && !s.is_empty() => Some(s),
                _ => None,
            }),
            _ => None,
        }
    };
    let number = |v: &Value| -> Option<u64> {
        match resolve(v) {
            Value::Integer(i) => i.as_unsigned(),
            _ => None,
        }
    };
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for obj in objects {
        let Some(d) = obj.as_dictionary() else {
            continue;
        };
        let get = |keys: &[&str]| keys.iter().find_map(|k| d.get(k));
        let Some(identifier) = get(&["identifier"]).and_then(text) else {
            continue;
        };
        // An item carries a type or a disposition; other dictionaries with an identifier
        // (containers, bookmarks) are not items.
        let item_type = get(&["type"]).and_then(number);
        let disposition = get(&["disposition"]).and_then(number);
        if item_type.is_none() && disposition.is_none() {
            continue;
        }
        let item = BtmItem {
            identifier,
            item_type: item_type.map(type_name),
            disposition: disposition.map(disposition_names),
            team_id: get(&["teamIdentifier", "teamID"]).and_then(text),
            developer_name: get(&["developerName"]).and_then(text),
            url: get(&["url", "URL"]).and_then(text),
            executable: get(&["executablePath", "executableURL"]).and_then(text),
            bundle_id: get(&["bundleIdentifier"]).and_then(text),
        };
        if seen.insert((item.identifier.clone(), item.url.clone())) {
            out.push(item);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plist::{Dictionary, Uid};

    /// A keyed archive shaped like the BTM database: items point at their strings by UID.
    pub fn archive() -> Vec<u8> {
        let s = |x: &str| Value::String(x.into());
        let uid = |n: u64| Value::Uid(Uid::new(n));
        let mut item = Dictionary::new();
        item.insert("identifier".into(), uid(2));
        item.insert("type".into(), Value::Integer(0x8.into()));
        item.insert("disposition".into(), Value::Integer(0xb.into()));
        item.insert("teamIdentifier".into(), uid(3));
        item.insert("developerName".into(), uid(4));
        item.insert("url".into(), uid(5));
        item.insert("executablePath".into(), uid(7));
        let mut url = Dictionary::new();
        url.insert("NS.base".into(), uid(0));
        url.insert("NS.relative".into(), uid(6));
        let mut disabled = Dictionary::new();
        disabled.insert("identifier".into(), uid(9));
        disabled.insert("type".into(), Value::Integer(0x10010.into()));
        disabled.insert("disposition".into(), Value::Integer(0x2.into()));
        let mut container = Dictionary::new();
        container.insert("identifier".into(), uid(2)); // no type, no disposition
        let objects = vec![
            s("$null"),
            Value::Dictionary(item),
            s("8.com.helper.agent"),
            s("TEAM123456"),
            s("Helper Corp"),
            Value::Dictionary(url),
            s("file:///Applications/Helper.app/Contents/Library/LaunchAgents/com.helper.agent.plist"),
            s("Contents/MacOS/helperd"),
            Value::Dictionary(disabled),
            s("16.com.legacy.daemon"),
            Value::Dictionary(container),
        ];
        let mut top = Dictionary::new();
        top.insert("$objects".into(), Value::Array(objects));
        top.insert("$archiver".into(), s("NSKeyedArchiver"));
        let mut buf = Vec::new();
        Value::Dictionary(top).to_writer_binary(&mut buf).unwrap();
        buf
    }

    #[test]
    fn items_with_their_decisions_team_and_developer() {
        let items = parse(&archive()).unwrap();
        assert_eq!(items.len(), 2, "{items:#?}");
        assert_eq!(
            items[0],
            BtmItem {
                identifier: "8.com.helper.agent".into(),
                item_type: Some("agent".into()),
                disposition: Some("enabled,allowed,notified".into()),
                team_id: Some("TEAM123456".into()),
                developer_name: Some("Helper Corp".into()),
                url: Some("file:///Applications/Helper.app/Contents/Library/LaunchAgents/com.helper.agent.plist".into()),
                executable: Some("Contents/MacOS/helperd".into()),
                bundle_id: None,
            }
        );
        assert_eq!(items[1].disposition.as_deref(), Some("disabled,allowed"));
        assert_eq!(items[1].item_type.as_deref(), Some("legacy daemon"));
    }

    #[test]
    fn hostile_archives_are_errors_or_empty() {
        assert!(parse(b"bplist00garbage").is_err());
        let mut buf = Vec::new();
        Value::Array(vec![]).to_writer_binary(&mut buf).unwrap();
        assert!(parse(&buf).unwrap_err().contains("$objects"));
        // A UID pointing past the end, or at itself, resolves to nothing.
        let mut d = Dictionary::new();
        d.insert("identifier".into(), Value::Uid(Uid::new(999)));
        d.insert("type".into(), Value::Uid(Uid::new(1)));
        let mut top = Dictionary::new();
        top.insert(
            "$objects".into(),
            Value::Array(vec![Value::Dictionary(d.clone()), Value::Uid(Uid::new(1))]),
        );
        let mut buf = Vec::new();
        Value::Dictionary(top).to_writer_binary(&mut buf).unwrap();
        assert!(parse(&buf).unwrap().is_empty());
    }

    #[test]
    fn the_highest_version_is_current() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join(BTM_DIR);
        std::fs::create_dir_all(&d).unwrap();
        for n in [
            "BackgroundItems-v4.btm",
            "BackgroundItems-v13.btm",
            "BackgroundItems-v9.btm",
            "other.btm",
        ] {
            std::fs::write(d.join(n), b"").unwrap();
        }
        assert!(current_db(t.path())
            .unwrap()
            .ends_with("BackgroundItems-v13.btm"));
    }
}
