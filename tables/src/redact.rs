//! Credentials out of command lines before a table shows them: table rows ship to a SIEM, and
//! launchd jobs routinely carry tokens in `ProgramArguments`.
//!
//! Each secret is replaced by a marker `[redacted:KIND:len=N:sha256=XXXXXXXXXXXXXXXX]`: the
//! length and the first 64 bits of the SHA-256 of what was removed, so the same secret or
//! payload can still be matched across hosts and time, and the shape of the command stays
//! evidence (`echo [redacted:base64:…] | base64 -d | sh`; no spaces, so a marker stays one word). Kinds:
//!
//! * `userinfo`: the `user:password@` of a URL;
//! * `flag`: the value of a secret-named flag, `--password=…`, `--token …` (the next word or
//!   argument), and `PGPASSWORD=…`-style assignments;
//! * `header`: an `Authorization:`-style header's credentials (the scheme word, `Bearer`,
//!   `Basic`, …, stays);
//! * `base64`, `hex`: long runs that look random (see [`looks_like_secret`]).
//!
//! A pure function of its input: no I/O, no state beyond one command line.

use sha2::{Digest, Sha256};

use crate::config::RedactConfig;

/// Flag and variable names (lower case, `-`/`_` removed) whose value is a secret when the
/// name ends with one of these...
const SECRET_NAME_SUFFIXES: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "secretkey",
    "privatekey",
    "credential",
    "credentials",
];
/// ...or is exactly one of these (too short to match as a suffix: `--bypass`, `--keypass`).
const SECRET_NAMES: &[&str] = &["pass", "pwd", "auth"];

/// Header names whose value is a credential.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "x-auth-token",
    "cookie",
];

/// Authorization schemes kept visible in front of the redacted credentials.
const AUTH_SCHEMES: &[&str] = &[
    "basic",
    "bearer",
    "digest",
    "token",
    "negotiate",
    "aws4-hmac-sha256",
];

/// How every marker starts; text that already starts so is not redacted again.
const MARKER: &str = "[redacted:";

/// One command line after redaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted {
    pub args: Vec<String>,
    /// How many secrets were replaced.
    pub redactions: usize,
}

/// Redacts every argument of one command line (flags may take their value from the next
/// argument). With redaction disabled the arguments come back unchanged.
pub fn command_line(args: &[String], config: &RedactConfig) -> Redacted {
    if !config.enabled {
        return Redacted {
            args: args.to_vec(),
            redactions: 0,
        };
    }
    let mut r = Redactor {
        config,
        redactions: 0,
        value_pending: false,
    };
    let args = args.iter().map(|a| r.argument(a)).collect();
    Redacted {
        args,
        redactions: r.redactions,
    }
}

struct Redactor<'a> {
    config: &'a RedactConfig,
    redactions: usize,
    /// The previous word was a secret flag without `=`: this word is its value.
    value_pending: bool,
}

