//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys: key names and IDs, the
//! verifier and signer key texts of `golang.org/x/mod/sumdb/note`, signing and strict opening.
//!
//! Secrets never reach an error message: a bad signer key is reported by what is wrong with it,
//! never by its text, and [`Signer`]'s `Debug` prints only its name and key ID.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The signature type byte of Ed25519 in key IDs and key texts.
pub const ALG_ED25519: u8 = 0x01;
/// Most signature lines a note may carry (the specification asks for at least 16).
pub const MAX_SIGNATURES: usize = 100;
/// Largest note accepted, in bytes.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;
/// The prefix of a signature line: em dash (U+2014) and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// What is wrong with a key, a note or a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("invalid key name {0:?}: it must be non-empty, without spaces or '+'")]
    KeyName(String),
    #[error("malformed verifier key: {0}")]
    VerifierKey(&'static str),
    /// Never carries the key's text.
    #[error("malformed signer key: {0}")]
    SignerKey(&'static str),
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    #[error("ambiguous key {name}+{key_id:08x}: given more than once")]
    AmbiguousKey { name: String, key_id: u32 },
    #[error("invalid signature for key {name}+{key_id:08x}")]
    InvalidSignature { name: String, key_id: u32 },
    #[error("note has no verifiable signatures (signed by: {signers})")]
    Unverified { signers: String },
}

/// Whether `name` may be a key name: non-empty, no Unicode spaces, no `+`.
pub fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// The key ID: the first four bytes (big-endian) of SHA-256(name ‖ 0x0A ‖ alg ‖ public key).
pub fn key_id(name: &str, alg: u8, public_key: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', alg]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

fn parse_key_id(s: &str) -> Option<u32> {
    (s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(s, 16).ok())
        .flatten()
}

/// A public key that verifies notes: `<name>+<key ID, 8 hex>+<base64(0x01 ‖ 32-byte key)>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl Verifier {
    /// Parses a verifier key text (no surrounding whitespace).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(key64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::VerifierKey("expected NAME+KEYID+KEY"));
        };
        if !valid_key_name(name) {
            return Err(NoteError::VerifierKey("invalid key name"));
        }
        let id = parse_key_id(id).ok_or(NoteError::VerifierKey("key ID is not 8 hex digits"))?;
        let key = B64
            .decode(key64)
            .map_err(|_| NoteError::VerifierKey("key is not base64"))?;
        if key.is_empty() {
            return Err(NoteError::VerifierKey("empty key"));
        }
        if key_id(name, key[0], &key[1..]) != id {
            return Err(NoteError::VerifierKey(
                "key ID does not match the name and key",
            ));
        }
        if key[0] != ALG_ED25519 {
            return Err(NoteError::VerifierKey("unknown signature algorithm"));
        }
        let bytes: [u8; 32] = key[1..]
            .try_into()
            .map_err(|_| NoteError::VerifierKey("an Ed25519 key has 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| NoteError::VerifierKey("not an Ed25519 public key"))?;
        Ok(Self {
            name: name.to_owned(),
            key_id: id,
            key,
        })
    }

    /// The verifier for an Ed25519 public key.
    pub fn from_public_key(name: &str, key: VerifyingKey) -> Result<Self, NoteError> {
        if !valid_key_name(name) {
            return Err(NoteError::KeyName(name.to_owned()));
        }
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id(name, ALG_ED25519, key.as_bytes()),
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The verifier key text.
    pub fn key_text(&self) -> String {
        let mut key = Vec::with_capacity(33);
        key.push(ALG_ED25519);
        key.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id, B64.encode(key))
    }

    /// Whether `signature` is this key's Ed25519 signature of `msg`.
    pub fn verify(&self, msg: &[u8], signature: &[u8]) -> bool {
        Signature::from_slice(signature)
            .map(|s| self.key.verify_strict(msg, &s).is_ok())
            .unwrap_or(false)
    }
}

/// A private key that signs notes. Its key text is
/// `PRIVATE+KEY+<name>+<key ID>+<base64(0x01 ‖ 32-byte seed)>`.
pub struct Signer {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Signer {
    /// The signer of an Ed25519 seed (32 random bytes).
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        if !valid_key_name(name) {
            return Err(NoteError::KeyName(name.to_owned()));
        }
        let key = SigningKey::from_bytes(&seed);
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id(name, ALG_ED25519, key.verifying_key().as_bytes()),
            key,
        })
    }

    /// Parses a signer key text (no surrounding whitespace). Errors never contain the text.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let mut parts = text.splitn(5, '+');
        let fields = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        );
        let (Some("PRIVATE"), Some("KEY"), Some(name), Some(id), Some(key64)) = fields else {
            return Err(NoteError::SignerKey("expected PRIVATE+KEY+NAME+KEYID+KEY"));
        };
        if !valid_key_name(name) {
            return Err(NoteError::SignerKey("invalid key name"));
        }
        let id = parse_key_id(id).ok_or(NoteError::SignerKey("key ID is not 8 hex digits"))?;
        let key = B64
            .decode(key64)
            .map_err(|_| NoteError::SignerKey("key is not base64"))?;
        let (alg, seed) = key.split_first().ok_or(NoteError::SignerKey("empty key"))?;
        if *alg != ALG_ED25519 {
            return Err(NoteError::SignerKey("unknown signature algorithm"));
        }
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| NoteError::SignerKey("an Ed25519 seed has 32 bytes"))?;
        let signer = Self::from_seed(name, seed)?;
        if signer.key_id != id {
            return Err(NoteError::SignerKey(
                "key ID does not match the name and key",
            ));
        }
        Ok(signer)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The signer key text. It is the secret: write it only to a protected file.
    pub fn key_text(&self) -> String {
        let mut key = Vec::with_capacity(33);
        key.push(ALG_ED25519);
        key.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id,
            B64.encode(key)
        )
    }

    /// The matching verifier.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// Signs `text` (ending in a newline, no control characters but newlines) into a note: the
    /// text, a blank line and one signature line.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        if !text.ends_with('\n') {
            return Err(NoteError::Malformed("the text must end in a newline"));
        }
        check_characters(text)?;
        let sig = self.key.sign(text.as_bytes());
        let mut raw = Vec::with_capacity(4 + 64);
        raw.extend_from_slice(&self.key_id.to_be_bytes());
        raw.extend_from_slice(&sig.to_bytes());
        let note = format!("{text}\n{SIG_PREFIX}{} {}\n", self.name, B64.encode(raw));
        if note.len() > MAX_NOTE_BYTES {
            return Err(NoteError::Malformed("the note is too large"));
        }
        Ok(note)
    }
}

