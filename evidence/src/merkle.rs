//! RFC 6962 §2.1 Merkle hash trees (as restated by RFC 9162 §2.1): hashing, an incremental tree,
//! and inclusion and consistency proofs — generation (RFC 6962 §2.1.1, §2.1.2) and verification
//! (RFC 9162 §2.1.3.2, §2.1.4.2).

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, an interior node or a root.
pub type Hash = [u8; 32];

/// Why a proof was refused, or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("a tree of size {second} cannot extend one of size {first}")]
    SizesOutOfOrder { first: u64, second: u64 },
    #[error("the proof has the wrong number of hashes for these sizes")]
    WrongLength,
    #[error("the proof does not lead to the expected root")]
    RootMismatch,
}

/// The hash of an empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// A leaf's hash: SHA-256(0x00 ‖ data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// An interior node's hash: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two smaller than `n` (`n` ≥ 2): where RFC 6962 splits a tree of `n`.
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - (n - 1).leading_zeros() - 1)
}

/// The Merkle tree hash (MTH) of a list of leaf hashes.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// An append-only tree that keeps only the roots of its perfect subtrees (O(log n) memory) and
/// yields the root at its current size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactTree {
    size: u64,
    /// Roots of the perfect subtrees the size decomposes into, largest (leftmost) first.
    peaks: Vec<Hash>,
}

impl CompactTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves appended.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut node = leaf;
        let mut size = self.size;
        // Each set low bit of the old size is a perfect subtree of the same height: merge.
        while size & 1 == 1 {
            let Some(left) = self.peaks.pop() else {
                unreachable!("a set bit of the size always has a peak")
            };
            node = node_hash(&left, &node);
            size >>= 1;
        }
        self.peaks.push(node);
        self.size += 1;
    }

    /// The root at the current size.
    pub fn root(&self) -> Hash {
        match self.peaks.split_last() {
            None => empty_root(),
            Some((last, rest)) => rest
                .iter()
                .rev()
                .fold(*last, |acc, left| node_hash(left, &acc)),
        }
    }
}

/// The inclusion proof (audit path, RFC 6962 §2.1.1 `PATH(m, D[n])`) of leaf `index` in the tree
/// of `leaves`, deepest sibling first.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, ProofError> {
    let size = leaves.len() as u64;
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut out = Vec::new();
    path(
        usize::try_from(index).unwrap_or(usize::MAX),
        leaves,
        &mut out,
    );
    Ok(out)
}

fn path(m: usize, d: &[Hash], out: &mut Vec<Hash>) {
    let n = d.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(m, &d[..k], out);
        out.push(root(&d[k..]));
    } else {
        path(m - k, &d[k..], out);
        out.push(root(&d[..k]));
    }
}

/// The consistency proof (RFC 6962 §2.1.2 `PROOF(m, D[n])`) that the tree of the first `first`
/// leaves is a prefix of the tree of all `leaves`.
pub fn consistency_proof(leaves: &[Hash], first: u64) -> Result<Vec<Hash>, ProofError> {
    let size = leaves.len() as u64;
    if first > size {
        return Err(ProofError::SizesOutOfOrder {
            first,
            second: size,
        });
    }
    let mut out = Vec::new();
    if first > 0 {
        subproof(
            usize::try_from(first).unwrap_or(usize::MAX),
            leaves,
            true,
            &mut out,
        );
    }
    Ok(out)
}