impl Redactor<'_> {
    fn marker(&mut self, kind: &str, secret: &str) -> String {
        self.redactions += 1;
        if !self.config.keep_hash {
            return format!("[redacted:{kind}:len={}]", secret.len());
        }
        let digest = Sha256::digest(secret.as_bytes());
        let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("[redacted:{kind}:len={}:sha256={hash}]", secret.len())
    }

    fn is_secret_name(&self, name: &str) -> bool {
        let norm: String = name
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect();
        if norm.is_empty() {
            return false;
        }
        SECRET_NAMES.contains(&norm.as_str())
            || SECRET_NAME_SUFFIXES.iter().any(|s| norm.ends_with(s))
            || self.config.extra_names.iter().any(|n| {
                let n: String = n
                    .chars()
                    .filter(|c| *c != '-' && *c != '_')
                    .flat_map(char::to_lowercase)
                    .collect();
                n == norm
            })
    }

    /// One argument: headers first (their value spans words), then word by word.
    fn argument(&mut self, arg: &str) -> String {
        let arg = self.headers(arg);
        let mut out = String::with_capacity(arg.len());
        let mut rest = arg.as_str();
        while !rest.is_empty() {
            let space = rest.len() - rest.trim_start().len();
            out.push_str(&rest[..space]);
            rest = &rest[space..];
            let end = word_end(rest);
            let word = &rest[..end];
            if !word.is_empty() {
                let w = self.word(word);
                out.push_str(&w);
            }
            rest = &rest[end..];
        }
        out
    }

    fn word(&mut self, word: &str) -> String {
        // Quotes of a shell string (`sh -c "… --token 'abc'"`) stay around the value.
        let (open, inner, close) = split_quotes(word);
        if inner.starts_with("[redacted:") {
            return word.to_string();
        }
        if std::mem::take(&mut self.value_pending) && !inner.is_empty() && !inner.starts_with('-') {
            let m = self.marker("flag", inner);
            return format!("{open}{m}{close}");
        }
        if let Some(flag) = inner.strip_prefix('-') {
            let flag = flag.strip_prefix('-').unwrap_or(flag);
            match flag.split_once('=') {
                Some((name, value))
                    if self.is_secret_name(name)
                        && !value.is_empty()
                        && !split_quotes(value).1.starts_with(MARKER) =>
                {
                    let (vo, v, vc) = split_quotes(value);
                    let m = self.marker("flag", v);
                    let prefix = &inner[..inner.len() - value.len()];
                    return format!("{open}{prefix}{vo}{m}{vc}{close}");
                }
                None if self.is_secret_name(flag) => {
                    self.value_pending = true;
                    return word.to_string();
                }
                _ => {}
            }
        } else if let Some((name, value)) = inner.split_once('=') {
            let is_var = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if is_var
                && !value.is_empty()
                && !split_quotes(value).1.starts_with(MARKER)
                && self.is_secret_name(name)
            {
                let (vo, v, vc) = split_quotes(value);
                let m = self.marker("flag", v);
                return format!("{open}{name}={vo}{m}{vc}{close}");
            }
        }
        let w = self.userinfo(word);
        self.random_runs(&w)
    }

    /// `scheme://user:password@host` → `scheme://[redacted userinfo …]@host`.
    fn userinfo(&mut self, word: &str) -> String {
        let mut out = String::new();
        let mut rest = word;
        while let Some(at) = rest.find("://") {
            let (before, after) = rest.split_at(at + 3);
            let scheme_ok = before[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric());
            out.push_str(before);
            let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
            match after[..authority_end].rfind('@') {
                Some(at) if scheme_ok && at > 0 && !after.starts_with(MARKER) => {
                    let m = self.marker("userinfo", &after[..at]);
                    out.push_str(&m);
                    rest = &after[at..];
                }
                _ => rest = after,
            }
        }
        out.push_str(rest);
        out
    }

    /// `Authorization: Bearer abc` (to the end of the argument or the closing quote).
    fn headers(&mut self, arg: &str) -> String {
        let lower = arg.to_ascii_lowercase();
        for header in SECRET_HEADERS {
            let pattern = format!("{header}:");
            let Some(at) = lower.find(&pattern) else {
                continue;
            };
            // A header name starts the argument or follows a quote or space.
            if at > 0 && !arg[..at].ends_with(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            {
                continue;
            }
            let value_start = at + pattern.len();
            let value = &arg[value_start..];
            let lead = value.len() - value.trim_start().len();
            let mut start = value_start + lead;
            let end = arg[start..]
                .find(['"', '\''])
                .map_or(arg.len(), |e| start + e);
            // Keep the scheme word visible.
            let first = arg[start..end].split_whitespace().next().unwrap_or("");
            if AUTH_SCHEMES.contains(&first.to_ascii_lowercase().as_str())
                && arg[start..end].trim_end().len() > first.len()
            {
                start += first.len();
                start += arg[start..end].len() - arg[start..end].trim_start().len();
            }
            let secret = arg[start..end].trim_end();
            if secret.is_empty() || secret.starts_with("[redacted:") {
                continue;
            }
            let m = self.marker("header", secret);
            let rebuilt = format!("{}{m}{}", &arg[..start], &arg[start + secret.len()..]);
            // Another header may follow in the same argument.
            return self.headers(&rebuilt);
        }
        arg.to_string()
    }

    /// Long base64 or hex runs that look random.
    fn random_runs(&mut self, word: &str) -> String {
        // '=' only pads the end of base64; inside a word it separates (`--id=<hex>`).
        let is_run_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '_' | '-');
        let mut out = String::with_capacity(word.len());
        let mut rest = word;
        while !rest.is_empty() {
            let start = rest.find(is_run_char).unwrap_or(rest.len());
            out.push_str(&rest[..start]);
            rest = &rest[start..];
            let mut end = rest.find(|c: char| !is_run_char(c)).unwrap_or(rest.len());
            end += rest[end..].len() - rest[end..].trim_start_matches('=').len();
            let run = &rest[..end];
            // An absolute path is judged segment by segment: a random file name may be a
            // secret, the path around it is not.
            if run.starts_with('/') {
                for (i, segment) in run.split('/').enumerate() {
                    if i > 0 {
                        out.push('/');
                    }
                    out.push_str(&self.run(segment));
                }
            } else {
                out.push_str(&self.run(run));
            }
            rest = &rest[end..];
        }
        out
    }

    fn run(&mut self, run: &str) -> String {
        match looks_like_secret(run, self.config.min_secret_length) {
            Some(kind) => self.marker(kind, run),
            None => run.to_string(),
        }
    }
}