/// One signature line: the key's name and ID, and the signature as written (base64 of key ID ‖
/// signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLine {
    pub name: String,
    pub key_id: u32,
    pub base64: String,
}

/// An opened note: its text and which of its signatures were verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The signed text, including its final newline.
    pub text: String,
    /// Signatures by the given keys, each verified.
    pub verified: Vec<SignatureLine>,
    /// Signatures by keys not given (ignored, as the specification requires).
    pub unverified: Vec<SignatureLine>,
}

fn check_characters(msg: &str) -> Result<(), NoteError> {
    if msg.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Malformed(
            "control characters other than newline",
        ));
    }
    Ok(())
}

/// Parses `msg` and verifies its signatures by `known` keys. Signatures by other keys are
/// ignored; a known key's signature that does not verify fails the whole note; at least one must
/// verify.
pub fn open(msg: &[u8], known: &[Verifier]) -> Result<Note, NoteError> {
    if msg.len() > MAX_NOTE_BYTES {
        return Err(NoteError::Malformed("the note is too large"));
    }
    let msg = std::str::from_utf8(msg).map_err(|_| NoteError::Malformed("not UTF-8"))?;
    check_characters(msg)?;
    let split = msg
        .rfind("\n\n")
        .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let (text, sigs) = (&msg[..=split], &msg[split + 2..]);
    if sigs.is_empty() || !sigs.ends_with('\n') {
        return Err(NoteError::Malformed("the signatures must end in a newline"));
    }
    let mut note = Note {
        text: text.to_owned(),
        verified: Vec::new(),
        unverified: Vec::new(),
    };
    let mut count = 0;
    for line in sigs[..sigs.len() - 1].split('\n') {
        let rest = line.strip_prefix(SIG_PREFIX).ok_or(NoteError::Malformed(
            "a signature line must start with '— '",
        ))?;
        let (name, b64) = rest.split_once(' ').unwrap_or((rest, ""));
        let raw = B64
            .decode(b64)
            .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
        if !valid_key_name(name) || raw.len() < 5 {
            return Err(NoteError::Malformed("invalid signature line"));
        }
        count += 1;
        if count > MAX_SIGNATURES {
            return Err(NoteError::Malformed("too many signatures"));
        }
        let id = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let line = SignatureLine {
            name: name.to_owned(),
            key_id: id,
            base64: b64.to_owned(),
        };
        let mut keys = known.iter().filter(|v| v.name == name && v.key_id == id);
        let Some(key) = keys.next() else {
            if !note.unverified.contains(&line) {
                note.unverified.push(line);
            }
            continue;
        };
        if keys.next().is_some() {
            return Err(NoteError::AmbiguousKey {
                name: name.to_owned(),
                key_id: id,
            });
        }
        if note
            .verified
            .iter()
            .any(|s| s.name == name && s.key_id == id)
        {
            continue; // a repeated signature by one key counts once
        }
        if !key.verify(text.as_bytes(), &raw[4..]) {
            return Err(NoteError::InvalidSignature {
                name: name.to_owned(),
                key_id: id,
            });
        }
        note.verified.push(line);
    }
    if note.verified.is_empty() {
        let signers = note
            .unverified
            .iter()
            .map(|s| format!("{}+{:08x}", s.name, s.key_id))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(NoteError::Unverified { signers });
    }
    Ok(note)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test vectors of golang.org/x/mod/sumdb/note (BSD-3-Clause):
    // https://github.com/golang/mod/blob/master/sumdb/note/note_test.go
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const PETER_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                        then you don't know what your problem is.\n";
    const PETER_SIG: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const ENOCH_SIG: &str = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    fn peter() -> Verifier {
        Verifier::parse(PETER_VKEY).unwrap_or_else(|e| panic!("{e}"))
    }

    fn enoch() -> Verifier {
        Verifier::parse(ENOCH_VKEY).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_reference_keys_parse_and_manglings_do_not() {
        let v = peter();
        assert_eq!((v.name(), v.key_id()), ("PeterNeumann", 0xc74f20a3));
        assert_eq!(v.key_text(), PETER_VKEY);
        let b = PETER_VKEY.as_bytes();
        for i in 0..=b.len() {
            for j in i + 1..=b.len() {
                if (i, j) != (0, b.len()) {
                    let part = String::from_utf8_lossy(&b[i..j]);
                    assert!(Verifier::parse(&part).is_err(), "{part} accepted");
                }
            }
        }
        for i in 0..b.len() {
            let mut m = b.to_vec();
            m[i] += 1;
            let m = String::from_utf8_lossy(&m);
            assert!(Verifier::parse(&m).is_err(), "{m} accepted");
        }
        // Wrong key length and unknown algorithm, each with an adjusted key ID.
        assert!(Verifier::parse(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
        )
        .is_err());
        assert!(Verifier::parse(
            "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        )
        .is_err());

        let s = Signer::parse(PETER_SKEY).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.key_text(), PETER_SKEY);
        assert_eq!(s.verifier(), v);
        let b = PETER_SKEY.as_bytes();
        for i in 0..=b.len() {
            for j in i + 1..=b.len() {
                if (i, j) != (0, b.len()) {
                    let part = String::from_utf8_lossy(&b[i..j]);
                    assert!(
                        Signer::parse(&part).is_err(),
                        "a part of the key was accepted"
                    );
                }
            }
        }
        for i in 0..b.len() {
            let mut m = b.to_vec();
            m[i] += 1;
            assert!(
                Signer::parse(&String::from_utf8_lossy(&m)).is_err(),
                "a mangled key was accepted"
            );
        }
    }

    #[test]
    fn signer_errors_and_debug_never_show_the_key() {
        let s = Signer::parse(PETER_SKEY).unwrap_or_else(|e| panic!("{e}"));
        let debug = format!("{s:?}");
        assert!(
            debug.contains("PeterNeumann") && debug.contains("c74f20a3"),
            "{debug}"
        );
        assert!(!debug.contains("AYEKFALV"), "{debug}");
        let secret = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
        for bad in [
            format!("PRIVATE+KEY+PeterNeumann+c74f20a4+{secret}"),
            format!("PRIVATE+KEY+PeterNeumann+c74f20a3+{secret}x"),
            format!("PRIVATE+KEY+Peter Neumann+c74f20a3+{secret}"),
            secret.to_owned(),
        ] {
            let e = Signer::parse(&bad).map(|_| ()).unwrap_err().to_string();
            assert!(!e.contains("AYEKFALV") && !e.contains("FGyNh"), "{e}");
        }
    }

    #[test]
    fn signing_the_reference_text_gives_the_reference_note() {
        let s = Signer::parse(PETER_SKEY).unwrap_or_else(|e| panic!("{e}"));
        let note = s.sign(TEXT).unwrap_or_default();
        assert_eq!(note, format!("{TEXT}\n{PETER_SIG}"));
        assert!(s.sign("abc").is_err());
        assert!(s.sign("a\tb\n").is_err());
    }

    #[test]
    fn opening_follows_the_reference() {
        let both = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
        let n = open(both.as_bytes(), &[peter()]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n.text, TEXT);
        assert_eq!(n.verified.len(), 1);
        assert_eq!(n.verified[0].key_id, 0xc74f20a3);
        assert_eq!(n.unverified.len(), 1);
        assert_eq!(n.unverified[0].name, "EnochRoot");
        let n = open(both.as_bytes(), &[peter(), enoch()]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((n.verified.len(), n.unverified.len()), (2, 0));
        assert!(matches!(
            open(both.as_bytes(), &[]),
            Err(NoteError::Unverified { .. })
        ));
        // The same key given twice, used or not.
        let enoch_only = format!("{TEXT}\n{ENOCH_SIG}");
        assert!(matches!(
            open(enoch_only.as_bytes(), &[enoch(), peter(), enoch()]),
            Err(NoteError::AmbiguousKey { .. })
        ));
        let peter_only = format!("{TEXT}\n{PETER_SIG}");
        assert!(open(peter_only.as_bytes(), &[enoch(), peter(), enoch()]).is_ok());
        // Too many signatures.
        let many = format!("{TEXT}\n{}", PETER_SIG.repeat(101));
        assert!(matches!(
            open(many.as_bytes(), &[peter()]),
            Err(NoteError::Malformed(_))
        ));
        // A known key's signature that does not verify fails the note.
        let bad = format!("{TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
        assert!(matches!(
            open(bad.as_bytes(), &[peter()]),
            Err(NoteError::InvalidSignature { .. })
        ));
        // Repeated signatures count once; an unknown key's corrupt signature is ignored.
        let repeated = format!(
            "{TEXT}\n{PETER_SIG}{PETER_SIG}{ENOCH_SIG}{ENOCH_SIG}{}ABCD{}",
            &ENOCH_SIG[..60],
            &ENOCH_SIG[60..]
        );
        let n = open(repeated.as_bytes(), &[peter()]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((n.verified.len(), n.unverified.len()), (1, 2));
        // Malformed notes.
        for msg in [
            TEXT.to_owned(),
            format!("{TEXT}\n"),
            format!("{TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
            format!("\x01{TEXT}\n{PETER_SIG}"),
            format!("{TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="),
            format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"),
        ] {
            assert!(
                matches!(open(msg.as_bytes(), &[peter()]), Err(NoteError::Malformed(_))),
                "{msg:?}"
            );
        }
        let mut invalid_utf8 = b"\xff".to_vec();
        invalid_utf8.extend_from_slice(format!("{TEXT}\n{PETER_SIG}").as_bytes());
        assert!(open(&invalid_utf8, &[peter()]).is_err());
        // Another key with the same name, or the same ID under another name, is not the key.
        let renamed = PETER_SIG.replace("PeterNeumann", "CarmenSandiego");
        assert!(matches!(
            open(format!("{TEXT}\n{renamed}").as_bytes(), &[peter()]),
            Err(NoteError::Unverified { .. })
        ));
        let other_id = PETER_SIG.replace("x08g", "xxxx");
        assert!(matches!(
            open(format!("{TEXT}\n{other_id}").as_bytes(), &[peter()]),
            Err(NoteError::Unverified { .. })
        ));
    }

    #[test]
    fn the_specification_example_parses() {
        // https://c2sp.org/signed-note: its example note (the key is not published, so the
        // signature is only parsed, and ignored as unknown).
        let msg = "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n\n\
                   — quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n";
        match open(msg.as_bytes(), &[peter()]) {
            Err(NoteError::Unverified { signers }) => {
                assert!(
                    signers.starts_with("quasimodo.example/salvatore+"),
                    "{signers}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn generated_keys_round_trip_and_sign() {
        let s = Signer::from_seed("asset-inventory/INVENTORY", [7; 32])
            .unwrap_or_else(|e| panic!("{e}"));
        let again = Signer::parse(&s.key_text()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.verifier(), s.verifier());
        let v = Verifier::parse(&s.verifier().key_text()).unwrap_or_else(|e| panic!("{e}"));
        let note = s.sign("hello\n").unwrap_or_default();
        assert!(open(note.as_bytes(), std::slice::from_ref(&v)).is_ok());
        // Signed by another key of the same name: its key ID differs, so it is unknown.
        let other = Signer::from_seed("asset-inventory/INVENTORY", [8; 32])
            .unwrap_or_else(|e| panic!("{e}"));
        let forged = other.sign("hello\n").unwrap_or_default();
        assert!(matches!(
            open(forged.as_bytes(), std::slice::from_ref(&v)),
            Err(NoteError::Unverified { .. })
        ));
        // Its signature under our key ID fails as invalid.
        let id = format!("{:08x}", v.key_id());
        let raw = B64
            .decode(forged.trim_end().rsplit(' ').next().unwrap_or_default())
            .unwrap_or_default();
        let mut swapped = u32::from_str_radix(&id, 16)
            .unwrap_or_default()
            .to_be_bytes()
            .to_vec();
        swapped.extend_from_slice(&raw[4..]);
        let forged = format!(
            "hello\n\n— asset-inventory/INVENTORY {}\n",
            B64.encode(swapped)
        );
        assert!(matches!(
            open(forged.as_bytes(), &[v]),
            Err(NoteError::InvalidSignature { .. })
        ));
        assert!(Signer::from_seed("bad name", [1; 32]).is_err());
    }
}
