//! The messages of the `com.apple.network.statistics` kernel control (NetworkStatistics, what
//! nettop and Activity Monitor read), as pure functions of bytes: compiled and tested on every
//! host, fed by the socket in `ntstat.rs` on a Mac.
//!
//! Every number here comes from xnu `bsd/net/ntstat.h` at the release tags named beside it
//! (the messages are `#ifdef PRIVATE`: no SDK ships them). The mirrored structs are compiled
//! with natural C alignment (ntstat.h uses no `#pragma pack`; its 64-bit fields carry
//! `aligned(8)`), and the assertions pin each size and offset. Checked layouts:
//!
//! | macOS | Darwin | xnu tags read | TCP/QUIC descriptor | UDP descriptor |
//! |---|---|---|---|---|
//! | 11 | 20 | xnu-7195.50.7.100.1 … 7195.141.2 | 336 | 272 |
//! | 12–13 | 21–22 | xnu-8019.41.5 … 8796.141.3 | 336 | 272 |
//! | 14–15 | 23–24 | xnu-10002.1.13 … 11417.121.6 | 344 | 280 |
//!
//! What changed: macOS 12 widened `ifnet_properties` from u16 to u32 and added `fallback_mode`
//! (same size); macOS 14 inserted `persona_id, uid` after `fuuid`, moving `connstatus`,
//! `ifnet_properties` and `fallback_mode` by 8 and growing both descriptors by 8. The header,
//! `nstat_counts` and every message header are identical in all of them. There is no xnu tag
//! for macOS 26 (Darwin 25) to read, so it has no layout: the collector then polls pcblist_n
//! and says why. A descriptor whose length is not the layout's exact size is refused, never
//! read at guessed offsets.

use std::mem::{offset_of, size_of};
use std::net::{IpAddr, Ipv4Addr};

// Message types (ntstat.h enum at xnu-7195.141.2:696, xnu-11417.121.6:771; same values in
// every tag read).
pub const MSG_SUCCESS: u32 = 0;
pub const MSG_ERROR: u32 = 1;
pub const MSG_ADD_ALL_SRCS: u32 = 1002;
pub const MSG_QUERY_SRC: u32 = 1004;
pub const MSG_GET_SRC_DESC: u32 = 1005;
pub const MSG_GET_UPDATE: u32 = 1007;
pub const MSG_SRC_ADDED: u32 = 10001;
pub const MSG_SRC_REMOVED: u32 = 10002;
pub const MSG_SRC_DESC: u32 = 10003;
pub const MSG_SRC_COUNTS: u32 = 10004;
pub const MSG_SRC_UPDATE: u32 = 10006;
/// Only sent to clients that ask for extensions (we do not), from xnu-8019.
pub const MSG_SRC_EXTENDED_UPDATE: u32 = 10007;

// Header flags (xnu-7195.141.2:765, xnu-8796.141.3:857 adds the CLOSED_AFTER_* ones,
// xnu-11417.121.6:931).
pub const FLAG_SUPPORTS_AGGREGATE: u16 = 1 << 0;
pub const FLAG_CONTINUATION: u16 = 1 << 1;
pub const FLAG_CLOSING: u16 = 1 << 2;
pub const FLAG_CLOSED_AFTER_DROP: u16 = 1 << 3;
/// `nstat_event_flags_t` bit saying the kernel dropped an earlier event (xnu-11417.121.6:69).
pub const EVENT_PREV_DISCARDED: u64 = 0x8000_0000;

/// `NSTAT_SRC_REF_ALL`: a poll of every source.
pub const SRC_REF_ALL: u64 = u64::MAX;
/// `NSTAT_MAX_MSG_SIZE`: the kernel's aggregation buffer (one datagram holds up to this).
pub const MAX_MSG_SIZE: usize = 4096;
/// `NET_STAT_CONTROL_NAME` (xnu-7195.141.2:692, xnu-11417.121.6:767).
pub const CONTROL_NAME: &str = "com.apple.network.statistics";

/// Providers (`nstat_provider_type_t`, xnu-7195.141.2:355 has 0–8; xnu-8796.141.3:366 adds 9
/// and 10, which always need `PRIV_NET_PRIVILEGED_NETWORK_STATISTICS` and are not asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    TcpKernel = 2,
    TcpUserland = 3,
    UdpKernel = 4,
    UdpUserland = 5,
    /// Uses the TCP descriptor (`typedef nstat_tcp_descriptor nstat_quic_descriptor`,
    /// xnu-7195.141.2:491, xnu-11417.121.6:546).
    QuicUserland = 8,
}

impl Provider {
    /// Every provider this client subscribes to, in the order it asks.
    pub const ALL: [Provider; 5] = [
        Provider::TcpKernel,
        Provider::TcpUserland,
        Provider::UdpKernel,
        Provider::UdpUserland,
        Provider::QuicUserland,
    ];

    pub fn from_id(id: u32) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| *p as u32 == id)
    }

    /// Whether its descriptor is `nstat_tcp_descriptor` (TCP and QUIC) or the UDP one.
    pub fn tcp_descriptor(self) -> bool {
        matches!(
            self,
            Provider::TcpKernel | Provider::TcpUserland | Provider::QuicUserland
        )
    }

    /// spec.md protocol spelling: QUIC runs over UDP.
    pub fn protocol(self) -> &'static str {
        if matches!(self, Provider::TcpKernel | Provider::TcpUserland) {
            "tcp"
        } else {
            "udp"
        }
    }
}

/// `nstat_msg_hdr` (xnu-7195.141.2:770, xnu-11417.121.6:956): 16 bytes.
#[repr(C)]
pub struct MsgHdr {
    pub context: u64,
    pub kind: u32,
    pub length: u16,
    pub flags: u16,
}
const _: () = assert!(size_of::<MsgHdr>() == 16);
const _: () = assert!(offset_of!(MsgHdr, kind) == 8);
const _: () = assert!(offset_of!(MsgHdr, length) == 12);
const _: () = assert!(offset_of!(MsgHdr, flags) == 14);

/// `nstat_msg_error` (xnu-7195.141.2:779, xnu-11417.121.6:965): 24 bytes.
#[repr(C)]
pub struct MsgError {
    pub hdr: MsgHdr,
    pub error: u32,
    pub reserved: [u8; 4],
}
const _: () = assert!(size_of::<MsgError>() == 24);
const _: () = assert!(offset_of!(MsgError, error) == 16);

/// `nstat_msg_add_all_srcs` (xnu-7195.141.2:812, xnu-11417.121.6:999): 56 bytes.
#[repr(C)]
pub struct MsgAddAllSrcs {
    pub hdr: MsgHdr,
    pub filter: u64,
    pub events: u64,
    pub provider: u32,
    pub target_pid: i32,
    pub target_uuid: [u8; 16],
}
const _: () = assert!(size_of::<MsgAddAllSrcs>() == 56);
const _: () = assert!(offset_of!(MsgAddAllSrcs, filter) == 16);
const _: () = assert!(offset_of!(MsgAddAllSrcs, events) == 24);
const _: () = assert!(offset_of!(MsgAddAllSrcs, provider) == 32);
const _: () = assert!(offset_of!(MsgAddAllSrcs, target_pid) == 36);
const _: () = assert!(offset_of!(MsgAddAllSrcs, target_uuid) == 40);

