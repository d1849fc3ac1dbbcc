//! Static facts about an executable, from its bytes alone (pure; runs on any host): format,
//! architectures, imported symbols and linked libraries, and a Mach-O's embedded code
//! signature (identifier, team id, flags, cdhash, whether a CMS signature is present).
//!
//! Parsing is the `object` crate's (thin and fat Mach-O, ELF; imports from chained fixups,
//! then dyld bind opcodes, then the symbol table). What this module adds: bounds, the choice
//! of "the" CodeDirectory and the cdhash, and crypto-API classification.

use std::collections::BTreeSet;

use object::read::macho::{
    FatArch, LoadCommandVariant, MachHeader, MachOFatFile32, MachOFatFile64,
};
use object::{macho, FileKind, Object};
use sha2::{Digest, Sha256, Sha384};

/// Larger files are not parsed (bounded memory); the row says so.
pub const MAX_BINARY_BYTES: u64 = 512 << 20;
/// A hostile file may claim millions of imports; keep the first this many per slice.
const MAX_IMPORTS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    MachO,
    Elf,
    Other,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::MachO => "macho",
            Format::Elf => "elf",
            Format::Other => "other",
        }
    }
}

/// An embedded Mach-O code signature, as far as the bytes tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signature {
    pub identifier: Option<String>,
    pub team_id: Option<String>,
    /// CodeDirectory flags (CS_ADHOC 0x2, CS_RUNTIME 0x10000, CS_LINKER_SIGNED 0x20000, …).
    pub flags: u32,
    /// Non-zero for platform binaries.
    pub platform: u8,
    /// Hex of the first 20 bytes of the best CodeDirectory's hash.
    pub cdhash: Option<String>,
    /// A non-empty CMS blob: signed with a certificate (verifiable only on a Mac).
    pub has_cms: bool,
}

pub const CS_ADHOC: u32 = 0x2;
pub const CS_RUNTIME: u32 = 0x10000;
pub const CS_LINKER_SIGNED: u32 = 0x20000;

impl Signature {
    pub fn adhoc(&self) -> bool {
        self.flags & CS_ADHOC != 0
    }
}

/// One architecture slice (the whole file for thin binaries and ELF).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slice {
    pub arch: String,
    /// (library, symbol) pairs; symbol names as stored (Mach-O names keep their leading `_`).
    pub imports: Vec<(String, String)>,
    pub libraries: Vec<String>,
    /// Mach-O only: `None` when there is no LC_CODE_SIGNATURE.
    pub signature: Option<Signature>,
    /// A problem in this slice that did not stop the others.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binary {
    pub format: Format,
    pub slices: Vec<Slice>,
}

