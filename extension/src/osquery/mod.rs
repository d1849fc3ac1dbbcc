//! The osquery host: registers every table with osqueryd's extension manager and serves
//! `Extension.ping/call/shutdown` on `<socket>.<uuid>`.
//!
//! Own code on the `thrift` crate rather than osquery-rust-ng 2.0.0, whose defects
//! (docs/osquery-protocol.md, "Why launchwatch has its own host") break required behaviour: it ignores a refused registration and
//! serves on `<socket>.0`, fixes the version at "1.0", ignores `--timeout` and `--interval`,
//! caps the server at 10 connection threads (so slow calls starve osqueryd's pre-call ping),
//! never stops its listener thread, loses error text on `generate`, and does not parse
//! constraints.

pub mod wire;

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use launchwatch_tables::framework::{row_id, QueryContext, TableSet};
use thrift::protocol::TType;

use wire::{
    ExtensionInfo, ExtensionResponse, ExtensionStatus, PluginResponse, Request, StringMap,
    EXT_FAILED, EXT_SUCCESS,
};

/// The name osqueryd lists in `osquery_extensions`.
pub const EXTENSION_NAME: &str = "launchwatch";
/// We speak the osquery 5.x extension protocol; the core only checks `sdk_version >= 1.7.7`.
const SDK_VERSION: &str = "5.0.0";
const MIN_SDK_VERSION: &str = "1.7.7";
/// osqueryd opens a connection per call; this many may be served at once before new ones are
/// refused. Far above osqueryd's needs; it bounds what a misbehaving local client can hold.
const MAX_CONNECTIONS: usize = 256;
/// A connection idle this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a call to the manager may take: osquery's `--thrift_timeout` default, which its
/// own SDK uses. `registerExtension` waits behind every running query (osqueryd attaches the
/// tables under its SQLite lock), and a manager busy for seconds is still alive.
const MANAGER_CALL_TIMEOUT: Duration = Duration::from_secs(300);
/// How often a uuid of 0 (a valid `rand()+1` as uint16 in osqueryd) is handed back and
/// re-registered before giving up.
const UUID_ZERO_RETRIES: usize = 3;
/// osqueryd's bundled thrift refuses a message over 100 MiB (`DEFAULT_MAX_MESSAGE_SIZE`, thrift
/// 0.17 `TConfiguration.h`; osquery never overrides it).
pub const OSQUERYD_MAX_MESSAGE: usize = 100 << 20;

pub struct HostOptions {
    pub socket: PathBuf,
    pub timeout: Duration,
    pub interval: Duration,
}

/// Why the host stopped; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    Running = 0,
    Signal = 1,
    ShutdownRequest = 2,
    ManagerGone = 3,
    Dropped = 4,
}

struct Shared {
    tables: Arc<TableSet>,
    uuid: i64,
    exit: AtomicI32,
    active: AtomicUsize,
}

