//! Code signing facts from Security.framework (macOS only).
//!
//! Only type-checked here (macos-check). What needs a Mac to prove: the status mapping of
//! real error codes (unsigned vs invalid), the signer classes for Apple, App Store (Mac and
//! iOS-on-Apple-silicon) and Developer ID binaries, the certificate chain order, and what
//! `notarized` finds locally.
//!
//! What `valid` means: by default (`validation` = `basic`) `BASIC_VALIDATE_ONLY |
//! NO_NETWORK_ACCESS` on the slice the host would run: the code directory, its CMS signature and
//! the certificate chain verify; pages and resources are not hashed (the expensive part for
//! large bundles, osquery#2987) and other architectures are not checked (Security `CSCommon.h`:
//! only `kSecCSCheckAllArchitectures` does). [`inspect_with`]`(…, full = true)` (`validation` =
//! `full`) checks every architecture, every page and nested code, still offline.
//!
//! `notarized` is the `notarized` requirement, which is an offline lookup of a ticket stapled
//! to the code or cached by the system (Security `SecAssessment.h`, `notarization.cpp`); a
//! notarized bare command-line tool carries no stapled ticket, so not finding one proves
//! nothing: NULL ("no local ticket"), never 0.

use std::ffi::c_void;
use std::str::FromStr;

use core_foundation::array::CFArray;
use core_foundation::base::{CFType, TCFType};
use core_foundation::data::CFData;
use core_foundation::dictionary::CFDictionary;
use core_foundation::number::CFNumber;
use core_foundation::string::CFString;
use core_foundation::url::CFURL;
use core_foundation_sys::dictionary::CFDictionaryRef;
use core_foundation_sys::string::CFStringRef;
use security_framework::certificate::SecCertificate;
use security_framework::os::macos::code_signing::{Flags, SecRequirement, SecStaticCode};

use crate::binary::{CS_ADHOC, CS_LINKER_SIGNED, CS_RUNTIME};
use crate::facts::SigningFacts;
// Pure requirement helpers still live with the table (to move below both in a later change).
use crate::facts::{notarized_from, signer_class_from, DEVELOPER_ID};

/// `kSecCSSigningInformation` (Security `SecCode.h`): ask for identifier, team, certificates.
const K_SEC_CS_SIGNING_INFORMATION: u32 = 1 << 1;
/// `errSecCSUnsigned`.
const ERR_SEC_CS_UNSIGNED: i32 = -67062;

#[link(name = "Security", kind = "framework")]
extern "C" {
    // Not wrapped by security-framework 3.x (docs/design.md, "Collectors").
    fn SecCodeCopySigningInformation(
        code: *const c_void,
        flags: u32,
        information: *mut CFDictionaryRef,
    ) -> i32;
    static kSecCodeInfoIdentifier: CFStringRef;
    static kSecCodeInfoTeamIdentifier: CFStringRef;
    static kSecCodeInfoCertificates: CFStringRef;
    static kSecCodeInfoUnique: CFStringRef;
    static kSecCodeInfoFlags: CFStringRef;
    static kSecCodeInfoPlatformIdentifier: CFStringRef;
}

fn info(code: &SecStaticCode) -> Option<CFDictionary<CFString, CFType>> {
    let mut out: CFDictionaryRef = std::ptr::null();
    // SAFETY: a valid static code object and an out-pointer; the dictionary follows the create rule.
    let status = unsafe {
        SecCodeCopySigningInformation(
            code.as_concrete_TypeRef().cast(),
            K_SEC_CS_SIGNING_INFORMATION,
            &mut out,
        )
    };
    if status != 0 || out.is_null() {
        return None;
    }
    // SAFETY: `out` is a new CFDictionary we now own.
    Some(unsafe { CFDictionary::wrap_under_create_rule(out) })
}

fn get<T: core_foundation::ConcreteCFType>(
    d: &CFDictionary<CFString, CFType>,
    key: CFStringRef,
) -> Option<T> {
    // SAFETY: the key is a static CFString owned by Security.framework.
    let key = unsafe { CFString::wrap_under_get_rule(key) };
    d.find(&key).and_then(|v| v.downcast::<T>())
}

