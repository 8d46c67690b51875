//! Stream-wide evidence for asset-inventory (DESIGN §5, docs/audit.md): an RFC 6962 Merkle tree
//! over every message of the `INVENTORY` stream, checkpoints of it in the C2SP tlog-checkpoint
//! format signed as C2SP signed notes with Ed25519, inclusion and consistency proofs, and the
//! records kept on the evidence stream.
//!
//! Pure: no IO, no clock, no randomness (keys are made from seeds the caller draws), except the
//! [`nats`] module (feature `nats`): the readers of the evidence on NATS that the CLI and the API
//! share.

pub mod checkpoint;
pub mod leaf;
pub mod merkle;
#[cfg(feature = "nats")]
pub mod nats;
pub mod note;
pub mod records;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use leaf::{LeafError, MessageRef};
pub use merkle::{CompactTree, Hash, ProofError};
pub use note::{NoteError, Signer, Verifier};
pub use records::{
    CheckpointRecord, ConsistencyProof, InclusionProof, ProofFile, ProvedMessage, RecordError,
    TILE_WIDTH,
};