impl Shared {
    fn stop(&self, why: Exit) {
        let _ = self.exit.compare_exchange(
            Exit::Running as i32,
            why as i32,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }
    fn stopping(&self) -> bool {
        self.exit.load(Ordering::SeqCst) != Exit::Running as i32
    }
}

/// Runs until osqueryd or a signal stops us. Returns the process exit code.
pub fn run(tables: Arc<TableSet>, opts: HostOptions, on_stop: impl FnOnce()) -> i32 {
    let signalled = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, signalled.clone()) {
            log::error!("cannot install signal handler: {e}");
            return 1;
        }
    }
    let deadline = Instant::now() + opts.timeout;
    let uuid = match register(&tables, &opts, deadline, &signalled) {
        Ok(uuid) => uuid,
        Err(e) => {
            log::error!("{e}");
            on_stop();
            return 1;
        }
    };
    let own_socket = PathBuf::from(format!("{}.{uuid}", opts.socket.display()));
    let listener = match listen(&own_socket) {
        Ok(l) => l,
        Err(e) => {
            log::error!("cannot listen on {}: {e}", own_socket.display());
            let _ = deregister(&opts.socket, uuid);
            on_stop();
            return 1;
        }
    };
    log::debug!(
        "registered as uuid {uuid}, serving {}",
        own_socket.display()
    );
    let shared = Arc::new(Shared {
        tables,
        uuid,
        exit: AtomicI32::new(Exit::Running as i32),
        active: AtomicUsize::new(0),
    });
    {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("accept".into())
            .spawn(move || accept_loop(listener, shared))
            .expect("spawn accept thread");
    }
    {
        let shared = shared.clone();
        let manager = opts.socket.clone();
        let interval = opts.interval;
        std::thread::Builder::new()
            .name("manager-watch".into())
            .spawn(move || watch_manager(&manager, interval, &shared))
            .expect("spawn watcher thread");
    }
    while !shared.stopping() {
        if signalled.load(Ordering::SeqCst) {
            shared.stop(Exit::Signal);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let why = shared.exit.load(Ordering::SeqCst);
    log::debug!("stopping ({})", describe_exit(why));
    // The socket goes first so osqueryd stops routing calls to us; then deregister (unless the
    // manager is gone or already dropped us).
    let _ = std::fs::remove_file(&own_socket);
    if why != Exit::ManagerGone as i32 && why != Exit::Dropped as i32 {
        if let Err(e) = deregister(&opts.socket, uuid) {
            log::debug!("deregister: {e}");
        }
    }
    on_stop();
    if why == Exit::Dropped as i32 {
        1
    } else {
        0
    }
}

fn describe_exit(code: i32) -> &'static str {
    match code {
        c if c == Exit::Signal as i32 => "signal",
        c if c == Exit::ShutdownRequest as i32 => "shutdown requested by osqueryd",
        c if c == Exit::ManagerGone as i32 => "extension manager is gone",
        c if c == Exit::Dropped as i32 => "osqueryd no longer lists this extension",
        _ => "running",
    }
}

/// Why a call to the manager failed: before anything was sent (safe to retry), or after.
#[derive(Debug)]
enum CallError {
    Connect(String),
    Failed(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Connect(e) | CallError::Failed(e) => f.write_str(e),
        }
    }
}

/// One short-lived connection to the manager, as osqueryd's own clients do.
fn manager_call<T>(
    socket: &Path,
    io_timeout: Duration,
    method: &str,
    write_args: impl FnOnce(&mut dyn thrift::protocol::TOutputProtocol) -> thrift::Result<()>,
    mut read_success: impl FnMut(
        &mut dyn thrift::protocol::TInputProtocol,
        TType,
    ) -> thrift::Result<Option<T>>,
) -> Result<T, CallError> {
    let stream = UnixStream::connect(socket)
        .map_err(|e| CallError::Connect(format!("cannot connect to {}: {e}", socket.display())))?;
    stream.set_read_timeout(Some(io_timeout)).ok();
    stream.set_write_timeout(Some(io_timeout)).ok();
    let reader = stream
        .try_clone()
        .map_err(|e| CallError::Connect(e.to_string()))?;
    let mut o = wire::output(BufWriter::new(stream));
    let mut i = wire::input(BufReader::new(reader));
    let mut result = None;
    (|| -> thrift::Result<()> {
        wire::begin_call(&mut o, method, 1)?;
        write_args(&mut o)?;
        wire::end_call(&mut o)?;
        wire::read_reply(&mut i, method, |i, ty| {
            result = read_success(i, ty)?;
            Ok(result.is_some())
        })
    })()
    .map_err(|e| CallError::Failed(format!("{method}: {e}")))?;
    result.ok_or_else(|| CallError::Failed(format!("{method}: reply has no result")))
}

/// Runs `f` on its own thread and waits for it, giving up (and leaving it behind) when a signal
/// arrives: a registration may wait minutes on a busy osqueryd, SIGTERM must not.
fn interruptible<T: Send + 'static>(
    signalled: &AtomicBool,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("manager-call".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .ok()?;
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(v) => return Some(v),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return None,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if signalled.load(Ordering::SeqCst) {
                    return None;
                }
            }
        }
    }
}

fn routes(tables: &TableSet) -> BTreeMap<String, BTreeMap<String, PluginResponse>> {
    let mut items = BTreeMap::new();
    for t in tables.tables() {
        items.insert(t.name().to_string(), column_routes(t));
    }
    BTreeMap::from([("table".to_string(), items)])
}