/// `nstat_msg_src_added` (xnu-7195.141.2:821, xnu-11417.121.6:1008): 32 bytes.
#[repr(C)]
pub struct MsgSrcAdded {
    pub hdr: MsgHdr,
    pub srcref: u64,
    pub provider: u32,
    pub reserved: [u8; 4],
}
const _: () = assert!(size_of::<MsgSrcAdded>() == 32);
const _: () = assert!(offset_of!(MsgSrcAdded, srcref) == 16);
const _: () = assert!(offset_of!(MsgSrcAdded, provider) == 24);

/// A header and one source reference: `nstat_msg_query_src_req` (xnu-11417.121.6:1063),
/// `nstat_msg_get_src_description`, the GET_UPDATE request (which reuses the query struct) and
/// `nstat_msg_src_removed` (xnu-7195.141.2:918, xnu-11417.121.6:1200): 24 bytes each.
#[repr(C)]
pub struct MsgSrcRef {
    pub hdr: MsgHdr,
    pub srcref: u64,
}
const _: () = assert!(size_of::<MsgSrcRef>() == 24);
const _: () = assert!(offset_of!(MsgSrcRef, srcref) == 16);

/// The fixed part of `nstat_msg_src_description` (`NSTAT_SRC_DESCRIPTION_FIELDS`,
/// xnu-7195.141.2:845, xnu-11417.121.6:1032): 40 bytes, then the provider's descriptor.
#[repr(C)]
pub struct MsgSrcDescHdr {
    pub hdr: MsgHdr,
    pub srcref: u64,
    pub event_flags: u64,
    pub provider: u32,
    pub reserved: [u8; 4],
}
const _: () = assert!(size_of::<MsgSrcDescHdr>() == 40);
const _: () = assert!(offset_of!(MsgSrcDescHdr, srcref) == 16);
const _: () = assert!(offset_of!(MsgSrcDescHdr, event_flags) == 24);
const _: () = assert!(offset_of!(MsgSrcDescHdr, provider) == 32);

/// `nstat_counts` (xnu-7195.141.2:66, xnu-11417.121.6:72): 112 bytes.
#[repr(C)]
pub struct NstatCounts {
    pub rxpackets: u64,
    pub rxbytes: u64,
    pub txpackets: u64,
    pub txbytes: u64,
    pub cell_rxbytes: u64,
    pub cell_txbytes: u64,
    pub wifi_rxbytes: u64,
    pub wifi_txbytes: u64,
    pub wired_rxbytes: u64,
    pub wired_txbytes: u64,
    pub rxduplicatebytes: u32,
    pub rxoutoforderbytes: u32,
    pub txretransmit: u32,
    pub connectattempts: u32,
    pub connectsuccesses: u32,
    pub min_rtt: u32,
    pub avg_rtt: u32,
    pub var_rtt: u32,
}
const _: () = assert!(size_of::<NstatCounts>() == 112);
const _: () = assert!(offset_of!(NstatCounts, rxbytes) == 8);
const _: () = assert!(offset_of!(NstatCounts, txpackets) == 16);
const _: () = assert!(offset_of!(NstatCounts, txbytes) == 24);
const _: () = assert!(offset_of!(NstatCounts, cell_rxbytes) == 32);
const _: () = assert!(offset_of!(NstatCounts, wired_txbytes) == 72);
const _: () = assert!(offset_of!(NstatCounts, rxduplicatebytes) == 80);
const _: () = assert!(offset_of!(NstatCounts, txretransmit) == 88);
const _: () = assert!(offset_of!(NstatCounts, connectattempts) == 92);
const _: () = assert!(offset_of!(NstatCounts, min_rtt) == 100);
const _: () = assert!(offset_of!(NstatCounts, avg_rtt) == 104);
const _: () = assert!(offset_of!(NstatCounts, var_rtt) == 108);

/// `nstat_msg_src_counts` (xnu-7195.141.2:880, xnu-11417.121.6:1068): 144 bytes.
#[repr(C)]
pub struct MsgSrcCounts {
    pub hdr: MsgHdr,
    pub srcref: u64,
    pub event_flags: u64,
    pub counts: NstatCounts,
}
const _: () = assert!(size_of::<MsgSrcCounts>() == 144);
const _: () = assert!(offset_of!(MsgSrcCounts, counts) == 32);

/// The fixed part of `nstat_msg_src_update` (`NSTAT_SRC_UPDATE_FIELDS`, xnu-7195.141.2:887,
/// xnu-11417.121.6:1075): 152 bytes, then the provider's descriptor.
#[repr(C)]
pub struct MsgSrcUpdateHdr {
    pub hdr: MsgHdr,
    pub srcref: u64,
    pub event_flags: u64,
    pub counts: NstatCounts,
    pub provider: u32,
    pub reserved: [u8; 4],
}
const _: () = assert!(size_of::<MsgSrcUpdateHdr>() == 152);
const _: () = assert!(offset_of!(MsgSrcUpdateHdr, counts) == 32);
const _: () = assert!(offset_of!(MsgSrcUpdateHdr, provider) == 144);

/// `activity_bitmap_t` (xnu `bsd/netinet/in_stat.h:36`, all tags): 24 bytes.
#[repr(C)]
pub struct ActivityBitmap {
    pub start: u64,
    pub bitmap: [u64; 2],
}
const _: () = assert!(size_of::<ActivityBitmap>() == 24);

/// The `union { sockaddr_in; sockaddr_in6 }` of the descriptors: 28 bytes, 4-aligned.
#[repr(C)]
pub struct SockaddrUnion(pub [u32; 7]);
const _: () = assert!(size_of::<SockaddrUnion>() == 28);

/// The TCP descriptor's head, shared by every layout up to `fuuid` (upid … fuuid).
macro_rules! tcp_descriptor_head {
    ($name:ident { $($tail:tt)* }) => {
        #[repr(C)]
        pub struct $name {
            pub upid: u64,
            pub eupid: u64,
            pub start_timestamp: u64,
            pub timestamp: u64,
            pub rx_transfer_size: u64,
            pub tx_transfer_size: u64,
            pub activity_bitmap: ActivityBitmap,
            pub ifindex: u32,
            pub state: u32,
            pub sndbufsize: u32,
            pub sndbufused: u32,
            pub rcvbufsize: u32,
            pub rcvbufused: u32,
            pub txunacked: u32,
            pub txwindow: u32,
            pub txcwindow: u32,
            pub traffic_class: u32,
            pub traffic_mgt_flags: u32,
            pub pid: u32,
            pub epid: u32,
            pub local: SockaddrUnion,
            pub remote: SockaddrUnion,
            pub cc_algo: [u8; 16],
            pub pname: [u8; 64],
            pub uuid: [u8; 16],
            pub euuid: [u8; 16],
            pub vuuid: [u8; 16],
            pub fuuid: [u8; 16],
            $($tail)*
        }
    };
}

