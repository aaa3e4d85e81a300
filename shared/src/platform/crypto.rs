//! Digests, message authentication and randomness, from RustCrypto and the host's CSPRNG.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of `bytes`.
pub fn hex_sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex HMAC-SHA-256 of `message` under `key`, for one message under a key.
pub fn hex_hmac_sha256(key: &[u8], message: &[u8]) -> String {
    let mut mac = HmacSha256Key::new(key).start();
    mac.0.update(message);
    mac.finish_hex()
}

/// An HMAC-SHA-256 key whose pads are hashed once, for many messages under the same key (two
/// compressions saved per message).
#[derive(Clone)]
pub struct HmacSha256Key(Hmac<Sha256>);

impl HmacSha256Key {
    pub fn new(key: &[u8]) -> Self {
        Self(Hmac::new_from_slice(key).expect("HMAC takes keys of any length"))
    }

    /// A MAC under this key: write the message into it, then [`HmacWriter::finish_hex`].
    pub fn start(&self) -> HmacWriter {
        HmacWriter(self.0.clone())
    }
}

/// A message being authenticated, written in pieces (for instance by `serde_json::to_writer`).
pub struct HmacWriter(Hmac<Sha256>);

impl HmacWriter {
    /// The lower-case hex MAC of everything written.
    pub fn finish_hex(self) -> String {
        hex(&self.0.finalize().into_bytes())
    }
}

impl std::io::Write for HmacWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether two byte strings are equal, in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `N` bytes from the host's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_known_vectors() {
        assert_eq!(
            hex_sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // RFC 4231 test case 2.
        assert_eq!(
            hex_hmac_sha256(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn equality_is_exact() {
        assert!(constant_time_eq(b"same", b"same"));
        assert!(!constant_time_eq(b"same", b"sane"));
        assert!(!constant_time_eq(b"same", b"same!"));
    }
}