fn column_routes(t: &dyn launchwatch_tables::framework::Table) -> PluginResponse {
    t.columns()
        .iter()
        .map(|c| {
            StringMap::from([
                ("id".into(), "column".into()),
                ("name".into(), c.name.into()),
                ("type".into(), c.ty.sql_name().into()),
                ("op".into(), c.options.0.to_string()),
            ])
        })
        .collect()
}

/// Waits up to `--timeout` for the manager socket, then registers. A refusal is final.
///
/// Only a failure to connect is retried. Once the request is sent, osqueryd may complete it
/// however late (it registers behind running queries), so we wait as long as osquery's own
/// SDK does; re-sending, or giving up early, would leave a registration for a process that
/// is gone and make the next start a "duplicate".
fn register(
    tables: &TableSet,
    opts: &HostOptions,
    deadline: Instant,
    signalled: &AtomicBool,
) -> Result<i64, String> {
    let info = ExtensionInfo {
        name: EXTENSION_NAME.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        sdk_version: SDK_VERSION.into(),
        min_sdk_version: MIN_SDK_VERSION.into(),
    };
    let registry = Arc::new(routes(tables));
    let info = Arc::new(info);
    let mut zero_uuids = 0;
    loop {
        if signalled.load(Ordering::SeqCst) {
            return Err("stopped by a signal before registering".into());
        }
        if opts.socket.exists() {
            let (socket, info, registry) = (opts.socket.clone(), info.clone(), registry.clone());
            let outcome = interruptible(signalled, move || {
                manager_call(
                    &socket,
                    MANAGER_CALL_TIMEOUT,
                    "registerExtension",
                    |o| wire::write_register_args(o, &info, &registry),
                    read_status_result,
                )
            })
            .ok_or("stopped by a signal while osqueryd was registering us")?;
            match outcome {
                Ok(s) if s.code == EXT_SUCCESS && s.uuid > 0 => return Ok(s.uuid),
                Ok(s) if s.code == EXT_SUCCESS => {
                    // uuid 0 is a valid osqueryd answer, but `<socket>.0` would not be ours to
                    // serve on. Hand it back and ask again rather than leave a registration
                    // that blocks every later one until osqueryd restarts.
                    zero_uuids += 1;
                    log::warn!(
                        "osqueryd assigned uuid {}; deregistering it and registering again",
                        s.uuid
                    );
                    if let Err(e) = deregister(&opts.socket, s.uuid) {
                        return Err(format!(
                            "osqueryd assigned uuid {} and would not take it back: {e}",
                            s.uuid
                        ));
                    }
                    if zero_uuids > UUID_ZERO_RETRIES {
                        return Err(format!(
                            "osqueryd assigned uuid {} {zero_uuids} times",
                            s.uuid
                        ));
                    }
                    continue;
                }
                Ok(s) => {
                    return Err(format!(
                        "osqueryd refused registration (code {}): {}",
                        s.code,
                        if s.message.is_empty() {
                            "no reason given"
                        } else {
                            &s.message
                        }
                    ))
                }
                // The socket file exists but nobody accepts yet (osqueryd starting): retry.
                Err(CallError::Connect(e)) if Instant::now() >= deadline => {
                    return Err(format!("registration failed: {e}"))
                }
                Err(CallError::Connect(_)) => {}
                Err(e @ CallError::Failed(_)) => {
                    return Err(format!(
                        "registration failed after the request was sent (not retried): {e}"
                    ))
                }
            }
        } else if Instant::now() >= deadline {
            return Err(format!(
                "extension manager socket {} did not appear within {:?} (--timeout)",
                opts.socket.display(),
                opts.timeout
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_status_result(
    i: &mut dyn thrift::protocol::TInputProtocol,
    ty: TType,
) -> thrift::Result<Option<ExtensionStatus>> {
    if ty == TType::Struct {
        wire::read_status(i).map(Some)
    } else {
        Ok(None)
    }
}

fn deregister(socket: &Path, uuid: i64) -> Result<(), String> {
    let s = manager_call(
        socket,
        Duration::from_millis(400),
        "deregisterExtension",
        |o| wire::write_i64_field(o, "uuid", 1, uuid),
        read_status_result,
    )
    .map_err(|e| e.to_string())?;
    if s.code == EXT_SUCCESS {
        Ok(())
    } else {
        Err(s.message)
    }
}

/// Like the C++ SDK's watcher: every `--interval`, ask the manager which extensions it lists;
/// stop when it is gone or no longer lists us. A slow answer is not a dead manager: the call
/// may take as long as osquery's own clients allow (`--thrift_timeout`, 300 s), and a busy
/// osqueryd that answers late keeps us registered instead of starting a restart loop.
fn watch_manager(socket: &Path, interval: Duration, shared: &Shared) {
    loop {
        let started = Instant::now();
        while started.elapsed() < interval {
            if shared.stopping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20).min(interval));
        }
        let outcome = manager_call(
            socket,
            MANAGER_CALL_TIMEOUT,
            "extensions",
            |_| Ok(()),
            |i, ty| {
                if ty == TType::Map {
                    wire::read_extension_uuids(i).map(Some)
                } else {
                    Ok(None)
                }
            },
        );
        if shared.stopping() {
            return;
        }
        match outcome {
            Ok(list) if list.contains(&shared.uuid) => {}
            Ok(_) => {
                log::error!("osqueryd no longer lists uuid {}; exiting", shared.uuid);
                shared.stop(Exit::Dropped);
                return;
            }
            Err(e) => {
                log::debug!("manager check failed: {e}");
                shared.stop(Exit::ManagerGone);
                return;
            }
        }
    }
}

fn listen(path: &Path) -> std::io::Result<UnixListener> {
    // A stale socket from a killed predecessor would make bind fail.
    let _ = std::fs::remove_file(path);
    // Bound, listening and private under a temporary name, then renamed into place: binding
    // creates the path before listen(2), and a manager that connects as soon as the path
    // exists would be refused in between (or find it with the umask's permissions).
    let private = |p: &Path| -> std::io::Result<UnixListener> {
        let listener = UnixListener::bind(p)?;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))?;
        Ok(listener)
    };
    let mut staged = path.as_os_str().to_owned();
    staged.push(".new");
    let staged = PathBuf::from(staged);
    let _ = std::fs::remove_file(&staged);
    match private(&staged) {
        Ok(listener) => {
            std::fs::rename(&staged, path)?;
            Ok(listener)
        }
        // The longer name may not fit a socket address (104 bytes on macOS): bind in place.
        Err(_) => private(path),
    }
}

fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    let fd = listener.as_raw_fd();
    while !shared.stopping() {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd. The timeout lets the loop notice a stop.
        let ready = unsafe { libc::poll(&mut pfd, 1, 100) };
        if ready <= 0 {
            continue;
        }
        let Ok((stream, _)) = listener.accept() else {
            continue;
        };
        if shared.active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            log::warn!("too many connections; refusing one");
            continue;
        }
        shared.active.fetch_add(1, Ordering::SeqCst);
        let for_thread = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("conn".into())
            .spawn(move || {
                serve_connection(stream, &for_thread);
                for_thread.active.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            // Thread limit reached: the connection went with the closure; give its slot back.
            shared.active.fetch_sub(1, Ordering::SeqCst);
            log::error!("cannot spawn a connection thread");
        }
    }
}

