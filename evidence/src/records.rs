//! What is stored and handed out: level-0 tiles of leaf hashes (as in C2SP tlog-tiles: 256 leaf
//! hashes of 32 bytes, concatenated), the checkpoint record kept on the evidence stream (the
//! signed note and the leaf hashes of its partial last tile), and the proof files an auditor
//! checks offline.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, Checkpoint, CheckpointError};
use crate::leaf::{LeafError, MessageRef};
use crate::merkle::{self, Hash, ProofError};
use crate::note::Verifier;

/// Leaf hashes per full tile.
pub const TILE_WIDTH: u64 = 256;
/// `format` of an inclusion proof file.
pub const INCLUSION_FORMAT: &str = "asset-inventory/inclusion-proof/v1";
/// `format` of a consistency proof file.
pub const CONSISTENCY_FORMAT: &str = "asset-inventory/consistency-proof/v1";

/// What is wrong with a stored record or a proof file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("not valid JSON of the expected shape: {0}")]
    Json(String),
    #[error("unknown format {0:?}")]
    Format(String),
    #[error("{0} is not valid base64")]
    Base64(&'static str),
    #[error("{what}: {len} bytes is not a whole number of 32-byte hashes")]
    HashList { what: &'static str, len: usize },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Leaf(#[from] LeafError),
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("{0}")]
    Mismatch(String),
}

/// Concatenates hashes (a tile's bytes).
pub fn encode_hashes(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flatten().copied().collect()
}

/// Splits concatenated hashes.
pub fn decode_hashes(what: &'static str, bytes: &[u8]) -> Result<Vec<Hash>, RecordError> {
    if !bytes.len().is_multiple_of(32) {
        return Err(RecordError::HashList {
            what,
            len: bytes.len(),
        });
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            h
        })
        .collect())
}

/// Number of full tiles in a tree of `size` leaves.
pub fn full_tiles(size: u64) -> u64 {
    size / TILE_WIDTH
}

/// The first index at which two lists of leaf hashes differ (the shorter one's length if one
/// is a prefix of the other), or `None` when they are equal.
pub fn first_difference(a: &[Hash], b: &[Hash]) -> Option<u64> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or((a.len() != b.len()).then_some(a.len().min(b.len())))
        .map(|i| i as u64)
}

/// The payload of a checkpoint message on the evidence stream (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointRecord {
    /// The signed checkpoint note, as handed to auditors.
    pub note: String,
    /// Base64 of the leaf hashes of the partial last tile (the checkpoint's size modulo 256 of
    /// them), concatenated. The full tiles are stored once each, on their own subjects.
    pub tail_leaf_hashes: String,
}

impl CheckpointRecord {
    pub fn new(note: String, tail: &[Hash]) -> Self {
        Self {
            note,
            tail_leaf_hashes: B64.encode(encode_hashes(tail)),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, RecordError> {
        serde_json::from_slice(bytes).map_err(|e| RecordError::Json(e.to_string()))
    }

    /// The tail's leaf hashes.
    pub fn tail(&self) -> Result<Vec<Hash>, RecordError> {
        let bytes = B64
            .decode(&self.tail_leaf_hashes)
            .map_err(|_| RecordError::Base64("tail_leaf_hashes"))?;
        decode_hashes("tail_leaf_hashes", &bytes)
    }
}

/// The message an inclusion proof is about, as JetStream stored it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvedMessage {
    /// Stream sequence.
    pub seq: u64,
    /// NATS subject.
    pub subject: String,
    /// JetStream's timestamp: UTC nanoseconds since the Unix epoch.
    pub recorded_at_nanos: i64,
    /// The payload (the CloudEvent), base64.
    pub payload_base64: String,
}

impl ProvedMessage {
    /// The payload bytes.
    pub fn payload(&self) -> Result<Vec<u8>, RecordError> {
        B64.decode(&self.payload_base64)
            .map_err(|_| RecordError::Base64("payload_base64"))
    }