/// Facts for one file with basic validation, or `None` when Security.framework cannot open it.
pub fn inspect(path: &str, want_notarized: bool) -> Option<SigningFacts> {
    inspect_with(path, want_notarized, false)
}

/// Facts for one file; `full` validates every architecture, page and nested code (see the
/// module notes for what each level proves).
pub fn inspect_with(path: &str, want_notarized: bool, full: bool) -> Option<SigningFacts> {
    let url = CFURL::from_path(path, false)?;
    let code = SecStaticCode::from_path(&url, Flags::NONE).ok()?;
    let basic = if full {
        Flags::CHECK_ALL_ARCHITECTURES
            | Flags::STRICT_VALIDATE
            | Flags::CHECK_NESTED_CODE
            | Flags::NO_NETWORK_ACCESS
    } else {
        Flags::BASIC_VALIDATE_ONLY | Flags::NO_NETWORK_ACCESS
    };
    let always = SecRequirement::from_str("always").ok()?;
    let mut f = SigningFacts {
        source: "security_framework",
        validation: Some(if full { "full" } else { "basic" }),
        ..SigningFacts::default()
    };
    let validity = code.check_validity(basic, &always);
    let d = info(&code);
    // SAFETY (all `get` calls): the keys are Security.framework's exported constants.
    let flags = d
        .as_ref()
        .and_then(|d| get::<CFNumber>(d, unsafe { kSecCodeInfoFlags }))
        .and_then(|n| n.to_i64())
        .unwrap_or(0) as u32;
    if let Some(d) = &d {
        f.identifier = get::<CFString>(d, unsafe { kSecCodeInfoIdentifier }).map(|s| s.to_string());
        f.team_id =
            get::<CFString>(d, unsafe { kSecCodeInfoTeamIdentifier }).map(|s| s.to_string());
        f.cdhash = get::<CFData>(d, unsafe { kSecCodeInfoUnique })
            .map(|b| b.bytes().iter().map(|x| format!("{x:02x}")).collect());
        f.platform_binary = Some(
            get::<CFNumber>(d, unsafe { kSecCodeInfoPlatformIdentifier })
                .and_then(|n| n.to_i64())
                .unwrap_or(0)
                != 0,
        );
        let certs: Option<CFArray<*const c_void>> = get(d, unsafe { kSecCodeInfoCertificates });
        f.authority = certs.map(|a| {
            a.iter()
                .map(|p| {
                    // SAFETY: the array holds SecCertificateRefs, leaf first.
                    let c = unsafe { SecCertificate::wrap_under_get_rule(*p as *mut _) };
                    c.subject_summary()
                })
                .collect()
        });
    }
    f.hardened_runtime = Some(flags & CS_RUNTIME != 0);
    f.linker_signed = Some(flags & CS_LINKER_SIGNED != 0);
    let satisfies = |req: &str| {
        SecRequirement::from_str(req)
            .ok()
            .is_some_and(|r| code.check_validity(basic, &r).is_ok())
    };
    match validity {
        Err(e) if e.code() == ERR_SEC_CS_UNSIGNED => {
            f.status = "unsigned".into();
            f.signer_class = "unsigned".into();
        }
        Err(e) => {
            f.status = "invalid".into();
            f.signer_class = "invalid".into();
            f.error = Some(format!("SecStaticCodeCheckValidity: OSStatus {}", e.code()));
        }
        Ok(()) if flags & CS_ADHOC != 0 => {
            f.status = "adhoc".into();
            f.signer_class = "adhoc".into();
        }
        Ok(()) => {
            f.status = "valid".into();
            f.signer_class = signer_class_from(&satisfies).into();
            if want_notarized {
                let apple = f.signer_class == "apple";
                f.notarized = notarized_from(
                    apple,
                    !apple && satisfies(&format!("{DEVELOPER_ID} and notarized")),
                );
            }
        }
    }
    Some(f)
}