fn serve_connection(stream: UnixStream, shared: &Shared) {
    stream.set_read_timeout(Some(IDLE_TIMEOUT)).ok();
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    let mut i = wire::input(BufReader::new(reader));
    let mut writer = BufWriter::new(stream);
    loop {
        let (request, seq) = match wire::read_request(&mut i) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                log::debug!("dropping a connection: {e}");
                return;
            }
        };
        let written = match request {
            Request::Ping => {
                let s = ExtensionStatus {
                    code: EXT_SUCCESS,
                    message: "pong".into(),
                    uuid: shared.uuid,
                };
                let field = wire::status_field(&s);
                wire::write_reply(&mut wire::output(&mut writer), "ping", seq, Some(&field))
            }
            Request::Shutdown => {
                let r = wire::write_reply(&mut wire::output(&mut writer), "shutdown", seq, None);
                shared.stop(Exit::ShutdownRequest);
                r
            }
            Request::Call {
                registry,
                item,
                request,
            } => {
                match handle_call(shared, seq, &registry, &item, &request) {
                    CallReply::Response(response) => {
                        let field = wire::response_field(&response);
                        wire::write_reply(&mut wire::output(&mut writer), "call", seq, Some(&field))
                    }
                    // One write of the whole reply (BufWriter passes a large one straight on).
                    CallReply::Encoded(bytes) => writer
                        .write_all(&bytes)
                        .and_then(|()| writer.flush())
                        .map_err(thrift::Error::from),
                }
            }
            Request::Unknown(method) => {
                let e = thrift::ApplicationError::new(
                    thrift::ApplicationErrorKind::UnknownMethod,
                    format!("unknown method {method}"),
                );
                wire::write_exception(&mut wire::output(&mut writer), &method, seq, &e)
            }
        };
        if written.is_err() {
            return;
        }
    }
}

