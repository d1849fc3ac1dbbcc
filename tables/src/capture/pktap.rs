//! Darwin's pktap header (xnu `bsd/net/pktap.h`, `struct pktap_header`, under `#ifdef
//! PRIVATE`): what the `pktap` pseudo-interface puts before each packet so a capture knows the
//! process that sent or received it.
//!
//! Two layouts exist. Up to macOS 15.1 (xnu-11215.41.3) byte 73 is padding and `pth_ipproto` is
//! a u32 at 112; from macOS 15.2 (xnu-11215.61.5) `pth_ipproto` is a u8 at 73 and 112 holds the
//! u32 `pth_comp_gencnt`. Every other field keeps its offset from macOS 12 on, and the struct
//! has no `#pragma pack`, so natural alignment gives 156 bytes on x86_64 and arm64 alike. The
//! numbers below were computed from the header of each xnu tag and are asserted at compile time.
//! Link type: `DLT_PKTAP` = `DLT_USER2` = 149 (xnu `bsd/net/bpf.h`); Apple's libpcap also writes
//! 149 into files, upstream libpcap's `LINKTYPE_PKTAP` is 258.

use std::mem::{offset_of, size_of};

pub const DLT_PKTAP: i32 = 149;
pub const LINKTYPE_PKTAP: i32 = 258;

/// `pth_type_next` of a packet record (`PTH_TYPE_PACKET`).
pub const PTH_TYPE_PACKET: u32 = 1;
pub const PTH_FLAG_DIR_IN: u32 = 0x1;
pub const PTH_FLAG_DIR_OUT: u32 = 0x2;
pub const PTH_FLAG_PROC_DELEGATED: u32 = 0x4;
pub const PTH_FLAG_NEW_FLOW: u32 = 0x4000;
/// Set when the kernel wrote the smaller `pktap_v2_hdr` (only after `BIOCSPKTHDRV2`, which
/// launchwatch never sets): those records are refused rather than misread.
pub const PTH_FLAG_V2_HDR: u32 = 0x80000;

/// `MAXCOMLEN + 1` (xnu `bsd/sys/param.h`: MAXCOMLEN 16).
const COMM_LEN: usize = 17;
/// `PKTAP_IFXNAMESIZE` = IF_NAMESIZE 16 + 8 (pktap.h).
const IFXNAMESIZE: usize = 24;

/// `struct pktap_header` up to macOS 15.1 (xnu-8792 … xnu-11215.41.3).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PktapHeaderTo151 {
    pub pth_length: u32,
    pub pth_type_next: u32,
    pub pth_dlt: u32,
    pub pth_ifname: [u8; IFXNAMESIZE],
    pub pth_flags: u32,
    pub pth_protocol_family: u32,
    pub pth_frame_pre_length: u32,
    pub pth_frame_post_length: u32,
    pub pth_pid: i32,
    pub pth_comm: [u8; COMM_LEN],
    pub pth_pad1: u8,
    pub pth_trace_tag: u16,
    pub pth_svc: u32,
    pub pth_iftype: u16,
    pub pth_ifunit: u16,
    pub pth_epid: i32,
    pub pth_ecomm: [u8; COMM_LEN],
    pub pth_pad2: u8,
    pub pth_pad3: u16,
    pub pth_flowid: u32,
    pub pth_ipproto: u32,
    /// `struct timeval32 { int32 tv_sec; int32 tv_usec; }`
    pub pth_tstamp: [i32; 2],
    pub pth_uuid: [u8; 16],
    pub pth_euuid: [u8; 16],
}

/// `struct pktap_header` from macOS 15.2 (xnu-11215.61.5 and later).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PktapHeaderFrom152 {
    pub pth_length: u32,
    pub pth_type_next: u32,
    pub pth_dlt: u32,
    pub pth_ifname: [u8; IFXNAMESIZE],
    pub pth_flags: u32,
    pub pth_protocol_family: u32,
    pub pth_frame_pre_length: u32,
    pub pth_frame_post_length: u32,
    pub pth_pid: i32,
    pub pth_comm: [u8; COMM_LEN],
    pub pth_ipproto: u8,
    pub pth_trace_tag: u16,
    pub pth_svc: u32,
    pub pth_iftype: u16,
    pub pth_ifunit: u16,
    pub pth_epid: i32,
    pub pth_ecomm: [u8; COMM_LEN],
    pub pth_pad2: u8,
    pub pth_pad3: u16,
    pub pth_flowid: u32,
    pub pth_comp_gencnt: u32,
    pub pth_tstamp: [i32; 2],
    pub pth_uuid: [u8; 16],
    pub pth_euuid: [u8; 16],
}

