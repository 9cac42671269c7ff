//! Content digests (`sha256:<hex>`) and a streaming verifier.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256, Sha384, Sha512};

/// Why a digest string is not a valid content digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The string is not `algorithm:hex`.
    #[error("invalid checksum digest format")]
    InvalidFormat,
    /// The algorithm is well formed but not one kiln can verify.
    #[error("unsupported digest algorithm")]
    Unsupported,
    /// The hex part has the wrong length for the algorithm.
    #[error("invalid checksum digest length")]
    InvalidLength,
}

/// A digest algorithm kiln can compute and verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// SHA-256, the algorithm of nearly every OCI digest.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// The algorithm's name as written in a digest.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha384 => 96,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A validated content digest such as `sha256:e3b0c442...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses and validates `algorithm:hex` (lowercase hex of the algorithm's length).
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let (alg, hex) = s.split_once(':').ok_or(DigestError::InvalidFormat)?;
        if alg.is_empty() || hex.is_empty() || !valid_algorithm_syntax(alg) {
            return Err(DigestError::InvalidFormat);
        }
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha384" => Algorithm::Sha384,
            "sha512" => Algorithm::Sha512,
            _ => return Err(DigestError::Unsupported),
        };
        // go-digest checks the length before the characters.
        if hex.len() != algorithm.hex_len() {
            return Err(DigestError::InvalidLength);
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError::InvalidFormat);
        }
        Ok(Digest(s.to_string()))
    }

    /// The sha256 digest of `data`.
    pub fn sha256_of(data: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(data))))
    }

    /// The algorithm part.
    pub fn algorithm(&self) -> Algorithm {
        match self.0.split_once(':').map(|(a, _)| a) {
            Some("sha384") => Algorithm::Sha384,
            Some("sha512") => Algorithm::Sha512,
            _ => Algorithm::Sha256,
        }
    }

    /// The hex part (after the colon).
    pub fn hex(&self) -> &str {
        self.0.split_once(':').map(|(_, h)| h).unwrap_or("")
    }

    /// The whole digest string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Algorithm syntax of the OCI image spec: `[a-z0-9]+([+._-][a-z0-9]+)*`.
fn valid_algorithm_syntax(alg: &str) -> bool {
    alg.split(['+', '.', '_', '-']).all(|part| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

/// Hashes a stream as it passes and says at the end whether it matched the expected digest.
#[derive(Clone)]
pub struct Verifier {
    state: HashState,
    bytes: u64,
}

#[derive(Clone)]
enum HashState {
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Verifier {
    /// A verifier for digests of `algorithm`.
    pub fn new(algorithm: Algorithm) -> Verifier {
        let state = match algorithm {
            Algorithm::Sha256 => HashState::Sha256(Sha256::new()),
            Algorithm::Sha384 => HashState::Sha384(Sha384::new()),
            Algorithm::Sha512 => HashState::Sha512(Sha512::new()),
        };
        Verifier { state, bytes: 0 }
    }

    /// Feeds the next chunk of the stream.
    pub fn update(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        match &mut self.state {
            HashState::Sha256(h) => h.update(chunk),
            HashState::Sha384(h) => h.update(chunk),
            HashState::Sha512(h) => h.update(chunk),
        }
    }

    /// How many bytes were fed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        let (name, hex) = match self.state {
            HashState::Sha256(h) => ("sha256", hex::encode(h.finalize())),
            HashState::Sha384(h) => ("sha384", hex::encode(h.finalize())),
            HashState::Sha512(h) => ("sha512", hex::encode(h.finalize())),
        };
        Digest(format!("{name}:{hex}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_valid_and_rejects_invalid() {
        assert_eq!(Digest::parse(EMPTY).unwrap().hex().len(), 64);
        assert_eq!(Digest::parse("sha256"), Err(DigestError::InvalidFormat));
        assert_eq!(Digest::parse("sha256:"), Err(DigestError::InvalidFormat));
        assert_eq!(Digest::parse("sha256:abc"), Err(DigestError::InvalidLength));
        assert_eq!(
            Digest::parse(&EMPTY.to_uppercase()[..]),
            Err(DigestError::InvalidFormat)
        );
        assert_eq!(
            Digest::parse("md5:d41d8cd98f00b204e9800998ecf8427e"),
            Err(DigestError::Unsupported)
        );
        assert_eq!(
            Digest::parse(
                "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
            ),
            Err(DigestError::InvalidFormat)
        );
    }

    #[test]
    fn verifier_matches_one_shot_hash() {
        let mut v = Verifier::new(Algorithm::Sha256);
        v.update(b"hello ");
        v.update(b"world");
        assert_eq!(v.bytes(), 11);
        assert_eq!(v.finish(), Digest::sha256_of(b"hello world"));
        assert_eq!(Verifier::new(Algorithm::Sha256).finish().as_str(), EMPTY);
    }
}
