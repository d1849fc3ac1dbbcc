//! The osquery extension protocol's thrift types, encoded by hand on the `thrift` crate's
//! binary protocol. Field ids and types are those of osquery's `osquery.thrift` IDL:
//!
//! * `ExtensionStatus { 1: i32 code, 2: string message, 3: i64 uuid }`
//! * `ExtensionResponse { 1: ExtensionStatus status, 2: list<map<string,string>> response }`
//! * `InternalExtensionInfo { 1: name, 2: version, 3: sdk_version, 4: min_sdk_version }`
//! * `Extension.call(1: registry, 2: item, 3: map<string,string> request)`;
//!   `ExtensionManager.registerExtension(1: info, 2: map<string, map<string, list<map>>>)`,
//!   `deregisterExtension(1: i64 uuid)`, `extensions() -> map<i64, InternalExtensionInfo>`.
//!
//! Results carry the return value in field 0. The wire is `TBufferedTransport` +
//! `TBinaryProtocol` (strict) over a Unix socket, one call at a time per connection.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TFieldIdentifier, TInputProtocol, TListIdentifier,
    TMapIdentifier, TMessageIdentifier, TMessageType, TOutputProtocol, TStructIdentifier, TType,
};
use thrift::TConfiguration;

pub type StringMap = BTreeMap<String, String>;
pub type PluginResponse = Vec<StringMap>;