/// The UDP descriptor's head, shared by every layout up to `fuuid`.
macro_rules! udp_descriptor_head {
    ($name:ident { $($tail:tt)* }) => {
        #[repr(C)]
        pub struct $name {
            pub upid: u64,
            pub eupid: u64,
            pub start_timestamp: u64,
            pub timestamp: u64,
            pub activity_bitmap: ActivityBitmap,
            pub local: SockaddrUnion,
            pub remote: SockaddrUnion,
            pub ifindex: u32,
            pub rcvbufsize: u32,
            pub rcvbufused: u32,
            pub traffic_class: u32,
            pub pid: u32,
            pub pname: [u8; 64],
            pub epid: u32,
            pub uuid: [u8; 16],
            pub euuid: [u8; 16],
            pub vuuid: [u8; 16],
            pub fuuid: [u8; 16],
            $($tail)*
        }
    };
}

tcp_descriptor_head!(TcpDescriptorV11 {
    pub connstatus: u32,
    pub ifnet_properties: u16,
    pub reserved: [u8; 6],
});
tcp_descriptor_head!(TcpDescriptorV12 {
    pub connstatus: u32,
    pub ifnet_properties: u32,
    pub fallback_mode: u8,
    pub reserved: [u8; 3],
});
tcp_descriptor_head!(TcpDescriptorV14 {
    pub persona_id: u32,
    pub uid: u32,
    pub connstatus: u32,
    pub ifnet_properties: u32,
    pub fallback_mode: u8,
    pub reserved: [u8; 3],
});
udp_descriptor_head!(UdpDescriptorV11 {
    pub ifnet_properties: u16,
    pub reserved: [u8; 6],
});
udp_descriptor_head!(UdpDescriptorV12 {
    pub ifnet_properties: u32,
    pub fallback_mode: u8,
    pub reserved: [u8; 3],
});
udp_descriptor_head!(UdpDescriptorV14 {
    pub persona_id: u32,
    pub uid: u32,
    pub ifnet_properties: u32,
    pub fallback_mode: u8,
    pub reserved: [u8; 3],
});

// nstat_tcp_descriptor head, identical in xnu-7195.141.2:391, xnu-8019.41.5:412,
// xnu-8796.141.3:424, xnu-10002.1.13:431 and xnu-11417.121.6:442 (offsets computed from those
// headers compiled as-is).
macro_rules! assert_tcp_head {
    ($t:ty) => {
        const _: () = assert!(offset_of!($t, start_timestamp) == 16);
        const _: () = assert!(offset_of!($t, timestamp) == 24);
        const _: () = assert!(offset_of!($t, activity_bitmap) == 48);
        const _: () = assert!(offset_of!($t, ifindex) == 72);
        const _: () = assert!(offset_of!($t, state) == 76);
        const _: () = assert!(offset_of!($t, traffic_class) == 108);
        const _: () = assert!(offset_of!($t, pid) == 116);
        const _: () = assert!(offset_of!($t, epid) == 120);
        const _: () = assert!(offset_of!($t, local) == 124);
        const _: () = assert!(offset_of!($t, remote) == 152);
        const _: () = assert!(offset_of!($t, cc_algo) == 180);
        const _: () = assert!(offset_of!($t, pname) == 196);
        const _: () = assert!(offset_of!($t, uuid) == 260);
        const _: () = assert!(offset_of!($t, euuid) == 276);
        const _: () = assert!(offset_of!($t, fuuid) == 308);
    };
}
// nstat_udp_descriptor head: xnu-7195.141.2:447, xnu-8019.41.5:468, xnu-8796.141.3:480,
// xnu-10002.1.13:489, xnu-11417.121.6:500.
macro_rules! assert_udp_head {
    ($t:ty) => {
        const _: () = assert!(offset_of!($t, start_timestamp) == 16);
        const _: () = assert!(offset_of!($t, activity_bitmap) == 32);
        const _: () = assert!(offset_of!($t, local) == 56);
        const _: () = assert!(offset_of!($t, remote) == 84);
        const _: () = assert!(offset_of!($t, ifindex) == 112);
        const _: () = assert!(offset_of!($t, traffic_class) == 124);
        const _: () = assert!(offset_of!($t, pid) == 128);
        const _: () = assert!(offset_of!($t, pname) == 132);
        const _: () = assert!(offset_of!($t, epid) == 196);
        const _: () = assert!(offset_of!($t, uuid) == 200);
        const _: () = assert!(offset_of!($t, euuid) == 216);
        const _: () = assert!(offset_of!($t, fuuid) == 248);
    };
}
assert_tcp_head!(TcpDescriptorV11);
assert_tcp_head!(TcpDescriptorV12);
assert_tcp_head!(TcpDescriptorV14);
assert_udp_head!(UdpDescriptorV11);
assert_udp_head!(UdpDescriptorV12);
assert_udp_head!(UdpDescriptorV14);
// macOS 11, xnu-7195.141.2:391/447: u16 ifnet_properties (aligned 4) then 6 reserved bytes.
const _: () = assert!(size_of::<TcpDescriptorV11>() == 336);
const _: () = assert!(offset_of!(TcpDescriptorV11, connstatus) == 324);
const _: () = assert!(offset_of!(TcpDescriptorV11, ifnet_properties) == 328);
const _: () = assert!(size_of::<UdpDescriptorV11>() == 272);
const _: () = assert!(offset_of!(UdpDescriptorV11, ifnet_properties) == 264);
// macOS 12–13, xnu-8019.41.5:412/468 … xnu-8796.141.3:424/480: u32 ifnet_properties, fallback.
const _: () = assert!(size_of::<TcpDescriptorV12>() == 336);
const _: () = assert!(offset_of!(TcpDescriptorV12, connstatus) == 324);
const _: () = assert!(offset_of!(TcpDescriptorV12, ifnet_properties) == 328);
const _: () = assert!(offset_of!(TcpDescriptorV12, fallback_mode) == 332);
const _: () = assert!(size_of::<UdpDescriptorV12>() == 272);
const _: () = assert!(offset_of!(UdpDescriptorV12, ifnet_properties) == 264);
const _: () = assert!(offset_of!(UdpDescriptorV12, fallback_mode) == 268);
// macOS 14–15, xnu-10002.1.13:431/489 … xnu-11417.121.6:442/500: persona_id, uid inserted.
const _: () = assert!(size_of::<TcpDescriptorV14>() == 344);
const _: () = assert!(offset_of!(TcpDescriptorV14, persona_id) == 324);
const _: () = assert!(offset_of!(TcpDescriptorV14, uid) == 328);
const _: () = assert!(offset_of!(TcpDescriptorV14, connstatus) == 332);
const _: () = assert!(offset_of!(TcpDescriptorV14, ifnet_properties) == 336);
const _: () = assert!(offset_of!(TcpDescriptorV14, fallback_mode) == 340);
const _: () = assert!(size_of::<UdpDescriptorV14>() == 280);
const _: () = assert!(offset_of!(UdpDescriptorV14, persona_id) == 264);
const _: () = assert!(offset_of!(UdpDescriptorV14, uid) == 268);
const _: () = assert!(offset_of!(UdpDescriptorV14, ifnet_properties) == 272);
const _: () = assert!(offset_of!(UdpDescriptorV14, fallback_mode) == 276);