/// Architecture names from `cputype`/`cpusubtype` (values from mach/machine.h: CPU_ARCH_ABI64
/// 0x01000000, CPU_TYPE_X86 7, CPU_TYPE_ARM 12; subtype ARM64E 2, X86_64_H 8; capability bits
/// in the top byte of the subtype).
fn arch_name(cputype: u32, cpusubtype: u32) -> String {
    match (cputype, cpusubtype & 0x00ff_ffff) {
        (0x0100_0007, 8) => "x86_64h".into(),
        (0x0100_0007, _) => "x86_64".into(),
        (0x0100_000c, 2) => "arm64e".into(),
        (0x0100_000c, _) => "arm64".into(),
        (0x0200_000c, _) => "arm64_32".into(),
        (7, _) => "i386".into(),
        (12, _) => "arm".into(),
        (18, _) => "ppc".into(),
        (t, s) => format!("cpu{t:#x}:{s:#x}"),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Inspects a whole file's bytes.
pub fn inspect(data: &[u8]) -> Result<Binary, String> {
    // Java class files share the universal magic 0xcafebabe; their next field is a class-file
    // version (≥ 43) where a fat header has a small architecture count (LLVM's rule).
    if data.len() >= 8
        && data[..4] == [0xca, 0xfe, 0xba, 0xbe]
        && u32::from_be_bytes([data[4], data[5], data[6], data[7]]) >= 43
    {
        return Ok(Binary {
            format: Format::Other,
            slices: vec![],
        });
    }
    let kind =
        FileKind::parse(data).map_err(|_| "not an executable format this build reads".to_string());
    match kind {
        Ok(FileKind::MachOFat32) => {
            fat(MachOFatFile32::parse(data).map(|f| fat_slices(data, f.arches())))
        }
        Ok(FileKind::MachOFat64) => {
            fat(MachOFatFile64::parse(data).map(|f| fat_slices(data, f.arches())))
        }
        Ok(FileKind::MachO32 | FileKind::MachO64) => Ok(Binary {
            format: Format::MachO,
            slices: vec![thin_macho(data)],
        }),
        Ok(FileKind::Elf32 | FileKind::Elf64) => Ok(Binary {
            format: Format::Elf,
            slices: vec![elf(data)],
        }),
        _ => Ok(Binary {
            format: Format::Other,
            slices: vec![],
        }),
    }
}

/// One slice of a universal file: its architecture and its bytes (or why they are missing).
type SliceData<'a> = (String, Result<&'a [u8], String>);

fn fat_slices<'a, A: FatArch>(data: &'a [u8], arches: &[A]) -> Vec<SliceData<'a>> {
    arches
        .iter()
        .map(|a| {
            let name = arch_name(a.cputype().0, a.cpusubtype().0);
            (
                name,
                a.data(data)
                    .map_err(|_| "slice offset or size lies outside the file".to_string()),
            )
        })
        .collect()
}

fn fat(slices: object::Result<Vec<SliceData<'_>>>) -> Result<Binary, String> {
    let slices = slices.map_err(|_| "malformed universal (fat) header".to_string())?;
    let slices = slices
        .into_iter()
        .map(|(arch, data)| match data {
            Ok(d) => Slice {
                arch,
                ..thin_macho(d)
            },
            Err(e) => Slice {
                arch,
                error: Some(e),
                ..Slice::default()
            },
        })
        .collect();
    Ok(Binary {
        format: Format::MachO,
        slices,
    })
}

fn collect_imports(file: &object::File<'_>, slice: &mut Slice) {
    let mut libraries = BTreeSet::new();
    match file.imports() {
        Ok(imports) => {
            for import in imports.take(MAX_IMPORTS) {
                let Ok(import) = import else {
                    slice
                        .error
                        .get_or_insert_with(|| "malformed import table entry".into());
                    continue;
                };
                let library = text(import.library());
                let name = match import.name() {
                    object::read::NameOrOrdinal::Name(n) => text(n),
                    object::read::NameOrOrdinal::Ordinal(o) => format!("#{o}"),
                };
                if !library.is_empty() {
                    libraries.insert(library.clone());
                }
                slice.imports.push((library, name));
            }
        }
        Err(_) => slice.error = Some("malformed import tables".into()),
    }
    // Every linked library, also those nothing is imported from by name (Swift frameworks).
    if let Ok(libs) = file.import_libraries() {
        for lib in libs.take(MAX_IMPORTS).flatten() {
            libraries.insert(text(lib.name()));
        }
    }
    slice.libraries = libraries.into_iter().collect();
}

fn thin_macho(data: &[u8]) -> Slice {
    let mut slice = Slice::default();
    let file = match object::File::parse(data) {
        Ok(f) => f,
        Err(_) => {
            slice.error = Some("malformed Mach-O header or load commands".into());
            return slice;
        }
    };
    match &file {
        object::File::MachO64(m) => {
            let h = m.macho_header();
            let e = m.endian();
            slice.arch = arch_name(h.cputype(e).0, h.cpusubtype(e).0);
            slice.signature = signature(m.macho_load_commands().ok(), e, data, &mut slice.error);
        }
        object::File::MachO32(m) => {
            let h = m.macho_header();
            let e = m.endian();
            slice.arch = arch_name(h.cputype(e).0, h.cpusubtype(e).0);
            slice.signature = signature(m.macho_load_commands().ok(), e, data, &mut slice.error);
        }
        _ => {}
    }
    collect_imports(&file, &mut slice);
    slice
}