fn subproof(m: usize, d: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    let n = d.len();
    if m == n {
        if !complete {
            out.push(root(d));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &d[..k], complete, out);
        out.push(root(&d[k..]));
    } else {
        subproof(m - k, &d[k..], false, out);
        out.push(root(&d[..k]));
    }
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2): `leaf` is leaf `index` of the tree of `size`
/// leaves whose root is `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if &r != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies a consistency proof (RFC 9162 §2.1.4.2): the tree of `first` leaves with root
/// `first_root` is a prefix of the tree of `second` leaves with root `second_root`.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if first > second {
        return Err(ProofError::SizesOutOfOrder { first, second });
    }
    if first == second {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if first_root == second_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if first == 0 {
        // Every tree extends the empty one.
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::WrongLength)
        };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut path: Vec<&Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(first_root);
    }
    path.extend(proof);
    let (mut fnode, mut snode) = (first - 1, second - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*path[0], *path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if &fr != first_root || &sr != second_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The RFC 6962 test vectors of transparency-dev/merkle (Apache-2.0):
    // https://github.com/transparency-dev/merkle/blob/main/testonly/constants.go (LeafInputs,
    // RootHashes) and proof/verify_test.go (inclusionProofs, consistencyProofs).
    const LEAF_INPUTS: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    /// Roots of the trees of the first 0..=8 leaves.
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    /// (leaf number counted from 1, tree size, proof).
    const INCLUSION: [(u64, u64, &[&str]); 5] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            3,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            2,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    /// (first size, second size, proof).
    const CONSISTENCY: [(u64, u64, &[&str]); 5] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            6,
            7,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];

    fn h(s: &str) -> Hash {
        hex::decode(s)
            .ok()
            .and_then(|v| v.try_into().ok())
            .unwrap_or_else(|| panic!("bad test hash {s}"))
    }

    fn leaves() -> Vec<Hash> {
        LEAF_INPUTS
            .iter()
            .map(|s| leaf_hash(&hex::decode(s).unwrap_or_default()))
            .collect()
    }

    fn hashes(list: &[&str]) -> Vec<Hash> {
        list.iter().map(|s| h(s)).collect()
    }

    #[test]
    fn roots_of_every_prefix_match_the_vectors() {
        let leaves = leaves();
        let mut tree = CompactTree::new();
        assert_eq!(tree.root(), h(ROOTS[0]));
        for (n, expected) in ROOTS.iter().enumerate().skip(1) {
            tree.push(leaves[n - 1]);
            assert_eq!(tree.size(), n as u64);
            assert_eq!(tree.root(), h(expected), "incremental root at size {n}");
            assert_eq!(root(&leaves[..n]), h(expected), "root at size {n}");
        }
        assert_eq!(root(&[]), h(ROOTS[0]));
    }

    #[test]
    fn inclusion_vectors_are_generated_and_verify() {
        let leaves = leaves();
        for (leaf, size, proof) in INCLUSION {
            let (index, n) = (leaf - 1, size as usize);
            let want = hashes(proof);
            assert_eq!(
                inclusion_proof(&leaves[..n], index).unwrap_or_default(),
                want,
                "proof of leaf {index} in {size}"
            );
            let root = h(ROOTS[n]);
            let leaf = leaves[index as usize];
            assert_eq!(verify_inclusion(index, size, &leaf, &want, &root), Ok(()));
            // Corruptions, as transparency-dev's corruptInclusionProof makes them.
            let mut bad: Vec<(u64, u64, Hash, Vec<Hash>, Hash)> = vec![
                (index.wrapping_sub(1), size, leaf, want.clone(), root),
                (index + 1, size, leaf, want.clone(), root),
                (index ^ 2, size, leaf, want.clone(), root),
                (index, size * 2, leaf, want.clone(), root),
                (index, size / 2, leaf, want.clone(), root),
                (index, size, leaf_hash(b"WrongLeaf"), want.clone(), root),
                (index, size, leaf, want.clone(), empty_root()),
                (index, size, leaf, [want.clone(), vec![root]].concat(), root),
                (index, size, leaf, [vec![root], want.clone()].concat(), root),
            ];
            for i in 0..want.len() {
                let mut p = want.clone();
                p[i][0] ^= 8;
                bad.push((index, size, leaf, p, root));
            }
            if !want.is_empty() {
                bad.push((index, size, leaf, want[..want.len() - 1].to_vec(), root));
            }
            for (i, s, l, p, r) in bad {
                assert!(
                    verify_inclusion(i, s, &l, &p, &r).is_err(),
                    "corrupted proof of {index} in {size} verified (index {i}, size {s})"
                );
            }
        }
    }

    #[test]
    fn consistency_vectors_are_generated_and_verify() {
        let leaves = leaves();
        for (first, second, proof) in CONSISTENCY {
            let want = hashes(proof);
            assert_eq!(
                consistency_proof(&leaves[..second as usize], first).unwrap_or_default(),
                want,
                "proof {first} -> {second}"
            );
            let (r1, r2) = (h(ROOTS[first as usize]), h(ROOTS[second as usize]));
            assert_eq!(verify_consistency(first, second, &r1, &r2, &want), Ok(()));
            if want.is_empty() {
                continue;
            }
            let mut bad: Vec<(u64, u64, Hash, Hash, Vec<Hash>)> = vec![
                (first - 1, second, r1, r2, want.clone()),
                (first + 1, second, r1, r2, want.clone()),
                (first ^ 2, second, r1, r2, want.clone()),
                (first, second * 2, r1, r2, want.clone()),
                (first, second / 2, r1, r2, want.clone()),
                (first, second, leaf_hash(b"WrongRoot"), r2, want.clone()),
                (first, second, r1, leaf_hash(b"WrongRoot"), want.clone()),
                (first, second, r2, r1, want.clone()),
                (first, second, r1, r2, vec![]),
                (first, second, r1, r2, [want.clone(), vec![r1]].concat()),
                (first, second, r1, r2, [want.clone(), vec![r2]].concat()),
                (first, second, r1, r2, [vec![r1], want.clone()].concat()),
                (first, second, r1, r2, [vec![r2], want.clone()].concat()),
                (
                    first,
                    second,
                    r1,
                    r2,
                    [vec![want[0]], want.clone()].concat(),
                ),
                (first, second, r1, r2, want[..want.len() - 1].to_vec()),
            ];
            for i in 0..want.len() {
                let mut p = want.clone();
                p[i][0] ^= 16;
                bad.push((first, second, r1, r2, p));
            }
            for (f, s, a, b, p) in bad {
                assert!(
                    verify_consistency(f, s, &a, &b, &p).is_err(),
                    "corrupted proof {first} -> {second} verified (sizes {f} -> {s})"
                );
            }
        }
    }

    #[test]
    fn consistency_edge_cases_follow_the_reference() {
        let (a, b) = (leaf_hash(b"1"), leaf_hash(b"2"));
        let e = empty_root();
        assert!(verify_consistency(0, 0, &a, &b, &[]).is_err());
        assert!(verify_consistency(1, 1, &a, &b, &[]).is_err());
        assert!(verify_consistency(0, 0, &a, &a, &[]).is_ok());
        assert!(verify_consistency(0, 1, &a, &b, &[]).is_ok());
        assert!(verify_consistency(1, 1, &b, &b, &[]).is_ok());
        assert!(verify_consistency(1, 0, &a, &b, &[]).is_err());
        assert!(verify_consistency(2, 1, &a, &b, &[]).is_err());
        assert!(verify_consistency(1, 2, &a, &b, &[]).is_err());
        assert!(verify_consistency(0, 0, &e, &e, &[e]).is_err());
        assert!(verify_consistency(0, 1, &e, &e, &[e]).is_err());
        assert!(verify_consistency(1, 1, &e, &e, &[e]).is_err());
        // A single-entry tree's root is its leaf, with an empty proof.
        assert!(verify_inclusion(0, 1, &a, &[], &a).is_ok());
        assert!(verify_inclusion(0, 1, &a, &[], &b).is_err());
        for (index, size) in [(0, 0), (1, 0), (2, 1)] {
            assert!(verify_inclusion(index, size, &a, &[], &e).is_err());
        }
    }

    fn random_leaves(max: usize) -> impl Strategy<Value = Vec<Hash>> {
        proptest::collection::vec(any::<[u8; 32]>(), 1..max)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn incremental_and_recursive_roots_agree(leaves in random_leaves(300)) {
            let mut tree = CompactTree::new();
            for (n, l) in leaves.iter().enumerate() {
                tree.push(*l);
                prop_assert_eq!(tree.root(), root(&leaves[..=n]));
            }
        }

        #[test]
        fn every_inclusion_proof_verifies_and_mutations_fail(
            leaves in random_leaves(200),
            pick in any::<proptest::sample::Index>(),
            flip in any::<(proptest::sample::Index, u8)>(),
        ) {
            let size = leaves.len() as u64;
            let r = root(&leaves);
            for index in 0..size {
                let proof = inclusion_proof(&leaves, index).unwrap_or_default();
                prop_assert_eq!(verify_inclusion(index, size, &leaves[index as usize], &proof, &r), Ok(()));
            }
            let index = pick.index(leaves.len()) as u64;
            let proof = inclusion_proof(&leaves, index).unwrap_or_default();
            // Another leaf at that index fails.
            let mut other = leaves[index as usize];
            other[0] ^= 1;
            prop_assert!(verify_inclusion(index, size, &other, &proof, &r).is_err());
            // A flipped bit anywhere in the proof fails.
            if !proof.is_empty() {
                let mut p = proof.clone();
                let at = flip.0.index(p.len() * 32);
                p[at / 32][at % 32] ^= 1 << (flip.1 % 8);
                prop_assert!(verify_inclusion(index, size, &leaves[index as usize], &p, &r).is_err());
            }
            // The same proof for another index fails (unless that index has the same path).
            if size > 1 {
                let j = (index + 1) % size;
                prop_assert!(verify_inclusion(j, size, &leaves[index as usize], &proof, &r).is_err());
            }
        }

        #[test]
        fn consistency_holds_between_prefixes_and_fails_for_a_fork(
            leaves in random_leaves(200),
            cut in any::<proptest::sample::Index>(),
            fork_at in any::<proptest::sample::Index>(),
        ) {
            let n = leaves.len();
            let m = cut.index(n) + 1; // 1..=n
            let proof = consistency_proof(&leaves, m as u64).unwrap_or_default();
            let (r1, r2) = (root(&leaves[..m]), root(&leaves));
            prop_assert_eq!(verify_consistency(m as u64, n as u64, &r1, &r2, &proof), Ok(()));
            // A forked log: one leaf before m differs; its own root at m is signed.
            let mut forked = leaves.clone();
            let i = fork_at.index(m);
            forked[i][31] ^= 0x80;
            let forked_r1 = root(&forked[..m]);
            // The fork's first checkpoint against the original's second fails, with either's proof.
            let forked_proof = consistency_proof(&forked, m as u64).unwrap_or_default();
            prop_assert!(verify_consistency(m as u64, n as u64, &forked_r1, &r2, &proof).is_err());
            prop_assert!(verify_consistency(m as u64, n as u64, &forked_r1, &r2, &forked_proof).is_err());
            // And the original's first against the fork's second.
            let forked_r2 = root(&forked);
            prop_assert!(verify_consistency(m as u64, n as u64, &r1, &forked_r2, &forked_proof).is_err());
        }
    }
}
