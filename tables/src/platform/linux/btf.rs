//! The few facts of the running kernel's BTF (`/sys/kernel/btf/vmlinux`) the descriptor
//! iterator needs ([`super::fd_iter`]): where `struct file` keeps its inode, where `struct
//! inode` keeps its mode, number and superblock, where `struct super_block` keeps its magic,
//! where `struct task_struct` keeps its tgid, and the type id of the `bpf_iter_task_file`
//! iterator function. Pure: reads from any `Read + Seek`, so tests
//! feed built bytes. No I/O of its own.
//!
//! Format (Documentation/bpf/btf.rst, include/uapi/linux/btf.h): a header `{ u16 magic 0xeb9f;
//! u8 version; u8 flags; u32 hdr_len; u32 type_off, type_len, str_off, str_len }` (offsets
//! after the header), then type records `{ u32 name_off; u32 info; u32 size_or_type }` with
//! `vlen = info & 0xffff`, `kind = (info >> 24) & 0x1f`, `kind_flag = info >> 31`, each
//! followed by kind-specific data (see [`extra_len`]); type ids count from 1. Struct members
//! are `{ u32 name_off; u32 type; u32 offset }`, the offset in bits (with `kind_flag`, the
//! low 24 bits, a bitfield size above).
//!
//! The whole file is ~5.5 MB; it is streamed (strings first, then types) so reading it does
//! not raise the extension's peak memory by that much: what is kept is one byte and one word
//! per type (~0.6 MB while reading, freed after).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};

const MAGIC: u16 = 0xeb9f;
const KIND_INT: u8 = 1;
const KIND_PTR: u8 = 2;
const KIND_STRUCT: u8 = 4;
const KIND_ENUM: u8 = 6;
const KIND_TYPEDEF: u8 = 8;
const KIND_VOLATILE: u8 = 9;
const KIND_CONST: u8 = 10;
const KIND_RESTRICT: u8 = 11;
const KIND_FUNC: u8 = 12;
const KIND_TYPE_TAG: u8 = 18;
const KIND_ENUM64: u8 = 19;

/// A struct member the iterator program reads: byte offset and size of its (resolved) type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub offset: u32,
    pub size: u32,
}

/// What [`super::fd_iter`] needs from the kernel's BTF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IterFacts {
    /// Type id of the `bpf_iter_task_file` function: the program's attach point.
    pub attach_btf_id: u32,
    /// `struct file.f_inode` (a pointer).
    pub file_inode: Member,
    /// `struct inode.i_mode` (umode_t).
    pub inode_mode: Member,
    /// `struct inode.i_ino` (unsigned long, or u64).
    pub inode_number: Member,
    /// `struct inode.i_sb` (a pointer).
    pub inode_sb: Member,
    /// `struct super_block.s_magic` (unsigned long): sockfs's tells a socket from a socket
    /// *file* on disk (an `O_PATH` descriptor of a Unix socket's path), whose mode is
    /// `S_IFSOCK` too.
    pub sb_magic: Member,
    /// `struct task_struct.tgid` (pid_t).
    pub task_tgid: Member,
}

/// The names looked for, in one table so the string pass finds them all in one go.
const STRUCT_FILE: &str = "file";
const STRUCT_INODE: &str = "inode";
const STRUCT_TASK: &str = "task_struct";
const STRUCT_SB: &str = "super_block";
const ITER_FUNC: &str = "bpf_iter_task_file";
const F_INODE: &str = "f_inode";
const I_MODE: &str = "i_mode";
const I_INO: &str = "i_ino";
const TGID: &str = "tgid";
const I_SB: &str = "i_sb";
const S_MAGIC: &str = "s_magic";
const NAMES: [&str; 11] = [
    STRUCT_FILE,
    STRUCT_INODE,
    STRUCT_TASK,
    STRUCT_SB,
    I_SB,
    S_MAGIC,
    ITER_FUNC,
    F_INODE,
    I_MODE,
    I_INO,
    TGID,
];