    /// The message's leaf hash.
    pub fn leaf_hash(&self) -> Result<Hash, RecordError> {
        let payload = self.payload()?;
        Ok(MessageRef {
            seq: self.seq,
            subject: &self.subject,
            recorded_at_nanos: i128::from(self.recorded_at_nanos),
            payload: &payload,
        }
        .leaf_hash()?)
    }
}

fn encode_proof(proof: &[Hash]) -> Vec<String> {
    proof.iter().map(|h| B64.encode(h)).collect()
}

fn decode_proof(proof: &[String]) -> Result<Vec<Hash>, RecordError> {
    proof
        .iter()
        .map(|s| {
            B64.decode(s)
                .ok()
                .and_then(|v| Hash::try_from(v).ok())
                .ok_or(RecordError::Base64("a proof hash (32 bytes)"))
        })
        .collect()
}

/// An inclusion proof of one message against a signed checkpoint (`inventory prove SEQ`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// [`INCLUSION_FORMAT`].
    pub format: String,
    pub message: ProvedMessage,
    /// `message.seq - 1`.
    pub leaf_index: u64,
    /// The checkpoint's tree size.
    pub tree_size: u64,
    /// Sibling hashes from the leaf up, base64.
    pub proof: Vec<String>,
    /// The signed checkpoint note.
    pub checkpoint: String,
}

impl InclusionProof {
    pub fn new(message: ProvedMessage, tree_size: u64, proof: &[Hash], checkpoint: String) -> Self {
        Self {
            format: INCLUSION_FORMAT.to_owned(),
            leaf_index: message.seq.saturating_sub(1),
            message,
            tree_size,
            proof: encode_proof(proof),
            checkpoint,
        }
    }

    /// Checks the checkpoint's signature by one of `keys`, recomputes the message's leaf and
    /// checks the proof against the signed root. Returns the checkpoint.
    pub fn verify(&self, keys: &[Verifier]) -> Result<Checkpoint, RecordError> {
        if self.format != INCLUSION_FORMAT {
            return Err(RecordError::Format(self.format.clone()));
        }
        let cp = checkpoint::open(&self.checkpoint, keys)?;
        if self.tree_size != cp.size {
            return Err(RecordError::Mismatch(format!(
                "the proof is for a tree of {} leaves, the checkpoint signs {}",
                self.tree_size, cp.size
            )));
        }
        if self.leaf_index != self.message.seq.saturating_sub(1) || self.message.seq == 0 {
            return Err(RecordError::Mismatch(format!(
                "leaf index {} is not that of sequence {} (sequence - 1)",
                self.leaf_index, self.message.seq
            )));
        }
        let leaf = self.message.leaf_hash()?;
        let proof = decode_proof(&self.proof)?;
        merkle::verify_inclusion(self.leaf_index, cp.size, &leaf, &proof, &cp.root)?;
        Ok(cp)
    }
}

/// A consistency proof between two signed checkpoints of one log (`inventory prove
/// --consistency-from OLD`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    /// [`CONSISTENCY_FORMAT`].
    pub format: String,
    /// The older signed checkpoint note.
    pub old_checkpoint: String,
    /// The newer signed checkpoint note.
    pub checkpoint: String,
    /// The RFC 6962 consistency proof, base64 hashes.
    pub proof: Vec<String>,
}

impl ConsistencyProof {
    pub fn new(old_checkpoint: String, checkpoint: String, proof: &[Hash]) -> Self {
        Self {
            format: CONSISTENCY_FORMAT.to_owned(),
            old_checkpoint,
            checkpoint,
            proof: encode_proof(proof),
        }
    }

    /// Checks both signatures (each by one of `keys`), that both name the same log, and that the
    /// newer tree extends the older. Returns (older, newer).
    pub fn verify(&self, keys: &[Verifier]) -> Result<(Checkpoint, Checkpoint), RecordError> {
        if self.format != CONSISTENCY_FORMAT {
            return Err(RecordError::Format(self.format.clone()));
        }
        let old = checkpoint::open(&self.old_checkpoint, keys)?;
        let new = checkpoint::open(&self.checkpoint, keys)?;
        if old.origin != new.origin {
            return Err(RecordError::Mismatch(format!(
                "the checkpoints are of two logs ({:?} and {:?})",
                old.origin, new.origin
            )));
        }
        let proof = decode_proof(&self.proof)?;
        merkle::verify_consistency(old.size, new.size, &old.root, &new.root, &proof)?;
        Ok((old, new))
    }
}