/// Where one descriptor's fields sit. The shared head is the same in every layout; the tail
/// is what moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorOffsets {
    pub size: usize,
    pub upid: usize,
    pub eupid: usize,
    pub start_timestamp: usize,
    pub ifindex: usize,
    /// TCP only.
    pub state: Option<usize>,
    pub pid: usize,
    pub epid: usize,
    pub local: usize,
    pub remote: usize,
    pub pname: usize,
    pub uuid: usize,
    pub euuid: usize,
    /// macOS 14 on.
    pub persona_id: Option<usize>,
    pub uid: Option<usize>,
    pub ifnet_properties: usize,
    /// 2 on macOS 11, else 4.
    pub ifnet_properties_width: usize,
}

macro_rules! offsets {
    ($t:ty, state: $state:expr, persona_id: $persona:expr, uid: $uid:expr, width: $w:expr) => {
        DescriptorOffsets {
            size: size_of::<$t>(),
            upid: offset_of!($t, upid),
            eupid: offset_of!($t, eupid),
            start_timestamp: offset_of!($t, start_timestamp),
            ifindex: offset_of!($t, ifindex),
            state: $state,
            pid: offset_of!($t, pid),
            epid: offset_of!($t, epid),
            local: offset_of!($t, local),
            remote: offset_of!($t, remote),
            pname: offset_of!($t, pname),
            uuid: offset_of!($t, uuid),
            euuid: offset_of!($t, euuid),
            persona_id: $persona,
            uid: $uid,
            ifnet_properties: offset_of!($t, ifnet_properties),
            ifnet_properties_width: $w,
        }
    };
}

/// The descriptor layouts of one range of macOS releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub name: &'static str,
    /// Darwin majors (kern.osrelease) this layout was read for.
    pub darwin: (u32, u32),
    pub tcp: DescriptorOffsets,
    pub udp: DescriptorOffsets,
}

pub const LAYOUT_MACOS_11: Layout = Layout {
    name: "macOS 11 (xnu-7195)",
    darwin: (20, 20),
    tcp: offsets!(TcpDescriptorV11, state: Some(offset_of!(TcpDescriptorV11, state)),
        persona_id: None, uid: None, width: 2),
    udp: offsets!(UdpDescriptorV11, state: None, persona_id: None, uid: None, width: 2),
};
pub const LAYOUT_MACOS_12_13: Layout = Layout {
    name: "macOS 12-13 (xnu-8019 to xnu-8796)",
    darwin: (21, 22),
    tcp: offsets!(TcpDescriptorV12, state: Some(offset_of!(TcpDescriptorV12, state)),
        persona_id: None, uid: None, width: 4),
    udp: offsets!(UdpDescriptorV12, state: None, persona_id: None, uid: None, width: 4),
};
pub const LAYOUT_MACOS_14_15: Layout = Layout {
    name: "macOS 14-15 (xnu-10002 to xnu-11417)",
    darwin: (23, 24),
    tcp: offsets!(TcpDescriptorV14, state: Some(offset_of!(TcpDescriptorV14, state)),
        persona_id: Some(offset_of!(TcpDescriptorV14, persona_id)),
        uid: Some(offset_of!(TcpDescriptorV14, uid)), width: 4),
    udp: offsets!(UdpDescriptorV14, state: None,
        persona_id: Some(offset_of!(UdpDescriptorV14, persona_id)),
        uid: Some(offset_of!(UdpDescriptorV14, uid)), width: 4),
};

/// Every mirrored layout, oldest first.
pub const LAYOUTS: [&Layout; 3] = [&LAYOUT_MACOS_11, &LAYOUT_MACOS_12_13, &LAYOUT_MACOS_14_15];

/// The layout for a Darwin major version, `None` for a release whose header was never read
/// (older than macOS 11, or newer than the newest xnu tag: macOS 26 is Darwin 25).
pub fn layout_for_darwin(darwin_major: u32) -> Option<&'static Layout> {
    LAYOUTS
        .into_iter()
        .find(|l| (l.darwin.0..=l.darwin.1).contains(&darwin_major))
}

/// The layout for a `kern.osrelease`, or why there is none (what `launchwatch_status.sources`
/// shows when ntstat falls back to pcblist_n).
pub fn layout_for_release(osrelease: &str) -> Result<&'static Layout, String> {
    let darwin = darwin_major(osrelease)
        .ok_or_else(|| format!("kern.osrelease {osrelease:?} is not a Darwin version"))?;
    layout_for_darwin(darwin).ok_or_else(|| {
        format!(
            "no ntstat message layout for Darwin {darwin} (macOS {}): layouts are mirrored \
             from xnu for macOS 11 to 15 only",
            macos_major(darwin).map_or("?".into(), |m| m.to_string())
        )
    })
}

/// Darwin major from `kern.osrelease` ("23.6.0" → 23).
pub fn darwin_major(osrelease: &str) -> Option<u32> {
    osrelease
        .trim_end_matches('\0')
        .trim()
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// The macOS major a Darwin major ships in: 20 → 11 … 24 → 15, then the year-named 26 for
/// Darwin 25 (and onwards by one).
pub fn macos_major(darwin_major: u32) -> Option<u32> {
    match darwin_major {
        20..=24 => Some(darwin_major - 9),
        25.. => Some(darwin_major + 1),
        _ => None,
    }
}

/// Counters of one source (`nstat_counts`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_retransmit: u32,
    pub connect_attempts: u32,
    pub connect_successes: u32,
    pub avg_rtt: u32,
}

/// One flow's descriptor.
#[derive(Debug, Clone, PartialEq)]
pub struct Descriptor {
    pub upid: u64,
    pub eupid: u64,
    /// Mach continuous time when the PCB was created (ntstat.c sets it from
    /// `mach_continuous_time()`).
    pub start_timestamp: u64,
    pub ifindex: u32,
    /// `tcp_fsm.h` state; `None` for UDP.
    pub state: Option<u32>,
    pub pid: u32,
    pub epid: u32,
    pub pname: String,
    pub uuid: [u8; 16],
    pub euuid: [u8; 16],
    pub local: Option<(IpAddr, u16)>,
    pub remote: Option<(IpAddr, u16)>,
    pub persona_id: Option<u32>,
    pub uid: Option<u32>,
    pub ifnet_properties: u32,
}

/// One message from the kernel.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    Success {
        context: u64,
        flags: u16,
    },
    Error {
        context: u64,
        errno: u32,
    },
    SrcAdded {
        srcref: u64,
        provider: u32,
    },
    SrcRemoved {
        srcref: u64,
        flags: u16,
    },
    /// `desc` is `None` for a provider this client does not decode.
    SrcDesc {
        srcref: u64,
        provider: u32,
        flags: u16,
        event_flags: u64,
        desc: Option<Descriptor>,
    },
    SrcCounts {
        srcref: u64,
        flags: u16,
        event_flags: u64,
        counts: Counts,
    },
    SrcUpdate {
        srcref: u64,
        provider: u32,
        flags: u16,
        event_flags: u64,
        counts: Counts,
        desc: Option<Descriptor>,
    },
    /// A type this client neither asks for nor needs (sysinfo, extended updates).
    Other {
        kind: u32,
    },
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_ne_bytes(b[o..o + 2].try_into().expect("2 bytes"))
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_ne_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// Splits one datagram into its messages: the kernel packs several into one (aggregation is
/// mandatory for clients, ntstat.h "A note on the header flags"), each `hdr.length` long.
/// A header that lies about its length ends the walk with an error; the messages before it
/// are kept.
pub fn split_datagram(buf: &[u8]) -> (Vec<&[u8]>, Option<String>) {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let rest = &buf[at..];
        if rest.len() < size_of::<MsgHdr>() {
            return (
                out,
                Some(format!(
                    "ntstat: {} stray bytes after the last message at offset {at}",
                    rest.len()
                )),
            );
        }
        let len = u16_at(rest, offset_of!(MsgHdr, length)) as usize;
        if len < size_of::<MsgHdr>() || len > rest.len() {
            return (
                out,
                Some(format!(
                    "ntstat: message type {} at offset {at} claims {len} bytes, {} left",
                    u32_at(rest, offset_of!(MsgHdr, kind)),
                    rest.len()
                )),
            );
        }
        out.push(&rest[..len]);
        at += len;
    }
    (out, None)
}