struct Header {
    hdr_len: u64,
    type_off: u64,
    type_len: u64,
    str_off: u64,
    str_len: u64,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn read_header(r: &mut impl Read) -> Result<Header, String> {
    let mut h = [0u8; 24];
    r.read_exact(&mut h)
        .map_err(|e| format!("BTF header: {e}"))?;
    let magic = u16::from_le_bytes([h[0], h[1]]);
    if magic != MAGIC {
        // A big-endian BTF would read 0x9feb here; this reader is for the host's own kernel.
        return Err(format!("BTF magic {magic:#06x}, expected {MAGIC:#06x}"));
    }
    let hdr_len = u64::from(u32_at(&h, 4));
    if hdr_len < 24 {
        return Err(format!("BTF header length {hdr_len} < 24"));
    }
    Ok(Header {
        hdr_len,
        type_off: u64::from(u32_at(&h, 8)),
        type_len: u64::from(u32_at(&h, 12)),
        str_off: u64::from(u32_at(&h, 16)),
        str_len: u64::from(u32_at(&h, 20)),
    })
}

/// Offsets in the string section of each wanted name (a name may be there more than once).
fn find_names(r: impl Read, len: u64) -> Result<HashMap<u32, &'static str>, String> {
    let mut r = BufReader::with_capacity(64 * 1024, r.take(len));
    let mut found = HashMap::new();
    let mut at: u64 = 0;
    let mut s = Vec::with_capacity(64);
    loop {
        s.clear();
        let n = r
            .read_until(0, &mut s)
            .map_err(|e| format!("BTF strings: {e}"))?;
        if n == 0 {
            break;
        }
        let name = s.strip_suffix(&[0]).unwrap_or(&s);
        if let Some(known) = NAMES.iter().find(|k| k.as_bytes() == name) {
            let off = u32::try_from(at).map_err(|_| "BTF strings: section over 4 GiB")?;
            found.insert(off, *known);
        }
        at += n as u64;
    }
    if at != len {
        return Err(format!("BTF strings: {at} bytes of {len}"));
    }
    Ok(found)
}

/// Bytes of kind-specific data after a type record (btf.rst §2.2); unknown kinds cannot be
/// stepped over.
fn extra_len(kind: u8, vlen: u32) -> Result<u64, String> {
    let vlen = u64::from(vlen);
    Ok(match kind {
        1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
        2 | 7..=12 | 16 | 18 => 0,    // PTR, FWD, TYPEDEF … FUNC, FLOAT, TYPE_TAG
        3 => 12,                      // ARRAY
        4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
        6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
        other => return Err(format!("BTF kind {other} unknown to this reader")),
    })
}

