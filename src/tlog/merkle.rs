//! Merkle tree hashing and proofs as RFC 9162 (Certificate Transparency
//! 2.0, section 2.1) defines them: the building block of the transparency
//! log (evidence integrity). Pure functions over leaf hashes; storage,
//! checkpoints and signatures live elsewhere.
//!
//! - leaf hash `SHA-256(0x00 || leaf)`, node hash `SHA-256(0x01 || left || right)`;
//! - the tree hash of `n` leaves splits at `k`, the largest power of two
//!   below `n`;
//! - inclusion proofs (`PATH(m, D[n])`) and consistency proofs
//!   (`PROOF(m, D[n])`), with the verification algorithms of sections
//!   2.1.3.2 and 2.1.4.2, which need only the proof, the sizes and the roots,
//!   so an outsider can check them offline.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two smaller than `n` (`n` > 1).
fn split(n: usize) -> usize {
    debug_assert!(n > 1);
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The tree head (`MTH`) of the leaves whose hashes are given; the empty
/// tree's is `SHA-256("")`.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The inclusion proof of leaf `index` in the tree of `leaves`, or `None`
/// when the index is outside it.
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    (index < leaves.len()).then(|| {
        let mut proof = Vec::new();
        path(index, leaves, &mut proof);
        proof
    })
}

fn path(m: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(m, &leaves[..k], out);
        out.push(root(&leaves[k..]));
    } else {
        path(m - k, &leaves[k..], out);
        out.push(root(&leaves[..k]));
    }
}

/// Checks an inclusion proof (RFC 9162, 2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    tree_size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> bool {
    if index >= tree_size {
        return false;
    }
    let (mut fn_, mut sn) = (index, tree_size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}

/// The consistency proof between the first `old_size` leaves and all of
/// `leaves`, or `None` when `old_size` is 0 or larger than the tree.
pub fn consistency_proof(old_size: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    if old_size == 0 || old_size > leaves.len() {
        return None;
    }
    let mut proof = Vec::new();
    subproof(old_size, leaves, true, &mut proof);
    Some(proof)
}

fn subproof(m: usize, leaves: &[Hash], whole: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !whole {
            out.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &leaves[..k], whole, out);
        out.push(root(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, out);
        out.push(root(&leaves[..k]));
    }
}

/// Checks a consistency proof (RFC 9162, 2.1.4.2): the tree of `old_size`
/// leaves with head `old_root` is a prefix of the tree of `new_size` leaves
/// with head `new_root`.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size == 0 || old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    // With an exact power-of-two old tree, its head is the proof's start.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && fr == *old_root && sr == *new_root
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The leaves of the RFC 6962 test tree used across CT implementations.
    fn ct_leaves() -> Vec<Hash> {
        let raw: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        raw.iter().map(|d| leaf_hash(d)).collect()
    }

    #[test]
    fn known_tree_heads() {
        let leaves = ct_leaves();
        assert_eq!(
            hex::encode(root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex::encode(root(&leaves[..1])),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(
            hex::encode(root(&leaves)),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
        );
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("capture {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn every_inclusion_proof_verifies_and_a_wrong_one_does_not() {
        for n in 1..=33 {
            let all = leaves(n);
            let head = root(&all);
            for i in 0..n {
                let proof = inclusion_proof(i, &all).unwrap();
                assert!(verify_inclusion(i as u64, n as u64, &all[i], &proof, &head));
                // Another leaf, another index, another size, a changed step.
                let other = leaf_hash(b"not in the log");
                assert!(!verify_inclusion(i as u64, n as u64, &other, &proof, &head));
                if n > 1 {
                    let j = (i + 1) % n;
                    assert!(!verify_inclusion(
                        j as u64, n as u64, &all[i], &proof, &head
                    ));
                    let mut bad = proof.clone();
                    bad[0][0] ^= 1;
                    assert!(!verify_inclusion(i as u64, n as u64, &all[i], &bad, &head));
                }
                // (A wrong tree size can pass with the right head when the
                // path has the same shape: the size is bound to the head by
                // the signed checkpoint, not by the proof.)
            }
            assert!(inclusion_proof(n, &all).is_none());
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_tampering_breaks_it() {
        for n in 1..=33 {
            let all = leaves(n);
            let new_head = root(&all);
            for m in 1..=n {
                let old_head = root(&all[..m]);
                let proof = consistency_proof(m, &all).unwrap();
                assert!(
                    verify_consistency(m as u64, n as u64, &old_head, &new_head, &proof),
                    "{m} -> {n}"
                );
                if m < n {
                    // A rewritten early leaf: the old head no longer fits.
                    let mut forged = all.clone();
                    forged[0] = leaf_hash(b"rewritten");
                    let forged_old = root(&forged[..m]);
                    assert!(!verify_consistency(
                        m as u64,
                        n as u64,
                        &forged_old,
                        &new_head,
                        &proof
                    ));
                    let mut bad = proof.clone();
                    let last = bad.len() - 1;
                    bad[last][31] ^= 0x80;
                    assert!(!verify_consistency(
                        m as u64, n as u64, &old_head, &new_head, &bad
                    ));
                }
            }
            assert!(consistency_proof(0, &all).is_none());
            assert!(consistency_proof(n + 1, &all).is_none());
        }
    }
}