fn elf(data: &[u8]) -> Slice {
    let mut slice = Slice::default();
    match object::File::parse(data) {
        Ok(file) => {
            slice.arch = format!("{:?}", file.architecture()).to_lowercase();
            collect_imports(&file, &mut slice);
        }
        Err(_) => slice.error = Some("malformed ELF headers".into()),
    }
    slice
}

/// Hash-type rank (`cs_blobs.h`): a kernel picks the strongest CodeDirectory.
fn hash_rank(t: u8) -> u8 {
    match t {
        4 => 4, // SHA-384
        2 => 3, // SHA-256
        3 => 2, // SHA-256 truncated
        1 => 1, // SHA-1
        _ => 0,
    }
}

fn signature<E: object::Endian>(
    commands: Option<object::read::macho::LoadCommandIterator<'_, E>>,
    endian: E,
    data: &[u8],
    error: &mut Option<String>,
) -> Option<Signature> {
    let mut commands = commands?;
    let cmd = loop {
        match commands.next() {
            Ok(Some(c)) if c.cmd() == macho::LC_CODE_SIGNATURE => match c.variant() {
                Ok(LoadCommandVariant::LinkeditData(l)) => break l,
                _ => {
                    *error = Some("malformed LC_CODE_SIGNATURE".into());
                    return Some(Signature::default());
                }
            },
            Ok(Some(_)) => continue,
            Ok(None) => return None,
            Err(_) => {
                *error = Some("malformed load commands".into());
                return None;
            }
        }
    };
    let mut sig = Signature::default();
    let blob = match cmd.code_signature(endian, data) {
        Ok(b) => b,
        Err(_) => {
            *error = Some("code signature lies outside the file or is malformed".into());
            return Some(sig);
        }
    };
    let mut best: Option<(u8, object::read::macho::CodeDirectory<'_>, &[u8])> = None;
    let mut blobs = blob.blobs();
    loop {
        match blobs.next() {
            Ok(Some(b)) => {
                if b.magic() == macho::CSMAGIC_BLOBWRAPPER {
                    sig.has_cms |= !b.contents().is_empty();
                } else if let Ok(Some(cd)) = b.code_directory() {
                    let rank = hash_rank(cd.header().hash_type.0);
                    if best.as_ref().is_none_or(|(r, _, _)| rank > *r) {
                        best = Some((rank, cd, b.data()));
                    }
                }
            }
            Ok(None) => break,
            Err(_) => {
                *error = Some("malformed code signature blob".into());
                break;
            }
        }
    }
    if let Some((_, cd, cd_bytes)) = best {
        let h = cd.header();
        sig.flags = h.flags.get(object::BigEndian).0;
        sig.platform = h.platform;
        sig.identifier = cd.ident().ok().map(text);
        sig.team_id = cd.team_id().ok().flatten().map(text);
        let digest: Vec<u8> = match h.hash_type.0 {
            1 => sha1(cd_bytes),
            4 => Sha384::digest(cd_bytes).to_vec(),
            _ => Sha256::digest(cd_bytes).to_vec(),
        };
        sig.cdhash = Some(digest.iter().take(20).map(|b| format!("{b:02x}")).collect());
    } else if error.is_none() {
        *error = Some("code signature has no CodeDirectory".into());
    }
    Some(sig)
}

/// SHA-1 for legacy CodeDirectories (hash type 1); small enough not to need a crate.
fn sha1(data: &[u8]) -> Vec<u8> {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes(chunk[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    h.iter().flat_map(|x| x.to_be_bytes()).collect()
}

/// A symmetric-crypto API family and how its imports are recognised.
struct Family {
    name: &'static str,
    /// Exact names (Mach-O's leading underscore removed before matching).
    exact: &'static [&'static str],
    prefixes: &'static [&'static str],
}

const FAMILIES: &[Family] = &[
    Family {
        name: "CommonCrypto",
        exact: &[
            "CCCrypt",
            "CCCryptorGCM",
            "CCSymmetricKeyWrap",
            "CCSymmetricKeyUnwrap",
        ],
        prefixes: &["CCCryptor"],
    },
    Family {
        name: "Security",
        exact: &[
            "SecKeyCreateEncryptedData",
            "SecKeyCreateDecryptedData",
            "SecEncryptTransformCreate",
            "SecDecryptTransformCreate",
            "SecKeyGenerateSymmetric",
            "SecKeyWrapSymmetric",
            "SecKeyUnwrapSymmetric",
            "CSSM_CSP_CreateSymmetricContext",
            "CSSM_EncryptData",
            "CSSM_DecryptData",
        ],
        prefixes: &[],
    },
    Family {
        name: "CryptoKit",
        exact: &[],
        // Swift mangling: CryptoKit.AES.GCM…, CryptoKit.ChaChaPoly…, CryptoKit.SymmetricKey…
        prefixes: &[
            "$s9CryptoKit3AESO3GCMO",
            "$s9CryptoKit10ChaChaPolyO",
            "$s9CryptoKit12SymmetricKeyV",
        ],
    },
    Family {
        name: "OpenSSL",
        exact: &[
            "EVP_Cipher",
            "EVP_CIPHER_fetch",
            "AES_encrypt",
            "AES_decrypt",
            "AES_set_encrypt_key",
            "AES_set_decrypt_key",
            "AES_cbc_encrypt",
            "AES_ige_encrypt",
            "AES_ctr128_encrypt",
            "RC4",
            "RC4_set_key",
            "EVP_chacha20_poly1305",
            "EVP_chacha20",
        ],
        prefixes: &[
            "EVP_Encrypt",
            "EVP_Decrypt",
            "EVP_CipherInit",
            "EVP_CipherUpdate",
            "EVP_CipherFinal",
            "EVP_aes_",
            "DES_",
        ],
    },
    Family {
        name: "libsodium",
        exact: &["crypto_stream_xor", "crypto_box_easy"],
        prefixes: &["crypto_secretbox", "crypto_aead_", "crypto_secretstream_"],
    },
    Family {
        name: "other",
        exact: &[
            "gnutls_cipher_encrypt2",
            "gnutls_cipher_encrypt",
            "gcry_cipher_encrypt",
            "PK11_Encrypt",
            "mbedtls_gcm_crypt_and_tag",
        ],
        prefixes: &["mbedtls_cipher_"],
    },
];

/// Library install names that mean "crypto linked" even without a recognised import.
const CRYPTO_LIBRARIES: &[(&str, &str)] = &[
    ("/CryptoKit.framework/", "CryptoKit"),
    ("/Security.framework/", "Security"),
    ("libcommonCrypto", "CommonCrypto"),
    ("libcrypto", "OpenSSL"),
    ("libssl", "OpenSSL"),
    ("libsodium", "libsodium"),
    ("libgcrypt", "libgcrypt"),
    ("libgnutls", "GnuTLS"),
    ("libmbedcrypto", "mbedTLS"),
    ("libnss3", "NSS"),
];

/// The symmetric-crypto APIs a binary imports, as `Family:symbol` (symbol without the Mach-O
/// underscore, Swift names shortened to their recognised prefix).
pub fn crypto_apis(b: &Binary) -> Vec<String> {
    let mut found = BTreeSet::new();
    for s in &b.slices {
        for (_, raw) in &s.imports {
            let name = if b.format == Format::MachO {
                raw.strip_prefix('_').unwrap_or(raw)
            } else {
                raw.as_str()
            };
            // ELF versioned names (EVP_Cipher@OPENSSL_3.0.0) compare without the version.
            let name = name.split('@').next().unwrap_or(name);
            for f in FAMILIES {
                if f.exact.contains(&name) {
                    found.insert(format!("{}:{name}", f.name));
                } else if let Some(p) = f.prefixes.iter().find(|p| name.starts_with(**p)) {
                    let shown = if f.name == "CryptoKit" { *p } else { name };
                    found.insert(format!("{}:{shown}", f.name));
                }
            }
        }
    }
    found.into_iter().collect()
}

/// Crypto libraries and frameworks the binary links.
pub fn crypto_libraries(b: &Binary) -> Vec<String> {
    let mut found = BTreeSet::new();
    for s in &b.slices {
        for lib in &s.libraries {
            for (needle, name) in CRYPTO_LIBRARIES {
                if lib.contains(needle) {
                    found.insert(name.to_string());
                }
            }
        }
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_known_answers() {
        let hex = |v: Vec<u8>| v.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(sha1(&[b'a'; 1000])),
            "291e9a6c66994949b57ba5e650361e98fc36b1ba"
        );
    }

    #[test]
    fn garbage_and_truncations_never_panic() {
        assert_eq!(inspect(b"hello").unwrap().format, Format::Other);
        assert_eq!(inspect(&[]).unwrap().format, Format::Other);
        // A fat header that claims a slice far past the end of the file.
        let mut fat = vec![0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 1];
        fat.extend_from_slice(&0x0100000cu32.to_be_bytes()); // arm64
        fat.extend_from_slice(&0u32.to_be_bytes());
        fat.extend_from_slice(&0x7fff_0000u32.to_be_bytes()); // offset
        fat.extend_from_slice(&0x1000u32.to_be_bytes()); // size
        fat.extend_from_slice(&14u32.to_be_bytes());
        let b = inspect(&fat).unwrap();
        assert_eq!(b.slices.len(), 1);
        assert_eq!(b.slices[0].arch, "arm64");
        assert!(b.slices[0]
            .error
            .as_deref()
            .unwrap()
            .contains("outside the file"));
        // A Java class file (major version 52 at byte 6) is not a universal binary.
        assert_eq!(
            inspect(&[0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 52, 0, 1])
                .unwrap()
                .format,
            Format::Other
        );
        // Thin Mach-O magic with nothing after it.
        let b = inspect(&[0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1]).unwrap();
        assert!(b.slices.iter().all(|s| s.error.is_some()) || b.format == Format::Other);
    }

    #[test]
    fn classification_matches_names_not_substrings() {
        let b = Binary {
            format: Format::MachO,
            slices: vec![Slice {
                imports: vec![
                    (
                        "/usr/lib/libSystem.B.dylib".into(),
                        "_CCCryptorCreateWithMode".into(),
                    ),
                    ("/usr/lib/libSystem.B.dylib".into(), "_CCCrypt".into()),
                    ("/usr/lib/libSystem.B.dylib".into(), "_CCCryptoBoxed".into()),
                    (
                        "x".into(),
                        "_$s9CryptoKit3AESO3GCMO4seal_5using5nonceAC9SealedBoxV".into(),
                    ),
                    ("x".into(), "_printf".into()),
                ],
                libraries: vec![
                    "/System/Library/Frameworks/CryptoKit.framework/Versions/A/CryptoKit".into(),
                ],
                ..Slice::default()
            }],
        };
        assert_eq!(
            crypto_apis(&b),
            [
                "CommonCrypto:CCCrypt",
                "CommonCrypto:CCCryptorCreateWithMode",
                "CryptoKit:$s9CryptoKit3AESO3GCMO"
            ]
        );
        assert_eq!(crypto_libraries(&b), ["CryptoKit"]);
        let elf = Binary {
            format: Format::Elf,
            slices: vec![Slice {
                imports: vec![(
                    "libcrypto.so.3".into(),
                    "EVP_EncryptInit_ex@OPENSSL_3.0.0".into(),
                )],
                ..Slice::default()
            }],
        };
        assert_eq!(crypto_apis(&elf), ["OpenSSL:EVP_EncryptInit_ex"]);
    }
}
