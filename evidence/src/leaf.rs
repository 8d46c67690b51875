//! The leaf of a stored NATS JetStream message: one exact byte encoding of what the stream
//! recorded — its sequence, its subject, JetStream's timestamp and the SHA-256 of its payload —
//! so that a checkpoint covers when, where and what was stored (the payload carries the
//! CloudEvent: source, time, data and provenance). Documented in docs/audit.md.
//!
//! ```text
//! leaf data = "asset-inventory/leaf/v1" 0x00     24 bytes: domain separation and version
//!             seq                                 u64, big-endian (the stream sequence, from 1)
//!             recorded_at                         i64, big-endian (JetStream time, UTC ns since 1970)
//!             len(subject)                        u32, big-endian
//!             subject                             its bytes (UTF-8)
//!             SHA-256(payload)                    32 bytes
//! leaf hash = SHA-256(0x00 ‖ leaf data)           (RFC 6962)
//! leaf index = seq - 1
//! ```

use sha2::{Digest, Sha256};

use crate::merkle::{leaf_hash, Hash};

/// The first bytes of every leaf.
pub const LEAF_DOMAIN: &[u8; 24] = b"asset-inventory/leaf/v1\0";

/// What makes a message unfit to be a leaf.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeafError {
    #[error("sequence 0 does not exist: stream sequences start at 1")]
    ZeroSequence,
    #[error("subject of {0} bytes is too long")]
    SubjectTooLong(usize),
    #[error("timestamp {0} ns is outside the range of a 64-bit nanosecond count")]
    Timestamp(i128),
}

/// A stored message as the tree sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef<'a> {
    /// Stream sequence (≥ 1).
    pub seq: u64,
    /// The NATS subject it was stored on.
    pub subject: &'a str,
    /// When JetStream recorded it: UTC nanoseconds since the Unix epoch.
    pub recorded_at_nanos: i128,
    /// The message payload.
    pub payload: &'a [u8],
}

impl MessageRef<'_> {
    /// The leaf data (see the module documentation).
    pub fn leaf_data(&self) -> Result<Vec<u8>, LeafError> {
        if self.seq == 0 {
            return Err(LeafError::ZeroSequence);
        }
        let subject_len = u32::try_from(self.subject.len())
            .map_err(|_| LeafError::SubjectTooLong(self.subject.len()))?;
        let nanos = i64::try_from(self.recorded_at_nanos)
            .map_err(|_| LeafError::Timestamp(self.recorded_at_nanos))?;
        let mut out = Vec::with_capacity(LEAF_DOMAIN.len() + 8 + 8 + 4 + self.subject.len() + 32);
        out.extend_from_slice(LEAF_DOMAIN);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&nanos.to_be_bytes());
        out.extend_from_slice(&subject_len.to_be_bytes());
        out.extend_from_slice(self.subject.as_bytes());
        out.extend_from_slice(&Sha256::digest(self.payload));
        Ok(out)
    }

    /// The RFC 6962 leaf hash of the leaf data.
    pub fn leaf_hash(&self) -> Result<Hash, LeafError> {
        Ok(leaf_hash(&self.leaf_data()?))
    }

    /// The leaf's index in the tree: `seq - 1`.
    pub fn index(&self) -> u64 {
        self.seq.saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoding_is_exactly_as_documented() {
        let m = MessageRef {
            seq: 0x0102,
            subject: "inventory.asset.aws.account.1",
            recorded_at_nanos: 1_760_000_000_123_456_789,
            payload: b"{}",
        };
        let data = m.leaf_data().unwrap_or_default();
        let mut want = b"asset-inventory/leaf/v1\0".to_vec();
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 2]);
        want.extend_from_slice(&1_760_000_000_123_456_789i64.to_be_bytes());
        want.extend_from_slice(&[0, 0, 0, 29]);
        want.extend_from_slice(b"inventory.asset.aws.account.1");
        // sha256("{}")
        want.extend_from_slice(
            &hex::decode("44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a")
                .unwrap_or_default(),
        );
        assert_eq!(data, want);
        assert_eq!(m.leaf_hash(), Ok(leaf_hash(&want)));
        assert_eq!(m.index(), 0x0101);
    }

    #[test]
    fn every_field_changes_the_leaf() {
        let base = MessageRef {
            seq: 7,
            subject: "inventory.asset.aws.account.1",
            recorded_at_nanos: 1_000,
            payload: b"payload",
        };
        let h = base.leaf_hash().unwrap_or_default();
        for other in [
            MessageRef { seq: 8, ..base },
            MessageRef {
                subject: "inventory.asset.aws.account.2",
                ..base
            },
            MessageRef {
                recorded_at_nanos: 1_001,
                ..base
            },
            MessageRef {
                payload: b"payloaD",
                ..base
            },
        ] {
            assert_ne!(other.leaf_hash().unwrap_or_default(), h, "{other:?}");
        }
        assert_eq!(
            MessageRef { seq: 0, ..base }.leaf_hash(),
            Err(LeafError::ZeroSequence)
        );
        assert!(MessageRef {
            recorded_at_nanos: i128::from(i64::MAX) + 1,
            ..base
        }
        .leaf_hash()
        .is_err());
    }
}
