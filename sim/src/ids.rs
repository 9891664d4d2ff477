//! Identifier generation. Random ids come from UUID v4; ids that must be stable for the same input
//! (execution activity ids) are derived from SHA-256 so that a lazily recomputed status does not
//! change between two reads.

use sha2::{Digest, Sha256};
use uuid::Uuid;

pub fn guid() -> String {
    Uuid::new_v4().to_string()
}

/// 32 lowercase hex digits, the middle part of a synchronization job id.
pub fn hex32() -> String {
    Uuid::new_v4().simple().to_string()
}

/// A GUID-shaped id that is a pure function of its inputs.
pub fn stable_guid(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for p in parts {
        hasher.update(p.as_bytes());
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes).to_string()
}

/// A number derived from `input`, for deterministic fixture sizes.
pub fn stable_u64(input: &str) -> u64 {
    let digest = Sha256::digest(input.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(bytes)
}

/// Hex SHA-256, used to index bearer tokens without keeping them in memory.
pub fn sha256_hex(input: &str) -> String {
    hex::encode(Sha256::digest(input.as_bytes()))
}

/// Percent-decodes one path segment. Unlike form decoding, `+` stays a plus sign.
pub fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16))?;
            let lo = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16))?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode() {
        assert_eq!(percent_decode("AD2AADProvisioning.abc%2Edef").as_deref(), Some("AD2AADProvisioning.abc.def"));
        assert_eq!(percent_decode("a+b%20c").as_deref(), Some("a+b c"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn stable() {
        assert_eq!(stable_guid(&["a", "1"]), stable_guid(&["a", "1"]));
        assert_ne!(stable_guid(&["a", "1"]), stable_guid(&["a1", ""]));
        assert_eq!(stable_guid(&["x"]).len(), 36);
    }
}