/// A wanted struct's wanted members, as found: (member name, bit offset, bitfield?, type id).
type Found = Vec<(&'static str, u32, bool, u32)>;

/// Reads what the descriptor iterator needs. Errors say what was missing or malformed.
pub fn iter_facts(mut r: impl Read + Seek) -> Result<IterFacts, String> {
    let h = read_header(&mut r)?;
    r.seek(SeekFrom::Start(h.hdr_len + h.str_off))
        .map_err(|e| format!("BTF strings: {e}"))?;
    let names = find_names(&mut r, h.str_len)?;
    r.seek(SeekFrom::Start(h.hdr_len + h.type_off))
        .map_err(|e| format!("BTF types: {e}"))?;
    let mut r = BufReader::with_capacity(64 * 1024, (&mut r).take(h.type_len));

    // Per type id (index 0 is void): its kind and its size or referenced type.
    let mut kinds: Vec<u8> = vec![0];
    let mut size_or_type: Vec<u32> = vec![0];
    let mut structs: HashMap<&'static str, Found> = HashMap::new();
    let mut attach = None;
    let mut read: u64 = 0;
    let mut rec = [0u8; 12];
    while read < h.type_len {
        r.read_exact(&mut rec)
            .map_err(|e| format!("BTF type {}: {e}", kinds.len()))?;
        read += 12;
        let (name_off, info, sot) = (u32_at(&rec, 0), u32_at(&rec, 4), u32_at(&rec, 8));
        let (kind, vlen, kind_flag) = (((info >> 24) & 0x1f) as u8, info & 0xffff, info >> 31 == 1);
        let name = names.get(&name_off).copied();
        let extra = extra_len(kind, vlen)?;
        let wanted_struct = kind == KIND_STRUCT
            && matches!(
                name,
                Some(STRUCT_FILE | STRUCT_INODE | STRUCT_TASK | STRUCT_SB)
            );
        if wanted_struct {
            let mut members = Found::new();
            for _ in 0..vlen {
                r.read_exact(&mut rec)
                    .map_err(|e| format!("BTF members of {}: {e}", name.unwrap_or("")))?;
                let member = names.get(&u32_at(&rec, 0)).copied();
                if let Some(m @ (F_INODE | I_MODE | I_INO | TGID | I_SB | S_MAGIC)) = member {
                    let off = u32_at(&rec, 8);
                    let (bits, bitfield) = if kind_flag {
                        (off & 0x00ff_ffff, off >> 24 != 0)
                    } else {
                        (off, false)
                    };
                    members.push((m, bits, bitfield, u32_at(&rec, 4)));
                }
            }
            // Two structs of one name (modules, or a kernel built without dedup): the one
            // holding the members wins.
            if !members.is_empty() {
                structs.insert(name.unwrap_or_default(), members);
            }
        } else {
            std::io::copy(&mut (&mut r).take(extra), &mut std::io::sink())
                .map_err(|e| format!("BTF type {}: {e}", kinds.len()))
                .and_then(|n| {
                    (n == extra)
                        .then_some(())
                        .ok_or_else(|| format!("BTF type {}: truncated", kinds.len()))
                })?;
        }
        read += extra;
        if kind == KIND_FUNC && name == Some(ITER_FUNC) {
            attach = Some(kinds.len() as u32);
        }
        kinds.push(kind);
        size_or_type.push(sot);
    }
    if read != h.type_len {
        return Err(format!("BTF types: {read} bytes of {}", h.type_len));
    }

    // The type a member's type names once typedefs and qualifiers are stripped; a chain
    // longer than this is malformed (or a loop).
    let resolve = |mut id: u32| -> Option<u32> {
        for _ in 0..32 {
            match *kinds.get(id as usize)? {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = size_or_type[id as usize]
                }
                _ => return Some(id),
            }
        }
        None
    };
    let member = |s: &'static str, m: &'static str, pointer: bool| -> Result<Member, String> {
        let (_, bits, bitfield, ty) = structs
            .get(s)
            .and_then(|f| f.iter().find(|x| x.0 == m))
            .ok_or_else(|| format!("BTF: struct {s} has no direct member {m}"))?;
        if *bitfield || bits % 8 != 0 {
            return Err(format!("BTF: {s}.{m} is a bitfield"));
        }
        let unknown = || format!("BTF: size of {s}.{m} unknown");
        let resolved = resolve(*ty).ok_or_else(unknown)?;
        let size = match kinds[resolved as usize] {
            KIND_INT | KIND_ENUM | KIND_ENUM64 | KIND_STRUCT => size_or_type[resolved as usize],
            KIND_PTR => std::mem::size_of::<usize>() as u32,
            _ => return Err(unknown()),
        };
        if (kinds[resolved as usize] == KIND_PTR) != pointer {
            return Err(format!("BTF: {s}.{m} is not the type expected"));
        }
        Ok(Member {
            offset: bits / 8,
            size,
        })
    };
    let facts = IterFacts {
        attach_btf_id: attach.ok_or_else(|| format!("BTF: no function {ITER_FUNC}"))?,
        file_inode: member(STRUCT_FILE, F_INODE, true)?,
        inode_mode: member(STRUCT_INODE, I_MODE, false)?,
        inode_number: member(STRUCT_INODE, I_INO, false)?,
        inode_sb: member(STRUCT_INODE, I_SB, true)?,
        sb_magic: member(STRUCT_SB, S_MAGIC, false)?,
        task_tgid: member(STRUCT_TASK, TGID, false)?,
    };
    // The program loads these with fixed widths: anything else is a kernel this was not
    // written for.
    let widths: [(Member, &[u32], &str); 4] = [
        (facts.inode_mode, &[2], I_MODE),
        (facts.task_tgid, &[4], TGID),
        (facts.inode_number, &[4, 8], I_INO),
        (facts.sb_magic, &[4, 8], S_MAGIC),
    ];
    for (m, allowed, what) in widths {
        if !allowed.contains(&m.size) {
            let allowed: Vec<String> = allowed.iter().map(u32::to_string).collect();
            return Err(format!(
                "BTF: {what} is {} bytes, expected {}",
                m.size,
                allowed.join(" or ")
            ));
        }
    }
    Ok(facts)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Cursor;

    /// Builds a BTF blob: `types` are (name, info, size_or_type, extra bytes).
    pub(crate) struct Builder {
        strings: Vec<u8>,
        types: Vec<u8>,
        next_id: u32,
    }

    impl Builder {
        pub(crate) fn new() -> Self {
            Builder {
                strings: vec![0],
                types: Vec::new(),
                next_id: 1,
            }
        }

        fn name(&mut self, s: &str) -> u32 {
            if s.is_empty() {
                return 0;
            }
            let at = self.strings.len() as u32;
            self.strings.extend_from_slice(s.as_bytes());
            self.strings.push(0);
            at
        }

        fn add(
            &mut self,
            name: &str,
            kind: u8,
            vlen: u32,
            flag: bool,
            sot: u32,
            extra: &[u8],
        ) -> u32 {
            let n = self.name(name);
            let info = (u32::from(kind) << 24) | vlen | if flag { 1 << 31 } else { 0 };
            for w in [n, info, sot] {
                self.types.extend_from_slice(&w.to_le_bytes());
            }
            self.types.extend_from_slice(extra);
            self.next_id += 1;
            self.next_id - 1
        }

        pub(crate) fn int(&mut self, name: &str, size: u32) -> u32 {
            self.add(name, KIND_INT, 0, false, size, &(size * 8).to_le_bytes())
        }

        pub(crate) fn typedef(&mut self, name: &str, of: u32) -> u32 {
            self.add(name, KIND_TYPEDEF, 0, false, of, &[])
        }

        pub(crate) fn ptr(&mut self, to: u32) -> u32 {
            self.add("", KIND_PTR, 0, false, to, &[])
        }

        pub(crate) fn structure(
            &mut self,
            name: &str,
            size: u32,
            members: &[(&str, u32, u32)],
        ) -> u32 {
            let mut extra = Vec::new();
            for (m, ty, bits) in members {
                let n = self.name(m);
                for w in [n, *ty, *bits] {
                    extra.extend_from_slice(&w.to_le_bytes());
                }
            }
            self.add(name, KIND_STRUCT, members.len() as u32, false, size, &extra)
        }

        pub(crate) fn func(&mut self, name: &str) -> u32 {
            let proto = self.add("", 13, 1, false, 0, &[0, 0, 0, 0, 1, 0, 0, 0]);
            self.add(name, KIND_FUNC, 1, false, proto, &[])
        }

        pub(crate) fn enumeration(&mut self, name: &str, values: u32) -> u32 {
            self.add(
                name,
                KIND_ENUM,
                values,
                false,
                4,
                &vec![0u8; 8 * values as usize],
            )
        }

        /// Header, then strings, then types (the kernel writes types first: both work).
        pub(crate) fn bytes(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&MAGIC.to_le_bytes());
            out.extend_from_slice(&[1, 0]);
            let (sl, tl) = (self.strings.len() as u32, self.types.len() as u32);
            for w in [24u32, sl, tl, 0, sl] {
                out.extend_from_slice(&w.to_le_bytes());
            }
            out.extend_from_slice(&self.strings);
            out.extend_from_slice(&self.types);
            out
        }
    }

    /// Adds the structs and the function the iterator needs, with these member types.
    pub(crate) fn add_iter_types(b: &mut Builder, mode: u32, ino: u32, tgid: u32, magic: u32) {
        let sb = b.structure("super_block", 1400, &[("s_magic", magic, 768)]);
        let sb_ptr = b.ptr(sb);
        let inode = b.structure(
            "inode",
            600,
            &[
                ("i_mode", mode, 0),
                ("i_sb", sb_ptr, 320),
                ("i_ino", ino, 512),
            ],
        );
        let inode_ptr = b.ptr(inode);
        b.structure(
            "file",
            232,
            &[("f_count", ino, 0), ("f_inode", inode_ptr, 256)],
        );
        b.structure(
            "task_struct",
            9000,
            &[("pid", tgid, 10112), ("tgid", tgid, 10144)],
        );
        b.func("bpf_iter_task_file");
    }

    /// A kernel-like BTF: what Linux 6.18's vmlinux says of these members (offsets read from
    /// its /sys/kernel/btf/vmlinux), with types of other kinds around them.
    pub(crate) fn kernel_like() -> Builder {
        let mut b = Builder::new();
        let ulong = b.int("long unsigned int", 8);
        let ushort = b.int("short unsigned int", 2);
        let int = b.int("int", 4);
        let umode = b.typedef("umode_t", ushort);
        let pid_t = b.typedef("pid_t", int);
        b.enumeration("noise", 3);
        add_iter_types(&mut b, umode, ulong, pid_t, ulong);
        b
    }

    fn at(m: Member) -> (u32, u32) {
        (m.offset, m.size)
    }

    #[test]
    fn finds_the_members_and_the_attach_point() {
        let f = iter_facts(Cursor::new(kernel_like().bytes())).unwrap();
        assert_eq!(at(f.file_inode), (32, 8));
        assert_eq!(at(f.inode_mode), (0, 2));
        assert_eq!(at(f.inode_sb), (40, 8));
        assert_eq!(at(f.inode_number), (64, 8));
        assert_eq!(at(f.sb_magic), (96, 8));
        assert_eq!(at(f.task_tgid), (1268, 4));
        // Types 1..: three ints, two typedefs, the enum, super_block and its pointer, inode
        // and its pointer, file, task_struct, the prototype, then the function.
        assert_eq!(f.attach_btf_id, 14);
    }

    /// The fuzz seed (fuzz/make_seeds.py) is laid out as the kernel writes it, types before
    /// strings.
    #[test]
    fn the_fuzz_seed_in_kernel_order_reads_the_same() {
        let seed = include_bytes!("../../../../fuzz/corpus/kernel_buffers/btf_iter_members.bin");
        let f = iter_facts(Cursor::new(&seed[..])).unwrap();
        assert_eq!(f.attach_btf_id, 13);
        assert_eq!(at(f.file_inode), (32, 8));
        assert_eq!(at(f.inode_sb), (40, 8));
        assert_eq!(at(f.inode_number), (64, 8));
        assert_eq!(at(f.sb_magic), (96, 8));
        assert_eq!(at(f.task_tgid), (1268, 4));
    }

    #[test]
    fn a_missing_member_or_function_is_named() {
        let mut b = Builder::new();
        let int = b.int("int", 4);
        b.structure("task_struct", 100, &[("pid", int, 0)]);
        let err = iter_facts(Cursor::new(b.bytes())).unwrap_err();
        assert!(err.contains("bpf_iter_task_file"), "{err}");
        b.func("bpf_iter_task_file");
        let err = iter_facts(Cursor::new(b.bytes())).unwrap_err();
        assert!(err.contains("file has no direct member f_inode"), "{err}");
    }

    #[test]
    fn a_member_of_an_unexpected_width_is_refused() {
        let mut b = Builder::new();
        let ulong = b.int("long unsigned int", 8);
        let int = b.int("int", 4);
        add_iter_types(&mut b, int, ulong, int, ulong);
        let err = iter_facts(Cursor::new(b.bytes())).unwrap_err();
        assert!(err.contains("i_mode is 4 bytes"), "{err}");
        let mut b = Builder::new();
        let ushort = b.int("short unsigned int", 2);
        let int = b.int("int", 4);
        add_iter_types(&mut b, ushort, ushort, int, int);
        let err = iter_facts(Cursor::new(b.bytes())).unwrap_err();
        assert!(err.contains("i_ino is 2 bytes"), "{err}");
    }

    /// With `kind_flag`, a member's offset holds a bitfield size in its top byte: an offset
    /// with size 0 is read as an offset, a bitfield is refused.
    #[test]
    fn kind_flag_offsets_are_read_and_bitfields_refused() {
        let flagged = |bitfield: u32| {
            let mut b = kernel_like();
            let int = b.int("int", 4);
            // A second task_struct, flagged: the one holding the members wins.
            let members = [("tgid", int, (bitfield << 24) | 10176)];
            let mut extra = Vec::new();
            for (m, ty, off) in members {
                let n = b.name(m);
                for w in [n, ty, off] {
                    extra.extend_from_slice(&w.to_le_bytes());
                }
            }
            b.add("task_struct", KIND_STRUCT, 1, true, 9000, &extra);
            iter_facts(Cursor::new(b.bytes()))
        };
        assert_eq!(at(flagged(0).unwrap().task_tgid), (1272, 4));
        assert!(flagged(3).unwrap_err().contains("tgid is a bitfield"));
    }

    #[test]
    fn malformed_blobs_are_errors_not_panics() {
        let good = kernel_like().bytes();
        assert!(iter_facts(Cursor::new(&good[..10]))
            .unwrap_err()
            .contains("header"));
        let mut bad_magic = good.clone();
        bad_magic[0] = 0;
        assert!(iter_facts(Cursor::new(bad_magic))
            .unwrap_err()
            .contains("magic"));
        // Every truncation fails cleanly.
        for cut in 24..good.len() {
            assert!(
                iter_facts(Cursor::new(&good[..cut])).is_err(),
                "cut at {cut}"
            );
        }
        // An unknown kind cannot be stepped over.
        let mut b = kernel_like();
        b.add("x", 31, 0, false, 0, &[]);
        assert!(iter_facts(Cursor::new(b.bytes()))
            .unwrap_err()
            .contains("kind 31"));
        // A typedef loop has no size.
        let mut b = Builder::new();
        let t = b.typedef("loop", 2);
        b.typedef("loop2", t);
        add_iter_types(&mut b, t, t, t, t);
        let err = iter_facts(Cursor::new(b.bytes())).unwrap_err();
        assert!(err.contains("size of"), "{err}");
    }

    /// The running kernel's own BTF, where it has one: the widths the program assumes.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_running_kernel_has_what_the_iterator_needs() {
        let Ok(f) = std::fs::File::open("/sys/kernel/btf/vmlinux") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI kernels have BTF"
            );
            return;
        };
        let facts = iter_facts(f).unwrap();
        assert_eq!(facts.file_inode.size as usize, std::mem::size_of::<usize>());
        assert!(facts.attach_btf_id > 0);
        assert!(facts.task_tgid.offset > 0);
    }
}