/// Where the word at the start of `text` ends: at whitespace, except inside quotes, so
/// `--password='pa ss'` and `"a b"` are one word each.
fn word_end(text: &str) -> usize {
    let mut quote: Option<char> = None;
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c.is_whitespace() => return i,
            None => {}
        }
    }
    text.len()
}

/// Splits matching outer quotes off a word: `'abc'` → (`'`, `abc`, `'`); an unmatched opening
/// or closing quote is kept apart too.
fn split_quotes(word: &str) -> (&str, &str, &str) {
    let open = if word.starts_with(['"', '\'']) { 1 } else { 0 };
    let body = &word[open..];
    let close = if body.ends_with(['"', '\'']) { 1 } else { 0 };
    let inner = &body[..body.len() - close];
    (&word[..open], inner, &body[body.len() - close..])
}

/// `Some("hex")`/`Some("base64")` when a run of at least `min_len` characters looks like a
/// random secret: all hex with digits and letters, or base64 with digits, upper and lower case
/// that changes character class (lower, upper, digit, other) between at least 45 % of adjacent
/// characters: random base64 does so at about 65 %, CamelCase names and paths at about 30 %.
pub fn looks_like_secret(run: &str, min_len: usize) -> Option<&'static str> {
    let trimmed = run.trim_end_matches('=');
    if trimmed.len() < min_len.max(1) {
        return None;
    }
    let has = |f: fn(&char) -> bool| trimmed.chars().any(|c| f(&c));
    let digit = has(char::is_ascii_digit);
    let upper = has(char::is_ascii_uppercase);
    let lower = has(char::is_ascii_lowercase);
    if trimmed.chars().all(|c| c.is_ascii_hexdigit()) && digit && (upper || lower) {
        return Some("hex");
    }
    if !(digit && upper && lower) {
        return None;
    }
    let class = |c: char| match c {
        'a'..='z' => 0,
        'A'..='Z' => 1,
        '0'..='9' => 2,
        _ => 3,
    };
    let chars: Vec<u8> = trimmed.chars().map(class).collect();
    let changes = chars.windows(2).filter(|w| w[0] != w[1]).count();
    (changes * 20 >= (chars.len() - 1) * 9).then_some("base64")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RedactConfig {
        RedactConfig::default()
    }

    fn redact(args: &[&str]) -> Redacted {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        command_line(&args, &cfg())
    }

    fn marker(kind: &str, secret: &str) -> String {
        let digest = Sha256::digest(secret.as_bytes());
        let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("[redacted:{kind}:len={}:sha256={hash}]", secret.len())
    }

    #[test]
    fn url_userinfo() {
        let r = redact(&[
            "/usr/bin/curl",
            "-fsS",
            "https://deploy:s3cr3t@repo.example.com/x.sh?a=b@c",
        ]);
        assert_eq!(
            r.args[2],
            format!(
                "https://{}@repo.example.com/x.sh?a=b@c",
                marker("userinfo", "deploy:s3cr3t")
            )
        );
        assert_eq!(r.redactions, 1);
        // A token as the whole userinfo, inside a shell string.
        let r = redact(&[
            "sh",
            "-c",
            "git clone https://ghp_abc@github.com/o/r && make",
        ]);
        assert_eq!(
            r.args[2],
            format!(
                "git clone https://{}@github.com/o/r && make",
                marker("userinfo", "ghp_abc")
            )
        );
        // An @ after the authority is no userinfo.
        assert_eq!(redact(&["https://example.com/u/@me"]).redactions, 0);
    }

    #[test]
    fn secret_flags_with_equals_next_word_and_next_argument() {
        let r = redact(&[
            "agent",
            "--password=hunter2",
            "--api-token",
            "abc123",
            "--verbose",
        ]);
        assert_eq!(
            r.args[1],
            format!("--password={}", marker("flag", "hunter2"))
        );
        assert_eq!(r.args[2], "--api-token");
        assert_eq!(r.args[3], marker("flag", "abc123"));
        assert_eq!(r.args[4], "--verbose");
        assert_eq!(r.redactions, 2);
        let r = redact(&[
            "sh",
            "-c",
            "run --db-password 'pa ss' --token-file /etc/t --name x",
        ]);
        assert_eq!(
            r.args[2],
            format!(
                "run --db-password '{}' --token-file /etc/t --name x",
                marker("flag", "pa ss")
            ),
            "a quoted value is one value; a file path flag is not a secret"
        );
        let r = redact(&["--password=\"a b c\""]);
        assert_eq!(
            r.args[0],
            format!("--password=\"{}\"", marker("flag", "a b c"))
        );
        // A flag followed by another flag has no value to hide.
        let r = redact(&["x", "--token", "--verbose"]);
        assert_eq!((r.args[2].as_str(), r.redactions), ("--verbose", 0));
        // Not secret names.
        assert_eq!(
            redact(&["--bypass=1", "--author=me", "--keypath=/k", "--passes=3"]).redactions,
            0
        );
    }

    #[test]
    fn environment_style_assignments() {
        let r = redact(&[
            "/usr/bin/env",
            "PGPASSWORD=topsecret",
            "AWS_SECRET_ACCESS_KEY=\"wJalrXUt\"",
            "PATH=/usr/bin",
            "psql",
        ]);
        assert_eq!(
            r.args[1],
            format!("PGPASSWORD={}", marker("flag", "topsecret"))
        );
        assert_eq!(
            r.args[2],
            format!("AWS_SECRET_ACCESS_KEY=\"{}\"", marker("flag", "wJalrXUt"))
        );
        assert_eq!(r.args[3], "PATH=/usr/bin");
        assert_eq!(r.redactions, 2);
    }

    #[test]
    fn authorization_headers_keep_their_scheme() {
        let r = redact(&[
            "curl",
            "-H",
            "Authorization: Bearer eyJhbGciOi.x.y",
            "https://api.example.com",
        ]);
        assert_eq!(
            r.args[2],
            format!(
                "Authorization: Bearer {}",
                marker("header", "eyJhbGciOi.x.y")
            )
        );
        let r = redact(&[
            "sh",
            "-c",
            "curl -H \"X-Api-Key: k1\" -H 'authorization: Basic dXNlcjpwYXNz' https://x",
        ]);
        assert_eq!(
            r.args[2],
            format!(
                "curl -H \"X-Api-Key: {}\" -H 'authorization: Basic {}' https://x",
                marker("header", "k1"),
                marker("header", "dXNlcjpwYXNz")
            )
        );
        assert_eq!(r.redactions, 2);
    }

    #[test]
    fn long_base64_and_hex_runs_leave_the_command_visible() {
        let b64 = "ZWNobyAiaGVsbG8iIHwgY3VybCAtZCBAL2V0Yy9wYXNzd2QgaHR0cDovL2V2aWwuZXhhbXBsZS8K";
        // Random keys (os.urandom, base64 and base64url), padding included.
        for key in [
            "OCZB80kCc+OtAp73CZ8IfvENfQ1yaxclx3+XU47eVDk=",
            "W6+IOWkcSCwFWtKxtu80F0hUjYTWTNHTyTEtDJYzfA8=",
            "RS60ynWHLkEMpAq-0v2EkxwI-4fQRmVW",
        ] {
            assert_eq!(looks_like_secret(key, 32), Some("base64"), "{key}");
        }
        let r = redact(&["/bin/sh", "-c", &format!("echo {b64} | base64 -d | sh")]);
        assert_eq!(
            r.args[2],
            format!("echo {} | base64 -d | sh", marker("base64", b64))
        );
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let r = redact(&["tool", &format!("--id={hex}")]);
        assert_eq!(r.args[1], format!("--id={}", marker("hex", hex)));
        // Paths, reverse-DNS names, UUIDs and CamelCase words are not secrets.
        for plain in [
            "/Users/Bob2/Library/Application Support/ExampleHelper2024/helper",
            "/Library/PrivilegedHelperTools/com.example.UpdaterService2Helper",
            "E621E1F8-C36C-495A-93FC-0C247A3E6E5F",
            "MyApplicationHelperServiceV2Launcher",
            "--disable-background-networking-for-testing",
        ] {
            let r = redact(&["x", plain]);
            assert_eq!((r.args[1].as_str(), r.redactions), (plain, 0), "{plain}");
        }
        // A random file name inside an absolute path is judged on its own.
        let r = redact(&[&format!("/tmp/{b64}")]);
        assert_eq!(r.args[0], format!("/tmp/{}", marker("base64", b64)));
    }

    #[test]
    fn configurable_off_without_hash_and_extra_names() {
        let args = vec![
            "--password=hunter2".to_string(),
            "--pin".into(),
            "1234".into(),
        ];
        let off = RedactConfig {
            enabled: false,
            ..RedactConfig::default()
        };
        assert_eq!(command_line(&args, &off).args, args);
        let custom = RedactConfig {
            keep_hash: false,
            extra_names: vec!["pin".into()],
            ..RedactConfig::default()
        };
        let r = command_line(&args, &custom);
        assert_eq!(
            r.args,
            vec![
                "--password=[redacted:flag:len=7]",
                "--pin",
                "[redacted:flag:len=4]"
            ]
        );
        let short = RedactConfig {
            min_secret_length: 8,
            ..RedactConfig::default()
        };
        assert_eq!(
            command_line(&["aB3dE5gH9k".to_string()], &short).redactions,
            1
        );
    }

    #[test]
    fn redaction_is_idempotent_and_never_panics_on_odd_text() {
        let once = redact(&[
            "--token=abc",
            "https://u:p@h",
            "'",
            "\"",
            "--=",
            "=x",
            "://@",
            "ü://ä:ö@ß",
        ]);
        let again = command_line(&once.args, &cfg());
        assert_eq!(again.args, once.args);
        assert_eq!(again.redactions, 0);
    }
}