/// osquery's `EXT_SUCCESS` / `EXT_FAILED`.
pub const EXT_SUCCESS: i32 = 0;
pub const EXT_FAILED: i32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtensionStatus {
    pub code: i32,
    pub message: String,
    pub uuid: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtensionResponse {
    pub status: ExtensionStatus,
    pub response: PluginResponse,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtensionInfo {
    pub name: String,
    pub version: String,
    pub sdk_version: String,
    pub min_sdk_version: String,
}

/// Bounds for what a peer may make us allocate: a lying length prefix is an error, not an
/// allocation. Strings up to 16 MiB (a context JSON is a few KiB), containers up to 1 M entries.
pub fn limits() -> TConfiguration {
    TConfiguration::builder()
        .max_string_size(Some(16 << 20))
        .max_container_size(Some(1 << 20))
        .max_message_size(Some(256 << 20))
        .build()
        .expect("static limits are valid")
}

pub type In<R> = TBinaryInputProtocol<R>;
pub type Out<W> = TBinaryOutputProtocol<W>;

pub fn input<R: Read>(r: R) -> In<R> {
    TBinaryInputProtocol::with_config(r, true, limits())
}

pub fn output<W: Write>(w: W) -> Out<W> {
    TBinaryOutputProtocol::new(w, true)
}

type R<T> = thrift::Result<T>;

fn field(o: &mut dyn TOutputProtocol, name: &str, ty: TType, id: i16) -> R<()> {
    o.write_field_begin(&TFieldIdentifier::new(name, ty, id))
}

pub fn write_string_map(o: &mut dyn TOutputProtocol, m: &StringMap) -> R<()> {
    o.write_map_begin(&TMapIdentifier::new(
        TType::String,
        TType::String,
        m.len() as i32,
    ))?;
    for (k, v) in m {
        o.write_string(k)?;
        o.write_string(v)?;
    }
    o.write_map_end()
}

/// A thrift string as text, whatever its bytes: osqueryd sends constraint values as
/// `sqlite3_value_text` gives them (`CAST(X'FF' AS TEXT)`, a raw Linux path in a join), never
/// validated as UTF-8. Invalid sequences become U+FFFD instead of failing the whole call.
pub fn read_string_lossy(i: &mut dyn TInputProtocol) -> R<String> {
    let bytes = i.read_bytes()?;
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

pub fn read_string_map(i: &mut dyn TInputProtocol) -> R<StringMap> {
    let ident = i.read_map_begin()?;
    let mut m = StringMap::new();
    for _ in 0..ident.size {
        let k = read_string_lossy(i)?;
        let v = read_string_lossy(i)?;
        m.insert(k, v);
    }
    i.read_map_end()?;
    Ok(m)
}

pub fn write_plugin_response(o: &mut dyn TOutputProtocol, rows: &[StringMap]) -> R<()> {
    o.write_list_begin(&TListIdentifier::new(TType::Map, rows.len() as i32))?;
    for row in rows {
        write_string_map(o, row)?;
    }
    o.write_list_end()
}

#[cfg(test)]
pub fn read_plugin_response(i: &mut dyn TInputProtocol) -> R<PluginResponse> {
    let ident = i.read_list_begin()?;
    let mut rows = Vec::new();
    for _ in 0..ident.size {
        rows.push(read_string_map(i)?);
    }
    i.read_list_end()?;
    Ok(rows)
}

pub fn write_status(o: &mut dyn TOutputProtocol, s: &ExtensionStatus) -> R<()> {
    o.write_struct_begin(&TStructIdentifier::new("ExtensionStatus"))?;
    field(o, "code", TType::I32, 1)?;
    o.write_i32(s.code)?;
    o.write_field_end()?;
    field(o, "message", TType::String, 2)?;
    o.write_string(&s.message)?;
    o.write_field_end()?;
    field(o, "uuid", TType::I64, 3)?;
    o.write_i64(s.uuid)?;
    o.write_field_end()?;
    o.write_field_stop()?;
    o.write_struct_end()
}

/// Reads a struct field by field, handing each to `on_field`, which returns false for fields
/// it does not know (those are skipped, as thrift requires).
fn read_struct(
    i: &mut dyn TInputProtocol,
    mut on_field: impl FnMut(&mut dyn TInputProtocol, i16, TType) -> R<bool>,
) -> R<()> {
    i.read_struct_begin()?;
    loop {
        let f = i.read_field_begin()?;
        if f.field_type == TType::Stop {
            break;
        }
        if !on_field(i, f.id.unwrap_or(-1), f.field_type)? {
            i.skip(f.field_type)?;
        }
        i.read_field_end()?;
    }
    i.read_struct_end()
}

pub fn read_status(i: &mut dyn TInputProtocol) -> R<ExtensionStatus> {
    let mut s = ExtensionStatus::default();
    read_struct(i, |i, id, ty| {
        Ok(match (id, ty) {
            (1, TType::I32) => {
                s.code = i.read_i32()?;
                true
            }
            (2, TType::String) => {
                s.message = read_string_lossy(i)?;
                true
            }
            (3, TType::I64) => {
                s.uuid = i.read_i64()?;
                true
            }
            _ => false,
        })
    })?;
    Ok(s)
}

pub fn write_response(o: &mut dyn TOutputProtocol, r: &ExtensionResponse) -> R<()> {
    o.write_struct_begin(&TStructIdentifier::new("ExtensionResponse"))?;
    field(o, "status", TType::Struct, 1)?;
    write_status(o, &r.status)?;
    o.write_field_end()?;
    field(o, "response", TType::List, 2)?;
    write_plugin_response(o, &r.response)?;
    o.write_field_end()?;
    o.write_field_stop()?;
    o.write_struct_end()
}

#[cfg(test)]
pub fn read_response(i: &mut dyn TInputProtocol) -> R<ExtensionResponse> {
    let mut r = ExtensionResponse::default();
    read_struct(i, |i, id, ty| {
        Ok(match (id, ty) {
            (1, TType::Struct) => {
                r.status = read_status(i)?;
                true
            }
            (2, TType::List) => {
                r.response = read_plugin_response(i)?;
                true
            }
            _ => false,
        })
    })?;
    Ok(r)
}

pub fn write_info(o: &mut dyn TOutputProtocol, info: &ExtensionInfo) -> R<()> {
    o.write_struct_begin(&TStructIdentifier::new("InternalExtensionInfo"))?;
    for (id, name, value) in [
        (1, "name", &info.name),
        (2, "version", &info.version),
        (3, "sdk_version", &info.sdk_version),
        (4, "min_sdk_version", &info.min_sdk_version),
    ] {
        field(o, name, TType::String, id)?;
        o.write_string(value)?;
        o.write_field_end()?;
    }
    o.write_field_stop()?;
    o.write_struct_end()
}

/// Writes a call's header; the caller writes the argument struct's fields, then [`end_call`].
pub fn begin_call(o: &mut dyn TOutputProtocol, method: &str, seq: i32) -> R<()> {
    o.write_message_begin(&TMessageIdentifier::new(method, TMessageType::Call, seq))?;
    o.write_struct_begin(&TStructIdentifier::new(format!("{method}_args")))
}

pub fn end_call(o: &mut dyn TOutputProtocol) -> R<()> {
    o.write_field_stop()?;
    o.write_struct_end()?;
    o.write_message_end()?;
    o.flush()
}

/// Reads a reply's header; an exception reply becomes an error. The caller then reads field 0.
pub fn read_reply(
    i: &mut dyn TInputProtocol,
    method: &str,
    mut on_success: impl FnMut(&mut dyn TInputProtocol, TType) -> R<bool>,
) -> R<()> {
    let header = i.read_message_begin()?;
    if header.message_type == TMessageType::Exception {
        let e = thrift::Error::read_application_error_from_in_protocol(i)?;
        i.read_message_end()?;
        return Err(thrift::Error::Application(e));
    }
    if header.name != method {
        return Err(thrift::Error::Application(thrift::ApplicationError::new(
            thrift::ApplicationErrorKind::WrongMethodName,
            format!("reply to {} while waiting for {method}", header.name),
        )));
    }
    read_struct(i, |i, id, ty| {
        if id == 0 {
            on_success(i, ty)
        } else {
            Ok(false)
        }
    })?;
    i.read_message_end()
}

/// `registerExtension(info, {"table": {name: route rows}})`'s arguments.
pub fn write_register_args(
    o: &mut dyn TOutputProtocol,
    info: &ExtensionInfo,
    registry: &BTreeMap<String, BTreeMap<String, PluginResponse>>,
) -> R<()> {
    field(o, "info", TType::Struct, 1)?;
    write_info(o, info)?;
    o.write_field_end()?;
    field(o, "registry", TType::Map, 2)?;
    o.write_map_begin(&TMapIdentifier::new(
        TType::String,
        TType::Map,
        registry.len() as i32,
    ))?;
    for (registry_name, items) in registry {
        o.write_string(registry_name)?;
        o.write_map_begin(&TMapIdentifier::new(
            TType::String,
            TType::List,
            items.len() as i32,
        ))?;
        for (item, routes) in items {
            o.write_string(item)?;
            write_plugin_response(o, routes)?;
        }
        o.write_map_end()?;
    }
    o.write_map_end()?;
    o.write_field_end()
}

/// The keys of `extensions()`'s `map<i64, InternalExtensionInfo>`.
pub fn read_extension_uuids(i: &mut dyn TInputProtocol) -> R<Vec<i64>> {
    let ident = i.read_map_begin()?;
    let mut uuids = Vec::new();
    for _ in 0..ident.size {
        uuids.push(i.read_i64()?);
        i.skip(TType::Struct)?;
    }
    i.read_map_end()?;
    Ok(uuids)
}

pub fn write_i64_field(o: &mut dyn TOutputProtocol, name: &str, id: i16, v: i64) -> R<()> {
    field(o, name, TType::I64, id)?;
    o.write_i64(v)?;
    o.write_field_end()
}

/// A server-side call as decoded from the wire.
#[derive(Debug)]
pub enum Request {
    Ping,
    Call {
        registry: String,
        item: String,
        request: StringMap,
    },
    Shutdown,
    Unknown(String),
}

/// Reads one request; `Ok(None)` at a clean end of stream.
pub fn read_request(i: &mut dyn TInputProtocol) -> R<Option<(Request, i32)>> {
    let header = match i.read_message_begin() {
        Ok(h) => h,
        Err(thrift::Error::Transport(e)) if e.kind == thrift::TransportErrorKind::EndOfFile => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let seq = header.sequence_number;
    let request = match header.name.as_str() {
        "ping" => {
            read_struct(i, |_, _, _| Ok(false))?;
            Request::Ping
        }
        "shutdown" => {
            read_struct(i, |_, _, _| Ok(false))?;
            Request::Shutdown
        }
        "call" => {
            let (mut registry, mut item, mut request) =
                (String::new(), String::new(), StringMap::new());
            read_struct(i, |i, id, ty| {
                Ok(match (id, ty) {
                    (1, TType::String) => {
                        registry = read_string_lossy(i)?;
                        true
                    }
                    (2, TType::String) => {
                        item = read_string_lossy(i)?;
                        true
                    }
                    (3, TType::Map) => {
                        request = read_string_map(i)?;
                        true
                    }
                    _ => false,
                })
            })?;
            Request::Call {
                registry,
                item,
                request,
            }
        }
        other => {
            read_struct(i, |_, _, _| Ok(false))?;
            Request::Unknown(other.to_string())
        }
    };
    i.read_message_end()?;
    Ok(Some((request, seq)))
}

/// Writes a result's field 0.
pub type WriteField<'a> = dyn Fn(&mut dyn TOutputProtocol) -> R<()> + 'a;

/// Writes a reply whose field 0 is written by `success` (None for a void method).
pub fn write_reply(
    o: &mut dyn TOutputProtocol,
    method: &str,
    seq: i32,
    success: Option<&WriteField<'_>>,
) -> R<()> {
    o.write_message_begin(&TMessageIdentifier::new(method, TMessageType::Reply, seq))?;
    o.write_struct_begin(&TStructIdentifier::new(format!("{method}_result")))?;
    if let Some(write) = success {
        write(o)?;
    }
    o.write_field_stop()?;
    o.write_struct_end()?;
    o.write_message_end()?;
    o.flush()
}

pub fn write_exception(
    o: &mut dyn TOutputProtocol,
    method: &str,
    seq: i32,
    e: &thrift::ApplicationError,
) -> R<()> {
    o.write_message_begin(&TMessageIdentifier::new(
        method,
        TMessageType::Exception,
        seq,
    ))?;
    thrift::Error::write_application_error_to_out_protocol(e, o)?;
    o.write_message_end()?;
    o.flush()
}

pub fn status_field(s: &ExtensionStatus) -> impl Fn(&mut dyn TOutputProtocol) -> R<()> + '_ {
    move |o| {
        field(o, "success", TType::Struct, 0)?;
        write_status(o, s)?;
        o.write_field_end()
    }
}

pub fn response_field(r: &ExtensionResponse) -> impl Fn(&mut dyn TOutputProtocol) -> R<()> + '_ {
    move |o| {
        field(o, "success", TType::Struct, 0)?;
        write_response(o, r)?;
        o.write_field_end()
    }
}

/// Thrift binary protocol type codes (`TType` as `TBinaryProtocol` writes them).
const T_STOP: u8 = 0;
const T_I32: u8 = 8;
const T_I64: u8 = 10;
const T_STRING: u8 = 11;
const T_STRUCT: u8 = 12;
const T_MAP: u8 = 13;
const T_LIST: u8 = 15;
/// Strict message header: version 1 in the high half, the message type in the low byte.
const STRICT_REPLY: u32 = 0x8001_0000 | 2;

/// `call`'s reply carrying table rows, encoded straight into one buffer with exactly the bytes
/// `TBinaryOutputProtocol` (strict) writes for `write_reply("call", seq, response_field(..))`.
///
/// Rows are the one large message (40,000 socket rows are ~19 MB); going through [`StringMap`] cost
/// a map, a `String` per column name and one per value for every row, plus a second walk to
/// serialise them. Here each cell is written once, numbers are formatted in place, and the
/// exact size is known before anything is sent (osqueryd's 100 MiB message limit).
pub struct RowsReply {
    buf: Vec<u8>,
    /// Where the response list's element count goes, patched by [`RowsReply::finish`].
    list_count_at: usize,
    rows: i32,
    /// Where the current row's map size goes, and its cells so far.
    row_size_at: usize,
    cells: i32,
}

impl RowsReply {
    /// The reply header, `ExtensionResponse.status`, and the start of `response`.
    pub fn new(seq: i32, status: &ExtensionStatus, capacity: usize) -> RowsReply {
        let mut r = RowsReply {
            buf: Vec::with_capacity(capacity),
            list_count_at: 0,
            rows: 0,
            row_size_at: 0,
            cells: 0,
        };
        r.u32(STRICT_REPLY);
        r.bytes(b"call");
        r.u32(seq as u32);
        r.field(T_STRUCT, 0); // call_result.success
        r.field(T_STRUCT, 1); // ExtensionResponse.status
        r.field(T_I32, 1);
        r.u32(status.code as u32);
        r.field(T_STRING, 2);
        r.bytes(status.message.as_bytes());
        r.field(T_I64, 3);
        r.buf.extend_from_slice(&status.uuid.to_be_bytes());
        r.buf.push(T_STOP);
        r.field(T_LIST, 2); // ExtensionResponse.response
        r.buf.push(T_MAP);
        r.list_count_at = r.buf.len();
        r.u32(0);
        r
    }

    /// Starts a row: a `map<string,string>` whose size [`RowsReply::end_row`] fills in.
    pub fn begin_row(&mut self) {
        self.buf.extend_from_slice(&[T_STRING, T_STRING]);
        self.row_size_at = self.buf.len();
        self.u32(0);
        self.cells = 0;
    }

    pub fn cell(&mut self, key: &str, value: &[u8]) {
        self.bytes(key.as_bytes());
        self.bytes(value);
        self.cells += 1;
    }

    /// An integer cell, formatted in place as `i64`'s `Display` does.
    pub fn cell_int(&mut self, key: &str, value: i64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = value.unsigned_abs();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.bytes(key.as_bytes());
        let sign = usize::from(value < 0);
        self.u32((sign + digits.len() - at) as u32);
        if value < 0 {
            self.buf.push(b'-');
        }
        self.buf.extend_from_slice(&digits[at..]);
        self.cells += 1;
    }

    /// A cell whose value is formatted in place (`format_args!("{n}")`): no `String` per number.
    pub fn cell_fmt(&mut self, key: &str, value: std::fmt::Arguments<'_>) {
        self.bytes(key.as_bytes());
        let at = self.buf.len();
        self.u32(0);
        // Writing into a Vec cannot fail.
        let _ = self.buf.write_fmt(value);
        let len = (self.buf.len() - at - 4) as u32;
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        self.cells += 1;
    }

    pub fn end_row(&mut self) {
        let at = self.row_size_at;
        self.buf[at..at + 4].copy_from_slice(&self.cells.to_be_bytes());
        self.rows += 1;
    }

    /// Room for `additional` more bytes, so a large reply is not copied as it grows.
    pub fn reserve(&mut self, additional: usize) {
        self.buf.reserve(additional);
    }

    /// Bytes so far.
    pub fn size(&self) -> usize {
        self.buf.len()
    }

    pub fn rows(&self) -> usize {
        self.rows as usize
    }

    /// Closes the list and both structs; the bytes to send as they are.
    pub fn finish(mut self) -> Vec<u8> {
        let at = self.list_count_at;
        self.buf[at..at + 4].copy_from_slice(&self.rows.to_be_bytes());
        self.buf.push(T_STOP); // ExtensionResponse
        self.buf.push(T_STOP); // call_result
        self.buf
    }

    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.buf.extend_from_slice(b);
    }

    fn field(&mut self, ty: u8, id: i16) {
        self.buf.push(ty);
        self.buf.extend_from_slice(&id.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_round_trips_and_unknown_fields_are_skipped() {
        let mut buf = Vec::new();
        {
            let mut o = output(&mut buf);
            begin_call(&mut o, "call", 7).unwrap();
            field(&mut o, "registry", TType::String, 1).unwrap();
            o.write_string("table").unwrap();
            o.write_field_end().unwrap();
            // A field from a future IDL: must be skipped.
            field(&mut o, "extra", TType::I64, 9).unwrap();
            o.write_i64(5).unwrap();
            o.write_field_end().unwrap();
            field(&mut o, "item", TType::String, 2).unwrap();
            o.write_string("launchwatch_status").unwrap();
            o.write_field_end().unwrap();
            field(&mut o, "request", TType::Map, 3).unwrap();
            write_string_map(
                &mut o,
                &[("action".to_string(), "generate".to_string())].into(),
            )
            .unwrap();
            o.write_field_end().unwrap();
            end_call(&mut o).unwrap();
        }
        let mut i = input(&buf[..]);
        let (req, seq) = read_request(&mut i).unwrap().unwrap();
        assert_eq!(seq, 7);
        match req {
            Request::Call {
                registry,
                item,
                request,
            } => {
                assert_eq!(
                    (registry.as_str(), item.as_str()),
                    ("table", "launchwatch_status")
                );
                assert_eq!(request["action"], "generate");
            }
            other => panic!("{other:?}"),
        }
        assert!(read_request(&mut i).unwrap().is_none(), "clean EOF");
    }

    #[test]
    fn lying_lengths_are_errors_not_allocations() {
        // "call" header, then a string field whose length claims 2 GiB - 1.
        let mut buf = Vec::new();
        {
            let mut o = output(&mut buf);
            begin_call(&mut o, "call", 1).unwrap();
            field(&mut o, "registry", TType::String, 1).unwrap();
        }
        buf.extend_from_slice(&0x7fff_ffffu32.to_be_bytes());
        assert!(read_request(&mut input(&buf[..])).is_err());
        // A negative map size, and a truncated stream.
        let mut buf = Vec::new();
        {
            let mut o = output(&mut buf);
            begin_call(&mut o, "call", 1).unwrap();
            field(&mut o, "request", TType::Map, 3).unwrap();
        }
        buf.extend_from_slice(&[11, 11, 0xff, 0xff, 0xff, 0xff]);
        assert!(read_request(&mut input(&buf[..])).is_err());
        assert!(read_request(&mut input(&buf[..buf.len() - 3])).is_err());
    }

    #[test]
    fn invalid_utf8_in_a_request_is_read_lossily() {
        let mut buf = Vec::new();
        {
            let mut o = output(&mut buf);
            begin_call(&mut o, "call", 2).unwrap();
            field(&mut o, "request", TType::Map, 3).unwrap();
            o.write_map_begin(&TMapIdentifier::new(TType::String, TType::String, 1))
                .unwrap();
            o.write_string("context").unwrap();
            o.write_bytes(b"{\"expr\":\"/tmp/\xff\xfe\"}").unwrap();
            o.write_map_end().unwrap();
            o.write_field_end().unwrap();
            end_call(&mut o).unwrap();
        }
        let (req, _) = read_request(&mut input(&buf[..])).unwrap().unwrap();
        let Request::Call { request, .. } = req else {
            panic!("{req:?}")
        };
        assert_eq!(request["context"], "{\"expr\":\"/tmp/\u{fffd}\u{fffd}\"}");
    }

    #[test]
    fn response_round_trips() {
        let r = ExtensionResponse {
            status: ExtensionStatus {
                code: 1,
                message: "boom".into(),
                uuid: 3,
            },
            response: vec![[("a".to_string(), "1".to_string())].into()],
        };
        let mut buf = Vec::new();
        write_reply(&mut output(&mut buf), "call", 4, Some(&response_field(&r))).unwrap();
        let mut got = None;
        read_reply(&mut input(&buf[..]), "call", |i, _| {
            got = Some(read_response(i)?);
            Ok(true)
        })
        .unwrap();
        assert_eq!(got.unwrap(), r);
    }

    #[test]
    fn rows_reply_is_what_the_thrift_writer_writes() {
        let status = ExtensionStatus {
            code: EXT_SUCCESS,
            message: "OK".into(),
            uuid: 4242,
        };
        let rows: Vec<StringMap> = vec![
            [("a", "1"), ("b", "x\u{e9}y"), ("rowid", "-7")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            StringMap::new(),
            [("a".to_string(), "2.5".to_string())].into(),
        ];
        let mut expected = Vec::new();
        let r = ExtensionResponse {
            status: status.clone(),
            response: rows.clone(),
        };
        write_reply(
            &mut output(&mut expected),
            "call",
            -3,
            Some(&response_field(&r)),
        )
        .unwrap();

        // Cells in key order, as the BTreeMap writer emits them; numbers formatted in place.
        let mut reply = RowsReply::new(-3, &status, 0);
        reply.begin_row();
        reply.cell_int("a", 1);
        reply.cell("b", "x\u{e9}y".as_bytes());
        reply.cell_int("rowid", -7);
        reply.end_row();
        reply.begin_row();
        reply.end_row();
        reply.begin_row();
        reply.cell_fmt("a", format_args!("{}", 2.5f64));
        reply.end_row();
        assert_eq!(reply.rows(), 3);
        let got = reply.finish();
        assert_eq!(got, expected);

        let mut decoded = None;
        read_reply(&mut input(&got[..]), "call", |i, _| {
            decoded = Some(read_response(i)?);
            Ok(true)
        })
        .unwrap();
        assert_eq!(decoded.unwrap(), r);
    }

    #[test]
    fn integer_cells_read_as_display_writes_them() {
        let status = ExtensionStatus::default();
        let values = [0, 7, -1, 10, -10, 1234567890, i64::MAX, i64::MIN];
        let mut reply = RowsReply::new(1, &status, 0);
        for v in values {
            reply.begin_row();
            reply.cell_int("n", v);
            reply.end_row();
        }
        let bytes = reply.finish();
        let mut got = None;
        read_reply(&mut input(&bytes[..]), "call", |i, _| {
            got = Some(read_response(i)?);
            Ok(true)
        })
        .unwrap();
        let got: Vec<String> = got
            .unwrap()
            .response
            .into_iter()
            .map(|m| m["n"].clone())
            .collect();
        let want: Vec<String> = values.iter().map(i64::to_string).collect();
        assert_eq!(got, want);
    }
}