// Sizes and offsets computed from xnu bsd/net/pktap.h of every tag xnu-8792.41.9 …
// xnu-11417.121.6 (identical on x86_64 and arm64); the move of pth_ipproto is between
// xnu-11215.41.3 and xnu-11215.61.5.
macro_rules! assert_layout {
    ($t:ty, $($field:ident @ $off:expr),* ; size $size:expr) => {
        const _: () = assert!(size_of::<$t>() == $size);
        $(const _: () = assert!(offset_of!($t, $field) == $off);)*
    };
}
assert_layout!(PktapHeaderTo151,
    pth_length @ 0, pth_type_next @ 4, pth_dlt @ 8, pth_ifname @ 12, pth_flags @ 36,
    pth_protocol_family @ 40, pth_frame_pre_length @ 44, pth_frame_post_length @ 48,
    pth_pid @ 52, pth_comm @ 56, pth_pad1 @ 73, pth_trace_tag @ 74, pth_svc @ 76,
    pth_iftype @ 80, pth_ifunit @ 82, pth_epid @ 84, pth_ecomm @ 88, pth_pad2 @ 105,
    pth_pad3 @ 106, pth_flowid @ 108, pth_ipproto @ 112, pth_tstamp @ 116, pth_uuid @ 124,
    pth_euuid @ 140; size 156);
assert_layout!(PktapHeaderFrom152,
    pth_length @ 0, pth_type_next @ 4, pth_dlt @ 8, pth_ifname @ 12, pth_flags @ 36,
    pth_protocol_family @ 40, pth_frame_pre_length @ 44, pth_frame_post_length @ 48,
    pth_pid @ 52, pth_comm @ 56, pth_ipproto @ 73, pth_trace_tag @ 74, pth_svc @ 76,
    pth_iftype @ 80, pth_ifunit @ 82, pth_epid @ 84, pth_ecomm @ 88, pth_pad2 @ 105,
    pth_pad3 @ 106, pth_flowid @ 108, pth_comp_gencnt @ 112, pth_tstamp @ 116, pth_uuid @ 124,
    pth_euuid @ 140; size 156);

/// Which header the running kernel writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PktapLayout {
    /// macOS ≤ 15.1.
    To151,
    /// macOS ≥ 15.2.
    From152,
}

impl PktapLayout {
    /// From `kern.osproductversion` ("15.1.1", "15.2", "26.0").
    pub fn for_macos_version(version: &str) -> PktapLayout {
        let mut parts = version
            .split('.')
            .map(|p| p.trim().parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if (major, minor) >= (15, 2) {
            PktapLayout::From152
        } else {
            PktapLayout::To151
        }
    }
}

/// The facts launchwatch uses from one pktap header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PktapMeta {
    pub dlt: u32,
    pub flags: u32,
    pub ifname: String,
    /// The process that last used the socket (0 or negative when the kernel did not know).
    pub pid: i32,
    pub comm: String,
    /// The effective (delegated) process, when another process acted for `pid`.
    pub epid: i32,
    pub ecomm: String,
    /// IP protocol as the header says; read from the packet itself where it matters.
    pub ipproto: u32,
}

impl PktapMeta {
    /// The process to attribute: the delegated one when the kernel says so.
    pub fn process(&self) -> Option<(i32, &str)> {
        if self.flags & PTH_FLAG_PROC_DELEGATED != 0 && self.epid > 0 {
            Some((self.epid, &self.ecomm))
        } else if self.pid > 0 {
            Some((self.pid, &self.comm))
        } else {
            None
        }
    }