/// A proof file, told apart by its `format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofFile {
    Inclusion(InclusionProof),
    Consistency(ConsistencyProof),
}

impl ProofFile {
    pub fn parse(json: &[u8]) -> Result<Self, RecordError> {
        #[derive(Deserialize)]
        struct Head {
            format: String,
        }
        let head: Head =
            serde_json::from_slice(json).map_err(|e| RecordError::Json(e.to_string()))?;
        let err = |e: serde_json::Error| RecordError::Json(e.to_string());
        match head.format.as_str() {
            INCLUSION_FORMAT => Ok(Self::Inclusion(serde_json::from_slice(json).map_err(err)?)),
            CONSISTENCY_FORMAT => Ok(Self::Consistency(
                serde_json::from_slice(json).map_err(err)?,
            )),
            other => Err(RecordError::Format(other.to_owned())),
        }
    }
}

/// Assembles the leaf hashes a checkpoint signed from its full tiles and its tail, and checks
/// they hash to its root.
pub fn authenticated_leaves(
    checkpoint: &Checkpoint,
    tiles: &[Vec<Hash>],
    tail: &[Hash],
) -> Result<Vec<Hash>, RecordError> {
    let want_tiles = full_tiles(checkpoint.size);
    if tiles.len() as u64 != want_tiles
        || tiles.iter().any(|t| t.len() as u64 != TILE_WIDTH)
        || tail.len() as u64 != checkpoint.size % TILE_WIDTH
    {
        return Err(RecordError::Mismatch(format!(
            "the stored leaf hashes do not have the shape of a tree of {} leaves",
            checkpoint.size
        )));
    }
    let mut leaves: Vec<Hash> = Vec::with_capacity(usize::try_from(checkpoint.size).unwrap_or(0));
    for t in tiles {
        leaves.extend_from_slice(t);
    }
    leaves.extend_from_slice(tail);
    if merkle::root(&leaves) != checkpoint.root {
        return Err(RecordError::Mismatch(format!(
            "the stored leaf hashes do not hash to the signed root of the checkpoint of size {}",
            checkpoint.size
        )));
    }
    Ok(leaves)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{consistency_proof, inclusion_proof, root};
    use crate::note::Signer;

    fn message(seq: u64) -> ProvedMessage {
        ProvedMessage {
            seq,
            subject: format!("inventory.asset.aws.account.{seq}"),
            recorded_at_nanos: 1_760_000_000_000_000_000 + seq as i64,
            payload_base64: B64.encode(format!("{{\"n\":{seq}}}")),
        }
    }

    fn log(n: u64) -> (Vec<ProvedMessage>, Vec<Hash>) {
        let msgs: Vec<ProvedMessage> = (1..=n).map(message).collect();
        let leaves = msgs
            .iter()
            .map(|m| m.leaf_hash().unwrap_or_default())
            .collect();
        (msgs, leaves)
    }

    fn signer(seed: u8) -> Signer {
        Signer::from_seed("asset-inventory/INVENTORY", [seed; 32]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn signed(s: &Signer, leaves: &[Hash]) -> String {
        Checkpoint::new(
            "asset-inventory/INVENTORY",
            leaves.len() as u64,
            root(leaves),
        )
        .and_then(|c| c.sign(s))
        .unwrap_or_default()
    }

    #[test]
    fn an_inclusion_proof_verifies_offline_and_fails_for_any_changed_byte() {
        let s = signer(1);
        let (msgs, leaves) = log(300);
        let note = signed(&s, &leaves);
        let m = msgs[122].clone();
        let proof = inclusion_proof(&leaves, m.seq - 1).unwrap_or_default();
        let p = InclusionProof::new(m.clone(), 300, &proof, note.clone());
        let json = serde_json::to_vec(&p).unwrap_or_default();
        let ProofFile::Inclusion(back) = ProofFile::parse(&json).unwrap_or_else(|e| panic!("{e}"))
        else {
            panic!("not an inclusion proof")
        };
        assert_eq!(back.verify(&[s.verifier()]).map(|c| c.size), Ok(300));

        let payload = m.payload().unwrap_or_default();
        for i in 0..payload.len() {
            let mut changed = payload.clone();
            changed[i] ^= 0x01;
            let mut bad = p.clone();
            bad.message.payload_base64 = B64.encode(&changed);
            assert!(bad.verify(&[s.verifier()]).is_err(), "byte {i} changed");
        }
        let mut bad = p.clone();
        bad.message.recorded_at_nanos += 1;
        assert!(bad.verify(&[s.verifier()]).is_err());
        let mut bad = p.clone();
        bad.message.subject.push('x');
        assert!(bad.verify(&[s.verifier()]).is_err());
        let mut bad = p.clone();
        bad.message.seq += 1;
        bad.leaf_index += 1;
        assert!(bad.verify(&[s.verifier()]).is_err());
        let mut bad = p.clone();
        bad.tree_size = 299;
        assert!(bad.verify(&[s.verifier()]).is_err());
        // Another key's signature over the same checkpoint is not accepted.
        let other = InclusionProof::new(m, 300, &proof, signed(&signer(2), &leaves));
        assert!(matches!(
            other.verify(&[s.verifier()]),
            Err(RecordError::Checkpoint(_))
        ));
        assert!(ProofFile::parse(br#"{"format":"something/else"}"#).is_err());
        let mut extra: serde_json::Value = serde_json::from_slice(&json).unwrap_or_default();
        extra["unexpected"] = serde_json::Value::Bool(true);
        assert!(ProofFile::parse(&serde_json::to_vec(&extra).unwrap_or_default()).is_err());
    }

    #[test]
    fn consistency_between_checkpoints_verifies_and_fails_for_a_fork() {
        let s = signer(1);
        let (_, leaves) = log(1000);
        let (old, new) = (signed(&s, &leaves[..300]), signed(&s, &leaves));
        let proof = consistency_proof(&leaves, 300).unwrap_or_default();
        let p = ConsistencyProof::new(old.clone(), new.clone(), &proof);
        let (a, b) = p.verify(&[s.verifier()]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((a.size, b.size), (300, 1000));

        // A forked log: message 17's payload differs, and the fork's tree is signed too (by the
        // same key, as a stolen key or a fooled checkpointer would).
        let mut forked = leaves.clone();
        let mut m = message(17);
        m.payload_base64 = B64.encode("{\"n\":-17}");
        forked[16] = m.leaf_hash().unwrap_or_default();
        let forked_new = signed(&s, &forked);
        let forked_proof = consistency_proof(&forked, 300).unwrap_or_default();
        let p = ConsistencyProof::new(old.clone(), forked_new, &forked_proof);
        assert!(matches!(
            p.verify(&[s.verifier()]),
            Err(RecordError::Proof(_))
        ));
        // Backwards is refused.
        let p = ConsistencyProof::new(new, old, &proof);
        assert!(p.verify(&[s.verifier()]).is_err());
    }

    #[test]
    fn stored_leaves_are_authenticated_by_the_signed_root() {
        let (_, leaves) = log(600);
        let cp = Checkpoint::new("o", 600, root(&leaves)).unwrap_or_else(|e| panic!("{e}"));
        let tiles: Vec<Vec<Hash>> = leaves[..512].chunks(256).map(<[Hash]>::to_vec).collect();
        let tail = &leaves[512..];
        assert_eq!(
            authenticated_leaves(&cp, &tiles, tail).unwrap_or_default(),
            leaves
        );
        let mut bad_tiles = tiles.clone();
        bad_tiles[1][3][0] ^= 1;
        assert!(authenticated_leaves(&cp, &bad_tiles, tail).is_err());
        assert!(authenticated_leaves(&cp, &tiles[..1], tail).is_err());
        assert!(authenticated_leaves(&cp, &tiles, &tail[1..]).is_err());

        let rec = CheckpointRecord::new("note\n".into(), tail);
        let back = CheckpointRecord::from_json(&rec.to_json()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.tail().unwrap_or_default(), tail);
        assert_eq!(first_difference(&leaves, &leaves), None);
        assert_eq!(first_difference(&leaves, &bad_tiles.concat()), Some(259));
        assert_eq!(first_difference(&leaves[..10], &leaves[..12]), Some(10));
        assert!(decode_hashes("x", &[0; 33]).is_err());
    }
}