fn need(msg: &[u8], kind: u32, min: usize) -> Result<(), String> {
    if msg.len() < min {
        Err(format!(
            "ntstat: message type {kind} of {} bytes, needs {min}",
            msg.len()
        ))
    } else {
        Ok(())
    }
}

/// Parses one message (as [`split_datagram`] cut it) with the descriptor layout of this
/// kernel. Short messages and descriptors of the wrong size are errors, never guesses.
pub fn parse_message(msg: &[u8], layout: &Layout) -> Result<Msg, String> {
    if msg.len() < size_of::<MsgHdr>() {
        return Err(format!(
            "ntstat: message of {} bytes, shorter than its 16-byte header",
            msg.len()
        ));
    }
    let context = u64_at(msg, offset_of!(MsgHdr, context));
    let kind = u32_at(msg, offset_of!(MsgHdr, kind));
    let flags = u16_at(msg, offset_of!(MsgHdr, flags));
    let srcref = |m: &[u8]| u64_at(m, offset_of!(MsgSrcRef, srcref));
    Ok(match kind {
        MSG_SUCCESS => Msg::Success { context, flags },
        MSG_ERROR => {
            need(msg, kind, size_of::<MsgError>())?;
            Msg::Error {
                context,
                errno: u32_at(msg, offset_of!(MsgError, error)),
            }
        }
        MSG_SRC_ADDED => {
            need(msg, kind, size_of::<MsgSrcAdded>())?;
            Msg::SrcAdded {
                srcref: srcref(msg),
                provider: u32_at(msg, offset_of!(MsgSrcAdded, provider)),
            }
        }
        MSG_SRC_REMOVED => {
            need(msg, kind, size_of::<MsgSrcRef>())?;
            Msg::SrcRemoved {
                srcref: srcref(msg),
                flags,
            }
        }
        MSG_SRC_DESC => {
            need(msg, kind, size_of::<MsgSrcDescHdr>())?;
            let provider = u32_at(msg, offset_of!(MsgSrcDescHdr, provider));
            Msg::SrcDesc {
                srcref: srcref(msg),
                provider,
                flags,
                event_flags: u64_at(msg, offset_of!(MsgSrcDescHdr, event_flags)),
                desc: descriptor(&msg[size_of::<MsgSrcDescHdr>()..], provider, layout)?,
            }
        }
        MSG_SRC_COUNTS => {
            need(msg, kind, size_of::<MsgSrcCounts>())?;
            Msg::SrcCounts {
                srcref: srcref(msg),
                flags,
                event_flags: u64_at(msg, offset_of!(MsgSrcCounts, event_flags)),
                counts: counts(&msg[offset_of!(MsgSrcCounts, counts)..]),
            }
        }
        MSG_SRC_UPDATE => {
            need(msg, kind, size_of::<MsgSrcUpdateHdr>())?;
            let provider = u32_at(msg, offset_of!(MsgSrcUpdateHdr, provider));
            Msg::SrcUpdate {
                srcref: srcref(msg),
                provider,
                flags,
                event_flags: u64_at(msg, offset_of!(MsgSrcUpdateHdr, event_flags)),
                counts: counts(&msg[offset_of!(MsgSrcUpdateHdr, counts)..]),
                desc: descriptor(&msg[size_of::<MsgSrcUpdateHdr>()..], provider, layout)?,
            }
        }
        other => Msg::Other { kind: other },
    })
}

fn counts(b: &[u8]) -> Counts {
    Counts {
        rx_packets: u64_at(b, offset_of!(NstatCounts, rxpackets)),
        rx_bytes: u64_at(b, offset_of!(NstatCounts, rxbytes)),
        tx_packets: u64_at(b, offset_of!(NstatCounts, txpackets)),
        tx_bytes: u64_at(b, offset_of!(NstatCounts, txbytes)),
        tx_retransmit: u32_at(b, offset_of!(NstatCounts, txretransmit)),
        connect_attempts: u32_at(b, offset_of!(NstatCounts, connectattempts)),
        connect_successes: u32_at(b, offset_of!(NstatCounts, connectsuccesses)),
        avg_rtt: u32_at(b, offset_of!(NstatCounts, avg_rtt)),
    }
}

/// A provider's descriptor: `None` for providers not decoded here; an error when the bytes
/// are not exactly this layout's size (another release's layout, or a truncated message).
pub fn descriptor(
    data: &[u8],
    provider: u32,
    layout: &Layout,
) -> Result<Option<Descriptor>, String> {
    let Some(p) = Provider::from_id(provider) else {
        return Ok(None);
    };
    let o = if p.tcp_descriptor() {
        &layout.tcp
    } else {
        &layout.udp
    };
    if data.len() != o.size {
        return Err(format!(
            "ntstat: {} descriptor of {} bytes, the {} layout has {}",
            if p.tcp_descriptor() { "TCP" } else { "UDP" },
            data.len(),
            layout.name,
            o.size
        ));
    }
    let pname = &data[o.pname..o.pname + 64];
    let end = pname.iter().position(|&c| c == 0).unwrap_or(pname.len());
    Ok(Some(Descriptor {
        upid: u64_at(data, o.upid),
        eupid: u64_at(data, o.eupid),
        start_timestamp: u64_at(data, o.start_timestamp),
        ifindex: u32_at(data, o.ifindex),
        state: o.state.map(|s| u32_at(data, s)),
        pid: u32_at(data, o.pid),
        epid: u32_at(data, o.epid),
        pname: String::from_utf8_lossy(&pname[..end]).into_owned(),
        uuid: data[o.uuid..o.uuid + 16].try_into().expect("16 bytes"),
        euuid: data[o.euuid..o.euuid + 16].try_into().expect("16 bytes"),
        local: sockaddr(&data[o.local..o.local + 28]),
        remote: sockaddr(&data[o.remote..o.remote + 28]),
        persona_id: o.persona_id.map(|x| u32_at(data, x)),
        uid: o.uid.map(|x| u32_at(data, x)),
        ifnet_properties: if o.ifnet_properties_width == 2 {
            u16_at(data, o.ifnet_properties) as u32
        } else {
            u32_at(data, o.ifnet_properties)
        },
    }))
}