    pub fn outgoing(&self) -> bool {
        self.flags & PTH_FLAG_DIR_OUT != 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PktapError {
    Short,
    /// `pth_length` smaller than the header or past the record.
    Length(u32),
    V2Header,
    NotAPacket(u32),
}

fn u32_le(b: &[u8], o: usize) -> u32 {
    // Darwin runs little-endian on every supported CPU; the header is in host order.
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Reads one pktap record: the header facts and the frame that follows (`pth_length` on).
pub fn parse(record: &[u8], layout: PktapLayout) -> Result<(PktapMeta, &[u8]), PktapError> {
    // The fields shared by both layouts sit at the same offsets (asserted above).
    type H = PktapHeaderTo151;
    if record.len() < size_of::<H>() {
        return Err(PktapError::Short);
    }
    let length = u32_le(record, offset_of!(H, pth_length));
    if (length as usize) < size_of::<H>() || length as usize > record.len() {
        return Err(PktapError::Length(length));
    }
    let flags = u32_le(record, offset_of!(H, pth_flags));
    if flags & PTH_FLAG_V2_HDR != 0 {
        return Err(PktapError::V2Header);
    }
    let type_next = u32_le(record, offset_of!(H, pth_type_next));
    if type_next != PTH_TYPE_PACKET {
        return Err(PktapError::NotAPacket(type_next));
    }
    let comm = |o: usize| c_string(&record[o..o + COMM_LEN]);
    let ipproto = match layout {
        PktapLayout::To151 => u32_le(record, offset_of!(PktapHeaderTo151, pth_ipproto)),
        PktapLayout::From152 => u32::from(record[offset_of!(PktapHeaderFrom152, pth_ipproto)]),
    };
    let meta = PktapMeta {
        dlt: u32_le(record, offset_of!(H, pth_dlt)),
        flags,
        ifname: c_string(&record[offset_of!(H, pth_ifname)..][..IFXNAMESIZE]),
        pid: u32_le(record, offset_of!(H, pth_pid)) as i32,
        comm: comm(offset_of!(H, pth_comm)),
        epid: u32_le(record, offset_of!(H, pth_epid)) as i32,
        ecomm: comm(offset_of!(H, pth_ecomm)),
        ipproto,
    };
    Ok((meta, &record[length as usize..]))
}

/// A pktap record as xnu writes it, for tests and fixtures.
pub fn build(
    layout: PktapLayout,
    dlt: u32,
    flags: u32,
    pid: i32,
    comm: &str,
    ipproto: u8,
    frame: &[u8],
) -> Vec<u8> {
    type H = PktapHeaderTo151;
    let mut h = vec![0u8; size_of::<H>()];
    let put = |h: &mut Vec<u8>, o: usize, v: u32| h[o..o + 4].copy_from_slice(&v.to_le_bytes());
    put(&mut h, offset_of!(H, pth_length), size_of::<H>() as u32);
    put(&mut h, offset_of!(H, pth_type_next), PTH_TYPE_PACKET);
    put(&mut h, offset_of!(H, pth_dlt), dlt);
    h[offset_of!(H, pth_ifname)..][..3].copy_from_slice(b"lo0");
    put(&mut h, offset_of!(H, pth_flags), flags);
    put(&mut h, offset_of!(H, pth_pid), pid as u32);
    let c = comm.as_bytes();
    h[offset_of!(H, pth_comm)..][..c.len().min(16)].copy_from_slice(&c[..c.len().min(16)]);
    put(&mut h, offset_of!(H, pth_epid), pid as u32);
    match layout {
        PktapLayout::To151 => put(
            &mut h,
            offset_of!(PktapHeaderTo151, pth_ipproto),
            u32::from(ipproto),
        ),
        PktapLayout::From152 => {
            h[offset_of!(PktapHeaderFrom152, pth_ipproto)] = ipproto;
            // comp_gencnt now lives where ipproto was: a value that must not be read as one.
            put(
                &mut h,
                offset_of!(PktapHeaderFrom152, pth_comp_gencnt),
                0x0102_0304,
            );
        }
    }
    h.extend_from_slice(frame);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A macOS 15.1 record for curl (pid 4242) sending TCP on lo0, byte for byte.
    fn fixture_151() -> Vec<u8> {
        let mut h = vec![0u8; 156];
        h[0] = 156; // pth_length
        h[4] = 1; // PTH_TYPE_PACKET
        h[8] = 0; // pth_dlt = DLT_NULL (lo0)
        h[12..15].copy_from_slice(b"lo0");
        h[36] = 0x02; // DIR_OUT
        h[40] = 2; // PF_INET
        h[52..56].copy_from_slice(&4242i32.to_le_bytes());
        h[56..60].copy_from_slice(b"curl");
        h[84..88].copy_from_slice(&4242i32.to_le_bytes());
        h[88..92].copy_from_slice(b"curl");
        h[112] = 6; // pth_ipproto u32 = TCP
        h.extend_from_slice(&[2, 0, 0, 0, 0x45]);
        h
    }

    #[test]
    fn a_151_record_from_bytes() {
        let rec = fixture_151();
        let (m, frame) = parse(&rec, PktapLayout::To151).unwrap();
        assert_eq!(
            (m.pid, m.comm.as_str(), m.ifname.as_str(), m.ipproto, m.dlt),
            (4242, "curl", "lo0", 6, 0)
        );
        assert!(m.outgoing());
        assert_eq!(m.process(), Some((4242, "curl")));
        assert_eq!(frame, &[2, 0, 0, 0, 0x45]);
    }

    #[test]
    fn a_152_record_reads_ipproto_from_byte_73_not_112() {
        let mut rec = fixture_151();
        rec[112..116].copy_from_slice(&0x0000_abcdu32.to_le_bytes()); // pth_comp_gencnt
        rec[73] = 17; // pth_ipproto = UDP
        let (m, _) = parse(&rec, PktapLayout::From152).unwrap();
        assert_eq!((m.ipproto, m.pid, m.comm.as_str()), (17, 4242, "curl"));
        let (old, _) = parse(&rec, PktapLayout::To151).unwrap();
        assert_eq!(old.ipproto, 0xabcd, "the old layout reads 112");
        // The builder writes what the parser reads, both ways.
        for layout in [PktapLayout::To151, PktapLayout::From152] {
            let b = build(layout, 0, PTH_FLAG_DIR_IN, 77, "agent", 6, b"xy");
            let (m, f) = parse(&b, layout).unwrap();
            assert_eq!(
                (m.pid, m.comm.as_str(), m.ipproto, f),
                (77, "agent", 6, &b"xy"[..])
            );
        }
    }

    #[test]
    fn delegated_process_and_versions() {
        let mut rec = fixture_151();
        rec[36] |= PTH_FLAG_PROC_DELEGATED as u8;
        rec[84..88].copy_from_slice(&99i32.to_le_bytes());
        rec[88..92].copy_from_slice(b"app\0");
        let (m, _) = parse(&rec, PktapLayout::To151).unwrap();
        assert_eq!(m.process(), Some((99, "app")));
        assert_eq!(PktapLayout::for_macos_version("15.1.1"), PktapLayout::To151);
        assert_eq!(PktapLayout::for_macos_version("14.7"), PktapLayout::To151);
        assert_eq!(PktapLayout::for_macos_version("15.2"), PktapLayout::From152);
        assert_eq!(PktapLayout::for_macos_version("26.0"), PktapLayout::From152);
    }

    #[test]
    fn bad_records_are_refused() {
        let rec = fixture_151();
        assert_eq!(
            parse(&rec[..100], PktapLayout::To151),
            Err(PktapError::Short)
        );
        let mut long = rec.clone();
        long[0..4].copy_from_slice(&5000u32.to_le_bytes());
        assert_eq!(
            parse(&long, PktapLayout::To151),
            Err(PktapError::Length(5000))
        );
        let mut v2 = rec.clone();
        v2[36..40].copy_from_slice(&PTH_FLAG_V2_HDR.to_le_bytes());
        assert_eq!(parse(&v2, PktapLayout::To151), Err(PktapError::V2Header));
        let mut drop = rec;
        drop[4] = 2;
        assert_eq!(
            parse(&drop, PktapLayout::To151),
            Err(PktapError::NotAPacket(2))
        );
    }
}
