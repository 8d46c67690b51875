//! Opaque paging cursors: the unpadded base64url encoding (RFC 4648 §5) of the last key of a page.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Encodes the last key of a page as a cursor.
pub fn encode(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[idx as usize]));
        }
    }
    out
}

/// Decodes a cursor back to the key it was made from.
///
/// Any string of the alphabet (optionally `=`-padded) decodes: a cursor this API did not issue
/// names the position after the key it decodes to (bytes that are not UTF-8 replaced, a dangling
/// last character ignored), so the spec can state the accepted cursors as a pattern
/// ([`crate::params::KEY_CURSOR_PATTERN`]). Only a character outside the alphabet is an error.
pub fn decode(cursor: &str) -> Result<String, &'static str> {
    let input = cursor.trim_end_matches('=').as_bytes();
    let mut bytes = Vec::with_capacity(input.len() * 3 / 4);
    for chunk in input.chunks(4) {
        let mut n: u32 = 0;
        for (i, c) in chunk.iter().enumerate() {
            let v = ALPHABET
                .iter()
                .position(|a| a == c)
                .ok_or("not a cursor returned by this API (bad character)")?;
            n |= (v as u32) << (18 - 6 * i);
        }
        let produced = chunk.len().saturating_sub(1);
        for i in 0..produced {
            bytes.push(((n >> (16 - 8 * i)) & 0xff) as u8);
        }
    }
    Ok(String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // RFC 4648 test vectors, unpadded.
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain), enc);
            assert_eq!(decode(enc).unwrap(), plain);
        }
        assert_eq!(encode("\u{fb}\u{ff}"), "w7vDvw");
    }

    #[test]
    fn round_trips_keys_and_rejects_garbage() {
        for key in [
            "aws/account/123",
            "gcp/project/folders/1/projects/x y",
            "ü/ß/✓",
        ] {
            let c = encode(key);
            assert!(c.bytes().all(|b| ALPHABET.contains(&b)), "{c}");
            assert_eq!(decode(&c).unwrap(), key);
        }
        assert!(decode("ab+c").is_err());
        assert!(decode("Zm9v=").is_ok());
        assert!(decode("Zm=9v").is_err());
        // Cursors this API never issues still name a position.
        assert_eq!(decode("Zm9vY").unwrap(), "foo");
        assert_eq!(decode("_w").unwrap(), "\u{fffd}"); // 0xff: not UTF-8
    }
}