/// Darwin's `AF_INET` and `AF_INET6` (`bsd/sys/socket.h`).
pub const DARWIN_AF_INET: u8 = 2;
pub const DARWIN_AF_INET6: u8 = 30;

/// A Darwin `sockaddr_in`/`sockaddr_in6` (`sin_len`, `sin_family` bytes, port in network
/// order, IPv4 at 4 or IPv6 at 8, scope id at 24). `None` for an empty (family 0) address.
pub fn sockaddr(b: &[u8]) -> Option<(IpAddr, u16)> {
    let port = u16::from_be_bytes([b[2], b[3]]);
    match b[1] {
        DARWIN_AF_INET => Some((IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7])), port)),
        DARWIN_AF_INET6 => {
            let raw: [u8; 16] = b[8..24].try_into().expect("16 bytes");
            // Dual-stack sockets talking IPv4 come as ::ffff:a.b.c.d; an embedded scope
            // (KAME) is cleared like pcblist's.
            let (ip, _) = super::pcblist::kernel_ipv6(raw);
            Some((ip, port))
        }
        _ => None,
    }
}

/// A request header.
fn hdr(out: &mut Vec<u8>, context: u64, kind: u32, length: usize, flags: u16) {
    out.extend_from_slice(&context.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&(length as u16).to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
}

/// `ADD_ALL_SRCS` for one provider, filter 0 (every interface, no suppression) and no
/// extensions (those would need the privilege).
pub fn add_all_srcs(context: u64, provider: Provider) -> Vec<u8> {
    let mut m = Vec::with_capacity(size_of::<MsgAddAllSrcs>());
    hdr(
        &mut m,
        context,
        MSG_ADD_ALL_SRCS,
        size_of::<MsgAddAllSrcs>(),
        0,
    );
    m.extend_from_slice(&0u64.to_ne_bytes()); // filter
    m.extend_from_slice(&0u64.to_ne_bytes()); // events
    m.extend_from_slice(&(provider as u32).to_ne_bytes());
    m.extend_from_slice(&0i32.to_ne_bytes()); // target_pid
    m.extend_from_slice(&[0u8; 16]); // target_uuid
    debug_assert_eq!(m.len(), size_of::<MsgAddAllSrcs>());
    m
}

/// A request naming one source (or [`SRC_REF_ALL`]): GET_SRC_DESC, QUERY_SRC, GET_UPDATE.
pub fn src_request(context: u64, kind: u32, srcref: u64, flags: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(size_of::<MsgSrcRef>());
    hdr(&mut m, context, kind, size_of::<MsgSrcRef>(), flags);
    m.extend_from_slice(&srcref.to_ne_bytes());
    m
}

/// Message builders for tests and the fuzz seeds: each field written at its asserted offset,
/// as the kernel would.
pub mod fixtures {
    use super::*;

    fn put(b: &mut [u8], o: usize, v: &[u8]) {
        b[o..o + v.len()].copy_from_slice(v);
    }

    fn with_hdr(len: usize, context: u64, kind: u32, flags: u16) -> Vec<u8> {
        let mut m = Vec::new();
        hdr(&mut m, context, kind, len, flags);
        m.resize(len, 0);
        m
    }

    /// A flow as a descriptor should describe it.
    #[derive(Debug, Clone)]
    pub struct Flow {
        pub pid: u32,
        pub epid: u32,
        pub upid: u64,
        pub pname: String,
        pub uuid: [u8; 16],
        pub local: (IpAddr, u16),
        pub remote: (IpAddr, u16),
        pub state: u32,
        pub start_timestamp: u64,
        pub uid: u32,
        pub persona_id: u32,
        pub ifnet_properties: u32,
    }

    fn put_sockaddr(b: &mut [u8], o: usize, (ip, port): (IpAddr, u16)) {
        match ip {
            IpAddr::V4(v4) => {
                b[o] = 16;
                b[o + 1] = DARWIN_AF_INET;
                put(b, o + 4, &v4.octets());
            }
            IpAddr::V6(v6) => {
                b[o] = 28;
                b[o + 1] = DARWIN_AF_INET6;
                put(b, o + 8, &v6.octets());
            }
        }
        put(b, o + 2, &port.to_be_bytes());
    }

    /// The descriptor bytes of `flow` in `layout` for `provider`.
    pub fn descriptor_bytes(layout: &Layout, provider: Provider, flow: &Flow) -> Vec<u8> {
        let o = if provider.tcp_descriptor() {
            &layout.tcp
        } else {
            &layout.udp
        };
        let mut d = vec![0u8; o.size];
        put(&mut d, o.upid, &flow.upid.to_ne_bytes());
        put(&mut d, o.eupid, &flow.upid.to_ne_bytes());
        put(
            &mut d,
            o.start_timestamp,
            &flow.start_timestamp.to_ne_bytes(),
        );
        if let Some(s) = o.state {
            put(&mut d, s, &flow.state.to_ne_bytes());
        }
        put(&mut d, o.pid, &flow.pid.to_ne_bytes());
        put(&mut d, o.epid, &flow.epid.to_ne_bytes());
        put_sockaddr(&mut d, o.local, flow.local);
        put_sockaddr(&mut d, o.remote, flow.remote);
        let name = flow.pname.as_bytes();
        put(&mut d, o.pname, &name[..name.len().min(63)]);
        put(&mut d, o.uuid, &flow.uuid);
        if let (Some(p), Some(u)) = (o.persona_id, o.uid) {
            put(&mut d, p, &flow.persona_id.to_ne_bytes());
            put(&mut d, u, &flow.uid.to_ne_bytes());
        }
        if o.ifnet_properties_width == 2 {
            put(
                &mut d,
                o.ifnet_properties,
                &(flow.ifnet_properties as u16).to_ne_bytes(),
            );
        } else {
            put(
                &mut d,
                o.ifnet_properties,
                &flow.ifnet_properties.to_ne_bytes(),
            );
        }
        d
    }

    pub fn success(context: u64, flags: u16) -> Vec<u8> {
        with_hdr(size_of::<MsgHdr>(), context, MSG_SUCCESS, flags)
    }

    pub fn error(context: u64, errno: u32) -> Vec<u8> {
        let mut m = with_hdr(size_of::<MsgError>(), context, MSG_ERROR, 0);
        put(&mut m, offset_of!(MsgError, error), &errno.to_ne_bytes());
        m
    }

    pub fn src_added(srcref: u64, provider: Provider) -> Vec<u8> {
        let mut m = with_hdr(size_of::<MsgSrcAdded>(), 0, MSG_SRC_ADDED, 0);
        put(
            &mut m,
            offset_of!(MsgSrcAdded, srcref),
            &srcref.to_ne_bytes(),
        );
        put(
            &mut m,
            offset_of!(MsgSrcAdded, provider),
            &(provider as u32).to_ne_bytes(),
        );
        m
    }

    pub fn src_removed(srcref: u64, flags: u16) -> Vec<u8> {
        let mut m = with_hdr(size_of::<MsgSrcRef>(), 0, MSG_SRC_REMOVED, flags);
        put(&mut m, offset_of!(MsgSrcRef, srcref), &srcref.to_ne_bytes());
        m
    }

    pub fn src_desc(
        context: u64,
        srcref: u64,
        provider: Provider,
        desc: &[u8],
        flags: u16,
    ) -> Vec<u8> {
        let mut m = with_hdr(
            size_of::<MsgSrcDescHdr>() + desc.len(),
            context,
            MSG_SRC_DESC,
            flags,
        );
        put(
            &mut m,
            offset_of!(MsgSrcDescHdr, srcref),
            &srcref.to_ne_bytes(),
        );
        put(
            &mut m,
            offset_of!(MsgSrcDescHdr, provider),
            &(provider as u32).to_ne_bytes(),
        );
        put(&mut m, size_of::<MsgSrcDescHdr>(), desc);
        m
    }

    fn put_counts(m: &mut [u8], at: usize, c: &Counts) {
        put(
            m,
            at + offset_of!(NstatCounts, rxpackets),
            &c.rx_packets.to_ne_bytes(),
        );
        put(
            m,
            at + offset_of!(NstatCounts, rxbytes),
            &c.rx_bytes.to_ne_bytes(),
        );
        put(
            m,
            at + offset_of!(NstatCounts, txpackets),
            &c.tx_packets.to_ne_bytes(),
        );
        put(
            m,
            at + offset_of!(NstatCounts, txbytes),
            &c.tx_bytes.to_ne_bytes(),
        );
        put(
            m,
            at + offset_of!(NstatCounts, txretransmit),
            &c.tx_retransmit.to_ne_bytes(),
        );
        put(
            m,
            at + offset_of!(NstatCounts, connectattempts),
            &c.connect_attempts.to_ne_bytes(),
        );
        put(
            m,
            at + offset_of!(NstatCounts, connectsuccesses),
            &c.connect_successes.to_ne_bytes(),
        );
        put(
            m,
            at + offset_of!(NstatCounts, avg_rtt),
            &c.avg_rtt.to_ne_bytes(),
        );
    }

    pub fn src_counts(context: u64, srcref: u64, c: &Counts, flags: u16) -> Vec<u8> {
        let mut m = with_hdr(size_of::<MsgSrcCounts>(), context, MSG_SRC_COUNTS, flags);
        put(
            &mut m,
            offset_of!(MsgSrcCounts, srcref),
            &srcref.to_ne_bytes(),
        );
        put_counts(&mut m, offset_of!(MsgSrcCounts, counts), c);
        m
    }

    pub fn src_update(
        context: u64,
        srcref: u64,
        provider: Provider,
        c: &Counts,
        desc: &[u8],
        flags: u16,
    ) -> Vec<u8> {
        let mut m = with_hdr(
            size_of::<MsgSrcUpdateHdr>() + desc.len(),
            context,
            MSG_SRC_UPDATE,
            flags,
        );
        put(
            &mut m,
            offset_of!(MsgSrcUpdateHdr, srcref),
            &srcref.to_ne_bytes(),
        );
        put_counts(&mut m, offset_of!(MsgSrcUpdateHdr, counts), c);
        put(
            &mut m,
            offset_of!(MsgSrcUpdateHdr, provider),
            &(provider as u32).to_ne_bytes(),
        );
        put(&mut m, size_of::<MsgSrcUpdateHdr>(), desc);
        m
    }

    pub fn sample_flow() -> Flow {
        Flow {
            pid: 4242,
            epid: 4242,
            upid: 0x1_0000_1092,
            pname: "curl".into(),
            uuid: [7; 16],
            local: ("192.0.2.10".parse().unwrap(), 50123),
            remote: ("203.0.113.9".parse().unwrap(), 443),
            state: 4,
            start_timestamp: 24_000_000 * 100,
            uid: 501,
            persona_id: 0,
            ifnet_properties: 0x8, // NSTAT_IFNET_IS_WIFI
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn kernel_versions_pick_layouts_and_unknown_ones_have_none() {
        assert_eq!(darwin_major("23.6.0"), Some(23));
        assert_eq!(darwin_major("24.1.0\0"), Some(24));
        assert_eq!(darwin_major("garbage"), None);
        assert_eq!(layout_for_darwin(20), Some(&LAYOUT_MACOS_11));
        assert_eq!(layout_for_darwin(21), Some(&LAYOUT_MACOS_12_13));
        assert_eq!(layout_for_darwin(22), Some(&LAYOUT_MACOS_12_13));
        assert_eq!(layout_for_darwin(23), Some(&LAYOUT_MACOS_14_15));
        assert_eq!(layout_for_darwin(24), Some(&LAYOUT_MACOS_14_15));
        // macOS 26 (Darwin 25): no xnu tag to read the header from.
        assert_eq!(layout_for_darwin(25), None);
        assert_eq!(layout_for_darwin(19), None);
        assert_eq!(
            [20, 21, 22, 23, 24, 25].map(|d| macos_major(d).unwrap()),
            [11, 12, 13, 14, 15, 26]
        );
        assert_eq!(macos_major(19), None);
        assert_eq!(layout_for_release("24.6.0"), Ok(&LAYOUT_MACOS_14_15));
        let why = layout_for_release("25.0.0").unwrap_err();
        assert!(why.contains("Darwin 25 (macOS 26)"), "{why}");
        assert!(layout_for_release("")
            .unwrap_err()
            .contains("not a Darwin version"));
    }

    #[test]
    fn every_layout_parses_its_tcp_udp_and_quic_descriptors() {
        let flow = sample_flow();
        for layout in LAYOUTS {
            for provider in Provider::ALL {
                let d = descriptor_bytes(layout, provider, &flow);
                let msg = src_desc(0, 77, provider, &d, 0);
                let Msg::SrcDesc { srcref, desc, .. } = parse_message(&msg, layout).unwrap() else {
                    panic!("not a SRC_DESC");
                };
                let desc = desc.expect("decoded provider");
                assert_eq!(srcref, 77);
                assert_eq!(
                    (desc.pid, desc.epid, desc.upid),
                    (4242, 4242, flow.upid),
                    "{}",
                    layout.name
                );
                assert_eq!(desc.pname, "curl");
                assert_eq!(desc.uuid, [7; 16]);
                assert_eq!(desc.local, Some(flow.local));
                assert_eq!(desc.remote, Some(flow.remote));
                assert_eq!(desc.start_timestamp, flow.start_timestamp);
                assert_eq!(desc.ifnet_properties, 0x8, "{} {provider:?}", layout.name);
                assert_eq!(desc.state.is_some(), provider.tcp_descriptor());
                if provider.tcp_descriptor() {
                    assert_eq!(desc.state, Some(4));
                }
                assert_eq!(desc.uid.is_some(), layout.tcp.uid.is_some());
            }
        }
    }

    #[test]
    fn the_macos_14_insertion_is_read_by_the_14_layout_and_refused_by_the_13_one() {
        // macOS 14 put persona_id and uid after fuuid: pid, pname and the addresses stay where
        // they were, connstatus/ifnet_properties/fallback_mode move by 8 and the descriptor grows.
        let mut flow = sample_flow();
        flow.uid = 501;
        flow.persona_id = 99;
        flow.ifnet_properties = 0x2; // NSTAT_IFNET_IS_LOOPBACK
        for provider in [Provider::TcpKernel, Provider::UdpKernel] {
            let d14 = descriptor_bytes(&LAYOUT_MACOS_14_15, provider, &flow);
            let got = super::descriptor(&d14, provider as u32, &LAYOUT_MACOS_14_15)
                .unwrap()
                .unwrap();
            assert_eq!(
                (got.uid, got.persona_id, got.ifnet_properties),
                (Some(501), Some(99), 0x2)
            );
            assert_eq!((got.pid, got.pname.as_str()), (4242, "curl"));
            // The 13 layout refuses the 14 bytes by size rather than read uid as interface flags.
            let err = super::descriptor(&d14, provider as u32, &LAYOUT_MACOS_12_13).unwrap_err();
            assert!(
                err.contains("macOS 12-13") && err.contains("bytes"),
                "{err}"
            );
            // Trimmed to the 13 size, reading at 13 offsets gives the wrong fields: what the
            // assertions and the size check protect against.
            let o13 = if provider.tcp_descriptor() {
                LAYOUT_MACOS_12_13.tcp
            } else {
                LAYOUT_MACOS_12_13.udp
            };
            let wrong = super::descriptor(&d14[..o13.size], provider as u32, &LAYOUT_MACOS_12_13)
                .unwrap()
                .unwrap();
            // TCP: ifnet_properties@328 is the 14 uid; UDP: @264 is the 14 persona_id.
            let misread = if provider.tcp_descriptor() { 501 } else { 99 };
            assert_eq!(
                wrong.ifnet_properties, misread,
                "13 offsets read the 14 persona fields as interface flags"
            );
            assert_eq!(wrong.uid, None);
            // And a 13 descriptor is refused by the 14 layout.
            let d13 = descriptor_bytes(&LAYOUT_MACOS_12_13, provider, &flow);
            assert!(super::descriptor(&d13, provider as u32, &LAYOUT_MACOS_14_15).is_err());
        }
        // macOS 11 against 12: same size, but ifnet_properties was 16 bits.
        flow.ifnet_properties = 0x0001_0008;
        let d12 = descriptor_bytes(&LAYOUT_MACOS_12_13, Provider::TcpKernel, &flow);
        let as12 = super::descriptor(&d12, 2, &LAYOUT_MACOS_12_13)
            .unwrap()
            .unwrap();
        let as11 = super::descriptor(&d12, 2, &LAYOUT_MACOS_11)
            .unwrap()
            .unwrap();
        assert_eq!(
            (as12.ifnet_properties, as11.ifnet_properties),
            (0x0001_0008, 0x8)
        );
    }

    #[test]
    fn counts_updates_added_removed_and_errors() {
        let l = &LAYOUT_MACOS_14_15;
        let c = Counts {
            rx_packets: 3,
            rx_bytes: 1_000,
            tx_packets: 4,
            tx_bytes: 250,
            tx_retransmit: 1,
            connect_attempts: 1,
            connect_successes: 1,
            avg_rtt: 12,
        };
        assert_eq!(
            parse_message(&src_counts(9, 5, &c, FLAG_CLOSING), l).unwrap(),
            Msg::SrcCounts {
                srcref: 5,
                flags: FLAG_CLOSING,
                event_flags: 0,
                counts: c
            }
        );
        let d = descriptor_bytes(l, Provider::QuicUserland, &sample_flow());
        let Msg::SrcUpdate {
            srcref,
            provider,
            counts,
            desc,
            ..
        } = parse_message(&src_update(0, 6, Provider::QuicUserland, &c, &d, 0), l).unwrap()
        else {
            panic!()
        };
        assert_eq!((srcref, provider, counts), (6, 8, c));
        assert_eq!(desc.unwrap().remote, Some(sample_flow().remote));
        assert_eq!(
            parse_message(&src_added(8, Provider::UdpUserland), l).unwrap(),
            Msg::SrcAdded {
                srcref: 8,
                provider: 5
            }
        );
        assert_eq!(
            parse_message(&src_removed(8, FLAG_CLOSED_AFTER_DROP), l).unwrap(),
            Msg::SrcRemoved {
                srcref: 8,
                flags: FLAG_CLOSED_AFTER_DROP
            }
        );
        assert_eq!(
            parse_message(&error(3, 1), l).unwrap(),
            Msg::Error {
                context: 3,
                errno: 1
            }
        );
        assert_eq!(
            parse_message(&success(3, FLAG_CONTINUATION), l).unwrap(),
            Msg::Success {
                context: 3,
                flags: FLAG_CONTINUATION
            }
        );
    }

    #[test]
    fn requests_have_the_header_sizes() {
        let a = add_all_srcs(1, Provider::QuicUserland);
        assert_eq!(a.len(), 56);
        assert_eq!(u32_at(&a, 8), MSG_ADD_ALL_SRCS);
        assert_eq!(u16_at(&a, 12), 56);
        assert_eq!(u32_at(&a, 32), 8);
        let q = src_request(2, MSG_GET_UPDATE, SRC_REF_ALL, FLAG_CONTINUATION);
        assert_eq!(
            (q.len(), u16_at(&q, 12), u16_at(&q, 14), u64_at(&q, 16)),
            (24, 24, 2, u64::MAX)
        );
    }

    #[test]
    fn aggregated_datagrams_split_and_garbage_keeps_what_came_before() {
        let l = &LAYOUT_MACOS_12_13;
        let mut dgram = src_added(1, Provider::TcpKernel);
        dgram.extend(src_removed(2, 0));
        dgram.extend(success(7, 0));
        let (msgs, err) = split_datagram(&dgram);
        assert_eq!((msgs.len(), err), (3, None));
        // A lying length in the third message: the first two survive, one clear error.
        let mut lying = dgram.clone();
        let third = 32 + 24;
        lying[third + 12..third + 14].copy_from_slice(&999u16.to_ne_bytes());
        let (msgs, err) = split_datagram(&lying);
        assert_eq!(msgs.len(), 2);
        assert!(err.unwrap().contains("claims 999 bytes"));
        // Stray tail bytes.
        let (msgs, err) = split_datagram(&dgram[..dgram.len() - 3]);
        assert_eq!(msgs.len(), 2);
        assert!(err.is_some());
        // Truncated messages of every type are errors, not panics.
        let d = descriptor_bytes(l, Provider::TcpKernel, &sample_flow());
        for full in [
            src_added(1, Provider::TcpKernel),
            src_removed(1, 0),
            src_desc(0, 1, Provider::TcpKernel, &d, 0),
            src_counts(0, 1, &Counts::default(), 0),
            src_update(0, 1, Provider::TcpKernel, &Counts::default(), &d, 0),
            error(0, 5),
        ] {
            for cut in [0, 8, 15, 17, full.len() - 1] {
                assert!(
                    parse_message(&full[..cut], l).is_err(),
                    "cut {cut} of {}",
                    full.len()
                );
            }
        }
        // Unknown providers are skipped, not misread.
        let mut other = src_desc(0, 1, Provider::TcpKernel, &[0u8; 12], 0);
        other[32..36].copy_from_slice(&6u32.to_ne_bytes()); // NSTAT_PROVIDER_IFNET
        assert!(matches!(
            parse_message(&other, l).unwrap(),
            Msg::SrcDesc { desc: None, .. }
        ));
    }
}