/// Rows as osqueryd receives them, encoded as `call`'s whole reply: strings, NULL as an
/// omitted key, plus a `rowid`. Refuses, with a message saying what to do, a response
/// osqueryd's thrift would reject as over its message limit (it would surface only as a
/// transport error there); the size checked is the exact size on the wire.
fn encode_rows(
    seq: i32,
    uuid: i64,
    item: &str,
    columns: &[launchwatch_tables::framework::Column],
    rows: &[launchwatch_tables::framework::Row],
    limit: usize,
) -> Result<Vec<u8>, String> {
    use launchwatch_tables::framework::Value;
    let status = ExtensionStatus {
        code: EXT_SUCCESS,
        message: "OK".into(),
        uuid,
    };
    // Rows of one table are alike: once a few are encoded, room for all of them is reserved,
    // so a reply of megabytes is not copied each time it outgrows its buffer.
    const SAMPLE_ROWS: usize = 64;
    let mut reply = wire::RowsReply::new(seq, &status, 64 + SAMPLE_ROWS * 512);
    for (n, row) in rows.iter().enumerate() {
        if n == SAMPLE_ROWS {
            let per_row = reply.size() / n;
            reply.reserve((per_row + per_row / 8) * (rows.len() - n).min(limit / per_row.max(1)));
        }
        reply.begin_row();
        for (c, v) in columns.iter().zip(row) {
            match v {
                Value::Null => {}
                Value::Int(i) => reply.cell_int(c.name, *i),
                Value::Double(d) if d.is_finite() => reply.cell_fmt(c.name, format_args!("{d}")),
                // strtod would accept "inf"/"nan", but SQL has no use for them: report unknown.
                Value::Double(_) => {}
                Value::Text(t) => reply.cell(c.name, t.as_bytes()),
            }
        }
        // osqueryd takes the `rowid` key as the SQLite rowid; content-derived, so its OR-term
        // scans cannot merge two different rows into one.
        reply.cell_int("rowid", row_id(row));
        reply.end_row();
        if reply.size() > limit {
            return Err(format!(
                "{item}: the result is over {} MiB on the wire after {} of {} rows, more than osqueryd accepts from an extension (thrift's 100 MiB message limit); narrow the query with a WHERE clause on an indexed column",
                limit >> 20,
                reply.rows() - 1,
                rows.len()
            ));
        }
    }
    Ok(reply.finish())
}

fn failure(uuid: i64, message: String) -> ExtensionResponse {
    ExtensionResponse {
        status: ExtensionStatus {
            code: EXT_FAILED,
            message,
            uuid,
        },
        response: vec![],
    }
}

/// What `Extension.call` answers: a response to encode, or table rows already encoded as the
/// whole reply.
enum CallReply {
    Response(ExtensionResponse),
    Encoded(Vec<u8>),
}

impl From<ExtensionResponse> for CallReply {
    fn from(r: ExtensionResponse) -> CallReply {
        CallReply::Response(r)
    }
}

