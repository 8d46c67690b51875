//! C2SP transparency-log checkpoints (<https://c2sp.org/tlog-checkpoint>): the note text naming a
//! log (origin), its tree size and its RFC 6962 root hash, and optional extension lines.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::merkle::Hash;
use crate::note::{self, NoteError, Signer, Verifier};

/// What is wrong with a checkpoint's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    #[error("invalid origin {0:?}: it must be non-empty, without spaces or '+'")]
    Origin(String),
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// A log's tree head: the checkpoint's note text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity (this project: `asset-inventory/<stream>`).
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// The RFC 6962 root of the first `size` leaves.
    pub root: Hash,
    /// Extension lines (none are written by this project).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// A checkpoint without extension lines. The origin follows the key-name rules (non-empty,
    /// no spaces, no `+`), as the specification recommends.
    pub fn new(origin: &str, size: u64, root: Hash) -> Result<Self, CheckpointError> {
        if !note::valid_key_name(origin) {
            return Err(CheckpointError::Origin(origin.to_owned()));
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions: Vec::new(),
        })
    }

    /// The note text: origin, size, base64 root, extensions, each ending in a newline.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// Parses a note text strictly: at least three non-empty lines, a decimal size without
    /// leading zeros, a canonical base64 root of 32 bytes, non-empty extension lines.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::Malformed("the text must end in a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        let size = lines
            .next()
            .ok_or(CheckpointError::Malformed("no tree size line"))?;
        let root = lines
            .next()
            .ok_or(CheckpointError::Malformed("no root hash line"))?;
        if origin.is_empty() {
            return Err(CheckpointError::Malformed("empty origin"));
        }
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(CheckpointError::Malformed(
                "the tree size is not a decimal number without leading zeros",
            ));
        }
        let size = size
            .parse::<u64>()
            .map_err(|_| CheckpointError::Malformed("the tree size is too large"))?;
        let root: Hash = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(CheckpointError::Malformed(
                "the root hash is not the base64 of 32 bytes",
            ))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(CheckpointError::Malformed("empty extension line"));
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// Signs the checkpoint: the signed note text.
    pub fn sign(&self, signer: &Signer) -> Result<String, CheckpointError> {
        Ok(signer.sign(&self.to_text())?)
    }
}

/// Opens a signed checkpoint: the note must carry a verified signature by one of `keys`, and its
/// text must be a checkpoint.
pub fn open(signed_note: &str, keys: &[Verifier]) -> Result<Checkpoint, CheckpointError> {
    let note = note::open(signed_note.as_bytes(), keys)?;
    Checkpoint::parse(&note.text)
}

/// Parses a signed checkpoint without checking any signature (to read what it claims, e.g. to
/// compare it with a recomputed tree before deciding whose key to trust).
pub fn parse_unverified(signed_note: &str) -> Result<Checkpoint, CheckpointError> {
    match note::open(signed_note.as_bytes(), &[]) {
        Err(NoteError::Unverified { .. }) => {}
        Err(e) => return Err(e.into()),
        Ok(_) => unreachable!("no key was given"),
    }
    let split = signed_note
        .rfind("\n\n")
        .ok_or(CheckpointError::Malformed("not a signed note"))?;
    Checkpoint::parse(&signed_note[..=split])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::NoteError;

    // The example of https://c2sp.org/tlog-checkpoint.
    const SPEC_EXAMPLE: &str = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n\
        — example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";

    #[test]
    fn the_specification_example_parses_and_round_trips() {
        let c = parse_unverified(SPEC_EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.origin, "example.com/behind-the-sofa");
        assert_eq!(c.size, 20_852_163);
        assert_eq!(
            hex::encode(c.root),
            "0ac5186a91863e8e1d90c808014aa89bf5da8e3ee1d9f07630f0378f68f1ab62"
        );
        assert!(c.extensions.is_empty());
        assert_eq!(
            c.to_text(),
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
        // Its key is not published: opening it with any other key fails as unverified.
        let other = Signer::from_seed("example.com/behind-the-sofa", [1; 32])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            open(SPEC_EXAMPLE, &[other.verifier()]),
            Err(CheckpointError::Note(NoteError::Unverified { .. }))
        ));
    }

    #[test]
    fn strict_parsing() {
        let root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
        assert!(Checkpoint::parse(&format!("o\n0\n{root}\n")).is_ok());
        assert!(Checkpoint::parse(&format!("o\n5\n{root}\next one\next two\n")).is_ok());
        for bad in [
            format!("o\n5\n{root}"),                      // no final newline
            format!("\n5\n{root}\n"),                     // empty origin
            format!("o\n05\n{root}\n"),                   // leading zero
            format!("o\n+5\n{root}\n"),                   // sign
            format!("o\n-1\n{root}\n"),                   // negative
            format!("o\n 5\n{root}\n"),                   // space
            format!("o\n\n{root}\n"),                     // empty size
            format!("o\n18446744073709551616\n{root}\n"), // > u64
            "o\n5\n".to_owned(),                          // no root
            "o\n5\nAAAA\n".to_owned(),                    // root not 32 bytes
            format!("o\n5\n{}\n", &root[..43]),           // not canonical base64
            format!("o\n5\n{root}\n\n"),                  // empty extension line
            format!("o\n5\n{root}\next\n\n"),             // empty extension line
        ] {
            assert!(Checkpoint::parse(&bad).is_err(), "{bad:?} accepted");
        }
        assert!(Checkpoint::new("has space", 1, [0; 32]).is_err());
        assert!(Checkpoint::new("a+b", 1, [0; 32]).is_err());
    }

    #[test]
    fn signed_checkpoints_open_only_with_their_key() {
        let signer = Signer::from_seed("asset-inventory/INVENTORY", [3; 32])
            .unwrap_or_else(|e| panic!("{e}"));
        let c = Checkpoint::new("asset-inventory/INVENTORY", 42, [9; 32])
            .unwrap_or_else(|e| panic!("{e}"));
        let signed = c.sign(&signer).unwrap_or_default();
        assert_eq!(open(&signed, &[signer.verifier()]), Ok(c.clone()));
        assert_eq!(parse_unverified(&signed), Ok(c));
        let other = Signer::from_seed("asset-inventory/INVENTORY", [4; 32])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(open(&signed, &[other.verifier()]).is_err());
        // One changed character of the text breaks the signature.
        let tampered = signed.replacen("42", "43", 1);
        assert!(matches!(
            open(&tampered, &[signer.verifier()]),
            Err(CheckpointError::Note(NoteError::InvalidSignature { .. }))
        ));
    }
}