/// `Extension.call`: columns, generate, and a polite refusal of writes.
fn handle_call(
    shared: &Shared,
    seq: i32,
    registry: &str,
    item: &str,
    request: &StringMap,
) -> CallReply {
    let uuid = shared.uuid;
    if registry != "table" {
        return failure(uuid, format!("launchwatch has no {registry:?} registry")).into();
    }
    let Some(table) = shared.tables.get(item) else {
        return failure(uuid, format!("launchwatch has no table {item:?}")).into();
    };
    let ok = |response| {
        CallReply::Response(ExtensionResponse {
            status: ExtensionStatus {
                code: EXT_SUCCESS,
                message: "OK".into(),
                uuid,
            },
            response,
        })
    };
    match request.get("action").map(String::as_str) {
        Some("columns") => ok(column_routes(table)),
        Some("generate") => {
            let started = Instant::now();
            let ctx = match QueryContext::parse_json(
                request.get("context").map(String::as_str).unwrap_or(""),
            ) {
                Ok(c) => c,
                Err(e) => return failure(uuid, format!("{item}: {e}")).into(),
            };
            match shared.tables.generate(item, &ctx) {
                Ok(rows) => match encode_rows(
                    seq,
                    uuid,
                    item,
                    table.columns(),
                    &rows,
                    OSQUERYD_MAX_MESSAGE,
                ) {
                    Ok(reply) => {
                        log::debug!(
                            "{item}: {} rows, {} bytes in {:.1} ms",
                            rows.len(),
                            reply.len(),
                            started.elapsed().as_secs_f64() * 1000.0
                        );
                        CallReply::Encoded(reply)
                    }
                    Err(e) => {
                        log::warn!("{e}");
                        failure(uuid, e).into()
                    }
                },
                Err(e) => {
                    log::debug!("{item}: error: {e}");
                    failure(uuid, e).into()
                }
            }
        }
        // osqueryd reads response[0]["status"] for writes and ignores status.code.
        Some("insert" | "update" | "delete") => ok(vec![StringMap::from([(
            "status".into(),
            "readonly".into(),
        )])]),
        Some(other) => failure(uuid, format!("{item}: unsupported action {other:?}")).into(),
        None => failure(uuid, format!("{item}: request has no action")).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use launchwatch_tables::framework::column::text;
    use launchwatch_tables::framework::Value;

    fn decode(reply: &[u8]) -> ExtensionResponse {
        let mut got = None;
        wire::read_reply(&mut wire::input(reply), "call", |i, _| {
            got = Some(wire::read_response(i)?);
            Ok(true)
        })
        .unwrap();
        got.unwrap()
    }

    #[test]
    fn a_response_over_the_limit_is_a_clear_error() {
        let columns = [text("a", "")];
        let rows: Vec<_> = (0..10)
            .map(|_| vec![Value::from("x".repeat(1000))])
            .collect();
        let fits = decode(&encode_rows(1, 9, "t", &columns, &rows, 1 << 20).unwrap()).response;
        assert_eq!(fits.len(), 10);
        assert_eq!(fits[0]["a"].len(), 1000);
        assert!(fits[0]["rowid"].parse::<i64>().is_ok());
        let err = encode_rows(1, 9, "t", &columns, &rows, 5000).unwrap_err();
        assert!(
            err.starts_with("t: the result is over") && err.contains("WHERE"),
            "{err}"
        );
        assert!(err.contains("after 4 of 10 rows"), "{err}");
    }

    #[test]
    fn encoded_rows_carry_what_to_wire_says_and_a_content_rowid() {
        use launchwatch_tables::framework::column::{bigint, double};
        let columns = [bigint("n", ""), double("d", ""), text("t", "")];
        let rows = vec![
            vec![
                Value::Int(-42),
                Value::Double(0.1),
                Value::from("caf\u{e9}"),
            ],
            vec![Value::Int(i64::MAX), Value::Double(1e20), Value::Null],
            vec![Value::Null, Value::Double(f64::NAN), Value::from("")],
            vec![
                Value::Int(0),
                Value::Double(-2.5),
                Value::Double(f64::INFINITY),
            ],
        ];
        let reply = decode(&encode_rows(5, 77, "t", &columns, &rows, 1 << 20).unwrap());
        assert_eq!(
            reply.status,
            ExtensionStatus {
                code: EXT_SUCCESS,
                message: "OK".into(),
                uuid: 77
            }
        );
        let expected: Vec<StringMap> = rows
            .iter()
            .map(|row| {
                let mut m: StringMap = columns
                    .iter()
                    .zip(row)
                    .filter_map(|(c, v)| v.to_wire().map(|s| (c.name.to_string(), s)))
                    .collect();
                m.insert("rowid".into(), row_id(row).to_string());
                m
            })
            .collect();
        assert_eq!(reply.response, expected);
        assert_eq!(reply.response[1]["d"], "100000000000000000000");
        assert!(!reply.response[2].contains_key("d"), "NaN is unknown");
    }
}
